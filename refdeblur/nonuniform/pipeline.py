"""Blind deblurring of spatially-varying camera shake (paper §6.3), step by step.

The steps, in the order :func:`deblur_nonuniform` runs them:

1. **to float, grey** -- as the uniform path
   (:mod:`refdeblur.inference.preparation`); no window: the blur changes
   across the photo, so the whole photo is used;
2. **kernel size** -- ``kernel_size="auto"`` chooses the shipped network
   from the whole photo's blur as :func:`refdeblur.choose_kernel_size` does;
3. **grid** -- the EFF patches (:func:`refdeblur.nonuniform.eff.patch_grid`),
   checked against the kernel size;
4. **local kernels** -- the network with one kernel quotient per patch
   (Eq. 8) and the EFF image step in every stage
   (:func:`refdeblur.nonuniform.estimation.predict_nonuniform`); each local
   kernel normalised, sharpened where the uniform path sharpens and centred
   (U8);
   4b. (default) **refined** per patch by the uniform refinement on the
   patch (:mod:`refdeblur.inference.refinement`; not in the paper);
5. optionally **projection** onto the camera-motion basis (Eq. 9; U9,
   :func:`refdeblur.nonuniform.motion_basis.project_kernels`);
6. **non-blind deconvolution** under the EFF model, every colour channel
   (:func:`refdeblur.nonuniform.deconvolution.deconvolve_nonuniform`);
7. **back to the input's type**.

Derivation: derivations/nonuniform.md; the defaults of steps 4b and 5 are
chosen there from ``benchmarks/bench_nonuniform.py``.
"""

import numbers
import warnings
from typing import NamedTuple

import numpy as np

from .._engine.threads import one_blas_thread
from ..inference.network_estimate import SHARPENING_SIGMA, resolve_model
from ..inference.pipeline import (DEFAULT_MAX_WINDOW, FLAT_STD, DeblurWarning,
                                  check_kernel_size_argument,
                                  KernelSizeChoice, choose_kernel_size)
from ..inference.preparation import (luminance, merge_channels, split_channels, to_unit_float,
                                     unsaturated)
from ..inference.refinement import refine_coarse_to_fine, refine_kernel, refinement_mode
from ..kernels import blur_exceeds_window, center_kernel, delta_kernel, sharpen_kernel
from ..models import SHIPPED_KERNEL_SIZES
from .deconvolution import deconvolve_nonuniform
from .eff import patch_grid
from .estimation import predict_nonuniform
from .motion_basis import PROJECTION_METHODS, motion_basis, pose_grid, project_kernels

__all__ = ["DEFAULT_GRID", "DEFAULT_ETA", "DEFAULT_PROJECT", "DEFAULT_PROJECTION",
           "DEFAULT_REFINE",
           "NonuniformEstimate", "estimate_kernels_nonuniform", "deblur_nonuniform",
           "fit_grid"]

#: Patches per axis when no grid is given: 3 x 3, or fewer where the image
#: is too small for 3 per axis (:func:`fit_grid`).
DEFAULT_GRID = (3, 3)

#: Whether step 5 runs by default, how it finds the pose weights and the
#: fraction of them it keeps (derivations/nonuniform.md §5: with the shipped
#: networks the projection costs PSNR, so it is off by default).
DEFAULT_PROJECT = False
DEFAULT_PROJECTION = "nnls"
DEFAULT_ETA = 0.0314

#: Whether step 4b runs by default (derivations/nonuniform.md §5).
DEFAULT_REFINE = True

#: The refinement's latent-image schedule on a patch: the sparse prior in
#: all five alternations, where the uniform path's default uses a quadratic
#: prior in its first ones to save time on large windows. Patches are small,
#: and on two straight 13 px blurs side by side the sparse schedule tells
#: them apart (0.043 against 0.080 from the other side's kernel) where the
#: uniform default barely does (0.048 against 0.055)
#: (derivations/nonuniform.md, step 4b).
PATCH_REFINEMENT = {"n_iter": 5, "n_sparse": 5}


