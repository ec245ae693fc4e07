"""Tests of refdeblur.nonuniform.eff, the EFF blur (derivations/eff.md)."""

import numpy as np
import pytest
from scipy.signal import fftconvolve

from refdeblur.nonuniform.eff import (MIN_SPACING_PER_KERNEL, EffOperator, eff_blur,
                                      eff_blur_adjoint, eff_kernel_adjoint, patch_grid)


def window_sum(grid):
    total = np.zeros(grid.shape)
    for r in range(grid.n_patches):
        r0, r1, c0, c1 = grid.supports[r]
        total[r0:r1, c0:c1] += grid.window(r)
    return total


def random_kernels(rng, count, shape):
    kernels = rng.random((count,) + tuple(shape))
    return kernels / kernels.sum(axis=(1, 2), keepdims=True)


def relative_gap(a, b):
    return abs(a - b) / max(abs(a), abs(b))


# -- the windows (F1)-(F4), (F7) --------------------------------------------------


@pytest.mark.parametrize("shape, grid", [((200, 170), (3, 2)), ((97, 301), (1, 5)),
                                         ((128, 128), (1, 1)), ((333, 250), (4, 3))])
def test_windows_sum_to_one(shape, grid):
    g = patch_grid(shape, grid, kernel_size=9)
    np.testing.assert_allclose(window_sum(g), 1.0, rtol=0, atol=1e-12)  # (F1), (F2)
    for r in range(g.n_patches):
        window = g.window(r)
        assert window.min() > 0 and window.max() <= 1  # the support is where w > 0
    # every window (nearly) reaches 1 next to its centre, and only two overlap
    # per axis (F1)
    assert np.all(g.row_windows.max(axis=1) > 0.99)
    assert np.all((g.row_windows > 0).sum(axis=0) <= 2)
    assert np.all((g.col_windows > 0).sum(axis=0) <= 2)


def test_centres_and_rectangles():
    g = patch_grid((240, 400), (2, 4), kernel_size=11)
    np.testing.assert_array_equal(g.centres[:, 0], np.repeat([59.5, 179.5], 4))
    np.testing.assert_array_equal(g.centres[:, 1], np.tile([49.5, 149.5, 249.5, 349.5], 2))
    # each window is 1 at its centre pixel and the rectangles are the supports
    # widened by the margin (F4)
    for r, (i, j) in enumerate(np.round(g.centres).astype(int)):
        r0, r1, c0, c1 = g.supports[r]
        assert g.window(r)[i - r0, j - c0] == pytest.approx(1, abs=1e-3)
    np.testing.assert_array_equal(g.rects - g.supports, [[-5, 5, -5, 5]] * 8)
    # neighbouring interior windows span two tiles, the outer ones reach the border
    assert g.supports[0].tolist() == [0, 180, 0, 150]
    assert g.supports[1].tolist() == [0, 180, 50, 250]
    assert g.supports[7].tolist() == [60, 240, 250, 400]
    assert g.patch_shape == (180 + 10, 200 + 10)


