"""Non-uniform camera shake rendered by warping: the reference for benchmarks.

A blurred image is the time average of the sharp image seen through a camera
that translates and rotates in the image plane during the exposure. Here the
average is computed directly, by warping the whole sharp image with
:func:`scipy.ndimage.affine_transform` for every pose along the path. This
path shares no code with the Efficient Filter Flow model nor with the motion
basis (:mod:`refdeblur.nonuniform.motion_basis`), so that a benchmark built
on it tests those, and does not merely repeat them.

Derivation: derivations/motion_basis.md §6; the code cites equations
``(B1)`` (the warp, shared as a formula with the basis) and ``(B14)`` to
``(B19)``.

Public functions
----------------
sample_camera_trajectory
    A smooth random path of poses ``(tx, ty, phi)`` (B14, B15).
render_shake
    The blurred image: the average of the warped sharp image (B16 to B18).
true_local_kernels
    The local kernel at given points: the path of each point, splatted (B19).
"""

import math
import numbers

import numpy as np
from scipy import ndimage

from ..camera_shake import check_kernel_size, check_rng, sample_trajectory
from ..image_io import as_float_image

__all__ = ["render_shake", "sample_camera_trajectory", "true_local_kernels"]

#: Largest distance, in pixels, that any image point moves between two
#: consecutive poses of the rendered path (B16).
MAX_STEP_PX = 0.5


def _check_trajectory(trajectory):
    trajectory = np.asarray(trajectory, dtype=np.float64)
    if (trajectory.ndim != 2 or trajectory.shape[1] != 3 or trajectory.shape[0] < 1
            or not np.all(np.isfinite(trajectory))):
        raise ValueError("trajectory must be a finite array of shape (n >= 1, 3) of poses "
                         f"(tx, ty, phi), got shape {trajectory.shape}")
    return trajectory


def _check_range(name, low, high):
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high) and 0 <= low <= high):
        raise ValueError(f"need 0 <= min_{name} <= max_{name}, got {low!r} and {high!r}")
    return low, high


def _centre_and_radius(shape):
    """The image centre ``o`` (row, col) and the distance from it to a corner pixel."""
    centre = np.array([(shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0])
    return centre, float(np.hypot(*centre))


def sample_camera_trajectory(rng, *, n_steps=64, max_shift_px, max_rotation_deg,
                             min_shift_px=0.0, min_rotation_deg=0.0):
    r"""Draw a smooth camera path of in-plane translations and rotations.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    n_steps : int, optional
        Poses along the path, equally spaced in time (default 64, at least
        2). :func:`render_shake` fills in poses between them.
    max_shift_px, min_shift_px : float
        Range of the translation's extent ``max(ptp(tx), ptp(ty))`` in pixels;
        the extent is drawn uniformly from it (``min_shift_px`` default 0).
    max_rotation_deg, min_rotation_deg : float
        Range of the angle swept, ``ptp(phi)``, in degrees, drawn uniformly
        (``min_rotation_deg`` default 0).

    Returns
    -------
    ndarray of shape (n_steps, 3)
        Poses ``(tx, ty, phi)``: ``tx`` along columns and ``ty`` along rows
        in pixels, ``phi`` in **radians**, each with time average zero, so
        that the blurred image stays aligned with the sharp one.

    Notes
    -----
    Each of the three coordinates is an independent draw of the Gaussian
    process of the kernel sampler (:func:`refdeblur.camera_shake.
    sample_trajectory`: Matérn ν = 3/2, l = 0.3, σ_f = 1/4) on ``n_steps``
    time points (B14); the path is centred on its time average and scaled to
    the drawn extents (B15). The translation keeps the shape of the GP draw
    (both coordinates get the same factor).

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.nonuniform.render import sample_camera_trajectory
    >>> path = sample_camera_trajectory(np.random.default_rng(0), max_shift_px=6,
    ...                                 min_rotation_deg=1, max_rotation_deg=1)
    >>> path.shape, round(float(np.degrees(np.ptp(path[:, 2]))), 6)
    ((64, 3), 1.0)
    """
    check_rng(rng)
    if (not isinstance(n_steps, numbers.Integral) or isinstance(n_steps, bool)
            or n_steps < 2):
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}")
    shift_low, shift_high = _check_range("shift_px", min_shift_px, max_shift_px)
    rot_low, rot_high = _check_range("rotation_deg", min_rotation_deg, max_rotation_deg)
    path = np.concatenate([sample_trajectory(rng, n_samples=n_steps),
                           sample_trajectory(rng, n_samples=n_steps)[:, :1]],
                          axis=1)                                        # (B14)
    # Time average of the polyline (the midpoint rule of render_shake).
    path -= 0.5 * (path[:-1] + path[1:]).mean(axis=0)
    shift = rng.uniform(shift_low, shift_high)
    rotation = math.radians(rng.uniform(rot_low, rot_high))
    extent = np.ptp(path[:, :2], axis=0).max()
    path[:, :2] *= shift / extent if extent > 0 else 0.0                # (B15)
    swept = np.ptp(path[:, 2])
    path[:, 2] *= rotation / swept if swept > 0 else 0.0
    return path


