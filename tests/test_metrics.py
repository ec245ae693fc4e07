"""Tests of refdeblur.metrics (Levin et al.'s scoring up to shift)."""

import math

import numpy as np
import pytest
from scipy import ndimage, signal
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from refdeblur import metrics
from refdeblur.metrics import (
    align_up_to_shift,
    error_ratio,
    kernel_error_up_to_shift,
    psnr_up_to_shift,
    ssd_up_to_shift,
    ssim_up_to_shift,
)


# --------------------------------------------------------------------------
# helpers

def smooth_image(rng, n, sigma=4.0):
    """A periodic band-limited image in [0, 1] (Gaussian low-pass noise)."""
    spec = np.fft.fft2(rng.standard_normal((n, n)))
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.fftfreq(n)[None, :]
    spec *= np.exp(-0.5 * (fy ** 2 + fx ** 2) * (2 * np.pi * sigma) ** 2)
    img = np.real(np.fft.ifft2(spec))
    return (img - img.min()) / (img.max() - img.min())


def textured_image(rng, n):
    """A rich image in [0, 1]: lightly smoothed white noise."""
    img = ndimage.gaussian_filter(rng.random((n, n)), 1.0)
    return (img - img.min()) / (img.max() - img.min())


def brute_force_grid(estimate, truth, crop, shifts):
    """SSD of every shift by resampling with map_coordinates(order=1)."""
    n1 = truth.shape[0] - 2 * crop
    n2 = truth.shape[1] - 2 * crop
    yy, xx = np.mgrid[0:n1, 0:n2].astype(float)
    tc = truth[crop:crop + n1, crop:crop + n2]
    grid = np.empty((shifts.size, shifts.size))
    for a, dy in enumerate(shifts):
        for b, dx in enumerate(shifts):
            al = ndimage.map_coordinates(
                estimate, [yy + crop + dy, xx + crop + dx], order=1)
            grid[a, b] = np.sum((al - tc) ** 2)
    return grid


def wang_ssim(img1, img2, data_range):
    """Wang et al.'s ssim.m (11x11 Gaussian, sigma 1.5, 'valid' filter2)."""
    ax = np.arange(11) - 5.0
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.5 ** 2))
    win = g / g.sum()
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2

    def f(a):
        return signal.correlate2d(a, win, mode="valid")

    mu1, mu2 = f(img1), f(img2)
    s11 = f(img1 * img1) - mu1 * mu1
    s22 = f(img2 * img2) - mu2 * mu2
    s12 = f(img1 * img2) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)
                / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2)))
    return float(ssim_map.mean())


def comp_upto_shift_literal(I1, I2, maxshift):
    """Line-by-line translation of Levin's comp_upto_shift.m (1-based).

    Returns the SSD matrix ``ssdem(i, j)`` (``i`` indexes the *column*
    shift, ``j`` the row shift, as in the MATLAB code) and ``shifts``.
    """
    from scipy.interpolate import RegularGridInterpolator

    shifts = np.arange(-maxshift, maxshift + 0.125, 0.25)
    I2 = I2[16 - 1:I2.shape[0] - 15, 16 - 1:I2.shape[1] - 15]
    I1 = I1[16 - maxshift - 1:I1.shape[0] - 15 + maxshift,
            16 - maxshift - 1:I1.shape[1] - 15 + maxshift]
    N1, N2 = I2.shape
    gx = np.arange(1 - maxshift, N2 + maxshift + 1)    # columns
    gy = np.arange(1 - maxshift, N1 + maxshift + 1)    # rows
    interp = RegularGridInterpolator((gy, gx), I1, method="linear")
    gy0, gx0 = np.meshgrid(np.arange(1, N1 + 1), np.arange(1, N2 + 1),
                           indexing="ij")
    ssdem = np.empty((shifts.size, shifts.size))
    for i, si in enumerate(shifts):
        for j, sj in enumerate(shifts):
            pts = np.stack([gy0 + sj, gx0 + si], axis=-1)
            tI1 = interp(pts)
            ssdem[i, j] = np.sum((tI1 - I2) ** 2)
    return ssdem, shifts


# --------------------------------------------------------------------------
# the shift grid and the fast search

