import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

from refdeblur import gradcheck
from refdeblur.layers.image_quotient import ImageQuotient

TOL = 1e-6


def _random_kernel(rng, n_batch, m):
    kernel = rng.random((n_batch, m, m))
    return kernel / kernel.sum(axis=(1, 2), keepdims=True)


@pytest.mark.parametrize("height, width, m, pad", [(12, 10, 5, None), (11, 9, 3, None),
                                                  (16, 16, 7, 3), (9, 13, 3, 6)])
def test_image_quotient_vjp(rng, height, width, m, pad):
    layer = ImageQuotient(m, pad=pad)
    kernel = _random_kernel(rng, 2, m)
    image = rng.random((2, height, width))
    log_beta = np.array(np.log(0.05))
    _, cache = layer.forward(kernel, image, {"log_beta": log_beta})

    def vjp(g):
        (dkernel, dimage), grads = layer.backward(g, cache)
        return dkernel, dimage, grads["log_beta"]

    errors = gradcheck.check_vjp(
        lambda k, y, t: layer.forward(k, y, {"log_beta": t})[0],
        [kernel, image, log_beta], vjp, rng=rng)
    assert max(errors) <= TOL, f"image quotient rel errs (k, y, log beta) {errors}"


def test_image_quotient_elementwise_gradient(rng):
    layer = ImageQuotient(3, pad=2)
    kernel = _random_kernel(rng, 1, 3)
    image = rng.random((1, 5, 6))
    params = {"log_beta": np.array(-2.0)}
    weight = rng.standard_normal((1, 5, 6))
    _, cache = layer.forward(kernel, image, params)
    (dkernel, dimage), _ = layer.backward(weight, cache)
    numeric = gradcheck.numerical_gradient(
        lambda y: gradcheck.inner(weight, layer.forward(kernel, y, params)[0]), image)
    assert gradcheck.relative_error(dimage, numeric) <= TOL
    numeric = gradcheck.numerical_gradient(
        lambda k: gradcheck.inner(weight, layer.forward(k, image, params)[0]), kernel)
    assert gradcheck.relative_error(dkernel, numeric) <= TOL


def test_image_quotient_is_linear_in_y_with_adjoint(rng):
    layer = ImageQuotient(5)
    kernel = _random_kernel(rng, 2, 5)
    params = layer.init_params()
    _, cache = layer.forward(kernel, np.zeros((2, 13, 11)), params)
    mismatch = gradcheck.adjoint_mismatch(
        lambda y: layer.forward(kernel, y, params)[0],
        lambda g: layer.backward(g, cache)[0][1], (2, 13, 11), (2, 13, 11), rng=rng)
    assert mismatch <= 1e-12


def test_image_quotient_deblurs_up_to_the_border(rng):
    """With a small beta the latent image is close to the sharp image, borders included."""
    m = 7
    grid = np.arange(m) - m // 2
    kernel = np.exp(-(grid[:, None] ** 2 + (grid[None, :] - 1) ** 2) / 2.0)
    kernel /= kernel.sum()                    # no zeros in its spectrum
    sharp = scipy.ndimage.gaussian_filter(rng.random((80, 90)), 1.5)
    sharp = (sharp - sharp.min()) / np.ptp(sharp)
    padded = np.pad(sharp, m // 2, mode="edge")
    blurry = scipy.signal.convolve2d(padded, kernel, mode="valid")
    latent, _ = ImageQuotient(m).forward(kernel[None], blurry[None],
                                         {"log_beta": np.array(np.log(1e-3))})
    blur_error = np.abs(blurry - sharp).mean()
    latent_error = np.abs(latent[0] - sharp).mean()
    border_error = np.abs(latent[0] - sharp)[:, :m].mean()
    assert latent_error < 0.2 * blur_error, (latent_error, blur_error)
    assert border_error < 0.5 * blur_error, (border_error, blur_error)


def test_image_quotient_delta_kernel_returns_image(rng):
    delta = np.zeros((1, 5, 5))
    delta[0, 2, 2] = 1
    image = rng.random((1, 17, 12))
    beta = 1e-3
    latent, _ = ImageQuotient(5).forward(delta, image, {"log_beta": np.array(np.log(beta))})
    np.testing.assert_allclose(latent, image / (1 + beta), atol=1e-12)


def test_image_quotient_init_and_dtype(rng):
    layer = ImageQuotient(3, initial_beta=0.02)
    params = layer.init_params(dtype=np.float32)
    assert params["log_beta"].shape == () and params["log_beta"].dtype == np.float32
    np.testing.assert_allclose(np.exp(params["log_beta"]), 0.02, rtol=1e-6)
    kernel = _random_kernel(rng, 1, 3).astype(np.float32)
    latent, cache = layer.forward(kernel, rng.random((1, 9, 9)).astype(np.float32), params)
    assert latent.dtype == np.float32
    (dk, dy), grads = layer.backward(np.ones_like(latent), cache)
    assert dk.dtype == dy.dtype == grads["log_beta"].dtype == np.float32


def test_prepared_blurry_gives_the_same_numbers(rng):
    # The inference path transforms the blurry image once per scale and
    # reuses it for every stage's kernel.
    layer = ImageQuotient(5)
    params = layer.init_params()
    y = rng.random((2, 23, 19))
    prepared = layer.prepare_blurry(y)
    for _ in range(2):
        kernel = rng.random((2, 5, 5))
        direct, _ = layer.forward(kernel, y, params)
        reused, _ = layer.forward(kernel, y, params, prepared=prepared)
        np.testing.assert_array_equal(reused, direct)
    # Preparation made for another image shape or layer is not used.
    other = ImageQuotient(7).prepare_blurry(y)
    np.testing.assert_array_equal(layer.forward(kernel, y, params, prepared=other)[0], direct)
