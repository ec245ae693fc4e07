"""Blind deblurring of a photo with a trained network, step by step.

The steps, in the order :func:`deblur` runs them, and the module that does
each (``derivations/inference.md`` maps each one to its MATLAB equivalent):

1. **to float** -- integers to [0, 1], MATLAB ``im2double``
   (:func:`~refdeblur.inference.preparation.to_unit_float`);
2. **grey** -- luminance with ``rgb2gray`` weights, alpha set aside
   (:mod:`~refdeblur.inference.preparation`);
3. **window** -- on large photos, the most textured square of at most
   ``max_window`` px: the kernel is the same everywhere, so a window
   suffices and bounds time and memory
   (:func:`~refdeblur.inference.preparation.textured_window`);
4. **pyramid** -- the image at every scale of the network (``imresize``);
5. **stages** -- per scale, 3 stages of features, kernel quotient (Eq. 4) and
   image quotient (Eq. 5); steps 4 and 5 are
   :func:`refdeblur.network_fast.predict`;
6. **kernel** -- the last stage's kernel, centred, checked for plausibility
   (:mod:`~refdeblur.inference.network_estimate`);
   6b. then (default) **refined** by a few alternations of latent image and
   kernel updates confined to its support, coarse to fine over the
   network's scales (:mod:`~refdeblur.inference.refinement`; not in the
   paper);
7. **non-blind deconvolution** -- every colour channel, with the hyper-
   Laplacian prior (default) or Wiener (:func:`refdeblur.deconvolution.
   deconvolve`), or the network's own image quotient
   (:func:`~refdeblur.inference.network_estimate.network_deconvolve`);
8. **back to the input's type** -- clipped and converted to the input's
   value range.
"""

import warnings

import numpy as np

from .. import network_fast
from .._engine.threads import one_blas_thread
from ..deconvolution import deconvolve
from ..kernels import delta_kernel, kernel_border_mass
from ..models import SHIPPED_KERNEL_SIZES
from .network_estimate import network_deconvolve, network_kernels, resolve_model
from .preparation import (luminance, merge_channels, split_channels, textured_window,
                          to_unit_float, unsaturated)
from .refinement import refine_coarse_to_fine, refine_kernel, refinement_mode

__all__ = ["DeblurWarning", "estimate_kernel", "deblur", "DECONVOLUTION_METHODS",
           "DEFAULT_MAX_WINDOW", "BORDER_MASS_WARNING", "FLAT_STD"]

#: Side of the largest square the kernel is estimated on (step 3).
DEFAULT_MAX_WINDOW = 1024

#: Non-blind deconvolutions :func:`deblur` offers (step 7).
DECONVOLUTION_METHODS = ("hyper_laplacian", "wiener", "quotient")

#: Step 6 warns when more than this share of the kernel's mass lies in its
#: outermost ring of pixels: the blur probably extends beyond the window.
BORDER_MASS_WARNING = 0.03

#: An image whose luminance varies less than this (standard deviation of the
#: unsaturated pixels, on [0, 1]) has no edges to estimate a blur from.
FLAT_STD = 2e-3


class DeblurWarning(UserWarning):
    """The estimate is unreliable (flat, saturated or tiny image, blur larger
    than the kernel window); the message says why and what to try."""