def test_default_grid_is_levins():
    res = align_up_to_shift(np.zeros((40, 40)), np.zeros((40, 40)))
    assert res.shifts.shape == (41,), res.shifts.shape
    assert res.shifts[0] == -5.0 and res.shifts[-1] == 5.0, res.shifts
    np.testing.assert_array_equal(np.diff(res.shifts), 0.25)
    assert res.ssd_grid.shape == (41, 41), res.ssd_grid.shape
    # a constant image: every shift ties; the tie goes to (0, 0)
    assert res.shift == (0.0, 0.0), res.shift


def test_grid_is_symmetric_and_snapped():
    shifts = metrics._shift_grid(1.0, 0.1)
    assert shifts.size == 21, shifts.size
    np.testing.assert_array_equal(shifts, -shifts[::-1])
    assert 1.0 in shifts and -1.0 in shifts and 0.0 in shifts, shifts


def test_fast_search_matches_brute_force(rng):
    est = textured_image(rng, 40)
    truth = textured_image(rng, 40)
    res = align_up_to_shift(est, truth, crop=4, max_shift=2.0, step=0.5)
    ref = brute_force_grid(est, truth, 4, res.shifts)
    err = np.max(np.abs(res.ssd_grid - ref))
    assert err < 1e-11 * ref.max(), (err, ref.max())
    a, b = np.unravel_index(np.argmin(ref), ref.shape)
    assert res.shift == (res.shifts[a], res.shifts[b]), (res.shift, a, b)
    assert math.isclose(res.ssd, ref.min(), rel_tol=1e-12), (res.ssd,
                                                             ref.min())


def test_fast_search_matches_brute_force_odd_grid(rng):
    # max_shift not a multiple of step, crop == ceil(max_shift)
    est = textured_image(rng, 30)
    truth = ndimage.shift(est, (0.3, -0.9), order=1) + 0.01 * rng.random(
        (30, 30))
    res = align_up_to_shift(est, truth, crop=2, max_shift=1.7, step=0.3)
    np.testing.assert_allclose(res.shifts, 0.3 * np.arange(-5, 6),
                               rtol=0, atol=1e-15)
    ref = brute_force_grid(est, truth, 2, res.shifts)
    err = np.max(np.abs(res.ssd_grid - ref))
    assert err < 1e-11 * ref.max(), (err, ref.max())


def test_matches_literal_comp_upto_shift(rng):
    """Same SSDs and the same sign as Levin's MATLAB code."""
    truth = textured_image(rng, 48)
    estimate = ndimage.shift(truth, (0.75, -1.25), order=1) \
        + 0.02 * rng.standard_normal((48, 48))
    ssdem, shifts = comp_upto_shift_literal(estimate, truth, 2)
    res = align_up_to_shift(estimate, truth, crop=15, max_shift=2)
    np.testing.assert_array_equal(res.shifts, shifts)
    # ssdem(i, j): column shift i, row shift j -> transpose to (dy, dx)
    err = np.max(np.abs(res.ssd_grid - ssdem.T))
    assert err < 1e-11 * ssdem.max(), (err, ssdem.max())
    i, j = np.unravel_index(np.argmin(ssdem), ssdem.shape)
    assert res.shift == (shifts[j], shifts[i]), (res.shift, i, j)
    assert res.shift == (0.75, -1.25), res.shift


# --------------------------------------------------------------------------
# exactly shifted images score as perfect, with the right sign

@pytest.mark.parametrize("shift", [(2, -3), (0, 5), (-5, -1)])
def test_integer_shift_is_exact(rng, shift):
    n, pad = 64, 6
    big = rng.random((n + 2 * pad, n + 2 * pad))
    truth = big[pad:pad + n, pad:pad + n]
    dy, dx = shift
    # estimate content displaced by (+dy, +dx): estimate[p] = truth[p - s]
    estimate = big[pad - dy:pad - dy + n, pad - dx:pad - dx + n]
    res = align_up_to_shift(estimate, truth, crop=8)
    assert res.shift == (float(dy), float(dx)), res.shift
    assert res.ssd == 0.0, res.ssd
    np.testing.assert_array_equal(res.aligned, truth[8:-8, 8:-8])
    np.testing.assert_array_equal(res.truth, truth[8:-8, 8:-8])
    assert psnr_up_to_shift(estimate, truth, crop=8) == math.inf
    s = ssim_up_to_shift(estimate, truth, crop=8)
    assert s == pytest.approx(1.0, abs=1e-12), s


