"""Tests of the independent renderer of camera shake (refdeblur.nonuniform.render,
derivations/motion_basis.md §6)."""

import numpy as np
import pytest
from scipy.signal import convolve2d

from refdeblur.nonuniform.render import (
    render_shake,
    sample_camera_trajectory,
    true_local_kernels,
)

SHAPE = (200, 240)
SIZE = 21
HALF = SIZE // 2
#: Isolated dots, more than a kernel apart, from the centre to the corners.
DOTS = np.array([[99, 119], [99, 160], [40, 200], [160, 40], [20, 20], [180, 220], [30, 110]])


def dot_image(shape=SHAPE, dots=DOTS):
    image = np.zeros(shape)
    image[dots[:, 0], dots[:, 1]] = 1.0
    return image


def windows(image, dots=DOTS):
    return np.stack([image[r - HALF:r + HALF + 1, c - HALF:c + HALF + 1] for r, c in dots])


def spread(kernel):
    """Root mean square distance of the kernel's mass from its centre of mass."""
    rows, cols = np.indices(kernel.shape)
    k = kernel / kernel.sum()
    r0, c0 = (rows * k).sum(), (cols * k).sum()
    return float(np.sqrt(((rows - r0) ** 2 * k + (cols - c0) ** 2 * k).sum()))


# --------------------------------------------------------------------------
# Trajectories (B14, B15)
# --------------------------------------------------------------------------

def test_trajectory_extents_and_centring(rng):
    path = sample_camera_trajectory(rng, n_steps=50, min_shift_px=5, max_shift_px=5,
                                    min_rotation_deg=1.5, max_rotation_deg=1.5)
    assert path.shape == (50, 3)
    assert np.isclose(np.ptp(path[:, :2], axis=0).max(), 5.0)
    assert np.isclose(np.degrees(np.ptp(path[:, 2])), 1.5)
    # The time average of the polyline is the identity pose.
    assert np.allclose(0.5 * (path[:-1] + path[1:]).mean(axis=0), 0.0, atol=1e-12)
    # Smooth: neighbouring poses are much closer than the extent.
    assert np.abs(np.diff(path[:, :2], axis=0)).max() < 1.0


def test_trajectory_ranges_and_determinism():
    paths = [sample_camera_trajectory(np.random.default_rng(seed), max_shift_px=8,
                                      min_rotation_deg=1, max_rotation_deg=3)
             for seed in range(20)]
    rotations = np.degrees([np.ptp(p[:, 2]) for p in paths])
    shifts = [np.ptp(p[:, :2], axis=0).max() for p in paths]
    assert rotations.min() >= 1 - 1e-9 and rotations.max() <= 3 + 1e-9
    assert np.ptp(rotations) > 0.5 and max(shifts) <= 8 + 1e-9 and np.ptp(shifts) > 1
    again = sample_camera_trajectory(np.random.default_rng(3), max_shift_px=8,
                                     min_rotation_deg=1, max_rotation_deg=3)
    assert np.array_equal(again, paths[3])


def test_trajectory_rejects_bad_arguments(rng):
    with pytest.raises(TypeError, match="Generator"):
        sample_camera_trajectory(0, max_shift_px=1, max_rotation_deg=1)
    with pytest.raises(ValueError, match="rotation_deg"):
        sample_camera_trajectory(rng, max_shift_px=1, min_rotation_deg=2, max_rotation_deg=1)
    with pytest.raises(ValueError, match="shift_px"):
        sample_camera_trajectory(rng, max_shift_px=-1, max_rotation_deg=1)
    with pytest.raises(ValueError, match="n_steps"):
        sample_camera_trajectory(rng, n_steps=1, max_shift_px=1, max_rotation_deg=1)


# --------------------------------------------------------------------------
# Rendering and true kernels (B16 to B19)
# --------------------------------------------------------------------------

def test_integer_translation_is_the_convolution_with_the_true_kernel(rng):
    # Orientation (B4) through the renderer: shifting by (ty, tx) = (-2, 3)
    # equals convolve2d with the true kernel, whose mass is at (h - 2, h + 3).
    image = rng.random((60, 70))
    pose = [[3.0, -2.0, 0.0]]
    kernel = true_local_kernels(image.shape, [[30, 35]], pose, 9)[0]
    assert np.argwhere(kernel).tolist() == [[4 - 2, 4 + 3]]
    blurred = render_shake(image, pose)
    expected = convolve2d(image, kernel, mode="same")
    assert np.allclose(blurred[6:-6, 6:-6], expected[6:-6, 6:-6], atol=1e-12)


