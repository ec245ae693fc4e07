"""Image-estimation quotient layer, paper Eq. 5.

Derivation: derivations/image_quotient.md.
"""

import math
from typing import NamedTuple

import numpy as np

from .._engine import fft as _fft
from ._quotient import quotient_backward, quotient_forward
from .crop_pad import (grid_to_kernel, kernel_to_grid, padded_fast_shape,
                       replicate_pad, replicate_pad_adjoint)
from .edge_taper import taper_window


class PreparedBlurry(NamedTuple):
    spectrum: np.ndarray  # F b of the padded, tapered y: (I4)
    window: np.ndarray    # taper of the padded grid: (I2)
    before: tuple         # replicate padding above/left: (I1)
    after: tuple          # and below/right
    pad: int              # the layer's minimum padding it was made for
    image_shape: tuple    # shape of y


class ImageQuotientCache(NamedTuple):
    quotient: object      # QuotientCache of the Fourier solve: (I7)
    window: np.ndarray    # taper of the padded grid: (I9)
    before: tuple         # replicate padding above/left: (I6), (I9)
    after: tuple          # and below/right: (I9)
    beta: float           # beta_x, for (I10)
    kernel_shape: tuple   # (m, m), for (I8)


class ImageQuotient:
    """Latent-image update by a Wiener/Tikhonov quotient with learned β_x.

    Solves ``min_x ||k * x - y||^2 + beta_x ||x||^2`` (paper Eq. 5) in the
    Fourier domain. Circular boundaries would make every step edge at the
    image border ring, so ``y`` is first extended by replicating its border
    pixels (at least ``pad`` px per side, more to reach a fast FFT size) and
    the extension is faded to zero with the Barthann ramp; the solution is
    cropped back to ``H x W`` (derivations/image_quotient.md, "Boundary
    handling").

    ``beta_x = exp(log_beta)`` is learned; the log keeps it positive and lets
    it move over orders of magnitude (derivations/image_quotient.md,
    "Parametrisation of β_x").

    Parameters
    ----------
    kernel_size : int
        Odd side ``m`` of the kernel.
    pad : int, optional
        Minimum replicate padding per side; defaults to ``kernel_size``.
    initial_beta : float, optional
        ``beta_x`` that :meth:`init_params` starts from.
    """

    def __init__(self, kernel_size, *, pad=None, initial_beta=1e-2):
        self.kernel_size = int(kernel_size)
        self.pad = self.kernel_size if pad is None else int(pad)
        self.initial_beta = float(initial_beta)

    def init_params(self, rng=None, dtype=np.float64):
        """Return ``{"log_beta": log(initial_beta)}`` as a 0-d array."""
        return {"log_beta": np.array(math.log(self.initial_beta), dtype=dtype)}

    def prepare_blurry(self, y):
        """Pad, taper and transform ``y`` once for several :meth:`forward` calls.

        Steps (I1)-(I2) and the transform of ``b`` in (I4) depend on ``y``
        only, so the stages of a scale, which all deconvolve the same
        blurry image, can share them (the inference path does).

        Parameters
        ----------
        y : ndarray of shape (N, H, W)

        Returns
        -------
        PreparedBlurry
        """
        height, width = y.shape[-2:]
        before, after = padded_fast_shape((height, width), self.pad)
        padded = replicate_pad(y, before, after)                  # (I1)
        window = taper_window(padded.shape[-2:], self.pad, y.dtype)
        b = (padded * window)[:, None]                            # (I2)
        return PreparedBlurry(_fft.rfft2(b), window, before, after, self.pad,
                              y.shape)

    def forward(self, kernel, y, params, *, prepared=None):
        """Deconvolve ``y`` with ``kernel``.

        Parameters
        ----------
        kernel : ndarray of shape (N, m, m)
            Convolution convention, centre at ``(m // 2, m // 2)``.
        y : ndarray of shape (N, H, W)
            The blurry image at this scale.
        params : dict
            ``"log_beta"``, a 0-d array.
        prepared : PreparedBlurry, optional
            :meth:`prepare_blurry` of this ``y``; made here if not given.

        Returns
        -------
        latent : ndarray of shape (N, H, W)
        cache : ImageQuotientCache
        """
        if kernel.ndim != 3 or y.ndim != 3 or kernel.shape[0] != y.shape[0]:
            raise ValueError(f"expected kernel (N, m, m) and image (N, H, W), "
                             f"got {kernel.shape} and {y.shape}")
        beta = float(np.exp(params["log_beta"]))                  # β_x = e^θ
        height, width = y.shape[-2:]
        if prepared is None or prepared.pad != self.pad or prepared.image_shape != y.shape:
            prepared = self.prepare_blurry(y)                     # (I1), (I2)
        before, after, window = prepared.before, prepared.after, prepared.window
        a = kernel_to_grid(kernel, window.shape)[:, None]         # (I3)
        solution, quotient = quotient_forward(
            a, None, beta, spectrum_b=prepared.spectrum)          # (I4)
        latent = solution[:, before[0]:before[0] + height,
                          before[1]:before[1] + width]            # (I5)
        return latent, ImageQuotientCache(quotient, window, before, after,
                                          beta, kernel.shape[-2:])

    def backward(self, dlatent, cache):
        """Gradients with respect to the kernel, the image and ``log_beta``.

        Parameters
        ----------
        dlatent : ndarray of shape (N, H, W)
        cache : ImageQuotientCache

        Returns
        -------
        (dkernel, dy) : tuple of ndarray, shapes (N, m, m) and (N, H, W)
        param_grads : dict
            ``"log_beta"``, a 0-d array (summed over the batch).
        """
        grid_shape = cache.quotient.shape
        height, width = dlatent.shape[-2:]
        top, left = cache.before
        dsolution = np.zeros(dlatent.shape[:1] + grid_shape, dlatent.dtype)
        dsolution[:, top:top + height, left:left + width] = dlatent   # (I6)
        da, db, dbeta = quotient_backward(dsolution, cache.quotient,
                                          beta_grad=True)          # (I7)
        dkernel = grid_to_kernel(da[:, 0], cache.kernel_shape)     # (I8)
        dy = replicate_pad_adjoint(db[:, 0] * cache.window,
                                   cache.before, cache.after)      # (I9)
        dlog_beta = cache.beta * dbeta.sum()                       # (I10)
        return (dkernel, dy), {"log_beta": np.array(dlog_beta,
                                                    dtype=dlatent.dtype)}