@pytest.mark.parametrize("shift", [(0.25, -0.75), (-1.5, 2.25),
                                   (4.75, -5.0)])
def test_bilinear_subpixel_shift_is_exact(rng, shift):
    """A truth made by the same bilinear interpolation is matched exactly."""
    n, crop = 64, 8
    estimate = rng.random((n, n))
    # truth(p) = estimate(p + s), i.e. the estimate's content sits at +s
    truth = ndimage.shift(estimate, (-shift[0], -shift[1]), order=1)
    res = align_up_to_shift(estimate, truth, crop=crop)
    assert res.shift == shift, res.shift
    assert res.ssd < 1e-24, res.ssd
    np.testing.assert_allclose(res.aligned, truth[crop:-crop, crop:-crop],
                               rtol=0, atol=1e-14)
    p = psnr_up_to_shift(estimate, truth, crop=crop)
    assert p > 250, p
    s = ssim_up_to_shift(estimate, truth, crop=crop)
    assert s == pytest.approx(1.0, abs=1e-10), s


def test_sign_convention_of_scipy_shift(rng):
    """estimate = ndimage.shift(truth, s) is recovered as shift == s."""
    truth = smooth_image(rng, 64, sigma=3.0)
    shift = (1.25, -0.5)
    estimate = ndimage.shift(truth, shift, order=1, mode="grid-wrap")
    res = align_up_to_shift(estimate, truth, crop=8)
    assert res.shift == shift, res.shift


@pytest.mark.parametrize("shift", [(1.5, -0.75), (-2.0, 3.25),
                                   (0.25, 0.0)])
def test_fourier_shift_of_band_limited_image(rng, shift):
    n = 96
    truth = smooth_image(rng, n, sigma=4.0)
    estimate = np.real(np.fft.ifft2(
        ndimage.fourier_shift(np.fft.fft2(truth), shift)))
    res = align_up_to_shift(estimate, truth)
    assert res.shift == shift, res.shift
    # bilinear interpolation of a smooth image: small but non-zero error
    mse = res.ssd / res.truth.size
    assert mse < 1e-5, mse
    p = psnr_up_to_shift(estimate, truth)
    assert p > 50, p
    s = ssim_up_to_shift(estimate, truth)
    assert s > 0.999, s


def test_no_shift_no_crop_is_plain_ssd(rng):
    est = rng.random((20, 30))
    truth = rng.random((20, 30))
    res = align_up_to_shift(est, truth, crop=0, max_shift=0)
    assert res.shift == (0.0, 0.0), res.shift
    expected = float(np.sum((est - truth) ** 2))
    assert math.isclose(res.ssd, expected, rel_tol=1e-13), (res.ssd,
                                                            expected)
    assert ssd_up_to_shift(est, truth, crop=0, max_shift=0) == res.ssd


def test_non_square_images(rng):
    big = rng.random((50, 80))
    truth = big[5:45, 5:75]
    estimate = big[4:44, 7:77]          # content displaced by (+1, -2)
    res = align_up_to_shift(estimate, truth, crop=6)
    assert res.shift == (1.0, -2.0), res.shift
    assert res.ssd == 0.0, res.ssd
    assert res.aligned.shape == (28, 58), res.aligned.shape


# --------------------------------------------------------------------------
# PSNR and SSIM agree with scikit-image and with Wang's ssim.m

def _aligned_noisy_pair(rng, n=80, noise=0.03):
    truth = textured_image(rng, n)
    estimate = truth + noise * rng.standard_normal((n, n))
    return estimate, truth


def test_psnr_matches_skimage(rng):
    estimate, truth = _aligned_noisy_pair(rng)
    res = align_up_to_shift(estimate, truth)
    assert res.shift == (0.0, 0.0), res.shift
    c = slice(15, -15)
    ref = peak_signal_noise_ratio(truth[c, c], estimate[c, c], data_range=1.0)
    p = psnr_up_to_shift(estimate, truth)
    assert p == pytest.approx(ref, rel=1e-12), (p, ref)
    assert 25 < p < 35, p
    # the 0-255 scale of Levin's scripts gives the same number
    p255 = psnr_up_to_shift(255 * estimate, 255 * truth, data_range=255)
    assert p255 == pytest.approx(p, rel=1e-12), (p255, p)


