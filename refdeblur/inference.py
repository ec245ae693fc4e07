"""Blind deblurring of a photo with a trained network, step by step.

The steps, in the order :func:`deblur` runs them (``derivations/inference.md``
maps each one to its MATLAB equivalent):

1. **to float** -- integers to [0, 1] (MATLAB ``im2double``);
2. **grey** -- luminance with ``rgb2gray`` weights, alpha set aside;
3. **window** -- on large photos, the most textured square of at most
   ``max_window`` px (the kernel is the same everywhere, so a window
   suffices and bounds time and memory);
4. **pyramid** -- the image at every scale of the network (``imresize``);
5. **stages** -- per scale, 3 stages of features, kernel quotient (Eq. 4) and
   image quotient (Eq. 5);
6. **kernel** -- the last stage's kernel, centred, checked for plausibility;
   then (default) **refined** by a few alternations of latent image and
   kernel updates confined to its support, coarse to fine over the
   network's scales (:mod:`refdeblur.kernel_refinement`; not in the paper);
7. **non-blind deconvolution** -- every colour channel, with the hyper-
   Laplacian prior (default), Wiener, or the network's own image quotient;
8. **back to the input's type** -- clipped and converted to the input's
   value range.

Steps 4 and 5 are :meth:`refdeblur.network.Network.forward`.
"""

import warnings

import numpy as np

from .deconvolution import deconvolve
from .image_io import RGB_TO_GRAY_WEIGHTS
from .kernel_refinement import refine_coarse_to_fine, refine_kernel
from .layers.image_quotient import ImageQuotient
from .models import load_shipped_model

__all__ = ["DeblurWarning", "estimate_kernel", "deblur", "delta_kernel",
           "center_kernel", "kernel_border_mass", "network_kernels", "sharpen_kernel",
           "DECONVOLUTION_METHODS", "DEFAULT_MAX_WINDOW"]

#: Side of the largest square the kernel is estimated on (step 3).
DEFAULT_MAX_WINDOW = 1024

#: Non-blind deconvolutions :func:`deblur` offers (step 7).
DECONVOLUTION_METHODS = ("hyper_laplacian", "wiener", "quotient")

# Step 6 warns when more than this share of the kernel's mass lies in its
# outermost ring of pixels: the blur probably extends beyond the window.
_BORDER_MASS_WARNING = 0.03

# An image whose luminance varies less than this (standard deviation of the
# unsaturated pixels, on [0, 1]) has no edges to estimate a blur from.
_FLAT_STD = 2e-3


class DeblurWarning(UserWarning):
    """The estimate is unreliable (flat, saturated or tiny image, blur larger
    than the kernel window); the message says why and what to try."""


# -- step 1 ------------------------------------------------------------------
def _to_float(image):
    """Float copy of the image in [0, 1] and a function undoing the conversion."""
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError("the image is empty")
    if image.dtype == bool:
        raise ValueError("boolean images cannot be deblurred")
    if np.issubdtype(image.dtype, np.unsignedinteger):
        scale = float(np.iinfo(image.dtype).max)
        dtype = image.dtype

        def restore(result):
            return np.round(np.clip(result, 0.0, 1.0) * scale).astype(dtype)
        return image.astype(np.float64) / scale, restore
    if np.issubdtype(image.dtype, np.signedinteger):
        raise ValueError(f"signed integer images ({image.dtype}) are not "
                         f"supported; convert to float in [0, 1]")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"unsupported image data type {image.dtype}")
    if not np.all(np.isfinite(image)):
        raise ValueError("the image contains NaN or Inf values")
    low, high = float(image.min()), float(image.max())
    if low < -0.5 or high > 1.5:
        raise ValueError(f"float images must hold values in [0, 1] "
                         f"(found {low:.4g} to {high:.4g}); divide by the "
                         f"white level first")
    dtype = image.dtype if image.dtype in (np.float32, np.float64) else np.float64

    def restore(result):
        return np.clip(result, 0.0, 1.0).astype(dtype, copy=False)
    return image.astype(np.float64), restore