class NonuniformEstimate(NamedTuple):
    """What :func:`estimate_kernels_nonuniform` returns.

    Patches are numbered row-major (``r = i * cols + j``) in every array.
    """

    #: ``(R, m, m)``: the local kernels to deblur with, the projected ones
    #: where the projection ran, else the direct ones. Convolution
    #: convention, centre at ``(m // 2, m // 2)``, each summing to 1.
    kernels: np.ndarray
    #: ``(R, 2)``: row and column of every patch centre in the image's pixels.
    centres: np.ndarray
    #: ``(rows, cols)`` of patches.
    grid: tuple
    #: ``m``, and how it was chosen (as the uniform path reports it).
    kernel_size: int
    choice: KernelSizeChoice
    #: ``(R, m, m)``: the network's local kernels (Eq. 8), refined if asked.
    direct_kernels: np.ndarray
    #: ``(R, m, m)`` after Eq. 9, or None without the projection.
    projected_kernels: np.ndarray = None
    #: ``(n_poses,)`` pose weights of the projection (unit sum) and
    #: ``(n_poses, 3)`` the poses ``(tx, ty, phi)``; None without it.
    pose_weights: np.ndarray = None
    poses: np.ndarray = None
    #: What step 4b did: ``'none'``, ``'single_scale'`` or ``'coarse_to_fine'``.
    refinement: str = "none"
    #: The projection's method and ``eta``; None without it.
    projection: dict = None

    @property
    def n_patches(self):
        """``R = rows * cols``."""
        return self.grid[0] * self.grid[1]


def _warn(message):
    warnings.warn(message, DeblurWarning, stacklevel=4)


def _check_grid(grid):
    """``None`` or two integers >= 1, as a tuple; else a ValueError."""
    if grid is None:
        return None
    grid = tuple(grid) if isinstance(grid, (tuple, list, np.ndarray)) else (grid,)
    if len(grid) != 2 or not all(isinstance(g, numbers.Integral) and not isinstance(g, bool)
                                 and g >= 1 for g in grid):
        raise ValueError(f"grid must be two integers >= 1 (rows, cols), got {grid!r}")
    return int(grid[0]), int(grid[1])