@one_blas_thread()
def estimate_kernel(image, kernel_size=25, *, channel_axis=None, model=None,
                    max_window=DEFAULT_MAX_WINDOW, refine=True):
    """Estimate the camera-shake blur kernel of a photo (steps 1-6).

    Parameters
    ----------
    image : ndarray
        Blurry photo: ``(H, W)`` grey, or colour (RGB, with or without
        alpha) with the channels on ``channel_axis``. uint8, uint16 or float
        in [0, 1].
    kernel_size : {17, 25, 33}, optional
        Side of the kernel window; the network of that size is used.
        Choose one larger than the blur.
    channel_axis : int, optional
        Axis of the colour channels; ``None`` for a grey image.
    model : Network, optional
        A network to use instead of the shipped one (its kernel size must
        equal ``kernel_size``).
    max_window : int or None, optional
        Estimate the kernel on the most textured square window of at most
        this side (default 1024 px); ``None`` uses the whole image.
    refine : bool or dict, optional
        Refine the network's kernel by alternating minimisation within
        its support (default True; not part of the paper's method). The
        multi-scale networks (25, 33 px) are refined coarse to fine, from
        the kernel of their coarsest scale
        (:func:`refdeblur.inference.refinement.refine_coarse_to_fine`); a
        single-scale one at its one scale (:func:`refdeblur.inference.
        refinement.refine_kernel`). A dict gives that function's
        keyword arguments, plus ``coarse_to_fine=False`` to refine only
        the finest scale's kernel; False returns the network's kernel as
        it is.

    Returns
    -------
    kernel : ndarray of shape (kernel_size, kernel_size)
        float64, non-negative, sums to 1, centre of mass in the middle.
        Convolution convention: ``blurry = scipy.signal.convolve2d(sharp,
        kernel)`` (up to noise and borders).

    Warns
    -----
    DeblurWarning
        Flat or saturated images and images too small for the network give a
        delta kernel (no deblurring); a kernel whose mass touches its window's
        border suggests a larger ``kernel_size``.

    Raises
    ------
    ValueError
        Empty, NaN/Inf, wrongly shaped images, images smaller than the
        kernel, or an unsupported data type.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> from refdeblur import estimate_kernel
    >>> k = estimate_kernel(data.camera()[::4, ::4], 17)
    >>> k.shape, bool(np.isclose(k.sum(), 1.0))
    ((17, 17), True)
    """
    as_float, _ = to_unit_float(image)                                  # 1
    planes, _ = split_channels(as_float, channel_axis)                  # 2
    return _estimate(planes, kernel_size, model, max_window, refine)


def _estimate(planes, kernel_size, model, max_window, refine):
    """Steps 2 to 6 on the colour planes of a float image; warns as documented."""
    gray = luminance(planes)                                            # 2
    height, width = gray.shape
    if min(height, width) < kernel_size:
        raise ValueError(f"the image ({height}x{width} px) is smaller than the "
                         f"{kernel_size}x{kernel_size} kernel")
    net = resolve_model(kernel_size, model)
    if min(height, width) < net.min_image_size():
        warnings.warn(f"the image ({height}x{width} px) is too small to "
                      f"estimate a {kernel_size} px blur (the network needs "
                      f"{net.min_image_size()} px per side); returning a delta "
                      f"kernel", DeblurWarning, stacklevel=3)
        return delta_kernel(kernel_size)
    window = gray[textured_window(gray, max_window)]                    # 3
    if _is_flat(window):
        warnings.warn("the image is flat or saturated: there are no edges to "
                      "estimate a blur from; returning a delta kernel",
                      DeblurWarning, stacklevel=3)
        return delta_kernel(kernel_size)
    mode = (refinement_mode(refine, net) if min(window.shape) >= 2 * kernel_size
            else "none")
    # Coarse to fine (6b) starts from the coarsest scale's kernel alone, so
    # the finer scales need not run.
    output = network_fast.predict(                                      # 4, 5
        net, window.astype(net.dtype),
        n_scales=1 if mode == "coarse_to_fine" else None)
    scale_kernels = network_kernels(output)                             # 6
    if scale_kernels is None:
        warnings.warn("the network gave no usable kernel for this image; "
                      "returning a delta kernel", DeblurWarning, stacklevel=3)
        return delta_kernel(kernel_size)
    kernel = _refine(window, scale_kernels[-1], mode, net, refine)      # 6b
    if kernel_border_mass(kernel) > BORDER_MASS_WARNING:
        warnings.warn(f"the estimated kernel touches the border of its "
                      f"{kernel_size}x{kernel_size} window, so the blur is "
                      f"probably larger: {_next_size_hint(kernel_size)}",
                      DeblurWarning, stacklevel=3)
    return kernel


def _is_flat(window):
    """Too few unsaturated pixels, or too little variation among them."""
    usable = window[unsaturated(window)]
    return usable.size < 0.05 * window.size or usable.std() < FLAT_STD


