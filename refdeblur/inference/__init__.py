"""Blind deblurring with a trained network: estimate, refine, deconvolve.

The modules, in the order an image passes through them:

* :mod:`~refdeblur.inference.preparation` -- float values, colour planes,
  luminance and the most textured window (steps 1 to 3);
* :mod:`~refdeblur.inference.network_estimate` -- the network's kernels
  (steps 4 to 6) and its own image quotient;
* :mod:`~refdeblur.inference.refinement` -- the kernel refined by
  alternating minimisation (step 6b);
* :mod:`~refdeblur.inference.pipeline` -- :func:`estimate_kernel`,
  :func:`deblur` and :func:`choose_kernel_size` (``kernel_size="auto"``),
  which call the three above and
  :func:`refdeblur.deconvolution.deconvolve` (steps 7 and 8);
* :mod:`~refdeblur.inference.files` -- deblurring image files: output
  names, the kernel picture, the JSON report (what ``refdeblur deblur``
  runs).
"""

from .network_estimate import network_kernels
from .pipeline import (CONTENTS, DECONVOLUTION_METHODS, DEFAULT_MAX_WINDOW, HIGH_NOISE_STD,
                       DeblurWarning, KernelSizeChoice, PhotoCondition, choose_kernel_size,
                       choose_noise_condition, deblur, estimate_kernel,
                       estimate_kernel_and_size)
from .refinement import refine_coarse_to_fine, refine_kernel

__all__ = ["CONTENTS", "DECONVOLUTION_METHODS", "DEFAULT_MAX_WINDOW", "HIGH_NOISE_STD", "DeblurWarning",
           "KernelSizeChoice", "PhotoCondition", "choose_kernel_size", "choose_noise_condition",
           "deblur", "estimate_kernel", "estimate_kernel_and_size",
           "network_kernels", "refine_kernel", "refine_coarse_to_fine"]
