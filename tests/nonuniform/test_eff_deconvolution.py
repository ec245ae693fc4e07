"""Tests of refdeblur.nonuniform.deconvolution (derivations/eff.md §4)."""

import numpy as np
import pytest
import skimage.data
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from refdeblur.deconvolution import deconvolve
from refdeblur.nonuniform import deconvolution as nonuniform
from refdeblur.nonuniform.deconvolution import deconvolve_nonuniform
from refdeblur.nonuniform.eff import EffOperator, patch_grid

SIGMA = 0.01


def motion_kernel(rng, size):
    """A camera-shake-like kernel: a random polyline, rasterised, lightly
    blurred, centred on its centre of mass, summing to 1."""
    angle = rng.uniform(0, 2 * np.pi)
    points = [np.zeros(2)]
    for _ in range(6):
        angle += rng.normal(0, 0.7)
        points.append(points[-1] + 0.09 * size * np.array([np.sin(angle), np.cos(angle)]))
    t = np.linspace(0, 1, 50, endpoint=False)[:, None]
    path = np.concatenate([a + t * (b - a) for a, b in zip(points[:-1], points[1:])])
    path -= path.mean(axis=0)
    ij = np.clip(np.round(path + size // 2).astype(int), 0, size - 1)
    kernel = np.zeros((size, size))
    np.add.at(kernel, (ij[:, 0], ij[:, 1]), 1.0)
    kernel = gaussian_filter(kernel, 0.6)
    return kernel / kernel.sum()


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


def eff_valid_blur(sharp, kernels, grid, rng):
    """The EFF blur of ``sharp`` on the grid embedded in it ('valid', F7), plus noise."""
    q = grid.margin
    big = grid.embedded((q, q), sharp.shape)
    blurry = EffOperator(big, kernels).forward(sharp)[q:-q, q:-q]
    return blurry + SIGMA * rng.standard_normal(blurry.shape)


def test_equal_kernels_match_the_uniform_deconvolution():
    """One kernel in every patch: the same PSNR as refdeblur.deconvolve.
    Measured 28.84 dB (uniform) and 28.85 dB (EFF, 2 x 2 patches)."""
    rng = np.random.default_rng(20261125)
    kernel = motion_kernel(rng, 21)
    sharp = skimage.data.camera()[100:376, 150:426] / 255.0     # 256 + 2 * 10
    blurry = fftconvolve(sharp, kernel, mode="valid")
    blurry += SIGMA * rng.standard_normal(blurry.shape)
    truth = sharp[10:-10, 10:-10]
    grid = patch_grid(blurry.shape, (2, 2), kernel_size=21)
    uniform = deconvolve(blurry, kernel, noise_std=SIGMA)
    eff = deconvolve_nonuniform(blurry, np.repeat(kernel[None], 4, axis=0), grid,
                                noise_std=SIGMA)
    assert psnr(uniform, truth) > 28
    assert abs(psnr(eff, truth) - psnr(uniform, truth)) < 0.3


@pytest.fixture(scope="module")
def two_halves():
    """A photo whose left and right halves are blurred by different kernels."""
    rng = np.random.default_rng(4)
    kernels = np.stack([motion_kernel(rng, 21), motion_kernel(rng, 21)])
    grid = patch_grid((192, 320), (1, 2), kernel_size=21)
    sharp = skimage.data.camera()[100:312, 100:440] / 255.0      # + 2 * 10
    return eff_valid_blur(sharp, kernels, grid, rng), kernels, grid, sharp[10:-10, 10:-10]


def test_two_kernels_beat_either_single_kernel(two_halves):
    """Measured: blurry 23.6 dB; uniform with the left or right kernel 21.2 and
    25.7 dB; EFF with both 31.2 dB."""
    blurry, kernels, grid, truth = two_halves
    eff = deconvolve_nonuniform(blurry, kernels, grid, noise_std=SIGMA)
    singles = [psnr(deconvolve(blurry, k, noise_std=SIGMA), truth) for k in kernels]
    assert psnr(eff, truth) > max(singles) + 3
    assert psnr(eff, truth) > psnr(blurry, truth) + 5


def test_preconditioners_reach_the_same_image(two_halves):
    """(F13): the preconditioner changes the path, not the result (measured
    31.23 dB for 'patch' and 'mean', 0.02 dB apart)."""
    blurry, kernels, grid, truth = two_halves
    crop = (slice(0, 96), slice(100, 220))  # the seam between the kernels
    images = [deconvolve_nonuniform(blurry[crop], kernels,
                                    patch_grid((96, 120), (1, 2), kernel_size=21),
                                    noise_std=SIGMA, preconditioner=p)
              for p in ("patch", "mean")]
    assert psnr(images[0], images[1]) > 40


def test_the_x_step_is_solved(rng):
    """(F11)-(F13): both preconditioners are symmetric, and conjugate gradients
    drive the x-step's residual down to the tolerance."""
    grid = patch_grid((80, 100), (2, 2), kernel_size=9)
    kernels = np.stack([motion_kernel(rng, 9) for _ in range(4)])
    for preconditioner in ("patch", "mean", None):
        problem = nonuniform._Problem(grid, kernels, 9, np.float64, preconditioner)
        gamma = 0.01
        a, b = rng.standard_normal((2,) + problem.shape)
        assert abs(np.sum(problem.precondition(a, gamma) * b)
                   - np.sum(a * problem.precondition(b, gamma))) < 1e-10 * np.sum(a * a)
        rhs = rng.standard_normal(problem.shape)
        x = np.zeros(problem.shape)
        nonuniform._conjugate_gradients(problem, x, rhs, gamma, 500, 1e-8)
        residual = rhs - problem.data(x) - gamma * nonuniform._laplacian(x)
        assert np.linalg.norm(residual) <= 1e-8 * np.linalg.norm(rhs)


def test_colour_grid_tuple_and_float32(two_halves):
    blurry, kernels, grid, _ = two_halves
    crop = blurry[:96, :160]
    grid = patch_grid(crop.shape, (1, 2), kernel_size=21)
    grey = deconvolve_nonuniform(crop, kernels, grid, noise_std=SIGMA)
    colour = np.stack([crop, 1 - crop, crop], axis=-1)
    out = deconvolve_nonuniform(colour, kernels, (1, 2), noise_std=SIGMA, channel_axis=-1)
    np.testing.assert_allclose(out[..., 0], grey, atol=1e-12)
    np.testing.assert_allclose(out[..., 2], grey, atol=1e-12)
    first = deconvolve_nonuniform(np.moveaxis(colour, -1, 0), kernels, grid,
                                  noise_std=[SIGMA] * 3, channel_axis=0)
    np.testing.assert_allclose(first, np.moveaxis(out, -1, 0), atol=1e-12)
    single = deconvolve_nonuniform(crop.astype(np.float32), kernels, grid,
                                   noise_std=SIGMA)
    assert single.dtype == np.float32
    assert psnr(single, grey) > 60


def test_estimated_noise_and_clip(two_halves):
    """Noise estimated as by refdeblur.deconvolve (D18); measured 31.1 dB."""
    blurry, kernels, grid, truth = two_halves
    out = deconvolve_nonuniform(blurry, kernels, grid, clip=True)
    assert out.min() >= 0 and out.max() <= 1
    assert psnr(out, truth) > psnr(blurry, truth) + 5


GOOD = np.full((96, 120), 0.5)
KERNELS = np.full((2, 5, 5), 1 / 25)


@pytest.mark.parametrize("image, kernels, grid, options, match", [
    (GOOD, KERNELS, (1, 3), {}, "R = 3 patches"),
    (GOOD, KERNELS, (1, 13), {}, "too fine"),
    (GOOD, np.ones((2, 5)), (1, 2), {}, r"shape \(R, m, m\)"),
    (GOOD[None], KERNELS, (1, 2), {}, "2-D"),
    (np.where(np.eye(96, 120), np.nan, 0.5), KERNELS, (1, 2), {}, "NaN"),
    (GOOD, KERNELS, patch_grid((96, 121), (1, 2), kernel_size=5), {}, "grid covers"),
    (GOOD, KERNELS, (1, 2), {"preconditioner": "jacobi"}, "unknown preconditioner"),
    (GOOD, KERNELS, (1, 2), {"pad": 1}, "pad must be >= kernel size // 2"),
    (GOOD, KERNELS, (1, 2), {"alpha": 0}, "alpha"),
    (GOOD, KERNELS, (1, 2), {"cg_iterations": 0}, "cg_iterations"),
    (GOOD, KERNELS, (1, 2), {"noise_std": [0.01, 0.02]}, "one value per channel"),
    (GOOD, KERNELS, (1, 2), {"noise_std": -1}, "finite and >= 0"),
])
def test_bad_inputs_raise(image, kernels, grid, options, match):
    with pytest.raises(ValueError, match=match):
        deconvolve_nonuniform(image, kernels, grid, **options)
