"""Kernel-estimation quotient layer, paper Eq. 4.

Derivation: derivations/kernel_quotient.md.
"""

from typing import NamedTuple

import numpy as np

from .._engine import fft as _fft
from .._engine.threads import for_each
from ._quotient import quotient_backward, quotient_forward, quotient_prior_backward
from .crop_pad import grid_to_kernel, kernel_to_grid
from .edge_taper import taper_window

#: How ``beta`` sets β_k: the regulariser itself, or its factor on the
#: features' power (derivations/kernel_quotient.md, "Scale of β_k").
BETA_MODES = ("constant", "relative")


class KernelQuotientCache(NamedTuple):
    window: np.ndarray       # taper w, (H, W): (K13)
    quotient: object         # QuotientCache of the Fourier solve: (K11), (K12)
    cropped: np.ndarray      # k_c before the threshold, (N, m, m): (K9)
    kernel: np.ndarray       # normalised output k, (N, m, m): (K8)
    mass: np.ndarray         # sum(k+) + eps, (N, 1, 1): (K8)
    feature_shape: tuple     # (H, W) of the features
    tapered_sharp: np.ndarray  # a_i cropped to (N, n, H, W), relative β only: (K17)
    beta_clamped: np.ndarray   # where (K16) took the floor, (N, 1, 1), relative β only


