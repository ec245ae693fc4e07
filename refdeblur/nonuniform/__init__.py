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
"""

from .deconvolution import deconvolve_nonuniform
from .eff import EffOperator, PatchGrid, eff_blur, eff_blur_adjoint, eff_kernel_adjoint, patch_grid
from .motion_basis import motion_basis, pose_grid, project_kernels, threshold_pose_weights
from .render import render_shake, sample_camera_trajectory, true_local_kernels

__all__ = ["EffOperator", "PatchGrid", "deconvolve_nonuniform", "eff_blur", "eff_blur_adjoint",
           "eff_kernel_adjoint", "motion_basis", "patch_grid", "pose_grid", "project_kernels",
           "render_shake", "sample_camera_trajectory", "threshold_pose_weights",
           "true_local_kernels"]