def _refine(window, kernel, mode, net, refine):
    """Step 6b as :func:`refinement_mode` decided; the ``refine`` dict's options."""
    if mode == "none":
        return kernel
    options = {key: value for key, value in refine.items()
               if key != "coarse_to_fine"} if isinstance(refine, dict) else {}
    window = window.astype(np.float64)
    if mode == "coarse_to_fine":
        return refine_coarse_to_fine(window, kernel, net.architecture.kernel_sizes,
                                     **options)
    return refine_kernel(window, kernel, **options)


def _next_size_hint(kernel_size):
    larger = [size for size in SHIPPED_KERNEL_SIZES if size > kernel_size]
    if larger:
        return f"try kernel_size={larger[0]} (--kernel-size {larger[0]})"
    return f"the blur may exceed the largest network ({SHIPPED_KERNEL_SIZES[-1]} px)"


@one_blas_thread()
def deblur(image, kernel_size=25, *, channel_axis=None, model=None,
           method="hyper_laplacian", noise_std=None,
           max_window=DEFAULT_MAX_WINDOW, refine=True, kernel=None, **options):
    """Blind deblurring: estimate the kernel, then deconvolve (steps 1-8).

    Parameters
    ----------
    image : ndarray
        Blurry photo, as for :func:`estimate_kernel`.
    kernel_size : {17, 25, 33}, optional
        Side of the kernel window.
    channel_axis : int, optional
        Axis of the colour channels; ``None`` for a grey image. Every colour
        channel is deconvolved with the one kernel estimated on the
        luminance; an alpha channel is returned unchanged.
    model : Network, optional
        A network to use instead of the shipped one.
    method : {'hyper_laplacian', 'wiener', 'quotient'}, optional
        Non-blind deconvolution: the hyper-Laplacian prior solved by
        half-quadratic splitting (default, Krishnan & Fergus 2009), a
        Wiener filter, or the network's own image quotient (Eq. 5 with the
        learned beta_x of its last stage; fastest, softest).
    noise_std : float, optional
        Noise standard deviation on [0, 1]; estimated from the image if
        omitted (not used by ``'quotient'``).
    max_window : int or None, optional
        See :func:`estimate_kernel`.
    refine : bool or dict, optional
        See :func:`estimate_kernel`.
    kernel : ndarray, optional
        Skip the estimation and deconvolve with this kernel.
    **options
        Passed to :func:`refdeblur.deconvolution.deconvolve`.

    Returns
    -------
    sharp : ndarray
        Same shape as ``image``; same dtype for uint8/uint16 and float32/
        float64 input, values clipped to the input's range.
    kernel : ndarray of shape (kernel_size, kernel_size)
        The kernel used (see :func:`estimate_kernel`).

    Examples
    --------
    >>> from skimage import data
    >>> from refdeblur import deblur
    >>> photo = data.astronaut()[::4, ::4]          # 128 x 128 x 3, uint8
    >>> sharp, k = deblur(photo, 17, channel_axis=-1)
    >>> sharp.shape, sharp.dtype, k.shape
    ((128, 128, 3), dtype('uint8'), (17, 17))
    """
    if method not in DECONVOLUTION_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of "
                         f"{', '.join(DECONVOLUTION_METHODS)}")
    as_float, restore = to_unit_float(image)                            # 1
    planes, alpha = split_channels(as_float, channel_axis)              # 2
    if kernel is None:
        kernel = _estimate(planes, kernel_size, model, max_window, refine)  # 3-6
    else:
        kernel = np.asarray(kernel, dtype=np.float64)
    if method == "quotient":                                            # 7
        sharp = network_deconvolve(planes, kernel, resolve_model(kernel.shape[0], model))
    else:
        sharp = deconvolve(planes.astype(np.float32), kernel.astype(np.float32),
                           method=method, noise_std=noise_std, channel_axis=0,
                           **options)
    sharp = merge_channels(sharp.astype(np.float64), alpha, channel_axis)  # alpha untouched
    return restore(sharp), kernel                                       # 8