class KernelQuotient:
    """Estimate the blur kernel from feature pairs by a Fourier quotient.

    Forward (paper §3.1.2, Eq. 4; derivations/kernel_quotient.md §1):

    1. taper every sharp-like and blurry-like feature map with a flat-top
       Barthann window (K1);
    2. zero-pad them to a fast FFT size (K2) -- harmless, because the taper
       already brought the borders to zero;
    3. solve ``min_k sum_i ||k * x_i - y_i||^2 + beta_k ||k||^2`` in the
       Fourier domain (K3)-(K4), with ``beta_k = beta`` or, relative,
       ``beta_k = beta * sum_i ||x_i||^2`` of the tapered maps (K15)-(K16);
    4. crop the centred ``m x m`` kernel (MATLAB ``otf2psf``) (K5);
    5. set negative values to zero (K6);
    6. normalise to sum 1 (K7), if ``normalize``.

    Parameters
    ----------
    kernel_size : int
        Odd kernel side ``m``.
    taper_width : int, optional
        Ramp of the Barthann taper in pixels; defaults to ``kernel_size``
        (derivations/edge_taper.md, "Choice of shape"). 0 disables the taper.
    beta : float, optional
        ``beta_k`` of Eq. 4; the paper's ``1e-4`` "for numerical stability
        only" (meaning under our FFT convention: derivations/README.md).
        With ``beta_mode="relative"`` the factor ``c`` of (K16) instead.
    beta_mode : {"constant", "relative"}, optional
        ``"constant"``: ``beta_k = beta``. ``"relative"``: ``beta_k = beta *
        P`` per example, ``P`` the mean over frequencies of ``sum_i |F a_i|^2``
        on the tapered, padded grid, which equals ``sum_i ||a_i||^2`` (K15);
        the quotient is then unchanged when the features are scaled, and
        the backward pass includes the dependence of ``beta_k`` on the
        sharp-like maps (K17).
    normalize : bool, optional
        Divide the thresholded kernel by its sum (plus ``eps``). The paper
        only thresholds; we normalise (derivations/kernel_quotient.md,
        "Normalisation", gives the reasons).
    eps : float, optional
        Keeps the normalisation finite for an all-zero kernel.
    pad_to_fast_size : bool, optional
        Zero-pad the tapered features to a fast FFT size.
    """

    def __init__(self, kernel_size, *, taper_width=None, beta=1e-4,
                 beta_mode="constant", normalize=True, eps=1e-8,
                 pad_to_fast_size=True):
        self.kernel_size = int(kernel_size)
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel size must be odd and positive, "
                             f"got {kernel_size}")
        self.taper_width = (self.kernel_size if taper_width is None
                            else int(taper_width))
        self.beta = float(beta)
        if beta_mode not in BETA_MODES:
            raise ValueError(f"beta_mode must be one of {BETA_MODES}, got {beta_mode!r}")
        self.beta_mode = beta_mode
        self.normalize = bool(normalize)
        self.eps = float(eps)
        self.pad_to_fast_size = bool(pad_to_fast_size)

    def init_params(self, rng=None, dtype=np.float64):
        """No trainable parameters (``beta_k`` is not learned); empty dict."""
        return {}

    def forward(self, x_sharp, y_blurry, params=None, prior=None):
        """Estimate the kernel.

        Parameters
        ----------
        x_sharp, y_blurry : ndarray of shape (N, n, H, W)
            The ``n`` sharp-like and blurry-like feature maps.
        params : None
            Unused.
        prior : ndarray of shape (N, m, m), optional
            A kernel to regularise towards: ``beta_k ||k - prior||^2``
            instead of ``beta_k ||k||^2`` (K18), so that where the features
            carry little evidence the estimate stays at ``prior`` instead of
            going to zero (derivations/kernel_quotient.md §1b).

        Returns
        -------
        kernel : ndarray of shape (N, m, m)
            Non-negative; sums to 1 if ``normalize`` (0 if all of the
            cropped quotient was negative).
        cache : KernelQuotientCache
        """
        if x_sharp.shape != y_blurry.shape or x_sharp.ndim != 4:
            raise ValueError(f"feature maps must both be (N, n, H, W), got "
                             f"{x_sharp.shape} and {y_blurry.shape}")
        height, width = x_sharp.shape[-2:]
        if min(height, width) < self.kernel_size:
            raise ValueError(f"{height}x{width} feature maps are smaller than "
                             f"the {self.kernel_size} px kernel")
        window = taper_window((height, width), self.taper_width, x_sharp.dtype)
        grid = ((_fft.fast_length(height), _fft.fast_length(width))
                if self.pad_to_fast_size else (height, width))
        # Taper straight into the zero grid: one pass instead of two.
        a = tapered_on_grid(x_sharp, window, grid)                # (K1), (K2)
        b = tapered_on_grid(y_blurry, window, grid)
        tapered_sharp = beta_clamped = None
        if self.beta_mode == "relative":
            # The padding is zero: the power of a_i is that of its H x W corner.
            tapered_sharp = a[..., :height, :width]
            power = np.einsum("nchw,nchw->n", tapered_sharp,
                              tapered_sharp)[:, None, None]        # (K15)
            beta = self.beta * power                               # (K16)
            # All-zero features would make (Q3) 0/0; the floor keeps it 0.
            floor = np.finfo(a.dtype).eps
            beta_clamped = beta < floor
            beta = np.maximum(beta, floor)
        else:
            beta = self.beta
        prior_grid = None
        if prior is not None:
            prior = np.asarray(prior, dtype=a.dtype)
            if prior.shape != (len(a), self.kernel_size, self.kernel_size):
                raise ValueError(f"prior must be (N, {self.kernel_size}, "
                                 f"{self.kernel_size}), got {prior.shape}")
            prior_grid = kernel_to_grid(prior, grid)               # (K18)
        full, quotient = quotient_forward(a, b, beta, prior=prior_grid)  # (K3)-(K4)
        cropped = grid_to_kernel(full, (self.kernel_size,) * 2)    # (K5)
        positive = np.maximum(cropped, 0)                          # (K6)
        if self.normalize:
            mass = positive.sum(axis=(-2, -1), keepdims=True) + self.eps
            kernel = positive / mass                               # (K7)
        else:
            mass = None
            kernel = positive
        return kernel, KernelQuotientCache(window, quotient, cropped, kernel,
                                           mass, (height, width), tapered_sharp,
                                           beta_clamped)

    def backward(self, dkernel, cache):
        """Gradients with respect to both feature stacks.

        Parameters
        ----------
        dkernel : ndarray of shape (N, m, m)
        cache : KernelQuotientCache

        Returns
        -------
        (dx_sharp, dy_blurry[, dprior]) : tuple of ndarray
            Of shape (N, n, H, W); ``dprior``, of shape (N, m, m), when the
            forward pass had a prior (K19).
        param_grads : dict
            Empty.
        """
        if self.normalize:
            projection = np.sum(dkernel * cache.kernel, axis=(-2, -1),
                                keepdims=True)
            dpositive = (dkernel - projection) / cache.mass        # (K8)
        else:
            dpositive = dkernel
        dcropped = dpositive * (cache.cropped > 0)                 # (K9)
        dfull = kernel_to_grid(dcropped, cache.quotient.shape)     # (K10)
        relative = cache.tapered_sharp is not None
        da, db, dbeta = quotient_backward(dfull, cache.quotient,
                                          beta_grad=relative)      # (K11), (K12), (Q7)
        height, width = cache.feature_shape
        da = da[..., :height, :width]                              # (K13)
        db = db[..., :height, :width]
        if relative:
            dpower = np.where(cache.beta_clamped[:, 0, 0], 0.0, self.beta * dbeta)
            da = da + (2.0 * dpower.astype(da.dtype)[:, None, None, None]
                       * cache.tapered_sharp)                       # (K17)
        gradients = (da * cache.window, db * cache.window)          # (K14)
        if cache.quotient.spectrum_prior is not None:
            dprior = grid_to_kernel(quotient_prior_backward(dfull, cache.quotient),
                                    (self.kernel_size,) * 2)       # (K19)
            gradients += (dprior,)
        return gradients, {}


def tapered_on_grid(x, window, grid_shape):
    """``x * window`` zero-padded at the end of the last two axes to ``grid_shape``.

    (K1)-(K2), shared with the inference path's kernel quotient
    (:func:`refdeblur.network_fast.kernel_estimate`).

    Parameters
    ----------
    x : ndarray of shape (N, n, H, W)
    window : ndarray of shape (H, W)
    grid_shape : tuple of int

    Returns
    -------
    ndarray of shape (N, n) + grid_shape
    """
    height, width = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + tuple(grid_shape), dtype=np.result_type(x, window))
    # One image per call, over the cores (memory-bound: at 2048² one
    # thread took a tenth of the network's time); the same ufunc loop per
    # pixel whichever thread runs it.
    n_feature = x.shape[1]

    def taper(index):
        n, c = divmod(index, n_feature)
        np.multiply(x[n, c], window, out=out[n, c, :height, :width])

    for_each(taper, x.shape[0] * n_feature, height * width)
    return out
