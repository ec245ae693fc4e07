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
   (:mod:`~refdeblur.inference.network_estimate`); with
   ``kernel_size="auto"`` (the default) steps 4 to 6b run first with the
   33 px network, whose estimate's support chooses the network
   (:func:`choose_kernel_size`);
   6b. then (default) **refined** by a few alternations of latent image and
   kernel updates confined to its support, coarse to fine over the
   network's scales (:mod:`~refdeblur.inference.refinement`; not in the
   paper); a photo whose estimated noise is high (``noise="auto"``,
   :func:`choose_noise_condition`) gets the network fine-tuned for heavy
   noise where one is shipped, and no refinement;
7. **non-blind deconvolution** -- every colour channel, with the hyper-
   Laplacian prior (default) or Wiener (:func:`refdeblur.deconvolution.
   deconvolve`), or the network's own image quotient
   (:func:`~refdeblur.inference.network_estimate.network_deconvolve`);
8. **back to the input's type** -- clipped and converted to the input's
   value range.
"""

import numbers
import warnings
from typing import NamedTuple

import numpy as np

from .. import network_fast
from .._engine.threads import one_blas_thread
from ..deconvolution import deconvolve, estimate_noise_std
from ..kernels import (SUPPORT_THRESHOLD, blur_exceeds_window, delta_kernel,
                       kernel_support_radius)
from ..models import SHIPPED_KERNEL_SIZES, has_shipped_model, load_shipped_model
from .network_estimate import network_deconvolve, network_kernels, resolve_model
from .preparation import (luminance, merge_channels, split_channels, textured_window,
                          to_unit_float, unsaturated)
from .refinement import refine_coarse_to_fine, refine_kernel, refinement_mode

__all__ = ["DeblurWarning", "KernelSizeChoice", "PhotoCondition", "choose_kernel_size",
           "choose_noise_condition", "estimate_kernel_and_size", "estimate_kernel", "deblur",
           "DECONVOLUTION_METHODS", "DEFAULT_MAX_WINDOW", "SIZE_MARGIN", "FLAT_STD",
           "HIGH_NOISE_STD", "NOISE_CONDITIONS", "CONTENTS"]

#: Side of the largest square the kernel is estimated on (step 3).
DEFAULT_MAX_WINDOW = 1024

#: Non-blind deconvolutions :func:`deblur` offers (step 7).
DECONVOLUTION_METHODS = ("hyper_laplacian", "wiener", "quotient")

#: ``kernel_size="auto"`` picks the smallest network whose window holds the
#: support of the largest network's estimate with this many pixels to
#: spare on every side (:func:`choose_kernel_size`).
SIZE_MARGIN = 2

#: An image whose luminance varies less than this (standard deviation of the
#: unsaturated pixels, on [0, 1]) has no edges to estimate a blur from.
FLAT_STD = 2e-3

#: The ``noise`` arguments: ``'auto'`` decides from the photo, ``'low'`` and
#: ``'high'`` are the two conditions.
NOISE_CONDITIONS = ("auto", "low", "high")

#: The ``content`` arguments: ordinary photos, or documents (printed or
#: written text, whiteboards, screens).
CONTENTS = ("natural", "text")

#: ``noise="auto"`` takes a photo as noisy when the noise estimated on its
#: luminance (:func:`refdeblur.deconvolution.estimate_noise_std`) is at least
#: this, on [0, 1]. Between the levels measured by
#: ``benchmarks/bench_specific.py``: at 0.01 the refined generic estimate is
#: the best, at 0.03 and 0.05 the high-noise network's own kernel
#: (derivations/inference.md, "Noisy photos").
HIGH_NOISE_STD = 0.02


class DeblurWarning(UserWarning):
    """The estimate is unreliable (flat, saturated or tiny image, blur larger
    than the kernel window); the message says why and what to try."""


class KernelSizeChoice(NamedTuple):
    """Which kernel window a kernel was estimated with, and why.

    :func:`choose_kernel_size` and :func:`estimate_kernel_and_size` return
    it; :meth:`as_dict` is what ``refdeblur deblur`` writes to its report.
    """

    #: Side of the kernel window (the network's kernel size).
    kernel_size: int
    #: ``'auto'`` (chosen from the image), ``'fixed'`` (given by the
    #: caller) or ``'model'`` (the size of the model given).
    mode: str
    #: One sentence saying why.
    reason: str
    #: Side of the centred square holding the measured estimate's support
    #: (values of at least :data:`refdeblur.kernels.SUPPORT_THRESHOLD` of
    #: its peak); None where nothing was measured.
    support_px: int = None
    #: Kernel size of the network whose estimate was measured; None where
    #: none was.
    probe_size: int = None
    #: The photo's condition the estimate was made for, with the network
    #: used (:class:`PhotoCondition`); None from :func:`choose_kernel_size`,
    #: which does not decide it.
    condition: "PhotoCondition" = None

    def as_dict(self):
        """The choice as JSON-ready values, without ``kernel_size`` and ``condition``."""
        return {"mode": self.mode, "reason": self.reason,
                "support_px": self.support_px, "probe_size": self.probe_size}


class PhotoCondition(NamedTuple):
    """The photo's noise and content a kernel was estimated for, and what they changed.

    Part of :class:`KernelSizeChoice` (``choice.condition``) from
    :func:`estimate_kernel_and_size`; :meth:`as_dict` is what ``refdeblur
    deblur`` writes to its report.
    """

    #: ``'low'`` or ``'high'``.
    noise: str
    #: ``'auto'`` (decided from the photo) or ``'given'``.
    noise_mode: str
    #: Noise standard deviation estimated on the luminance, on [0, 1]; None
    #: where the noise condition was given.
    estimated_std: float
    #: ``'natural'`` or ``'text'``, as given.
    content: str
    #: The network used: a shipped file's name (``'k17_high_noise.npz'``)
    #: or ``'model given'``.
    network: str
    #: Whether the network's kernel was refined (step 6b).
    refined: bool
    #: One sentence saying why.
    reason: str

    def as_dict(self):
        """The condition as JSON-ready values."""
        return {"noise": self.noise, "noise_mode": self.noise_mode,
                "estimated_std": (None if self.estimated_std is None
                                  else round(self.estimated_std, 5)),
                "content": self.content, "network": self.network,
                "refined": self.refined, "reason": self.reason}


def _warn(message):
    # Attributed to the caller of the public function (through its
    # decorator and the private steps).
    warnings.warn(message, DeblurWarning, stacklevel=5)


def check_kernel_size_argument(kernel_size):
    """``'auto'`` or an int; anything else is a ValueError naming the choices."""
    if isinstance(kernel_size, str) and kernel_size == "auto":
        return kernel_size
    if isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool):
        return int(kernel_size)
    sizes = ", ".join(map(str, SHIPPED_KERNEL_SIZES))
    raise ValueError(f"kernel_size must be 'auto' or an int ({sizes} for the "
                     f"shipped networks), got {kernel_size!r}")


#: The refinement of the 33 px estimate that :func:`choose_kernel_size`
#: measures: the sparse latent image in all five alternations, the
#: schedule whose kernels' support the size rule (``SUPPORT_THRESHOLD``,
#: ``SIZE_MARGIN``) was calibrated on. With the default schedule's quadratic
#: first alternations the choices change and Levin et al.'s set drops from
#: 26 to 24 cases at ER <= 3; with three sparse alternations a 3 px streak
#: measures 19 px (derivations/kernel_refinement.md, §3).
SIZE_PROBE_REFINEMENT = {"n_iter": 5, "n_sparse": 5}


def check_noise_argument(noise):
    """One of :data:`NOISE_CONDITIONS`; anything else is a ValueError naming them."""
    if isinstance(noise, str) and noise in NOISE_CONDITIONS:
        return noise
    raise ValueError(f"noise must be one of {', '.join(map(repr, NOISE_CONDITIONS))}, "
                     f"got {noise!r}")


def check_content_argument(content):
    """One of :data:`CONTENTS`; anything else is a ValueError naming them."""
    if isinstance(content, str) and content in CONTENTS:
        return content
    raise ValueError(f"content must be one of {', '.join(map(repr, CONTENTS))}, "
                     f"got {content!r}")


def choose_noise_condition(image, *, channel_axis=None):
    """Whether a photo counts as noisy (``noise="auto"``): ``'low'`` or ``'high'``.

    The noise standard deviation is estimated on the luminance by
    :func:`refdeblur.deconvolution.estimate_noise_std`, as the smaller of
    its two estimators (Immerkaer's and the Haar MAD): blur makes both
    accurate (0.0101 and 0.0103 on average for noise of 0.01), while
    image detail left by a small blur or none inflates each in its own
    way. At :data:`HIGH_NOISE_STD` or more the photo is ``'high'``.

    Parameters
    ----------
    image : ndarray
        Blurry photo, as for :func:`estimate_kernel`.
    channel_axis : int, optional
        Axis of the colour channels; ``None`` for a grey image.

    Returns
    -------
    condition : {'low', 'high'}
    estimated_std : float

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> from refdeblur.inference import choose_noise_condition
    >>> photo = data.camera()[::4, ::4] / 255.0
    >>> choose_noise_condition(photo)[0]
    'low'
    >>> noisy = photo + 0.05 * np.random.default_rng(0).standard_normal(photo.shape)
    >>> choose_noise_condition(noisy)[0]
    'high'
    """
    as_float, _ = to_unit_float(image)
    planes, _ = split_channels(as_float, channel_axis)
    return _noise_condition(luminance(planes))


def _noise_condition(gray):
    # Both estimators read image detail as noise, Immerkaer's on sharp
    # edges (0.033 on the sharp camera image at 128 px), the Haar MAD on
    # fine texture; under noise both are within a few per cent of it, so
    # the smaller is the safer reading.
    estimated = min(float(estimate_noise_std(gray)),
                    float(estimate_noise_std(gray, estimator="haar_mad")))
    return ("high" if estimated >= HIGH_NOISE_STD else "low"), estimated


def _network_plan(gray, noise, content, kernel_size, model, refine):
    """The photo's condition, the network for it and the refinement.

    Returns ``(PhotoCondition, net, refine)``. With no ``model``, the
    network fine-tuned for the photo's condition is used where one is
    shipped for ``kernel_size``: for ``content='text'`` the document
    network, else for high noise the high-noise network. Under high noise
    ``refine=True`` does not refine: at noise 0.02 to 0.05 the refinement
    made every network's estimate worse (``benchmarks/bench_specific.py``).
    A ``refine`` dict refines whatever the noise.
    """
    if noise == "auto":
        level, estimated = _noise_condition(gray)
        why = (f"noise estimated at {estimated:.4f} (on [0, 1]), "
               f"{'at least' if level == 'high' else 'below'} {HIGH_NOISE_STD}")
    else:
        level, estimated, why = noise, None, f"noise={noise!r} given"
    wanted = ("text" if content == "text" else "high_noise" if level == "high"
              else None)
    if model is not None:
        net, network = resolve_model(kernel_size, model), "model given"
    elif wanted is not None and has_shipped_model(kernel_size, wanted):
        net = load_shipped_model(kernel_size, condition=wanted)
        network = f"k{kernel_size}_{wanted}.npz"
        if wanted == "text":
            why += "; content='text': the network fine-tuned on documents"
    else:
        net, network = resolve_model(kernel_size), f"k{kernel_size}.npz"
        if wanted is not None:
            kind = "document" if wanted == "text" else "high-noise"
            why += f"; no {kind} network is shipped for {kernel_size} px"
    if level == "high" and refine is True:
        refine = False
        why += "; not refined, as the refinement measured worse under heavy noise"
    refined = refinement_mode(refine, net) != "none"
    return PhotoCondition(level, "auto" if noise == "auto" else "given", estimated,
                          content, network, refined, why), net, refine


@one_blas_thread()
def choose_kernel_size(image, *, channel_axis=None, max_window=DEFAULT_MAX_WINDOW,
                       refine=True):
    """Choose the shipped network for a photo from its blur (``kernel_size="auto"``).

    The kernel is estimated with the largest shipped network the image
    allows (33 px), refined (step 6b, with the sparse latent image in
    all five alternations: :data:`SIZE_PROBE_REFINEMENT`) whatever ``refine``
    says, because the refined estimate is the one whose support follows
    the blur; the
    radius ``r`` of its support, ignoring values below
    :data:`refdeblur.kernels.SUPPORT_THRESHOLD` (20 %) of its peak
    (:func:`refdeblur.kernels.kernel_support_radius`), then gives the
    smallest network whose window holds ``2 (r + SIZE_MARGIN) + 1`` px; the
    largest if none does. On Levin et al.'s 32 real blurs this choice
    brings as many cases to error ratio <= 3 as choosing each case's
    network from its true kernel size (26); on sampled camera shake it
    never chose a window smaller than the true blur, though often a larger
    one than needed (``python benchmarks/bench_kernel_size.py
    --all-sizes``). :func:`estimate_kernel` does this
    for ``kernel_size="auto"``, and when 33 px is chosen reuses the 33 px
    network's kernel, refined again with the requested schedule (so that
    the result equals ``kernel_size=33``); this function gives the choice
    alone.

    Parameters
    ----------
    image : ndarray
        Blurry photo, as for :func:`estimate_kernel`.
    channel_axis : int, optional
        Axis of the colour channels; ``None`` for a grey image.
    max_window : int or None, optional
        See :func:`estimate_kernel`.
    refine : bool or dict, optional
        See :func:`estimate_kernel`; a dict's options refine the measured
        estimate too.

    Returns
    -------
    KernelSizeChoice
        The size, ``mode='auto'``, the reason, the measured support and the
        size of the network measured. An image too small for more than one
        network gets the largest that fits (the smallest shipped if none
        does), a flat one the smallest, each without a measurement.

    Warns
    -----
    DeblurWarning
        For a flat or saturated image, or when the network gives no kernel.

    Examples
    --------
    >>> from skimage import data
    >>> from refdeblur import choose_kernel_size
    >>> choice = choose_kernel_size(data.camera()[::2, ::2])
    >>> choice.kernel_size in (17, 25, 33), choice.mode
    (True, 'auto')
    """
    as_float, _ = to_unit_float(image)
    planes, _ = split_channels(as_float, channel_axis)
    choice, _, _ = _choose(luminance(planes), max_window, refine)
    return choice


def _choose(gray, max_window, refine):
    """The auto choice, the estimation window and the measured estimate.

    The window is None where the image fits at most one network, the
    estimate None where none could be measured (warned).
    """
    height, width = gray.shape
    usable = [size for size in SHIPPED_KERNEL_SIZES
              if min(height, width) >= load_shipped_model(size).min_image_size()]
    if len(usable) < 2:
        size = usable[-1] if usable else SHIPPED_KERNEL_SIZES[0]
        reason = (f"the image ({height}x{width} px) is too small for a larger "
                  f"network than {size} px")
        return KernelSizeChoice(size, "auto", reason), None, None
    window = gray[textured_window(gray, max_window)]                    # 3
    if _is_flat(window):
        _warn_flat()
        return (KernelSizeChoice(usable[0], "auto", "the image is flat or saturated: "
                                 "no blur to measure"), window, None)
    probe_size = usable[-1]
    given = refine if isinstance(refine, dict) else {}
    probe_options = {**SIZE_PROBE_REFINEMENT, **given}
    probe_net = load_shipped_model(probe_size)
    mode, start = _network_kernel(window, probe_net, probe_options)
    probe = (None if start is None
             else _Probe(mode, start, _refine(window, start, mode, probe_net, probe_options)))
    if probe is None:
        _warn_no_kernel()
        return (KernelSizeChoice(usable[0], "auto", f"the {probe_size} px network gave "
                                 f"no usable kernel"), window, None)
    support = 2 * kernel_support_radius(probe.measured) + 1
    needed = support + 2 * SIZE_MARGIN
    holding = [size for size in usable if size >= needed]
    measured = (f"the {probe_size} px estimate's support (values >= "
                f"{SUPPORT_THRESHOLD:.0%} of its peak) spans {support} px")
    if holding:
        size = holding[0]
        reason = (f"{measured}; {size} px is the smallest window that holds it "
                  f"with {SIZE_MARGIN} px to spare")
    else:
        size = probe_size
        reason = (f"{measured}; no window holds it with {SIZE_MARGIN} px to "
                  f"spare, so the largest, {size} px")
    return KernelSizeChoice(size, "auto", reason, support, probe_size), window, probe


@one_blas_thread()
def estimate_kernel_and_size(image, kernel_size="auto", *, channel_axis=None, model=None,
                             max_window=DEFAULT_MAX_WINDOW, refine=True, noise="auto",
                             content="natural"):
    """:func:`estimate_kernel`, and which kernel size it used and why.

    Parameters
    ----------
    image, kernel_size, channel_axis, model, max_window, refine, noise, content
        As for :func:`estimate_kernel`.

    Returns
    -------
    kernel : ndarray of shape (m, m)
        What :func:`estimate_kernel` returns.
    choice : KernelSizeChoice
        ``m``, and how it was chosen: ``'auto'`` (:func:`choose_kernel_size`),
        ``'fixed'`` (``kernel_size`` given) or ``'model'`` (``model``'s
        size, for ``kernel_size="auto"`` with a model); ``choice.condition``
        (:class:`PhotoCondition`): the noise and content it was estimated
        for, the network used and whether its kernel was refined.

    Examples
    --------
    >>> from skimage import data
    >>> from refdeblur.inference import estimate_kernel_and_size
    >>> kernel, choice = estimate_kernel_and_size(data.camera()[::4, ::4], 17)
    >>> kernel.shape, choice.mode
    ((17, 17), 'fixed')
    """
    as_float, _ = to_unit_float(image)                                  # 1
    planes, _ = split_channels(as_float, channel_axis)                  # 2
    return _estimate_and_size(planes, check_kernel_size_argument(kernel_size), model,
                              max_window, refine, check_noise_argument(noise),
                              check_content_argument(content))


@one_blas_thread()
def estimate_kernel(image, kernel_size="auto", *, channel_axis=None, model=None,
                    max_window=DEFAULT_MAX_WINDOW, refine=True, noise="auto",
                    content="natural"):
    """Estimate the camera-shake blur kernel of a photo (steps 1-6).

    Parameters
    ----------
    image : ndarray
        Blurry photo: ``(H, W)`` grey, or colour (RGB, with or without
        alpha) with the channels on ``channel_axis``. uint8, uint16 or float
        in [0, 1].
    kernel_size : {'auto', 17, 25, 33}, optional
        Side of the kernel window; the network of that size is used. Choose
        one larger than the blur, or ``'auto'`` (default): the network is
        chosen from the support of the 33 px network's estimate
        (:func:`choose_kernel_size`; with ``model``, the model's size).
        :func:`estimate_kernel_and_size` also says which size was used
        and why.
    channel_axis : int, optional
        Axis of the colour channels; ``None`` for a grey image.
    model : Network, optional
        A network to use instead of the shipped one (its kernel size must
        equal ``kernel_size`` unless that is ``'auto'``).
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
        the finest scale's kernel, and refines whatever ``noise`` says;
        True refines except under high noise, where the refinement
        measured worse than the network's own kernel; False returns the
        network's kernel as it is.
    noise : {'auto', 'low', 'high'}, optional
        The photo's noise condition. ``'high'``: the network fine-tuned
        for heavy noise (where one is shipped for the kernel size and no
        ``model`` is given: 17 and 25 px) and, with ``refine=True``, no
        refinement. ``'auto'`` (default): ``'high'`` when the noise
        estimated on the luminance is at least :data:`HIGH_NOISE_STD`
        (0.02), else ``'low'`` (:func:`choose_noise_condition`).
        :func:`estimate_kernel_and_size` says which was used and why.
    content : {'natural', 'text'}, optional
        What the photo shows. ``'text'`` (documents, whiteboards, screens):
        the network fine-tuned on synthetic documents, where one is shipped
        for the kernel size and no ``model`` is given; ``'natural'``
        (default): the networks for ordinary photos.

    Returns
    -------
    kernel : ndarray of shape (m, m)
        ``m`` the kernel size used; float64, non-negative, sums to 1,
        centre of mass in the middle. Convolution convention: ``blurry =
        scipy.signal.convolve2d(sharp, kernel)`` (up to noise and borders).

    Warns
    -----
    DeblurWarning
        Flat or saturated images and images too small for the network give a
        delta kernel (no deblurring); a kernel reaching the border of its
        window (:func:`refdeblur.kernels.blur_exceeds_window`) suggests a
        larger ``kernel_size``.

    Raises
    ------
    ValueError
        Empty, NaN/Inf, wrongly shaped images, images smaller than the
        kernel, an unsupported data type, or a ``kernel_size`` that is
        neither ``'auto'`` nor an int.

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
    kernel, _ = _estimate_and_size(planes, check_kernel_size_argument(kernel_size), model,
                                   max_window, refine, check_noise_argument(noise),
                                   check_content_argument(content))
    return kernel


def _estimate_and_size(planes, kernel_size, model, max_window, refine, noise="auto",
                       content="natural"):
    """Steps 2 to 6 for a checked ``kernel_size``: the kernel and the choice."""
    gray = luminance(planes)                                            # 2
    if kernel_size != "auto" or model is not None:
        if kernel_size == "auto":
            size, mode, reason = model.kernel_size, "model", "the model's kernel size"
        else:
            size, mode, reason = kernel_size, "fixed", "kernel_size given"
        _check_fits(gray, size)
        condition, net, refine = _network_plan(gray, noise, content, size, model, refine)
        return (_estimate(gray, size, net, max_window, refine),
                KernelSizeChoice(size, mode, reason, condition=condition))
    choice, window, probe = _choose(gray, max_window, refine)
    size = choice.kernel_size
    _check_fits(gray, size)
    condition, net, refine = _network_plan(gray, noise, content, size, None, refine)
    choice = choice._replace(condition=condition)
    if window is None:
        return _estimate(gray, size, net, max_window, refine), choice
    if choice.probe_size is None:   # flat image, or no kernel: warned
        return delta_kernel(size), choice
    if (size == choice.probe_size and net is load_shipped_model(size)
            and probe.mode == _network_kernel_mode(window, net, refine)):
        # the probe's network kernel is the one asked for; only the
        # refinement's schedule differs (SIZE_PROBE_REFINEMENT)
        kernel = _refine(window, probe.network_kernel, probe.mode, net, refine)
    else:
        kernel = _network_estimate(window, net, refine)
        if kernel is None:
            _warn_no_kernel()
            return delta_kernel(size), choice
    if size == choice.probe_size:
        _warn_if_truncated(kernel)
    # else the measured support of the largest network's estimate fits the
    # chosen window with SIZE_MARGIN px to spare: that measurement, not the
    # border of the smaller window's estimate, says whether the blur fits
    # (on sampled camera shake it never chose a window smaller than the blur,
    # while the border rule fires on a quarter of the blurs that fit 17 px).
    return kernel, choice


def _check_fits(gray, kernel_size):
    height, width = gray.shape
    if min(height, width) < kernel_size:
        raise ValueError(f"the image ({height}x{width} px) is smaller than the "
                         f"{kernel_size}x{kernel_size} kernel")


def _estimate(gray, kernel_size, net, max_window, refine):
    """Steps 3 to 6 on the luminance with this network; warns as documented."""
    _check_fits(gray, kernel_size)
    height, width = gray.shape
    if min(height, width) < net.min_image_size():
        _warn(f"the image ({height}x{width} px) is too small to estimate a "
              f"{kernel_size} px blur (the network needs {net.min_image_size()} "
              f"px per side); returning a delta kernel")
        return delta_kernel(kernel_size)
    window = gray[textured_window(gray, max_window)]                    # 3
    if _is_flat(window):
        _warn_flat()
        return delta_kernel(kernel_size)
    kernel = _network_estimate(window, net, refine)                     # 4-6b
    if kernel is None:
        _warn_no_kernel()
        return delta_kernel(kernel_size)
    _warn_if_truncated(kernel)
    return kernel


def _network_estimate(window, net, refine):
    """Steps 4 to 6b on the window: the (refined) kernel, None if unusable."""
    mode, kernel = _network_kernel(window, net, refine)
    if kernel is None:
        return None
    return _refine(window, kernel, mode, net, refine)                   # 6b


class _Probe(NamedTuple):
    """The 33 px estimate that the automatic size choice measures."""

    #: The refinement mode it was run in (:func:`refinement_mode`).
    mode: str
    #: The network's kernel that the refinement started from.
    network_kernel: np.ndarray
    #: The kernel refined with :data:`SIZE_PROBE_REFINEMENT`, whose support is measured.
    measured: np.ndarray


def _network_kernel_mode(window, net, refine):
    """The refinement mode :func:`_network_kernel` runs in for these arguments."""
    return (refinement_mode(refine, net) if min(window.shape) >= 2 * net.kernel_size
            else "none")


def _network_kernel(window, net, refine):
    """Steps 4 to 6: the refinement mode and the kernel it starts from (None if unusable)."""
    mode = _network_kernel_mode(window, net, refine)
    # Coarse to fine (6b) starts from the coarsest scale's kernel alone, so
    # the finer scales need not run.
    output = network_fast.predict(                                      # 4, 5
        net, window.astype(net.dtype),
        n_scales=1 if mode == "coarse_to_fine" else None)
    scale_kernels = network_kernels(output)                             # 6
    return mode, (None if scale_kernels is None else scale_kernels[-1])


def _warn_flat():
    _warn("the image is flat or saturated: there are no edges to estimate a "
          "blur from; returning a delta kernel")


def _warn_no_kernel():
    _warn("the network gave no usable kernel for this image; returning a delta kernel")


def _warn_if_truncated(kernel):
    """Step 6's check of the returned kernel (:func:`blur_exceeds_window`)."""
    if blur_exceeds_window(kernel):
        size = kernel.shape[0]
        _warn(f"the estimated kernel reaches the border of its {size}x{size} "
              f"window, so the blur is probably larger: {_next_size_hint(size)}")


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
def deblur(image, kernel_size="auto", *, channel_axis=None, model=None,
           method="hyper_laplacian", noise_std=None,
           max_window=DEFAULT_MAX_WINDOW, refine=True, noise="auto", content="natural",
           kernel=None, **options):
    """Blind deblurring: estimate the kernel, then deconvolve (steps 1-8).

    Parameters
    ----------
    image : ndarray
        Blurry photo, as for :func:`estimate_kernel`.
    kernel_size : {'auto', 17, 25, 33}, optional
        Side of the kernel window; ``'auto'`` (default) chooses it from the
        image (see :func:`estimate_kernel`).
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
    noise, content : str, optional
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
    kernel : ndarray of shape (m, m)
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
    kernel_size = check_kernel_size_argument(kernel_size)
    noise = check_noise_argument(noise)
    content = check_content_argument(content)
    as_float, restore = to_unit_float(image)                            # 1
    planes, alpha = split_channels(as_float, channel_axis)              # 2
    if kernel is None:
        kernel, _ = _estimate_and_size(planes, kernel_size, model, max_window,  # 3-6
                                       refine, noise, content)
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