def _dense_poses(trajectory, image_shape, max_step_px):
    """The poses at which the path is integrated, all of equal weight (B16).

    Every segment of the polyline is cut into the same number ``K`` of equal
    pieces and the midpoints of the pieces are returned, ``K`` being chosen
    so that no image point moves more than ``max_step_px`` between
    neighbouring midpoints. A single pose is returned as it is.
    """
    trajectory = _check_trajectory(trajectory)
    if not (np.isfinite(max_step_px) and max_step_px > 0):
        raise ValueError(f"max_step_px must be positive, got {max_step_px!r}")
    if trajectory.shape[0] == 1:
        return trajectory
    _, radius = _centre_and_radius(image_shape)
    seg = np.diff(trajectory, axis=0)
    # A point at distance rho from the centre moves at most |dt| + rho |dphi|.
    motion = np.hypot(seg[:, 0], seg[:, 1]) + radius * np.abs(seg[:, 2])
    pieces = max(1, math.ceil(motion.max() / max_step_px))
    frac = (np.arange(pieces) + 0.5) / pieces
    dense = trajectory[:-1, None, :] + frac[None, :, None] * seg[:, None, :]
    return dense.reshape(-1, 3)


def _inverse_warp(pose, centre):
    """``affine_transform``'s matrix and offset for the warp of pose ``pose`` (B17).

    The output pixel ``p`` takes the input value at ``W^-1(p) =
    o + A^T (p - o - t)``, so a point at ``q`` appears at ``W(q)`` (B1).
    """
    tx, ty, phi = pose
    cos, sin = math.cos(phi), math.sin(phi)
    a_t = np.array([[cos, -sin], [sin, cos]])                            # A(phi)^T
    return a_t, centre - a_t @ (centre + np.array([ty, tx]))


def render_shake(image, trajectory, *, order=1, mode="reflect", max_step_px=MAX_STEP_PX,
                 channel_axis=None):
    r"""Blur an image with a camera path by averaging warped copies.

    Parameters
    ----------
    image : array_like
        Sharp image, 2-D, or 3-D with ``channel_axis``; integers are scaled to
        [0, 1] (:func:`refdeblur.image_io.as_float_image`).
    trajectory : array_like of shape (n, 3)
        Poses ``(tx, ty, phi)`` (pixels, radians) equally spaced in time, e.g.
        from :func:`sample_camera_trajectory`; rotations are about the image
        centre ``((rows - 1) / 2, (cols - 1) / 2)``.
    order : int, optional
        Spline order of the interpolation, 0 to 5 (default 1: bilinear, which
        keeps the values in the range of the input).
    mode : str, optional
        How values outside the image are filled (default ``"reflect"``), see
        :func:`scipy.ndimage.affine_transform`.
    max_step_px : float, optional
        Poses are filled in between those of the trajectory so that no image
        point moves more than this between two of them (default 0.5).
    channel_axis : int or None, optional
        Axis of the colour channels; each channel is blurred the same way.

    Returns
    -------
    ndarray
        The blurred image, same shape as ``image``, float64.

    Notes
    -----
    The path between the poses is the polyline in ``(tx, ty, phi)``; it is
    integrated with the midpoint rule on equal pieces (B16), every piece
    warping the image by (B17) and adding ``1 / N`` of it (B18).

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.nonuniform.render import render_shake
    >>> image = np.zeros((9, 9)); image[4, 4] = 1.0
    >>> float(render_shake(image, [[2.0, -1.0, 0.0]])[3, 6])  # 1 up, 2 right
    1.0
    """
    image = as_float_image(image, dtype=np.float64)
    if channel_axis is None:
        if image.ndim != 2:
            raise ValueError(f"image must be 2-D without channel_axis, got shape {image.shape}")
        planes = image[..., None]
    else:
        if image.ndim != 3:
            raise ValueError(f"image must be 3-D with channel_axis, got shape {image.shape}")
        planes = np.moveaxis(image, channel_axis, -1)
    if not (isinstance(order, numbers.Integral) and 0 <= order <= 5):
        raise ValueError(f"order must be an integer from 0 to 5, got {order!r}")
    shape = planes.shape[:2]
    poses = _dense_poses(trajectory, shape, max_step_px)                # (B16)
    centre, _ = _centre_and_radius(shape)
    out = np.zeros(planes.shape)
    for ch in range(planes.shape[2]):
        plane = planes[..., ch]
        if order > 1:
            # The spline coefficients do not depend on the pose: compute once.
            plane = ndimage.spline_filter(plane, order=order, mode=mode,
                                          output=np.float64)
        for pose in poses:
            matrix, offset = _inverse_warp(pose, centre)                 # (B17)
            out[..., ch] += ndimage.affine_transform(
                plane, matrix, offset=offset, order=order, mode=mode,
                prefilter=False)
    out /= poses.shape[0]                                                # (B18)
    return out[..., 0] if channel_axis is None else np.moveaxis(out, -1, channel_axis)


