"""Spatially-varying camera shake (paper §6.3).

:mod:`refdeblur.nonuniform.eff`
    The Efficient Filter Flow model: overlapping windows, one kernel per
    patch, the blur and its adjoints (derivations/eff.md).
:mod:`refdeblur.nonuniform.deconvolution`
    Non-blind deconvolution under the EFF model (derivations/eff.md §4).
:mod:`refdeblur.nonuniform.motion_basis`
    Camera poses, the basis mapping pose weights to local kernels and the
    projection of Eq. 9 (derivations/motion_basis.md).
:mod:`refdeblur.nonuniform.render`
    An independent renderer of camera shake (warped copies averaged) and
    the true local kernels, for tests and benchmarks.
:mod:`refdeblur.nonuniform.estimation`
    Local kernels inside the trained network: one kernel quotient per patch
    (Eq. 8) and the image step under the EFF model (derivations/nonuniform.md).
:mod:`refdeblur.nonuniform.pipeline`
    Blind non-uniform deblurring: :func:`estimate_kernels_nonuniform`
    (local kernels, optionally projected onto the motion basis) and
    :func:`deblur_nonuniform` (derivations/nonuniform.md).
"""

from .deconvolution import deconvolve_nonuniform
from .eff import EffOperator, PatchGrid, eff_blur, eff_blur_adjoint, eff_kernel_adjoint, patch_grid
from .motion_basis import motion_basis, pose_grid, project_kernels, threshold_pose_weights
from .render import render_shake, sample_camera_trajectory, true_local_kernels
from .estimation import local_image_quotient, local_kernel_quotient, predict_nonuniform
from .pipeline import NonuniformEstimate, deblur_nonuniform, estimate_kernels_nonuniform

__all__ = ["EffOperator", "NonuniformEstimate", "PatchGrid", "deblur_nonuniform",
           "deconvolve_nonuniform", "eff_blur", "eff_blur_adjoint", "eff_kernel_adjoint",
           "estimate_kernels_nonuniform", "local_image_quotient", "local_kernel_quotient",
           "motion_basis", "patch_grid", "pose_grid", "predict_nonuniform", "project_kernels",
           "render_shake", "sample_camera_trajectory", "threshold_pose_weights",
           "true_local_kernels"]
