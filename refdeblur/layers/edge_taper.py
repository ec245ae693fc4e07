"""Barthann edge taper: fades the borders of a feature map to zero.

Derivation: derivations/edge_taper.md.
"""

import functools
from typing import NamedTuple

import numpy as np


def barthann_ramp(width):
    """Rising half of a symmetric Bartlett-Hann window (E1).

    Parameters
    ----------
    width : int
        Ramp length ``R >= 0``.

    Returns
    -------
    ndarray of shape (R,)
        ``w(t) = 0.62 - 0.48 |t - 1/2| + 0.38 cos(2 pi (t - 1/2))`` at
        ``t = j / (2R)``, ``j = 0 .. R-1``: the first ``R`` points of a
        ``(2R + 1)``-point Barthann window (``scipy.signal.windows.barthann``).
        It starts at exactly 0 and rises towards 1, which the window reaches
        at its centre ``t = 1/2``.
    """
    width = int(width)
    if width < 0:
        raise ValueError(f"taper width must be >= 0, got {width}")
    t = np.arange(width) / (2.0 * width) if width else np.zeros(0)
    return 0.62 - 0.48 * np.abs(t - 0.5) + 0.38 * np.cos(2.0 * np.pi * (t - 0.5))


@functools.lru_cache(maxsize=64)
def _taper_window_cached(height, width, ramp, dtype_name):
    window = np.outer(_taper_profile(height, ramp), _taper_profile(width, ramp))
    window = window.astype(dtype_name)
    window.flags.writeable = False  # shared between calls: never modified
    return window


def _taper_profile(length, ramp):
    if length < 2 * ramp:
        raise ValueError(f"cannot taper {ramp} px at both ends of a side of "
                         f"{length} px (need at least {2 * ramp})")
    profile = np.ones(length)
    rising = barthann_ramp(ramp)
    profile[:ramp] = rising
    profile[length - ramp:] = rising[::-1]
    return profile


def taper_window(shape, width, dtype=np.float64):
    """Separable flat-top Barthann window of a given shape (E2).

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)``.
    width : int
        Ramp length at each border; the window is 1 at least ``width`` pixels
        from every border.
    dtype : dtype, optional

    Returns
    -------
    ndarray of shape (H, W)
        Read-only (it is cached and shared).
    """
    height, width_px = shape
    return _taper_window_cached(int(height), int(width_px), int(width),
                                np.dtype(dtype).name)


class EdgeTaperCache(NamedTuple):
    window: np.ndarray  # (H, W); the layer is diagonal, (E4) needs only this


class EdgeTaper:
    """Multiply every channel by a flat-top Barthann border taper.

    Paper §3.1.2: the borders of the feature images "are weighted with a
    Barthann window such that they smoothly fade to zero", to reduce the
    artefacts of the circular boundary assumption of the Fourier quotient.
    The window is 1 in the interior and falls to 0 over ``width`` pixels at
    each border: a flat top beat a full-size window in a proxy experiment
    (derivations/edge_taper.md, "Choice of shape").

    Parameters
    ----------
    width : int
        Ramp length in pixels; 0 disables the taper.
    """

    def __init__(self, width):
        self.width = int(width)
        if self.width < 0:
            raise ValueError(f"taper width must be >= 0, got {width}")

    def init_params(self, rng=None, dtype=np.float64):
        """No parameters; returns an empty dict."""
        return {}

    def forward(self, x, params=None):
        """Taper the last two axes (E3).

        Parameters
        ----------
        x : ndarray of shape (..., H, W)
        params : None
            Unused.

        Returns
        -------
        out : ndarray
            ``window * x``, same shape and dtype.
        cache : EdgeTaperCache
        """
        window = taper_window(x.shape[-2:], self.width, x.dtype)
        return x * window, EdgeTaperCache(window)

    def backward(self, dout, cache):
        """The taper is diagonal, hence self-adjoint (E4).

        Returns
        -------
        dx : ndarray
        param_grads : dict
            Empty.
        """
        return dout * cache.window, {}  # (E4)
