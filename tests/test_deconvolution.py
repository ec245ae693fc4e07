"""Tests of refdeblur.deconvolution (derivations/deconvolution.md)."""

import numpy as np
import pytest
import skimage.data
from scipy.ndimage import convolve, gaussian_filter
from scipy.signal import fftconvolve

from refdeblur._engine import deconvolution as engine
from refdeblur.deconvolution import (METHODS, deconvolve, estimate_noise_std,
                                     shrink, shrink_threshold)
from refdeblur.evaluation.levin import find_cases, load_case

SIGMA = 0.01


def motion_kernel(rng, size):
    """A smooth random camera-shake-like kernel: a rasterised random polyline,
    lightly blurred, centred on its centre of mass, summing to 1."""
    angle = rng.uniform(0, 2 * np.pi)
    points = [np.zeros(2)]
    for _ in range(6):
        angle += rng.normal(0, 0.7)
        points.append(points[-1] + 0.09 * size * np.array([np.sin(angle),
                                                           np.cos(angle)]))
    t = np.linspace(0, 1, 50, endpoint=False)[:, None]
    path = np.concatenate([a + t * (b - a) for a, b in zip(points[:-1],
                                                           points[1:])])
    path -= path.mean(axis=0)
    ij = np.clip(np.round(path + size // 2).astype(int), 0, size - 1)
    k = np.zeros((size, size))
    np.add.at(k, (ij[:, 0], ij[:, 1]), 1.0)
    k = gaussian_filter(k, 0.6)
    return k / k.sum()


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


@pytest.fixture(scope="module")
def blurred_camera():
    """'valid' blur of camera (realistic borders) plus noise sigma = 0.01."""
    rng = np.random.default_rng(20261125)
    kernel = motion_kernel(rng, 21)
    r = kernel.shape[0] // 2
    sharp = skimage.data.camera()[100:100 + 256 + 2 * r,
                                  150:150 + 256 + 2 * r] / 255.0
    blurry = fftconvolve(sharp, kernel, mode="valid")  # (256, 256)
    blurry += SIGMA * rng.standard_normal(blurry.shape)
    return blurry, kernel, sharp[r:-r, r:-r]


@pytest.fixture(scope="module")
def results(blurred_camera):
    blurry, kernel, _ = blurred_camera
    return {method: deconvolve(blurry, kernel, method=method, noise_std=SIGMA)
            for method in ("hyper_laplacian", "wiener")}


# -- the w-subproblem (D10)-(D14) ---------------------------------------------


@pytest.mark.parametrize("alpha", [0.5, 2 / 3, 1.0, 0.8])
@pytest.mark.parametrize("beta", [1.0, 22.6, 4096.0])
def test_shrink_is_the_global_minimiser(alpha, beta, rng):
    tau = shrink_threshold(beta, alpha)
    v = rng.normal(0, 3 * tau, 400)
    w = shrink(v, beta, alpha)

    def energy(w_):
        return np.abs(w_) ** alpha + 0.5 * beta * (w_ - v[:, None]) ** 2

    grid = v[:, None] * np.linspace(0, 1, 4001)[None, :]  # minimiser in [0, v]
    best = energy(grid).min(axis=1)
    assert np.all(energy(w[:, None])[:, 0] <= best + 1e-12)
    assert np.all(np.sign(w) * np.sign(v) >= 0)


@pytest.mark.parametrize("alpha", [0.5, 2 / 3, 1.0, 0.8])
def test_shrink_threshold(alpha):
    """Zero up to tau (D11); just above it, for alpha < 1, the nonzero
    stationary point and 0 have the same energy."""
    beta = 8.0
    tau = shrink_threshold(beta, alpha)
    v = np.array([tau * (1 - 1e-9), -tau * (1 - 1e-9), tau * (1 + 1e-9)])
    w = shrink(v, beta, alpha)
    assert w[0] == 0 and w[1] == 0 and w[2] > 0
    if alpha < 1:
        e_w = w[2] ** alpha + 0.5 * beta * (w[2] - v[2]) ** 2
        e_0 = 0.5 * beta * v[2] ** 2
        assert e_w <= e_0 and e_w == pytest.approx(e_0, rel=1e-6)
        assert w[2] > 0.1 * tau  # a jump, not a continuous shrinkage


def test_shrink_closed_forms_agree_with_newton():
    v = np.linspace(-3, 3, 1001)
    for alpha in (0.5, 2 / 3):
        closed = shrink(v, 5.0, alpha)
        newton = shrink(v, 5.0, alpha * (1 + 1e-8))  # not snapped: Newton
        np.testing.assert_allclose(closed, newton, atol=1e-6)


# -- conventions -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["hyper_laplacian", "wiener"])
def test_periodic_blur_is_inverted_exactly(method, rng):
    """Circular blur, no noise, almost no regularisation: exact recovery. Checks
    the kernel's orientation and centre (D3) against scipy's convolution."""
    x = gaussian_filter(rng.random((48, 40)), 1.0)
    kernel = np.zeros((5, 5))
    kernel[2, 2], kernel[3, 4], kernel[0, 1] = 0.6, 0.3, 0.1  # asymmetric
    y = convolve(x, kernel, mode="wrap")
    options = ({"lam": 1e9, "beta_max": 1e4} if method == "hyper_laplacian"
               else {"balance": 1e-10})
    x_hat = deconvolve(y, kernel, method=method, boundary="periodic",
                       **options)
    np.testing.assert_allclose(x_hat, x, atol=1e-4)


def test_delta_kernel_returns_the_input(rng):
    image = skimage.data.camera()[:128, :160] / 255.0
    noisy = image + 0.001 * rng.standard_normal(image.shape)
    for size in (1, 3):
        delta = np.zeros((size, size))
        delta[size // 2, size // 2] = 1
        for method in METHODS:
            out = deconvolve(noisy, delta, method=method, noise_std=0.001)
            assert psnr(out, image) > 55  # measured 60.1-60.5 dB


# -- quality on a synthetic natural image -------------------------------------


def test_deconvolution_improves_psnr(blurred_camera, results):
    blurry, _, sharp = blurred_camera
    p_blurry = psnr(blurry, sharp)  # measured 22.2 dB
    p_hl = psnr(results["hyper_laplacian"], sharp)  # 28.8 dB
    p_wiener = psnr(results["wiener"], sharp)  # 26.5 dB
    assert p_hl >= p_blurry + 5.5
    assert p_wiener >= p_blurry + 3.5
    assert p_hl >= p_wiener + 1.5


def _border_ratio(estimate, sharp, band):
    """RMS error in the ``band``-px frame along the borders / in the interior."""
    err = (estimate - sharp) ** 2
    frame = np.ones(err.shape, bool)
    frame[band:-band, band:-band] = False
    return np.sqrt(err[frame].mean() / err[~frame].mean())


def test_no_ringing_at_the_borders(blurred_camera, results):
    blurry, kernel, sharp = blurred_camera
    band = 2 * kernel.shape[0]
    naive = deconvolve(blurry, kernel, noise_std=SIGMA, boundary="periodic")
    fill = deconvolve(blurry, kernel, noise_std=SIGMA, boundary="fill")
    ratio_naive = _border_ratio(naive, sharp, band)  # measured 7.8
    assert ratio_naive > 3
    for estimate in (results["hyper_laplacian"], results["wiener"], fill):
        ratio = _border_ratio(estimate, sharp, band)  # 1.03, 0.91, 1.12
        assert ratio < 1.25
        assert ratio < ratio_naive / 4


# -- colour, dtypes, noise estimate ---------------------------------------------


@pytest.mark.parametrize("axis", [-1, 0])
def test_channels_are_deconvolved_independently(axis, rng):
    rgb = skimage.data.astronaut()[:96, :80] / 255.0  # (96, 80, 3)
    kernel = motion_kernel(rng, 9)
    blurry = np.stack([fftconvolve(rgb[..., c], kernel, mode="same")
                       for c in range(3)], axis=-1)
    blurry += SIGMA * rng.standard_normal(blurry.shape)
    image = np.moveaxis(blurry, -1, axis)
    for noise_std in (SIGMA, None):  # None: one estimate per channel
        out = deconvolve(image, kernel, noise_std=noise_std,
                         channel_axis=axis)
        assert out.shape == image.shape and out.dtype == image.dtype
        for c in range(3):
            grey = deconvolve(blurry[..., c], kernel, noise_std=noise_std)
            np.testing.assert_allclose(np.take(out, c, axis=axis), grey,
                                       rtol=0, atol=1e-12)


def test_per_channel_noise_std(rng):
    image = rng.random((40, 40, 2))
    kernel = np.full((3, 3), 1 / 9)
    out = deconvolve(image, kernel, noise_std=[0.01, 0.05], channel_axis=2)
    np.testing.assert_allclose(
        out[..., 1], deconvolve(image[..., 1], kernel, noise_std=0.05),
        atol=1e-12)


@pytest.mark.parametrize("method", ["hyper_laplacian", "wiener"])
def test_dtype_is_preserved_and_float32_is_accurate(blurred_camera, results,
                                                    method):
    blurry, kernel, _ = blurred_camera
    out32 = deconvolve(blurry.astype(np.float32), kernel, method=method,
                       noise_std=SIGMA)
    assert out32.dtype == np.float32 and out32.shape == blurry.shape
    assert results[method].dtype == np.float64
    assert psnr(out32, results[method]) > 80  # measured 91.5 and 135.5 dB


def test_integer_image_is_converted(rng):
    image = (rng.random((32, 32)) * 255).astype(np.uint8)
    out = deconvolve(image, np.ones((1, 1)), noise_std=0.01)
    assert out.dtype == np.float64 and out.max() <= 1.5


# -- the NumPy path used without numba ---------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [0.5, 2 / 3, 1.0, 0.8])
def test_numpy_kernels_equal_the_compiled_ones(alpha, dtype, rng):
    x = (0.3 * rng.standard_normal((37, 52))).astype(dtype)
    beta = 3.0
    tau = shrink_threshold(beta, alpha)
    tolerance = {np.float32: 5e-7, np.float64: 5e-15}[dtype]
    compiled = np.empty_like(x)
    engine.shrink_into(x, beta, alpha, tau, compiled)
    np.testing.assert_allclose(engine.shrink_numpy(x, beta, alpha, tau), compiled,
                               rtol=0, atol=tolerance)
    compiled_div, numpy_div = np.empty_like(x), np.empty_like(x)
    engine.shrink_divergence(x, beta, alpha, tau, np.empty_like(x), compiled_div)
    engine.shrink_divergence_numpy(x, beta, alpha, tau, numpy_div)
    np.testing.assert_allclose(numpy_div, compiled_div, rtol=0, atol=4 * tolerance)
    spectrum = np.fft.rfft2(x)
    otf = np.fft.rfft2(rng.random(x.shape))
    otf[0, 0] = 0.0
    grad_rows = rng.random(x.shape[0])
    grad_cols = rng.random(spectrum.shape[1])
    grad_rows[0] = grad_cols[0] = 0.0            # the denominator vanishes at [0, 0]
    u_hat = np.fft.rfft2(rng.random(x.shape))
    compiled_hat, numpy_hat = spectrum.copy(), spectrum.copy()
    engine.fourier_solve(compiled_hat, u_hat, otf, grad_rows, grad_cols, 0.5)
    engine.fourier_solve_numpy(numpy_hat, u_hat, otf, grad_rows, grad_cols, 0.5)
    np.testing.assert_allclose(numpy_hat, compiled_hat, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("method", ["hyper_laplacian", "wiener"])
def test_deconvolve_without_numba_gives_the_same_image(blurred_camera, results, method,
                                                      monkeypatch):
    blurry, kernel, _ = blurred_camera
    monkeypatch.setattr(engine, "HAVE_NUMBA", False)
    without = deconvolve(blurry, kernel, method=method, noise_std=SIGMA)
    np.testing.assert_allclose(without, results[method], rtol=0, atol=1e-12)


def test_clip():
    image = np.zeros((20, 20))
    image[5:15, 5:15] = 1.0
    kernel = np.full((3, 3), 1 / 9)
    blurry = convolve(image, kernel, mode="nearest")
    assert deconvolve(blurry, kernel, noise_std=0.001).max() > 1
    clipped = deconvolve(blurry, kernel, noise_std=0.001, clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1


@pytest.mark.parametrize("sigma", [0.01, 0.02])
def test_noise_estimate_on_blurred_images(sigma, rng):
    image = skimage.data.camera() / 255.0
    blurry = fftconvolve(image, motion_kernel(rng, 15), mode="valid")
    noisy = blurry + sigma * rng.standard_normal(blurry.shape)
    assert estimate_noise_std(noisy) == pytest.approx(sigma, rel=0.05)
    assert estimate_noise_std(noisy, estimator="haar_mad") == pytest.approx(
        sigma, rel=0.1)
    stacked = np.stack([noisy, 2 * noisy])
    per_channel = estimate_noise_std(stacked, channel_axis=0,
                                     average_channels=False)
    np.testing.assert_allclose(per_channel[1], 2 * per_channel[0])


# -- bad inputs --------------------------------------------------------------------


GOOD_IMAGE = np.full((16, 16), 0.5)
GOOD_KERNEL = np.full((3, 3), 1 / 9)


@pytest.mark.parametrize("image, kernel, kwargs, match", [
    (np.where(np.eye(16), np.nan, 0.5), GOOD_KERNEL, {}, "NaN or Inf"),
    (np.where(np.eye(16), np.inf, 0.5), GOOD_KERNEL, {}, "NaN or Inf"),
    (GOOD_IMAGE, np.where(np.eye(3), np.nan, 0.1), {}, "NaN or Inf"),
    (GOOD_IMAGE, np.ones(3) / 3, {}, "2-D"),
    (GOOD_IMAGE, np.ones((4, 3)) / 12, {}, "odd"),
    (GOOD_IMAGE, np.ones((3, 3)) * -1, {}, "positive sum"),
    (GOOD_IMAGE, np.zeros((3, 3)), {}, "positive sum"),
    (np.full((2, 16), 0.5), GOOD_KERNEL, {}, "smaller than the kernel"),
    (np.full((16,), 0.5), GOOD_KERNEL, {}, "2-D"),
    (np.full((16, 16, 3), 0.5), GOOD_KERNEL, {}, "2-D"),
    (GOOD_IMAGE, GOOD_KERNEL, {"channel_axis": -1}, "3-D"),
    (GOOD_IMAGE.astype(complex), GOOD_KERNEL, {}, "real-valued"),
    (GOOD_IMAGE, GOOD_KERNEL, {"method": "epll"}, "unknown method"),
    (GOOD_IMAGE, GOOD_KERNEL, {"boundary": "zero"}, "unknown boundary"),
    (GOOD_IMAGE, GOOD_KERNEL, {"alpha": 1.5}, "alpha"),
    (GOOD_IMAGE, GOOD_KERNEL, {"lam": -1.0}, "lam"),
    (GOOD_IMAGE, GOOD_KERNEL, {"noise_std": -0.1}, "noise_std"),
    (GOOD_IMAGE, GOOD_KERNEL, {"noise_std": [0.1, 0.2]}, "noise_std"),
    (GOOD_IMAGE, GOOD_KERNEL, {"method": "wiener", "balance": 0.0},
     "balance"),
    (GOOD_IMAGE, GOOD_KERNEL, {"pad": 0}, "pad"),
])
def test_bad_inputs_raise(image, kernel, kwargs, match):
    with pytest.raises(ValueError, match=match):
        deconvolve(image, kernel, **kwargs)


def test_bad_noise_estimator_inputs():
    with pytest.raises(ValueError, match="unknown estimator"):
        estimate_noise_std(GOOD_IMAGE, estimator="wavelet")
    with pytest.raises(ValueError, match="NaN or Inf"):
        estimate_noise_std(np.where(np.eye(16), np.nan, 0.5))
    with pytest.raises(ValueError, match="2-D"):
        estimate_noise_std(np.zeros(16))


# -- the Levin et al. 2009 benchmark with the true kernels ------------------------


def psnr_up_to_integer_shift(estimate, truth, crop=15, max_shift=5):
    """PSNR on the truth cropped by ``crop`` px, at the best integer shift of
    the estimate in [-max_shift, max_shift]^2 (the data are registered only up
    to a few pixels; see the benchmark's README)."""
    n1, n2 = truth.shape
    reference = truth[crop:n1 - crop, crop:n2 - crop]
    best = min(np.mean((estimate[crop + dy:n1 - crop + dy,
                                 crop + dx:n2 - crop + dx] - reference) ** 2)
               for dy in range(-max_shift, max_shift + 1)
               for dx in range(-max_shift, max_shift + 1))
    return 10 * np.log10(1.0 / best)


def test_levin_benchmark_with_true_kernels(levin_data):
    gains, psnrs = [], []
    for case in find_cases(levin_data):
        y, x, kernel = load_case(levin_data, case)
        p_blurry = psnr_up_to_integer_shift(y, x)
        p = psnr_up_to_integer_shift(deconvolve(y, kernel), x)
        gains.append(p - p_blurry)
        psnrs.append(p)
    # measured: mean 32.34 dB (blurry 22.91 dB), smallest gain 7.8 dB
    assert np.mean(psnrs) > 31.5
    assert min(gains) > 5.0


# -- the vectorised alpha = 2/3 path (D13 with a Halley cube root) ------------


@pytest.mark.parametrize("beta", [1e-2, 1.0, 2.83, 181.0, 4096.0, 1e6])
def test_two_thirds_shrink_equals_the_closed_form_with_pow(beta, rng):
    # shrink_into (compiled: vectorised, Halley cube root from a bit-level
    # guess) against shrink_numpy, the same formula with ``** (1/3)``; many
    # blocks, values from far below tau to 1e6 times it, both signs.
    tau = shrink_threshold(beta, 2 / 3)
    magnitudes = np.concatenate([tau * np.logspace(-3, 6, 9000),
                                 [0.0, tau, np.nextafter(tau, np.inf), 2 * tau]])
    v = magnitudes * rng.choice([-1.0, 1.0], magnitudes.size)
    compiled = np.empty_like(v)
    engine.shrink_into(v, beta, 2 / 3, tau, compiled)
    reference = engine.shrink_numpy(v, beta, 2 / 3, tau)
    np.testing.assert_array_equal(compiled == 0, reference == 0)
    # measured: 2.2e-15 at most; the formula itself amplifies rounding near tau
    np.testing.assert_allclose(compiled, reference, rtol=1e-13, atol=0)


@pytest.mark.parametrize("shape", [(1, 5), (37, 52), (70, 33)])
def test_two_thirds_shrink_divergence_in_blocks_of_rows(shape, rng):
    # More rows than one block (ROWS_PER_BLOCK) and a partial last block; the
    # circular differences, the shrinkage and D^T against np.roll.
    x = 0.3 * rng.standard_normal(shape)
    beta = 40.0
    tau = shrink_threshold(beta, 2 / 3)
    compiled, reference = np.empty_like(x), np.empty_like(x)
    engine.shrink_divergence(x, beta, 2 / 3, tau, np.empty_like(x), compiled)
    engine.shrink_divergence_numpy(x, beta, 2 / 3, tau, reference)
    np.testing.assert_allclose(compiled, reference, rtol=0, atol=1e-13)
    assert np.count_nonzero(compiled) > x.size // 2


@pytest.mark.parametrize("boundary", ["unknown", "fill", "periodic"])
@pytest.mark.parametrize("method", ["hyper_laplacian", "wiener"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padded_image_deconvolves_as_deconvolve_for_many_kernels(boundary, method, dtype, rng):
    from refdeblur.deconvolution import PaddedImage
    image = gaussian_filter(rng.random((45, 38)), 1.0).astype(dtype)
    padded = PaddedImage(image, (7, 5), boundary=boundary)
    for _ in range(3):
        kernel = rng.random((7, 5))
        kernel /= kernel.sum()
        np.testing.assert_array_equal(padded.deconvolve(kernel, method=method, noise_std=0.01),
                                      deconvolve(image, kernel, method=method, noise_std=0.01,
                                                 boundary=boundary))
    with pytest.raises(ValueError, match="odd"):
        PaddedImage(image, (6, 5))
