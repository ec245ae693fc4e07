"""Tests of refdeblur.nonuniform.pipeline: estimate_kernels_nonuniform and
deblur_nonuniform (derivations/nonuniform.md)."""

import warnings

import numpy as np
import pytest
import skimage.data

import refdeblur
from refdeblur import deblur_nonuniform, estimate_kernel, estimate_kernels_nonuniform
from refdeblur.inference import DeblurWarning
from refdeblur.metrics import kernel_error_up_to_shift
from refdeblur.nonuniform import EffOperator, patch_grid
from refdeblur.nonuniform.pipeline import fit_grid

# The network's local kernels on these small crops often reach the border of
# their window; that warning is tested in tests/test_cli_nonuniform.py.
pytestmark = pytest.mark.filterwarnings("ignore::refdeblur.inference.pipeline.DeblurWarning")


def line_kernel(size, vertical, length):
    kernel = np.zeros((size, size))
    start = size // 2 - length // 2
    if vertical:
        kernel[start:start + length, size // 2] = 1
    else:
        kernel[size // 2, start:start + length] = 1
    return kernel / kernel.sum()


@pytest.fixture(scope="module")
def small():
    """A 128 x 160 grey crop of astronaut, blurred by a short line."""
    sharp = skimage.data.astronaut()[150:294, 150:326].mean(axis=-1) / 255.0
    kernel = line_kernel(17, False, 7)
    grid = patch_grid((128, 160), (1, 1), kernel_size=17)
    blurry = EffOperator(grid.embedded((8, 8), sharp.shape), kernel[None]).forward(sharp)
    return np.clip(blurry[8:-8, 8:-8], 0, 1)


def test_one_patch_is_the_uniform_estimate(small):
    """With a 1 x 1 grid, no refinement and no projection, the local kernel is
    the uniform path's kernel on the whole image (same network, same
    sharpening and centring)."""
    estimate = estimate_kernels_nonuniform(small, 17, grid=(1, 1), project=False,
                                           refine=False)
    uniform = estimate_kernel(small, 17, refine=False, max_window=None)
    np.testing.assert_allclose(estimate.kernels[0], uniform, atol=1e-12)
    assert estimate.projected_kernels is None and estimate.pose_weights is None
    assert estimate.choice.mode == "fixed" and estimate.refinement == "none"
    np.testing.assert_allclose(estimate.centres, [[63.5, 79.5]])


def test_two_blurs_left_and_right(rng):
    """Left half blurred along rows, right half along columns (EFF, 1 x 2
    patches, 13 px lines, noise 0.01): each side's local kernel is nearer
    its own kernel than the other's, by the l2 distance up to shift
    (measured 0.043 against 0.080, 0.040 against 0.070)."""
    sharp = skimage.data.astronaut()[100:372, 52:460].mean(axis=-1) / 255.0
    kernels = np.stack([line_kernel(17, False, 13), line_kernel(17, True, 13)])
    grid = patch_grid((256, 392), (1, 2), kernel_size=17)
    blurry = EffOperator(grid.embedded((8, 8), sharp.shape), kernels).forward(sharp)
    blurry = blurry[8:-8, 8:-8] + 0.01 * rng.standard_normal((256, 392))
    estimate = estimate_kernels_nonuniform(blurry, 17, grid=(1, 2), project=False)
    assert estimate.refinement == "single_scale"
    for local, own, other in zip(estimate.kernels, kernels, kernels[::-1]):
        assert (kernel_error_up_to_shift(local, own)
                < 0.8 * kernel_error_up_to_shift(local, other))


def test_projection_and_result_fields(small):
    estimate = estimate_kernels_nonuniform(small, 17, grid=(2, 2), refine=False, project=True)
    assert estimate.kernels.shape == (4, 17, 17) and estimate.grid == (2, 2)
    assert estimate.kernel_size == 17 and estimate.n_patches == 4
    np.testing.assert_array_equal(estimate.kernels, estimate.projected_kernels)
    assert estimate.poses.shape == (4913, 3) and estimate.pose_weights.shape == (4913,)
    assert abs(estimate.pose_weights.sum() - 1) < 1e-9
    # eta = 0.0314 keeps ceil(0.0314 * 4913) = 155 poses at most
    assert 0 < np.count_nonzero(estimate.pose_weights) <= 155
    np.testing.assert_allclose(estimate.kernels.sum(axis=(1, 2)), 1.0, atol=1e-9)
    assert estimate.projection == {"method": "nnls", "eta": 0.0314}
    assert not np.array_equal(estimate.direct_kernels, estimate.kernels)


def test_deblur_keeps_type_shape_alpha_and_reuses_an_estimate(small):
    colour = np.stack([small, small, 1 - small, np.full_like(small, 0.5)], axis=-1)
    photo = np.round(colour * 255).astype(np.uint8)
    estimate = estimate_kernels_nonuniform(small, 17, grid=(2, 2), project=False,
                                           refine=False)
    sharp, used = deblur_nonuniform(photo, channel_axis=-1, estimate=estimate,
                                    noise_std=0.01)
    assert used is estimate
    assert sharp.shape == photo.shape and sharp.dtype == np.uint8
    np.testing.assert_array_equal(sharp[..., 3], photo[..., 3])
    grey, _ = deblur_nonuniform(small.astype(np.float32), estimate=estimate, noise_std=0.01)
    assert grey.dtype == np.float32
    # the colour photo was rounded to 8 bits before the deconvolution
    assert np.abs(grey.astype(np.float64) - sharp[..., 0] / 255).mean() < 0.01
    assert refdeblur.deblur_nonuniform is deblur_nonuniform
    with pytest.raises(ValueError, match="do not belong to a 128 x 150 image"):
        deblur_nonuniform(small[:, :150], estimate=estimate)


def test_default_grid_fits_the_image():
    assert fit_grid((384, 512), None, 33).grid == (3, 3)
    assert fit_grid((100, 300), None, 33).grid == (1, 3)
    assert fit_grid((300, 100), None, 17).grid == (3, 2)


@pytest.mark.parametrize("options, match", [
    ({"grid": (0, 2)}, "grid must be two integers >= 1"),
    ({"grid": (2,)}, "grid must be two integers >= 1"),
    ({"grid": (2.5, 2)}, "grid must be two integers >= 1"),
    ({"grid": "3x3"}, "grid must be two integers >= 1"),
    ({"grid": (4, 2)}, r"a 4 x 2 grid is too fine for a 17-px kernel .* at most 3 x 4"),
    ({"kernel_size": 33, "grid": (2, 1)}, "a 2 x 1 grid is too fine for a 33-px kernel"),
    ({"kernel_size": "big"}, "kernel_size must be 'auto' or an int"),
    ({"eta": 0}, "eta must be in"),
    ({"method": "pinv"}, "method must be one of"),
])
def test_bad_arguments_raise(small, options, match):
    arguments = {"kernel_size": 17, **options}
    with pytest.raises(ValueError, match=match):
        estimate_kernels_nonuniform(small, **arguments)


def test_auto_size_refuses_a_grid_no_size_fits_before_estimating(small):
    with pytest.raises(ValueError, match="too fine for a 17-px kernel"):
        estimate_kernels_nonuniform(small, grid=(5, 5))
    with pytest.raises(ValueError, match="too small for a 17-px kernel"):
        estimate_kernels_nonuniform(small[:30], grid=(1, 1))


def test_flat_image_gives_delta_kernels_with_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeblurWarning)
        estimate = estimate_kernels_nonuniform(np.full((96, 96), 0.5), 17, grid=(2, 2))
    assert any("flat" in str(w.message) for w in caught)
    assert np.all(estimate.kernels[:, 8, 8] == 1)