def test_ssim_matches_skimage_and_wang(rng):
    estimate, truth = _aligned_noisy_pair(rng)
    c = slice(15, -15)
    s = ssim_up_to_shift(estimate, truth)
    ref = structural_similarity(
        estimate[c, c], truth[c, c], data_range=1.0, gaussian_weights=True,
        sigma=1.5, use_sample_covariance=False)
    assert s == pytest.approx(ref, rel=1e-12), (s, ref)
    wang = wang_ssim(estimate[c, c], truth[c, c], 1.0)
    assert s == pytest.approx(wang, rel=1e-10), (s, wang)
    assert 0.3 < s < 0.99, s
    # scikit-image's own defaults are reachable through the keywords
    s7 = ssim_up_to_shift(estimate, truth, gaussian_weights=False,
                          use_sample_covariance=True)
    ref7 = structural_similarity(estimate[c, c], truth[c, c], data_range=1.0)
    assert s7 == pytest.approx(ref7, rel=1e-12), (s7, ref7)


# --------------------------------------------------------------------------
# error ratio

def test_error_ratio_of_true_kernel_is_one(rng):
    estimate, truth = _aligned_noisy_pair(rng)
    er = error_ratio(estimate, estimate, truth)
    assert er == 1.0, er


def test_error_ratio_of_worse_result_exceeds_one(rng):
    truth = textured_image(rng, 80)
    noise = rng.standard_normal((80, 80))
    known = truth + 0.02 * noise
    worse = truth + 0.05 * noise
    er = error_ratio(worse, known, truth)
    expected = ssd_up_to_shift(worse, truth) / ssd_up_to_shift(known, truth)
    assert er == expected, (er, expected)
    assert er > 1.0, er
    # each image is aligned separately: shifting the blind result costs
    # nothing
    big = np.pad(worse, 3, mode="reflect")
    shifted = big[1:81, 5:85]           # content displaced by (+2, -2)
    er_shifted = error_ratio(shifted, known, truth)
    assert er_shifted == pytest.approx(er, rel=0.05), (er_shifted, er)


def test_error_ratio_zero_denominator(rng):
    truth = rng.random((40, 40))
    assert error_ratio(truth, truth, truth, crop=5) == 1.0
    assert error_ratio(truth + 0.1, truth, truth, crop=5) == math.inf


# --------------------------------------------------------------------------
# kernels

def _random_kernel(rng, m, support):
    k = np.zeros((m, m))
    r = (m - support) // 2
    k[r:r + support, r:r + support] = rng.random((support, support))
    return k / k.sum()


def test_kernel_error_shifted_by_one_is_zero(rng):
    k = _random_kernel(rng, 15, 9)
    shifted = np.roll(k, (1, -1), axis=(0, 1))  # support stays inside
    err, shift = kernel_error_up_to_shift(shifted, k, return_shift=True)
    assert err == 0.0, err
    assert shift == (1, -1), shift
    assert kernel_error_up_to_shift(k, k) == 0.0


def test_kernel_error_different_sizes(rng):
    small = _random_kernel(rng, 13, 13)
    large = np.zeros((21, 21))
    large[4:17, 4:17] = small
    assert kernel_error_up_to_shift(small, large) == 0.0
    assert kernel_error_up_to_shift(large, small) == 0.0
    # off-centre placement inside the larger array is found as a shift
    large2 = np.zeros((21, 21))
    large2[6:19, 3:16] = 3.0 * small      # and a different scale
    err, shift = kernel_error_up_to_shift(large2, small, return_shift=True)
    assert err < 1e-30, err
    assert shift == (2, -1), shift
    # non-square odd sizes work too
    rect = np.zeros((13, 17))
    rect[:, 2:15] = small
    assert kernel_error_up_to_shift(rect, small) == 0.0