# -- step 2 ------------------------------------------------------------------
def _split_channels(image, channel_axis):
    """``(colour planes (C, H, W), alpha plane or None)`` of a float image."""
    if channel_axis is None:
        if image.ndim != 2:
            raise ValueError(f"expected a 2-D grey image, got shape "
                             f"{image.shape}; pass channel_axis for colour")
        return image[None], None
    if image.ndim != 3:
        raise ValueError(f"expected a 3-D colour image with channel_axis, "
                         f"got shape {image.shape}")
    planes = np.moveaxis(image, channel_axis, 0)
    n_channels = planes.shape[0]
    if n_channels in (2, 4):          # grey + alpha, RGBA
        return planes[:-1], planes[-1]
    if n_channels in (1, 3):
        return planes, None
    raise ValueError(f"expected 1 to 4 channels on axis {channel_axis}, got "
                     f"{n_channels}")


def _luminance(planes):
    """MATLAB ``rgb2gray`` of (C, H, W) colour planes (grey passes through)."""
    if planes.shape[0] == 1:
        return planes[0]
    return np.tensordot(np.asarray(RGB_TO_GRAY_WEIGHTS), planes, axes=1)


# -- step 3 ------------------------------------------------------------------
def _textured_window(gray, max_window):
    """Slices of the square window of side ``max_window`` with the most edges.

    Gradient energy of the unsaturated pixels is summed over a grid of
    candidate windows (steps of an eighth of the window); the best wins.
    """
    height, width = gray.shape
    if max_window is None or max(height, width) <= max_window:
        return slice(0, height), slice(0, width)
    side_h, side_w = min(height, max_window), min(width, max_window)
    gy = np.abs(np.diff(gray, axis=0, append=gray[-1:]))
    gx = np.abs(np.diff(gray, axis=1, append=gray[:, -1:]))
    usable = (gray > 0.02) & (gray < 0.98)
    energy = np.where(usable, gx + gy, 0.0)
    integral = np.zeros((height + 1, width + 1))
    integral[1:, 1:] = energy.cumsum(0).cumsum(1)
    step = max(1, max_window // 8)
    tops = sorted(set(range(0, height - side_h + 1, step)) | {height - side_h})
    lefts = sorted(set(range(0, width - side_w + 1, step)) | {width - side_w})
    best, best_at = -1.0, (0, 0)
    for top in tops:
        for left in lefts:
            total = (integral[top + side_h, left + side_w] - integral[top, left + side_w]
                     - integral[top + side_h, left] + integral[top, left])
            if total > best:
                best, best_at = total, (top, left)
    top, left = best_at
    return slice(top, top + side_h), slice(left, left + side_w)


# -- step 6 ------------------------------------------------------------------
def delta_kernel(size, dtype=np.float64):
    """The identity blur: a single 1 in the centre of a ``size`` x ``size`` grid."""
    kernel = np.zeros((size, size), dtype=dtype)
    kernel[size // 2, size // 2] = 1.0
    return kernel


def center_kernel(kernel):
    """Shift a kernel by whole pixels so its centre of mass is in the middle.

    A shifted kernel only shifts the deblurred image; centring keeps the
    result aligned with the input. Mass shifted out of the window is
    dropped and the kernel renormalised to sum 1.
    """
    kernel = np.asarray(kernel)
    total = kernel.sum()
    if not total > 0:
        return kernel
    m_rows, m_cols = kernel.shape
    rows, cols = np.indices(kernel.shape)
    shift_r = int(round(m_rows // 2 - float((rows * kernel).sum() / total)))
    shift_c = int(round(m_cols // 2 - float((cols * kernel).sum() / total)))
    if shift_r == 0 and shift_c == 0:
        return kernel
    shifted = np.zeros_like(kernel)
    src_r = slice(max(0, -shift_r), m_rows - max(0, shift_r))
    dst_r = slice(max(0, shift_r), m_rows - max(0, -shift_r))
    src_c = slice(max(0, -shift_c), m_cols - max(0, shift_c))
    dst_c = slice(max(0, shift_c), m_cols - max(0, -shift_c))
    shifted[dst_r, dst_c] = kernel[src_r, src_c]
    return shifted / shifted.sum()


#: Paper §6: the 33 px network's kernels are deconvolved with a Gaussian of
#: sigma 0.5 px "to counter the oversmoothing effect of the L2 norm".
SHARPENING_SIGMA = {33: 0.5}


def sharpen_kernel(kernel, sigma, *, regularisation=1e-3):
    """Deconvolve a kernel with a small Gaussian (paper §6, 33 px network).

    A Wiener quotient in the Fourier domain on a grid twice the kernel's
    size (so nothing wraps around), then negative values set to zero and
    the sum normalised to 1.
    """
    from scipy.ndimage import gaussian_filter

    kernel = np.asarray(kernel, dtype=np.float64)
    if sigma <= 0:
        return kernel
    size = kernel.shape[0]
    grid = 2 * size
    gaussian = gaussian_filter(delta_kernel(size), sigma, mode="constant")
    gaussian /= gaussian.sum()

    def transfer(small):
        padded = np.zeros((grid, grid))
        padded[:size, :size] = small
        return np.fft.rfft2(np.roll(padded, (-(size // 2), -(size // 2)), (0, 1)))

    g_hat = transfer(gaussian)
    quotient = transfer(kernel) * np.conj(g_hat) / (np.abs(g_hat) ** 2 + regularisation)
    sharp = np.roll(np.fft.irfft2(quotient, s=(grid, grid)),
                    (size // 2, size // 2), (0, 1))[:size, :size]
    sharp = np.maximum(sharp, 0.0)
    total = sharp.sum()
    return sharp / total if total > 0 else kernel


def network_kernels(output):
    """The last stage's kernel of every scale of a network's output (step 6).

    Each normalised to sum 1, sharpened where the paper does it (the 33 px
    scale, :data:`SHARPENING_SIGMA`) and centred (:func:`center_kernel`).

    Parameters
    ----------
    output : NetworkOutput
        What :meth:`refdeblur.network.Network.forward` returned for one
        (H, W) image.

    Returns
    -------
    list of ndarray or None
        float64 kernels, coarse to fine; ``None`` if any is not finite or
        has no mass.
    """
    kernels = []
    for stages in output.stage_kernels:
        kernel = np.asarray(stages[-1], dtype=np.float64)
        if kernel.ndim != 2 or not (np.all(np.isfinite(kernel)) and kernel.sum() > 0):
            return None
        size = kernel.shape[0]
        kernel = sharpen_kernel(kernel / kernel.sum(), SHARPENING_SIGMA.get(size, 0.0))
        kernels.append(center_kernel(kernel))
    return kernels


def kernel_border_mass(kernel, width=1):
    """Share of the kernel's mass in its outer ring of ``width`` pixels."""
    kernel = np.asarray(kernel, dtype=np.float64)
    total = kernel.sum()
    if not total > 0:
        return 0.0
    inner = kernel[width:-width, width:-width].sum()
    return float((total - inner) / total)


def _next_size_hint(kernel_size):
    larger = [size for size in (17, 25, 33) if size > kernel_size]
    if larger:
        return f"try kernel_size={larger[0]} (--kernel-size {larger[0]})"
    return "the blur may exceed the largest network (33 px)"


def _resolve_model(kernel_size, model):
    if model is None:
        return load_shipped_model(kernel_size)
    if model.kernel_size != kernel_size:
        raise ValueError(f"the model estimates {model.kernel_size} px kernels, "
                         f"but kernel_size={kernel_size} was asked for")
    return model


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
        (:func:`refdeblur.kernel_refinement.refine_coarse_to_fine`); a
        single-scale one at its one scale (:func:`refdeblur.
        kernel_refinement.refine_kernel`). A dict gives that function's
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
    kernel, _ = _estimate(image, kernel_size, channel_axis, model, max_window, refine)
    return kernel


def _estimate(image, kernel_size, channel_axis, model, max_window, refine=True):
    """Steps 1-6; also returns the float planes, alpha and restorer."""
    as_float, restore = _to_float(image)                                # 1
    planes, alpha = _split_channels(as_float, channel_axis)             # 2
    gray = _luminance(planes)
    height, width = gray.shape
    if min(height, width) < kernel_size:
        raise ValueError(f"the image ({height}x{width} px) is smaller than the "
                         f"{kernel_size}x{kernel_size} kernel")
    net = _resolve_model(kernel_size, model)
    context = (planes, alpha, restore)
    if min(height, width) < net.min_image_size():
        warnings.warn(f"the image ({height}x{width} px) is too small to "
                      f"estimate a {kernel_size} px blur (the network needs "
                      f"{net.min_image_size()} px per side); returning a delta "
                      f"kernel", DeblurWarning, stacklevel=3)
        return delta_kernel(kernel_size), context
    rows, cols = _textured_window(gray, max_window)                     # 3
    window = gray[rows, cols]
    unsaturated = window[(window > 0.02) & (window < 0.98)]
    if unsaturated.size < 0.05 * window.size or unsaturated.std() < _FLAT_STD:
        warnings.warn("the image is flat or saturated: there are no edges to "
                      "estimate a blur from; returning a delta kernel",
                      DeblurWarning, stacklevel=3)
        return delta_kernel(kernel_size), context
    options = dict(refine) if isinstance(refine, dict) else {}
    refining = (refine is not False and refine is not None
                and min(window.shape) >= 2 * kernel_size)
    scale_sizes = net.architecture.kernel_sizes
    coarse_to_fine = refining and options.pop("coarse_to_fine", True) and len(scale_sizes) > 1
    # Coarse to fine (6b) starts from the coarsest scale's kernel alone, so
    # the finer scales need not run.
    output = net.forward(window.astype(net.dtype),                      # 4, 5
                         n_scales=1 if coarse_to_fine else None)
    scale_kernels = network_kernels(output)                             # 6
    if scale_kernels is None:
        warnings.warn("the network gave no usable kernel for this image; "
                      "returning a delta kernel", DeblurWarning, stacklevel=3)
        return delta_kernel(kernel_size), context
    kernel = scale_kernels[-1]
    if coarse_to_fine:                                                  # 6b
        kernel = refine_coarse_to_fine(window.astype(np.float64), kernel, scale_sizes,
                                       **options)
    elif refining:
        kernel = refine_kernel(window.astype(np.float64), kernel, **options)
    if kernel_border_mass(kernel) > _BORDER_MASS_WARNING:
        warnings.warn(f"the estimated kernel touches the border of its "
                      f"{kernel_size}x{kernel_size} window, so the blur is "
                      f"probably larger: {_next_size_hint(kernel_size)}",
                      DeblurWarning, stacklevel=3)
    return kernel, context


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
    if kernel is None:
        kernel, (planes, alpha, restore) = _estimate(
            image, kernel_size, channel_axis, model, max_window, refine)
    else:
        as_float, restore = _to_float(image)
        planes, alpha = _split_channels(as_float, channel_axis)
        kernel = np.asarray(kernel, dtype=np.float64)
    if method == "quotient":                                            # 7
        net = _resolve_model(kernel.shape[0], model)
        sharp = _image_quotient(planes, kernel, net)
    else:
        sharp = deconvolve(planes.astype(np.float32), kernel.astype(np.float32),
                           method=method, noise_std=noise_std, channel_axis=0,
                           **options)
    sharp = sharp.astype(np.float64)
    if alpha is not None:
        sharp = np.concatenate([sharp, alpha[None]])   # alpha untouched
    if channel_axis is None:
        sharp = sharp[0]
    else:
        sharp = np.moveaxis(sharp, 0, channel_axis)
    return restore(sharp), kernel                                       # 8


def _image_quotient(planes, kernel, net):
    """Eq. 5 on every channel with the learned beta_x of the last stage."""
    last_scale = len(net.architecture.kernel_sizes)
    last_stage = net.architecture.inference_stages or net.architecture.n_stages
    log_beta = net.params[f"scale{last_scale}.stage{last_stage}"
                          f".image_quotient.log_beta"]
    layer = ImageQuotient(kernel.shape[0])
    params = {"log_beta": np.asarray(log_beta, dtype=np.float32)}
    out = np.empty(planes.shape, dtype=np.float32)
    for c, plane in enumerate(planes):
        latent, _ = layer.forward(kernel[None].astype(np.float32),
                                  plane[None].astype(np.float32), params)
        out[c] = latent[0]
    return out
