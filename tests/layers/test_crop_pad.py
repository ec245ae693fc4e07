import numpy as np
import pytest

from refdeblur import gradcheck
from refdeblur.layers.crop_pad import (KernelCrop, KernelPad, ReplicatePad,
                                       grid_to_kernel, kernel_to_grid, otf2psf,
                                       padded_fast_shape, psf2otf,
                                       replicate_pad, replicate_pad_adjoint)


def test_kernel_to_grid_puts_centre_at_origin():
    kernel = np.arange(9.0).reshape(3, 3)
    grid = kernel_to_grid(kernel, (5, 4))
    assert grid[0, 0] == kernel[1, 1]        # centre -> origin
    assert grid[4, 3] == kernel[0, 0]        # top-left wraps to the far corner
    assert grid[1, 1] == kernel[2, 2]
    assert grid.sum() == kernel.sum()


def test_psf2otf_of_delta_is_one():
    delta = np.zeros((5, 5))
    delta[2, 2] = 1
    np.testing.assert_allclose(psf2otf(delta, (8, 7)), np.ones((8, 7)), atol=1e-15)


def test_psf2otf_otf2psf_round_trip(rng):
    for shape in [(3, 3), (5, 7), (4, 6)]:   # odd and even, as MATLAB allows
        psf = rng.random(shape)
        np.testing.assert_allclose(otf2psf(psf2otf(psf, (16, 15)), shape), psf,
                                   atol=1e-14)


def test_psf2otf_multiplication_is_circular_convolution(rng):
    """MATLAB: real(ifft2(psf2otf(k, size(x)) .* fft2(x))) = imfilter(x, k, 'conv', 'circular')."""
    kernel = rng.random((5, 5))
    x = rng.random((12, 10))
    result = np.real(np.fft.ifft2(psf2otf(kernel, x.shape) * np.fft.fft2(x)))
    expected = np.zeros_like(x)
    for i in range(5):
        for j in range(5):
            # true convolution: kernel entry (i, j) shifts x by (i - 2, j - 2)
            expected += kernel[i, j] * np.roll(x, (i - 2, j - 2), axis=(0, 1))
    np.testing.assert_allclose(result, expected, atol=1e-13)


def test_kernel_crop_and_pad_are_adjoint(rng):
    for kernel_shape, grid_shape in [((5, 5), (12, 10)), ((3, 3), (9, 11)),
                                     ((7, 7), (7, 8))]:
        mismatch = gradcheck.adjoint_mismatch(
            lambda k: kernel_to_grid(k, grid_shape),
            lambda g: grid_to_kernel(g, kernel_shape),
            (2,) + kernel_shape, (2,) + grid_shape, rng=rng)
        assert mismatch <= 1e-12


def test_kernel_crop_and_pad_layers(rng):
    crop, pad = KernelCrop(5), KernelPad((11, 9))
    grid = rng.standard_normal((2, 11, 9))
    kernel, crop_cache = crop.forward(grid)
    placed, pad_cache = pad.forward(kernel)
    np.testing.assert_array_equal(crop.forward(placed)[0], kernel)
    np.testing.assert_array_equal(crop.backward(kernel, crop_cache)[0],
                                  pad.forward(kernel)[0])
    np.testing.assert_array_equal(pad.backward(grid, pad_cache)[0], kernel)


def test_kernel_too_large_for_grid():
    with pytest.raises(ValueError, match="does not fit"):
        kernel_to_grid(np.ones((7, 7)), (5, 9))


def test_replicate_pad_matches_numpy_edge(rng):
    x = rng.standard_normal((2, 5, 4))
    np.testing.assert_array_equal(replicate_pad(x, (2, 1), (3, 4)),
                                  np.pad(x, ((0, 0), (2, 3), (1, 4)), mode="edge"))


@pytest.mark.parametrize("before, after", [((2, 1), (3, 4)), ((0, 5), (6, 0)),
                                           ((7, 7), (7, 7))])
def test_replicate_pad_adjoint(rng, before, after):
    shape = (2, 5, 4)
    padded = (2, 5 + before[0] + after[0], 4 + before[1] + after[1])
    mismatch = gradcheck.adjoint_mismatch(
        lambda u: replicate_pad(u, before, after),
        lambda v: replicate_pad_adjoint(v, before, after), shape, padded, rng=rng)
    assert mismatch <= 1e-12


def test_replicate_pad_layer_vjp(rng):
    layer = ReplicatePad(3)
    x = rng.standard_normal((1, 2, 4, 5))
    _, cache = layer.forward(x)
    errors = gradcheck.check_vjp(lambda a: layer.forward(a)[0], [x],
                                 lambda g: [layer.backward(g, cache)[0]], rng=rng)
    assert max(errors) <= 1e-6


def test_padded_fast_shape_adds_at_least_the_pad():
    before, after = padded_fast_shape((97, 255), 17)
    for length, b, a in zip((97, 255), before, after):
        assert b >= 17 and a >= 17
        total = length + b + a
        factors = total
        for p in (2, 3, 5):
            while factors % p == 0:
                factors //= p
        assert factors == 1, f"{total} is not 5-smooth"
