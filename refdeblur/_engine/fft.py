"""Real 2-D FFTs over the last two axes, with the package's conventions.

Unnormalised forward transform and ``1/(HW)`` in the inverse (numpy's
``norm="backward"``), see derivations/README.md. ``irfft2`` always takes the
spatial shape so that odd sizes round-trip. scipy.fft threads over the
leading (batch, channel) axes on :func:`refdeblur._engine.threads.get_num_threads`
workers.
"""

import scipy.fft

from .threads import get_num_threads

__all__ = ["rfft2", "irfft2", "fast_length"]


def rfft2(x, shape=None):
    """Half-spectrum DFT of real ``x`` over its last two axes.

    Parameters
    ----------
    x : ndarray of shape (..., H, W)
        Real input.
    shape : tuple of int, optional
        Transform size ``(H', W')``; ``x`` is zero-padded (or cropped) to it.

    Returns
    -------
    ndarray of shape (..., H', W' // 2 + 1), complex
    """
    return scipy.fft.rfft2(x, s=shape, axes=(-2, -1), workers=get_num_threads())


def irfft2(spectrum, shape):
    """Inverse of :func:`rfft2` for a spatial size ``shape = (H, W)``."""
    return scipy.fft.irfft2(spectrum, s=shape, axes=(-2, -1),
                            workers=get_num_threads())


def fast_length(n):
    """Smallest length ``>= n`` with only small prime factors (fast FFTs)."""
    return scipy.fft.next_fast_len(int(n), real=True)