def test_kernel_error_value_and_range():
    delta = np.zeros((9, 9))
    delta[4, 4] = 1.0
    far = np.zeros((9, 9))
    far[4, 8] = 1.0                       # 4 px to the right
    # default range 9 // 4 = 2: no overlap, error |d1|^2 + |d2|^2 = 2
    err = kernel_error_up_to_shift(far, delta)
    assert err == 2.0, err
    err, shift = kernel_error_up_to_shift(far, delta, max_shift=4,
                                          return_shift=True)
    assert err == 0.0 and shift == (0, 4), (err, shift)
    # a real difference survives the shift search
    blur = np.zeros((9, 9))
    blur[4, 3:6] = 1.0
    err = kernel_error_up_to_shift(blur, delta, max_shift=4)
    expected = 3 * (1 / 3) ** 2 - 2 / 3 + 1     # |b - d|^2, b = 1/3 each
    assert err == pytest.approx(expected, rel=1e-14), (err, expected)


# --------------------------------------------------------------------------
# validation

@pytest.mark.parametrize("func", [align_up_to_shift, ssd_up_to_shift,
                                  psnr_up_to_shift, ssim_up_to_shift])
def test_shape_mismatch(func):
    with pytest.raises(ValueError, match="same shape"):
        func(np.zeros((40, 40)), np.zeros((40, 41)))


def test_validation_messages():
    img = np.zeros((40, 40))
    with pytest.raises(ValueError, match="2-D"):
        align_up_to_shift(np.zeros((40, 40, 3)), np.zeros((40, 40, 3)))
    bad = img.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        align_up_to_shift(bad, img)
    with pytest.raises(ValueError, match="NaN or infinite"):
        align_up_to_shift(img, np.full((40, 40), np.inf))
    with pytest.raises(ValueError, match="too small"):
        align_up_to_shift(np.zeros((30, 40)), np.zeros((30, 40)))
    with pytest.raises(ValueError, match="crop >= ceil"):
        align_up_to_shift(img, img, crop=4, max_shift=4.5)
    with pytest.raises(ValueError, match="step"):
        align_up_to_shift(img, img, step=0)
    with pytest.raises(ValueError, match="max_shift"):
        align_up_to_shift(img, img, max_shift=-1)
    with pytest.raises(TypeError, match="integer dtype"):
        align_up_to_shift(img.astype(np.uint8), img.astype(np.uint8))
    with pytest.raises(TypeError, match="crop"):
        align_up_to_shift(img, img, crop=15.0)
    with pytest.raises(ValueError, match="data_range"):
        psnr_up_to_shift(img, img, data_range=0)
    with pytest.raises(ValueError, match="SSIM window"):
        ssim_up_to_shift(np.zeros((40, 40)), np.zeros((40, 40)), crop=15)
    with pytest.raises(ValueError, match="odd"):
        kernel_error_up_to_shift(np.ones((4, 4)), np.ones((5, 5)))
    with pytest.raises(ValueError, match="positive sum"):
        kernel_error_up_to_shift(np.zeros((5, 5)), np.ones((5, 5)))
    with pytest.raises(ValueError, match="max_shift"):
        kernel_error_up_to_shift(np.ones((5, 5)), np.ones((5, 5)),
                                 max_shift=-1)


# --------------------------------------------------------------------------
# the Levin et al. benchmark (skips without the shared data)

def test_levin_sharp_vs_blurred(levin_converted_data):
    from skimage import io

    root = levin_converted_data
    x_path = root / "x" / "im01_ker01_x.png"
    y_path = root / "y" / "im01_ker01_y.png"
    if not (x_path.is_file() and y_path.is_file()):
        pytest.skip(f"Levin PNGs not found under {root}")
    x_raw = io.imread(x_path)
    y_raw = io.imread(y_path)
    assert x_raw.dtype == np.uint16 and x_raw.shape == (255, 255), (
        x_raw.dtype, x_raw.shape)
    x = x_raw / 65535.0
    y = y_raw / 65535.0
    res = align_up_to_shift(y, x)
    assert res.ssd > 1.0, res.ssd
    assert max(abs(res.shift[0]), abs(res.shift[1])) <= 5.0, res.shift
    p = psnr_up_to_shift(y, x)
    assert 20.0 < p < 30.0, p
    s = ssim_up_to_shift(y, x)
    assert 0.3 < s < 0.95, s
    # the sharp image against itself is perfect
    assert ssd_up_to_shift(x, x) == 0.0