def test_embedded_grid_extends_the_windows():
    g = patch_grid((120, 150), (2, 3), kernel_size=7)
    big = g.embedded((4, 9), (131, 170))
    np.testing.assert_allclose(window_sum(big), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(big.row_windows[:, 4:124], g.row_windows)
    np.testing.assert_array_equal(big.col_windows[:, 9:159], g.col_windows)
    np.testing.assert_array_equal(big.centres, g.centres + [4, 9])
    # beyond the image every window keeps its value at the border (F7)
    np.testing.assert_array_equal(big.row_windows[:, :4],
                                  np.repeat(g.row_windows[:, :1], 4, axis=1))
    with pytest.raises(ValueError, match="does not contain"):
        g.embedded((4, 30), (131, 170))


# -- the forward model (F3), (F5), (F6) ------------------------------------------


@pytest.mark.parametrize("shape, grid, kernel_shape", [((200, 170), (3, 2), (9, 9)),
                                                       ((150, 300), (2, 5), (7, 5)),
                                                       ((90, 90), (1, 1), (9, 9))])
def test_equal_kernels_are_a_uniform_convolution(shape, grid, kernel_shape, rng):
    """(F6): the windows sum to one, so on the whole image, borders included
    ('same', zero outside), one kernel everywhere is scipy's convolution."""
    x = rng.random(shape)
    kernel = random_kernels(rng, 1, kernel_shape)[0]
    g = patch_grid(shape, grid, kernel_size=9)
    y = eff_blur(x, np.repeat(kernel[None], g.n_patches, axis=0), g)
    np.testing.assert_allclose(y, fftconvolve(x, kernel, mode="same"), rtol=0, atol=1e-10)


def test_valid_blur_on_an_embedded_grid(rng):
    """(F7): blurring a larger image on the embedded grid and cropping gives
    the 'valid' convolution."""
    x = rng.random((120 + 8, 150 + 8))
    kernel = random_kernels(rng, 1, (9, 9))[0]
    g = patch_grid((120, 150), (2, 3), kernel_size=9).embedded((4, 4), x.shape)
    y = EffOperator(g, np.repeat(kernel[None], 6, axis=0)).forward(x)[4:-4, 4:-4]
    np.testing.assert_allclose(y, fftconvolve(x, kernel, mode="valid"), atol=1e-10)


def test_each_patch_is_blurred_by_its_own_kernel(rng):
    """Where a window is 1 (the image corners, beyond the outer centres) and
    the others are 0 within the kernel's reach, the blur is that patch's kernel
    alone: checks the row-major order of the kernels and their orientation."""
    x = rng.random((160, 240))
    g = patch_grid(x.shape, (2, 3), kernel_size=7)
    kernels = random_kernels(rng, 6, (7, 7))
    y = eff_blur(x, kernels, g)
    corners = {0: (slice(3, 36), slice(3, 36)), 2: (slice(3, 36), slice(204, 237)),
               3: (slice(124, 157), slice(3, 36)), 5: (slice(124, 157), slice(204, 237))}
    for r, where in corners.items():
        assert np.all(window_sum(g)[where] == 1)
        np.testing.assert_allclose(y[where], fftconvolve(x, kernels[r], mode="same")[where],
                                   atol=1e-12)
        other = (r + 1) % 6
        wrong = fftconvolve(x, kernels[other], mode="same")[where]
        assert np.abs(y[where] - wrong).max() > 1e-2


def test_colour_channels_are_blurred_alike(rng):
    x = rng.random((3, 100, 120))
    g = patch_grid((100, 120), (2, 2), kernel_size=5)
    kernels = random_kernels(rng, 4, (5, 5))
    colour = eff_blur(np.moveaxis(x, 0, -1), kernels, g, channel_axis=-1)
    for c in range(3):
        np.testing.assert_allclose(colour[..., c], eff_blur(x[c], kernels, g), atol=1e-13)
    first = eff_blur(x, kernels, g, channel_axis=0)
    np.testing.assert_allclose(first, np.moveaxis(colour, -1, 0), atol=1e-13)


def test_float32_stays_float32(rng):
    x = rng.random((100, 120))
    g = patch_grid(x.shape, (2, 2), kernel_size=5)
    kernels = random_kernels(rng, 4, (5, 5))
    y32 = eff_blur(x.astype(np.float32), kernels, g)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, eff_blur(x, kernels, g), atol=1e-5)


# -- the adjoints (F8), (F9) ----------------------------------------------------


@pytest.mark.parametrize("shape, grid, kernel_shape", [((200, 170), (3, 2), (9, 9)),
                                                       ((150, 300), (2, 5), (7, 5)),
                                                       ((90, 91), (1, 1), (3, 3))])
def test_image_adjoint(shape, grid, kernel_shape, rng):
    """<A x, z> = <x, A^T z> for random x, z and different kernels (F8)."""
    g = patch_grid(shape, grid, kernel_size=9)
    kernels = rng.standard_normal((g.n_patches,) + kernel_shape)
    for _ in range(3):
        x, z = rng.standard_normal(shape), rng.standard_normal(shape)
        left = np.sum(eff_blur(x, kernels, g) * z)
        right = np.sum(x * eff_blur_adjoint(z, kernels, g))
        assert relative_gap(left, right) < 1e-10


