"""Kernel placement on a circular grid, its crop, and replicate padding.

MATLAB conventions: :func:`kernel_to_grid` is ``psf2otf`` without the FFT and
:func:`grid_to_kernel` is ``otf2psf`` after the inverse FFT. Derivation:
derivations/crop_pad.md.
"""

from typing import NamedTuple

import numpy as np

from .._engine import fft as _fft


def _circular_indices(kernel_shape, grid_shape):
    """Rows and columns of the grid that hold the kernel's entries (P1).

    The kernel centre ``(floor(mh/2), floor(mw/2))`` goes to the grid origin
    ``(0, 0)``; the other entries wrap around circularly.
    """
    (kernel_h, kernel_w), (grid_h, grid_w) = kernel_shape, grid_shape
    if kernel_h > grid_h or kernel_w > grid_w:
        raise ValueError(f"a {kernel_h}x{kernel_w} kernel does not fit on a "
                         f"{grid_h}x{grid_w} grid")
    rows = (np.arange(kernel_h) - kernel_h // 2) % grid_h
    cols = (np.arange(kernel_w) - kernel_w // 2) % grid_w
    return rows[:, None], cols[None, :]


def kernel_to_grid(kernel, grid_shape):
    """Place a kernel on an ``H x W`` circular grid, centre at the origin (P2).

    Parameters
    ----------
    kernel : ndarray of shape (..., mh, mw)
    grid_shape : tuple of int
        ``(H, W)`` with ``H >= mh`` and ``W >= mw``.

    Returns
    -------
    ndarray of shape (..., H, W)
        Zero except at the wrapped kernel positions; its DFT is MATLAB's
        ``psf2otf(kernel, [H W])``.
    """
    rows, cols = _circular_indices(kernel.shape[-2:], grid_shape)
    grid = np.zeros(kernel.shape[:-2] + tuple(grid_shape), dtype=kernel.dtype)
    grid[..., rows, cols] = kernel
    return grid


def grid_to_kernel(grid, kernel_shape):
    """Read the centred ``mh x mw`` kernel off a circular grid (P3).

    The adjoint of :func:`kernel_to_grid` (and, as the kernel positions are
    distinct, also its left inverse).

    Parameters
    ----------
    grid : ndarray of shape (..., H, W)
    kernel_shape : tuple of int
        ``(mh, mw)``.

    Returns
    -------
    ndarray of shape (..., mh, mw)
        MATLAB's ``otf2psf`` applied to ``fft2(grid)``.
    """
    rows, cols = _circular_indices(tuple(kernel_shape), grid.shape[-2:])
    return grid[..., rows, cols]


def psf2otf(psf, grid_shape):
    """MATLAB ``psf2otf``: the full complex DFT of the placed kernel.

    Parameters
    ----------
    psf : ndarray of shape (mh, mw)
    grid_shape : tuple of int

    Returns
    -------
    ndarray of shape grid_shape, complex
    """
    return np.fft.fft2(kernel_to_grid(np.asarray(psf), grid_shape))


def otf2psf(otf, psf_shape):
    """MATLAB ``otf2psf``: the centred kernel of a transfer function.

    Parameters
    ----------
    otf : ndarray of shape (H, W), complex
    psf_shape : tuple of int

    Returns
    -------
    ndarray of shape psf_shape, real
    """
    return grid_to_kernel(np.real(np.fft.ifft2(otf)), psf_shape)


def replicate_pad(x, before, after):
    """Extend the last two axes by repeating the border pixels (P4).

    Parameters
    ----------
    x : ndarray of shape (..., H, W)
    before, after : tuple of int
        Pixels added ``(above, left)`` and ``(below, right)``.

    Returns
    -------
    ndarray of shape (..., H + before[0] + after[0], W + before[1] + after[1])
    """
    widths = [(0, 0)] * (x.ndim - 2) + [(before[0], after[0]),
                                        (before[1], after[1])]
    return np.pad(x, widths, mode="edge")


def replicate_pad_adjoint(g, before, after):
    """Adjoint of :func:`replicate_pad` (P5).

    Every padded pixel is a copy of a border pixel, so its gradient is added
    back onto that border pixel; the padded band is then cropped away.

    Parameters
    ----------
    g : ndarray of shape (..., H + before[0] + after[0], W + ...)
    before, after : tuple of int

    Returns
    -------
    ndarray of shape (..., H, W)
    """
    g = _fold_axis(g, before[0], after[0], axis=-2)
    return _fold_axis(g, before[1], after[1], axis=-1)


def _fold_axis(g, before, after, axis):
    length = g.shape[axis] - before - after
    core = np.take(g, np.arange(before, before + length), axis=axis)  # a copy
    first = [slice(None)] * g.ndim
    last = [slice(None)] * g.ndim
    first[axis] = slice(0, 1)
    last[axis] = slice(length - 1, length)
    head = np.take(g, np.arange(0, before), axis=axis).sum(axis, keepdims=True)
    tail = np.take(g, np.arange(before + length, g.shape[axis]),
                   axis=axis).sum(axis, keepdims=True)
    core[tuple(first)] += head
    core[tuple(last)] += tail
    return core


def padded_fast_shape(shape, pad):
    """Padding that adds at least ``pad`` px per side and gives fast FFTs.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)``.
    pad : int

    Returns
    -------
    before, after : tuple of int
        Per axis, ``before + H + after`` is a fast FFT length,
        ``before >= pad`` and ``after >= pad``.
    """
    before, after = [], []
    for length in shape:
        total = _fft.fast_length(length + 2 * pad) - length
        before.append(total // 2)
        after.append(total - total // 2)
    return tuple(before), tuple(after)


class KernelCropCache(NamedTuple):
    grid_shape: tuple  # (H, W), where (P6) writes the gradient back


class KernelCrop:
    """Layer form of :func:`grid_to_kernel` (MATLAB ``otf2psf``).

    Parameters
    ----------
    kernel_size : int
        Odd side ``m`` of the kernel.
    """

    def __init__(self, kernel_size):
        self.kernel_size = int(kernel_size)

    def init_params(self, rng=None, dtype=np.float64):
        """No parameters; returns an empty dict."""
        return {}

    def forward(self, grid, params=None):
        """Crop the centred kernel: ``(..., H, W) -> (..., m, m)`` (P3)."""
        kernel = grid_to_kernel(grid, (self.kernel_size, self.kernel_size))
        return kernel, KernelCropCache(grid.shape[-2:])

    def backward(self, dkernel, cache):
        """Adjoint: place the gradient back on the grid (P6)."""
        return kernel_to_grid(dkernel, cache.grid_shape), {}  # (P6)


class KernelPadCache(NamedTuple):
    kernel_shape: tuple  # (m, m), what (P7) crops back to


class KernelPad:
    """Layer form of :func:`kernel_to_grid` (MATLAB ``psf2otf`` sans FFT).

    Parameters
    ----------
    grid_shape : tuple of int
        ``(H, W)``.
    """

    def __init__(self, grid_shape):
        self.grid_shape = tuple(int(s) for s in grid_shape)

    def init_params(self, rng=None, dtype=np.float64):
        """No parameters; returns an empty dict."""
        return {}

    def forward(self, kernel, params=None):
        """Place the kernel: ``(..., m, m) -> (..., H, W)`` (P2)."""
        grid = kernel_to_grid(kernel, self.grid_shape)
        return grid, KernelPadCache(kernel.shape[-2:])

    def backward(self, dgrid, cache):
        """Adjoint: crop the centred kernel out of the gradient (P7)."""
        return grid_to_kernel(dgrid, cache.kernel_shape), {}  # (P7)


class ReplicatePadCache(NamedTuple):
    before: tuple
    after: tuple


class ReplicatePad:
    """Layer form of :func:`replicate_pad` with ``pad`` pixels on every side.

    Parameters
    ----------
    pad : int
    """

    def __init__(self, pad):
        self.pad = int(pad)

    def init_params(self, rng=None, dtype=np.float64):
        """No parameters; returns an empty dict."""
        return {}

    def forward(self, x, params=None):
        """Pad the last two axes (P4)."""
        before = after = (self.pad, self.pad)
        return replicate_pad(x, before, after), ReplicatePadCache(before, after)

    def backward(self, dout, cache):
        """Fold the padded band back onto the border (P5)."""
        return replicate_pad_adjoint(dout, cache.before, cache.after), {}  # (P5)