@pytest.mark.parametrize("order, least", [(1, 0.99), (3, 0.95)])
def test_rendered_dots_are_the_true_local_kernels(rng, order, least):
    path = sample_camera_trajectory(rng, max_shift_px=6, min_rotation_deg=3,
                                    max_rotation_deg=3)
    blurred = render_shake(dot_image(), path, order=order)
    truth = true_local_kernels(SHAPE, DOTS, path, SIZE)
    seen = windows(blurred)
    for window, kernel in zip(seen, truth):
        assert np.corrcoef(window.ravel(), kernel.ravel())[0, 1] > least
        assert abs(window.sum() - 1.0) < 0.02
    # The kernels really differ across the image (3 degrees of rotation).
    assert np.abs(truth[4] - truth[5]).sum() > 0.5


def test_pure_translation_gives_the_same_kernel_everywhere(rng):
    path = sample_camera_trajectory(rng, max_shift_px=9, max_rotation_deg=0)
    assert np.all(path[:, 2] == 0)
    truth = true_local_kernels(SHAPE, DOTS, path, SIZE)
    assert np.allclose(truth, truth[0], atol=1e-12)
    seen = windows(render_shake(dot_image(), path))
    assert np.allclose(seen, truth[0], atol=1e-9)
    assert spread(truth[0]) > 1.0


def test_rotation_blur_grows_with_distance_from_the_centre(rng):
    path = sample_camera_trajectory(rng, max_shift_px=0, min_rotation_deg=3,
                                    max_rotation_deg=3)
    centre = np.array([(SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2])
    radii = np.array([0.0, 20.0, 40.0, 60.0, 80.0])
    points = centre + radii[:, None] * np.array([0.6, 0.8])
    truth = true_local_kernels(SHAPE, points, path, SIZE)
    spreads = np.array([spread(k) for k in truth])
    assert spreads[0] < 1e-9
    assert np.all(np.diff(spreads) > 0)
    # The blur is an arc: its spread is rho * std(phi), widened by the bilinear
    # splat, whose variance is at most 1/4 per axis.
    arc = radii * np.std(0.5 * (path[:-1, 2] + path[1:, 2]))
    excess = spreads ** 2 - arc ** 2
    assert np.all(excess >= -0.05 * arc ** 2) and np.all(excess < 0.5 + 0.05 * arc ** 2)
    assert arc[-1] > 1.0
    # The renderer agrees at the same points (dots at rounded positions).
    dots = np.round(points).astype(int)
    seen = windows(render_shake(dot_image(dots=dots), path), dots)
    truth_at_dots = true_local_kernels(SHAPE, dots, path, SIZE)
    for window, kernel in zip(seen, truth_at_dots):
        assert np.corrcoef(window.ravel(), kernel.ravel())[0, 1] > 0.99


def test_kernel_at_the_centre_is_centred(rng):
    # Zero time average: the centre's kernel has its centre of mass at (h, h).
    path = sample_camera_trajectory(rng, max_shift_px=8, min_rotation_deg=2,
                                    max_rotation_deg=2)
    centre = [(SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2]
    kernel = true_local_kernels(SHAPE, [centre], path, SIZE)[0]
    rows, cols = np.indices(kernel.shape)
    assert np.allclose([(rows * kernel).sum(), (cols * kernel).sum()], HALF, atol=1e-9)


def test_colour_channels_are_blurred_alike(rng):
    path = sample_camera_trajectory(rng, n_steps=8, max_shift_px=3, max_rotation_deg=1)
    colour = rng.random((3, 40, 50))
    planes = np.stack([render_shake(c, path) for c in colour])
    assert np.allclose(render_shake(colour, path, channel_axis=0), planes, atol=1e-15)
    last = render_shake(np.moveaxis(colour, 0, -1), path, channel_axis=-1)
    assert np.allclose(np.moveaxis(last, -1, 0), planes, atol=1e-15)
    as_uint8 = render_shake((colour[0] * 255).astype(np.uint8), path)
    assert as_uint8.dtype == np.float64 and as_uint8.max() <= 1.0


def test_bad_inputs_raise():
    image = np.zeros((20, 20))
    with pytest.raises(ValueError, match="trajectory"):
        render_shake(image, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="channel_axis"):
        render_shake(np.zeros((20, 20, 3)), [[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="order"):
        render_shake(image, [[0.0, 0.0, 0.0]], order=7)
    with pytest.raises(ValueError, match="leaves"):
        true_local_kernels((20, 20), [[10, 10]], [[30.0, 0.0, 0.0]], 5)
    with pytest.raises(ValueError, match="kernel size"):
        true_local_kernels((20, 20), [[10, 10]], [[0.0, 0.0, 0.0]], 4)
