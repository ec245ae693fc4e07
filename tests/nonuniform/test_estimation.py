"""Tests of refdeblur.nonuniform.estimation: Eq. 8 inside the network
(derivations/nonuniform.md (U1)-(U7))."""

import numpy as np
import pytest
import skimage.data
from scipy.signal import fftconvolve

from refdeblur import build_network
from refdeblur.layers.image_quotient import ImageQuotient
from refdeblur.layers.kernel_quotient import KernelQuotient
from refdeblur.models import load_shipped_model
from refdeblur.network_fast import predict
from refdeblur.nonuniform.eff import eff_blur, patch_grid
from refdeblur.nonuniform.estimation import (local_image_quotient, local_kernel_quotient,
                                             predict_nonuniform, scale_windows)


def line_kernel(size, vertical):
    kernel = np.zeros((size, size))
    if vertical:
        kernel[1:-1, size // 2] = 1
    else:
        kernel[size // 2, 1:-1] = 1
    return kernel / kernel.sum()


@pytest.fixture(scope="module")
def photo():
    return skimage.data.camera()[100:356, 60:444] / 255.0          # 256 x 384


def gradient_features(image):
    """Oracle feature pairs: the sharp image's gradients, (1, 2, H-1, W-1)."""
    return np.stack([np.diff(image, axis=1)[:-1], np.diff(image, axis=0)[:, :-1]])[None]


@pytest.mark.parametrize("grid", [(1, 1), (2, 3), (3, 2)])
def test_feature_windows_sum_to_one(grid):
    """(U1): the image's windows read on the feature pixels still sum to one."""
    windows = scale_windows((120, 150), (104, 134), grid)
    total = np.zeros((104, 134))
    for r, (r0, r1, c0, c1) in enumerate(windows.supports):
        a, b = divmod(r, grid[1])
        total[r0:r1, c0:c1] += np.outer(windows.row_windows[a, r0:r1],
                                        windows.col_windows[b, c0:c1])
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    np.testing.assert_array_equal(windows.row_windows,
                                  windows.image.row_windows[:, 8:112])


@pytest.mark.parametrize("size", [17, 25])
def test_one_patch_is_the_uniform_network(size, rng):
    """(U7): with a 1 x 1 grid every stage's kernel and the latent image are
    those of the uniform network, bit for bit (the shipped weights)."""
    net = load_shipped_model(size)
    image = skimage.data.camera()[::2, ::2][:160, :192] / 255.0
    blurry = fftconvolve(image, line_kernel(9, False), mode="valid").astype(np.float32)
    uniform = predict(net, blurry)
    local = predict_nonuniform(net, blurry, (1, 1))
    for scale_u, scale_l in zip(uniform.stage_kernels, local.stage_kernels):
        for kernel_u, kernel_l in zip(scale_u, scale_l):
            assert kernel_l.shape == (1,) + kernel_u.shape
            np.testing.assert_array_equal(kernel_l[0], kernel_u)
    np.testing.assert_array_equal(local.latent, uniform.latent)


def test_uniform_blur_gives_the_same_kernel_in_every_patch(photo):
    """(U2)-(U4) on oracle features of a uniform blur: every patch finds the
    kernel (L1 error measured 0.02-0.05 on 2 x 2 patches; the whole-image
    quotient 0.016), and a kernel across the other axis is far off."""
    kernel = line_kernel(13, False)
    x = gradient_features(photo)
    y = np.stack([fftconvolve(f, kernel, mode="same") for f in x[0]])[None]
    layer = KernelQuotient(13, beta=1e-4)
    local = local_kernel_quotient(layer, x, y, scale_windows(photo.shape, x.shape[-2:], (2, 2)))
    assert local.shape == (4, 13, 13)
    np.testing.assert_allclose(local.sum(axis=(1, 2)), 1.0, atol=1e-6)
    errors = np.abs(local - kernel).sum(axis=(1, 2))
    assert errors.max() < 0.1
    assert np.abs(local - line_kernel(13, True)).sum(axis=(1, 2)).min() > 1.5


def test_two_blurs_left_and_right_are_told_apart(photo):
    """Left half blurred along rows, right half along columns (EFF, 1 x 2):
    each side's local kernel is nearer its own kernel than the other's
    (L1 measured 0.69 against 1.35, and 0.34 against 1.60)."""
    kernels = np.stack([line_kernel(13, False), line_kernel(13, True)])
    x = gradient_features(photo)
    grid = patch_grid(x.shape[-2:], (1, 2), kernel_size=13)
    y = np.stack([eff_blur(f, kernels, grid) for f in x[0]])[None]
    local = local_kernel_quotient(KernelQuotient(13, beta=1e-4), x, y,
                                  scale_windows(photo.shape, x.shape[-2:], (1, 2)))
    for estimate, own, other in zip(local, kernels, kernels[::-1]):
        assert np.abs(estimate - own).sum() < 0.6 * np.abs(estimate - other).sum()


def test_relative_beta_and_no_normalisation(photo):
    """The layer's options carry over: a relative beta_k scales with the patch's
    power, and without normalisation the kernels keep their mass."""
    x = gradient_features(photo)
    y = np.stack([fftconvolve(f, line_kernel(9, True), mode="same") for f in x[0]])[None]
    windows = scale_windows(photo.shape, x.shape[-2:], (2, 2))
    relative = local_kernel_quotient(KernelQuotient(9, beta=1e-3, beta_mode="relative"),
                                     10 * x, 10 * y, windows)
    again = local_kernel_quotient(KernelQuotient(9, beta=1e-3, beta_mode="relative"),
                                  x, y, windows)
    np.testing.assert_allclose(relative, again, atol=1e-9)
    raw = local_kernel_quotient(KernelQuotient(9, normalize=False), x, y, windows)
    assert np.all(np.abs(raw.sum(axis=(1, 2)) - 1) < 0.2)


def test_image_step_with_equal_kernels_is_the_image_quotient(photo):
    """(U5): with one kernel everywhere the blended patch quotients are the
    uniform image quotient, exactly for one patch, within 0.01 RMS for 2 x 2
    (measured 0.005; the patch borders); (U6) with 10 conjugate-gradient
    iterations within 0.02 (measured 0.014)."""
    kernel = line_kernel(13, False)
    layer = ImageQuotient(13)
    params = {"log_beta": np.array(np.log(0.01))}
    blurry = fftconvolve(photo, kernel, mode="same")
    uniform = layer.forward(kernel[None], blurry[None], params)[0][0]
    one = local_image_quotient(layer, kernel[None], blurry, params,
                               scale_windows(photo.shape, photo.shape, (1, 1)))
    np.testing.assert_array_equal(one, uniform)
    windows = scale_windows(photo.shape, photo.shape, (2, 2))
    kernels = np.repeat(kernel[None], 4, axis=0)
    for method, bound in (("patch", 0.01), ("cg", 0.02)):
        latent = local_image_quotient(layer, kernels, blurry, params, windows, method=method)
        assert np.sqrt(np.mean((latent - uniform) ** 2)) < bound
    with pytest.raises(ValueError, match="method"):
        local_image_quotient(layer, kernels, blurry, params, windows, method="wiener")


def test_predict_nonuniform_shapes_and_checks(rng):
    net = build_network(17, rng=np.random.default_rng(0), n_filters=4, n_hidden=4,
                        filter_sizes=(5,))
    image = rng.random((96, 120))
    output = predict_nonuniform(net, image, (2, 3), image_step="cg")
    assert output.kernel.shape == (6, 17, 17) and output.latent.shape == (96, 120)
    assert len(output.stage_kernels[0]) == 3
    with pytest.raises(ValueError, match="image_step"):
        predict_nonuniform(net, image, (2, 2), image_step="wiener")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        predict_nonuniform(net, image[None], (2, 2))
    with pytest.raises(ValueError, match="smaller than the 17 px kernel"):
        predict_nonuniform(net, image, (12, 15))