def test_image_adjoint_on_an_embedded_grid_and_in_colour(rng):
    g = patch_grid((100, 120), (2, 2), kernel_size=7).embedded((3, 5), (108, 131))
    kernels = rng.standard_normal((4, 7, 7))
    operator = EffOperator(g, kernels)
    x, z = rng.standard_normal((2, 108, 131))
    assert relative_gap(np.sum(operator.forward(x) * z),
                        np.sum(x * operator.adjoint(z))) < 1e-10
    g = patch_grid((100, 120), (2, 2), kernel_size=7)
    x, z = rng.standard_normal((2, 100, 120, 3))
    left = np.sum(eff_blur(x, kernels, g, channel_axis=2) * z)
    right = np.sum(x * eff_blur_adjoint(z, kernels, g, channel_axis=2))
    assert relative_gap(left, right) < 1e-10


@pytest.mark.parametrize("kernel_size", [9, 5])
def test_kernel_adjoint(kernel_size, rng):
    """<A(k) x, z> = <k, A_k^T z> (F9), and every entry is the response of
    <A(k) x, z> to that kernel entry (orientation and centre)."""
    g = patch_grid((200, 170), (3, 2), kernel_size=9)
    x, z = rng.standard_normal((2, 200, 170))
    kernels = rng.standard_normal((6, kernel_size, kernel_size))
    gradient = eff_kernel_adjoint(x, z, g, kernel_size)
    assert gradient.shape == (6, kernel_size, kernel_size)
    left = np.sum(eff_blur(x, kernels, g) * z)
    assert relative_gap(left, np.sum(kernels * gradient)) < 1e-10
    for r, i, j in [(0, 0, 0), (3, kernel_size - 1, 1), (5, 2, kernel_size - 1)]:
        unit = np.zeros_like(kernels)
        unit[r, i, j] = 1
        assert relative_gap(np.sum(eff_blur(x, unit, g) * z), gradient[r, i, j]) < 1e-10


def test_kernel_adjoint_sums_the_channels(rng):
    g = patch_grid((100, 120), (2, 2), kernel_size=5)
    x, z = rng.standard_normal((2, 3, 100, 120))
    total = sum(eff_kernel_adjoint(x[c], z[c], g) for c in range(3))
    np.testing.assert_allclose(eff_kernel_adjoint(x, z, g, channel_axis=0), total,
                               atol=1e-10)


# -- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("shape, grid, kernel_size, match", [
    ((200, 200), (5, 2), 21, r"5 x 2 grid is too fine for a 21-px kernel.* at most 4 x 4"),
    ((200, 200), (1, 5), 21, "too fine"),
    ((60, 300), (1, 1), 31, r"60 x 300 px is too small for a 31-px kernel"),
    ((200, 200), (2, 2), 20, "positive odd integer"),
    ((200, 200), (0, 2), 21, "two positive integers"),
    ((200, 200), (2.0, 2), 21, "two positive integers"),
    ((200,), (2, 2), 21, "two positive sides"),
])
def test_bad_grids_raise(shape, grid, kernel_size, match):
    with pytest.raises(ValueError, match=match):
        patch_grid(shape, grid, kernel_size=kernel_size)


def test_the_spacing_limit_is_inclusive():
    size = MIN_SPACING_PER_KERNEL * 21
    assert patch_grid((4 * size, size), (4, 1), kernel_size=21).grid == (4, 1)
    with pytest.raises(ValueError, match="too fine"):
        patch_grid((4 * size - 1, size), (4, 1), kernel_size=21)


def test_bad_kernels_and_images_raise(rng):
    g = patch_grid((100, 120), (2, 2), kernel_size=7)
    x = rng.random((100, 120))
    cases = [(np.ones((3, 7, 7)), x, "R = 4 patches"),
             (np.ones((4, 9, 9)), x, "larger than the grid's kernel_size 7"),
             (np.ones((4, 6, 7)), x, "odd"),
             (np.full((4, 7, 7), np.nan), x, "NaN"),
             (np.ones((4, 7, 7)), x[:, :100], r"the grid covers \(100, 120\)"),
             (np.ones((4, 7, 7)), x[None], "2-D")]
    for kernels, image, match in cases:
        with pytest.raises(ValueError, match=match):
            eff_blur(image, kernels, g)
    with pytest.raises(ValueError, match="PatchGrid"):
        eff_blur(x, np.ones((4, 7, 7)), (2, 2))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        eff_kernel_adjoint(x, x, g, 9)
    with pytest.raises(ValueError, match="differ in shape"):
        eff_kernel_adjoint(x, x[:, :-1], g)