def true_local_kernels(image_shape, centres, trajectory, kernel_size, *,
                       max_step_px=MAX_STEP_PX):
    r"""The local blur kernels of a camera path at given points.

    Parameters
    ----------
    image_shape : tuple of int
        ``(rows, cols)`` of the image the path blurs.
    centres : array_like of shape (R, 2)
        Points ``(row, col)`` in pixel coordinates, e.g. patch centres.
    trajectory : array_like of shape (n, 3)
        Poses ``(tx, ty, phi)`` as for :func:`render_shake`.
    kernel_size : int
        Side ``m`` of the kernels (odd, at least 3).
    max_step_px : float, optional
        As for :func:`render_shake`; pass the same value.

    Returns
    -------
    ndarray of shape (R, m, m)
        Kernels in the convention ``y = convolve2d(x, k, 'valid')``, centre at
        ``(m // 2, m // 2)``: the path of each point under the same poses as
        :func:`render_shake`, drawn with bilinear weights, each normalised
        to unit sum (B19). Parts of a path that leave the ``m x m`` window
        are dropped before the normalisation.

    Raises
    ------
    ValueError
        If a path leaves the window entirely (the kernel is too small).

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.nonuniform.render import true_local_kernels
    >>> k = true_local_kernels((9, 9), [[4, 4]], [[2.0, -1.0, 0.0]], 5)
    >>> np.argwhere(k[0]).tolist()
    [[1, 4]]
    """
    image_shape = tuple(image_shape)
    if len(image_shape) != 2 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (rows, cols), got {image_shape!r}")
    rows, cols = (int(s) for s in image_shape)
    size = check_kernel_size(kernel_size)
    centres = np.asarray(centres, dtype=np.float64)
    if centres.ndim != 2 or centres.shape[1] != 2:
        raise ValueError(f"centres must have shape (R, 2), got {centres.shape}")
    poses = _dense_poses(trajectory, (rows, cols), max_step_px)
    origin, _ = _centre_and_radius((rows, cols))
    half = size // 2
    kernels = np.zeros((centres.shape[0], size, size))
    for r, point in enumerate(centres):
        # Where the poses take the point, W(c) of (B1), as kernel coordinates.
        rel = point - origin
        cos, sin = np.cos(poses[:, 2]), np.sin(poses[:, 2])
        moved = np.stack([origin[0] + cos * rel[0] + sin * rel[1] + poses[:, 1],
                          origin[1] - sin * rel[0] + cos * rel[1] + poses[:, 0]], axis=1)
        pos = half + moved - point
        low = np.floor(pos).astype(np.intp)
        frac = pos - low
        for dr in (0, 1):
            for dc in (0, 1):
                weight = ((frac[:, 0] if dr else 1 - frac[:, 0])
                          * (frac[:, 1] if dc else 1 - frac[:, 1]))
                i, j = low[:, 0] + dr, low[:, 1] + dc
                inside = (i >= 0) & (i < size) & (j >= 0) & (j < size)
                np.add.at(kernels[r], (i[inside], j[inside]), weight[inside])
        total = kernels[r].sum()
        if not total > 0:
            raise ValueError(f"the path of point {point.tolist()} leaves the "
                             f"{size}x{size} window; use a larger kernel_size")
        kernels[r] /= total                                              # (B19)
    return kernels
