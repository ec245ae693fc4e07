"""Real 2-D FFTs over the last two axes, with the package's conventions.

Unnormalised forward transform and ``1/(HW)`` in the inverse (numpy's
``norm="backward"``), see derivations/README.md. ``irfft2`` always takes the
spatial shape so that odd sizes round-trip. scipy.fft threads over the
leading (batch, channel) axes on :func:`refdeblur._engine.threads.get_num_threads`
workers.

:func:`rfft2_of_rows` and :func:`irfft2_rows` skip the one-dimensional
transforms whose input is zero or whose output is not read (a kernel placed
on a large grid; a kernel cropped from one) and give the values of
:func:`rfft2` and :func:`irfft2` bit for bit: a 2-D real transform is the
same one-dimensional transforms along the last axis and then along the
columns, with the inverse's scale applied last.
"""

import numpy as np
import scipy.fft

from .threads import get_num_threads

__all__ = ["rfft2", "irfft2", "rfft2_of_rows", "irfft2_rows", "fast_length"]


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


def rfft2_of_rows(x, rows):
    """:func:`rfft2` of ``x`` (..., H, W), which is zero outside the rows ``rows``.

    A 2-D real transform runs along the last axis, then along the columns;
    the first pass is done only for the rows that are not zero, whose
    transforms are the only ones that are not zero. The same values as
    :func:`rfft2` (the same one-dimensional transforms, the zero rows'
    exactly zero); for a kernel placed on a large grid, a fraction of the
    work.

    Parameters
    ----------
    x : ndarray of shape (..., H, W)
        Real.
    rows : array_like of int
        Indices along axis -2 outside which ``x`` is zero, without repeats.

    Returns
    -------
    ndarray of shape (..., H, W // 2 + 1), complex

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((48, 40))
    >>> x[[0, 1, 47]] = np.random.default_rng(0).random((3, 40))
    >>> bool(np.array_equal(rfft2_of_rows(x, [0, 1, 47]), rfft2(x)))
    True
    """
    workers = get_num_threads()
    spectrum = np.zeros(x.shape[:-1] + (x.shape[-1] // 2 + 1,),
                        dtype=np.result_type(x.dtype, np.complex64))
    spectrum[..., rows, :] = scipy.fft.rfft(x[..., rows, :], axis=-1, workers=workers)
    return scipy.fft.fft(spectrum, axis=-2, overwrite_x=True, workers=workers)


def irfft2_rows(spectrum, shape, rows):
    """Rows ``rows`` (along axis -2) of ``irfft2(spectrum, shape)``.

    The inverse runs along the columns first and then along the last axis,
    where it is done only for the rows asked for; the scale ``1 / (H W)``
    is applied last, as the one-call transform applies it, so the values
    are those of :func:`irfft2`, bit for bit.

    Parameters
    ----------
    spectrum : ndarray of shape (..., H, W // 2 + 1), complex
    shape : tuple of int
        ``(H, W)``.
    rows : slice or array_like of int
        Rows of the result wanted.

    Returns
    -------
    ndarray of shape (..., len(rows), W), real

    Examples
    --------
    >>> import numpy as np
    >>> spectrum = rfft2(np.random.default_rng(0).random((2, 45, 36)))
    >>> rows = [0, 1, 2, 43, 44]
    >>> bool(np.array_equal(irfft2_rows(spectrum, (45, 36), rows),
    ...                     irfft2(spectrum, (45, 36))[:, rows]))
    True
    """
    height, width = shape
    if spectrum.shape[-2] != height:
        raise ValueError(f"spectrum of {spectrum.shape[-2]} rows for a shape {shape}")
    workers = get_num_threads()
    columns = scipy.fft.ifft(spectrum, axis=-2, norm="forward", workers=workers)
    out = scipy.fft.irfft(columns[..., rows, :], n=width, axis=-1, norm="forward",
                          workers=workers)
    # pocketfft's factor: 1 / N in long double, rounded to the result's type
    out *= out.dtype.type(np.longdouble(1) / np.longdouble(height * width))
    return out


def fast_length(n):
    """Smallest length ``>= n`` with only small prime factors (fast FFTs)."""
    return scipy.fft.next_fast_len(int(n), real=True)