def fit_grid(image_shape, grid, kernel_size):
    """The EFF patches of an image for a kernel size: the grid asked for, checked.

    Parameters
    ----------
    image_shape : tuple of int
        ``(H, W)``.
    grid : tuple of int or None
        ``(rows, cols)``; None: :data:`DEFAULT_GRID`, reduced on an axis
        where the image has room for fewer patches.
    kernel_size : int
        Odd side of the local kernels.

    Returns
    -------
    refdeblur.nonuniform.eff.PatchGrid

    Raises
    ------
    ValueError
        If ``grid`` is not two integers >= 1, or the patches would be closer
        than twice the kernel size (a grid too fine, or an image too small),
        naming the finest grid that fits.

    Examples
    --------
    >>> from refdeblur.nonuniform.pipeline import fit_grid
    >>> fit_grid((200, 300), None, 33).grid
    (3, 3)
    >>> fit_grid((100, 300), None, 33).grid
    (1, 3)
    """
    grid = _check_grid(grid)
    height, width = (int(n) for n in tuple(image_shape)[:2])
    if grid is None:
        room = (height // (2 * kernel_size), width // (2 * kernel_size))
        grid = tuple(max(1, min(g, r)) for g, r in zip(DEFAULT_GRID, room))
    return patch_grid((height, width), grid, kernel_size=kernel_size)


def _is_flat(gray):
    usable = gray[unsaturated(gray)]
    return usable.size < 0.05 * gray.size or usable.std() < FLAT_STD


def _finish(kernel, size):
    """Step 4's per-patch kernel: sum 1, sharpened as the uniform path, centred (U8).

    None where the network gave no usable kernel.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if not (np.all(np.isfinite(kernel)) and kernel.sum() > 0):
        return None
    kernel = sharpen_kernel(kernel / kernel.sum(), SHARPENING_SIGMA.get(size, 0.0))
    return center_kernel(kernel)


def _refine_patch(region, kernel, mode, net, refine):
    """Step 4b on one patch, as the uniform path's step 6b."""
    given = {key: value for key, value in refine.items()
             if key != "coarse_to_fine"} if isinstance(refine, dict) else {}
    options = {**PATCH_REFINEMENT, **given}
    if mode == "coarse_to_fine":
        return refine_coarse_to_fine(region, kernel, net.architecture.kernel_sizes, **options)
    return refine_kernel(region, kernel, **options)


def _local_kernels(gray, patches, net, refine):
    """Steps 4 and 4b: the direct local kernels and the refinement mode."""
    size = net.kernel_size
    mode = refinement_mode(refine, net)
    output = predict_nonuniform(net, gray.astype(net.dtype), patches.grid,
                                n_scales=1 if mode == "coarse_to_fine" else None)
    local = output.stage_kernels[-1][-1]          # (R, m_j, m_j) of the last scale run
    finished = [_finish(k, k.shape[-1]) for k in local]
    usable = [k for k in finished if k is not None]
    if not usable:
        _warn("the network gave no usable kernel for any patch; returning delta kernels")
        return np.repeat(delta_kernel(size)[None], patches.n_patches, axis=0), "none"
    if len(usable) < len(finished):
        _warn(f"the network gave no usable kernel for {len(finished) - len(usable)} of "
              f"{len(finished)} patches; they get the mean of the others")
        mean = center_kernel(np.mean(usable, axis=0))
        finished = [mean if k is None else k for k in finished]
    if mode == "none":
        return np.stack(finished), mode
    refined = []
    for r, kernel in enumerate(finished):
        r0, r1, c0, c1 = patches.supports[r]
        refined.append(_refine_patch(gray[r0:r1, c0:c1].astype(np.float64), kernel, mode,
                                     net, refine))
    return np.stack(refined), mode


def _choose_size(gray, grid, kernel_size, model, max_window, refine):
    """Step 2: the kernel size and why; an impossible grid fails before any work."""
    if kernel_size != "auto":
        return KernelSizeChoice(kernel_size, "fixed", "kernel_size given")
    if model is not None:
        return KernelSizeChoice(model.kernel_size, "model", "the model's kernel size")
    # No shipped size can make a grid fit that the smallest does not.
    fit_grid(gray.shape, grid, SHIPPED_KERNEL_SIZES[0])
    return choose_kernel_size(gray, max_window=max_window, refine=refine)


def _estimate(planes, kernel_size, grid, model, project, eta, method, refine, max_window):
    """Steps 1 to 5 on the colour planes of a float image."""
    kernel_size = check_kernel_size_argument(kernel_size)
    grid = _check_grid(grid)
    if method not in PROJECTION_METHODS:
        raise ValueError(f"method must be one of {PROJECTION_METHODS}, got {method!r}")
    if not (isinstance(eta, numbers.Real) and 0 < eta <= 1):
        raise ValueError(f"eta must be in (0, 1], got {eta!r}")
    gray = luminance(planes)                                            # 1
    choice = _choose_size(gray, grid, kernel_size, model, max_window, refine)  # 2
    size = choice.kernel_size
    try:
        patches = fit_grid(gray.shape, grid, size)                      # 3
    except ValueError as error:
        reason = "" if choice.mode != "auto" else " (the size chosen from the blur)"
        raise ValueError(f"{error}{reason}") from None
    net = resolve_model(size, model)
    common = dict(kernel_size=size, choice=choice, centres=patches.centres,
                  grid=patches.grid)
    flat = _is_flat(gray)
    if flat or min(gray.shape) < net.min_image_size():
        reason = ("the image is flat or saturated: there are no edges to estimate a "
                  "blur from" if flat else
                  f"the image ({gray.shape[0]}x{gray.shape[1]} px) is too small for the "
                  f"{size} px network (it needs {net.min_image_size()} px per side)")
        _warn(f"{reason}; returning delta kernels")
        deltas = np.repeat(delta_kernel(size)[None], patches.n_patches, axis=0)
        return NonuniformEstimate(kernels=deltas, direct_kernels=deltas, **common)
    direct, mode = _local_kernels(gray, patches, net, refine)           # 4, 4b
    truncated = sum(blur_exceeds_window(k) for k in direct)
    # One noisy patch is no evidence of a larger blur; half of them are.
    if 2 * truncated >= len(direct):
        larger = [s for s in SHIPPED_KERNEL_SIZES if s > size]
        hint = (f"try kernel_size={larger[0]} (--kernel-size {larger[0]})" if larger
                else "the blur may exceed the largest network")
        _warn(f"{truncated} of {len(direct)} local kernels reach the border of their "
              f"{size}x{size} window, so the blur is probably larger: {hint}")
    if not project:
        return NonuniformEstimate(kernels=direct, direct_kernels=direct, refinement=mode,
                                  **common)
    poses = pose_grid(gray.shape, size)                                 # 5
    basis = motion_basis(gray.shape, patches.centres, size, poses)
    projected, weights = project_kernels(direct, basis, eta=eta, method=method)
    return NonuniformEstimate(kernels=projected, direct_kernels=direct,
                              projected_kernels=projected, pose_weights=weights,
                              poses=poses, refinement=mode,
                              projection={"method": method, "eta": eta}, **common)


@one_blas_thread()
def estimate_kernels_nonuniform(image, kernel_size="auto", *, grid=None, channel_axis=None,
                                project=DEFAULT_PROJECT, eta=DEFAULT_ETA,
                                method=DEFAULT_PROJECTION,
                                model=None, refine=DEFAULT_REFINE,
                                max_window=DEFAULT_MAX_WINDOW):
    """Estimate a blur that changes across a photo: one kernel per patch.

    Parameters
    ----------
    image : ndarray
        Blurry photo: ``(H, W)`` grey, or colour (RGB, with or without
        alpha) with the channels on ``channel_axis``. uint8, uint16 or float
        in [0, 1]. The whole photo is used (no window).
    kernel_size : {'auto', 17, 25, 33}, optional
        Side of the local kernels; the network of that size is used.
        ``'auto'`` (default) chooses it from the whole photo's blur as
        :func:`refdeblur.choose_kernel_size` does (with ``model``: the
        model's size).
    grid : tuple of int, optional
        ``(rows, cols)`` of patches. Neighbouring patch centres must be at
        least twice the kernel size apart. Default: 3 x 3, fewer on an axis
        that has no room for 3 (:func:`fit_grid`).
    channel_axis : int, optional
        Axis of the colour channels; ``None`` for a grey image.
    project : bool, optional
        Project the local kernels onto the kernels one camera motion of
        in-plane translations and rotations can produce (Eq. 9; the paper's
        pipeline). Default False: with the shipped networks the projection
        lowers the PSNR (derivations/nonuniform.md §5).
    eta : float, optional
        Fraction of the pose weights the projection keeps (default 0.0314,
        the paper's Fig. 16).
    method : {'nnls', 'adjoint'}, optional
        How the projection finds the pose weights: ``'nnls'`` (default),
        the non-negative least-squares fit, or ``'adjoint'``, the paper's
        Eq. 9 (:func:`refdeblur.nonuniform.motion_basis.project_kernels`;
        derivations/nonuniform.md §5 says why the default).
    model : Network, optional
        A network to use instead of the shipped one.
    refine : bool or dict, optional
        Refine every local kernel on its patch with the uniform path's
        refinement (default True; not in the paper), with the sparse
        latent image in every alternation (:data:`PATCH_REFINEMENT`). A
        dict gives its options, as for :func:`refdeblur.estimate_kernel`.
    max_window : int or None, optional
        Window of the automatic kernel-size choice only.

    Returns
    -------
    NonuniformEstimate
        The local kernels ``(R, m, m)``, the patch centres ``(R, 2)``, the
        direct and the projected kernels, the pose weights and poses, the
        kernel size and how it was chosen.

    Warns
    -----
    DeblurWarning
        Flat or saturated images and images too small for the network give
        delta kernels; half or more of the local kernels reaching the border
        of their window suggest a larger kernel size.

    Raises
    ------
    ValueError
        Empty, NaN/Inf, wrongly shaped images, an unsupported data type, a
        ``kernel_size`` that is neither ``'auto'`` nor an int, a grid that
        is not two integers >= 1, and a grid too fine for the kernel size
        or an image too small for it (the message names the finest grid
        that fits).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import fftconvolve
    >>> from skimage import data
    >>> from refdeblur import estimate_kernels_nonuniform
    >>> line = np.zeros((9, 9)); line[4] = 1 / 9
    >>> blurry = fftconvolve(data.camera()[::2, ::2] / 255, line, mode="valid")
    >>> estimate = estimate_kernels_nonuniform(blurry, 17, grid=(2, 2), refine=False)
    >>> estimate.kernels.shape, estimate.centres.tolist()[0]
    ((4, 17, 17), [61.5, 61.5])
    """
    as_float, _ = to_unit_float(image)
    planes, _ = split_channels(as_float, channel_axis)
    return _estimate(planes, kernel_size, grid, model, project, eta, method, refine,
                     max_window)


@one_blas_thread()
def deblur_nonuniform(image, kernel_size="auto", *, grid=None, channel_axis=None,
                      model=None, noise_std=None, project=DEFAULT_PROJECT, eta=DEFAULT_ETA,
                      method=DEFAULT_PROJECTION, refine=DEFAULT_REFINE,
                      max_window=DEFAULT_MAX_WINDOW, estimate=None, **options):
    """Blind deblurring of spatially-varying camera shake (steps 1-7).

    Parameters
    ----------
    image : ndarray
        Blurry photo, as for :func:`estimate_kernels_nonuniform`.
    kernel_size, grid, channel_axis, model, project, eta, method, refine, max_window
        As for :func:`estimate_kernels_nonuniform`. Every colour channel is
        deconvolved with the local kernels estimated on the luminance; an
        alpha channel is returned unchanged.
    noise_std : float or sequence of float, optional
        Noise standard deviation on [0, 1]; estimated per channel if omitted.
    estimate : NonuniformEstimate, optional
        Skip the estimation and deconvolve with these local kernels.
    **options
        Passed to :func:`refdeblur.nonuniform.deconvolution.deconvolve_nonuniform`
        (``cg_iterations``, ``preconditioner``, ...).

    Returns
    -------
    sharp : ndarray
        Same shape as ``image``; same dtype for uint8/uint16 and float32/
        float64 input, values clipped to the input's range.
    estimate : NonuniformEstimate
        The local kernels used and where they belong.

    Examples
    --------
    >>> from skimage import data
    >>> from refdeblur import deblur_nonuniform
    >>> photo = data.astronaut()[::4, ::4]          # 128 x 128 x 3, uint8
    >>> sharp, estimate = deblur_nonuniform(photo, 17, grid=(2, 2), channel_axis=-1,
    ...                                     project=False, refine=False)
    >>> sharp.shape, sharp.dtype, estimate.kernels.shape
    ((128, 128, 3), dtype('uint8'), (4, 17, 17))
    """
    as_float, restore = to_unit_float(image)                            # 1
    planes, alpha = split_channels(as_float, channel_axis)
    if estimate is None:
        estimate = _estimate(planes, kernel_size, grid, model, project, eta, method,  # 2-5
                             refine, max_window)
    patches = patch_grid(planes.shape[1:], estimate.grid, kernel_size=estimate.kernel_size)
    if np.shape(estimate.centres) != patches.centres.shape or not np.allclose(
            estimate.centres, patches.centres):
        raise ValueError(f"the estimate's patch centres do not belong to a "
                         f"{planes.shape[1]} x {planes.shape[2]} image")
    sharp = deconvolve_nonuniform(planes.astype(np.float32),                    # 6
                                  estimate.kernels.astype(np.float32), patches,
                                  noise_std=noise_std, channel_axis=0, **options)
    sharp = merge_channels(sharp.astype(np.float64), alpha, channel_axis)
    return restore(sharp), estimate                                     # 7
