"""How :class:`refdeblur.layers.conv2d.Conv2D` computes its maps.

The layer's maths, (C1)-(C10), is in derivations/conv2d.md; this module
holds the three ways of computing it and the choice between them:

* ``"direct"``: loops over the filter taps, compiled with Numba
  (:mod:`refdeblur._engine.conv`). Without Numba it falls back, with the
  package's one-time warning (:func:`refdeblur._engine.warn_without_numba`),
  to im2col windows and BLAS matrix products (:func:`im2col_correlate` and
  friends below).
* ``"fft"``: products of zero-padded real FFTs, exact up to rounding because
  the padding removes every circular wrap-around (C7)-(C10).
* ``"auto"``: whichever a cost model, calibrated with
  ``benchmarks/bench_layers.py --calibrate``, predicts to be faster for the
  sizes at hand (derivations/conv2d.md §7); decided separately for the
  forward and the backward pass.

The layer calls :func:`resolve_method`, then :func:`correlate` (forward) or
:func:`gradients` (backward).
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sp_fft

from . import HAVE_NUMBA, warn_without_numba
from . import conv as conv_kernels
from .threads import get_num_threads

__all__ = ["METHODS", "PASSES", "resolve_method", "correlate", "gradients",
           "choose_method", "predicted_seconds", "work_counts", "COST_CONSTANTS",
           "fft_shape", "fft_correlate", "fft_backward", "im2col_correlate",
           "im2col_input_gradient", "im2col_weight_gradient", "BLOCK_BYTES",
           "FFT_BLOCK_BYTES"]

#: Values of ``Conv2D(method=...)``.
METHODS = ("auto", "direct", "fft")

#: Passes the cost model knows: ``"backward"`` is the input and the weight
#: gradient together, ``"weight_gradient"`` the weight gradient alone.
PASSES = ("forward", "backward", "weight_gradient")

#: Bytes of one im2col matrix in the fallback; larger images are cut into
#: row chunks so that memory stays bounded, e.g. at 2048² inference.
BLOCK_BYTES = 1 << 26

#: Bytes of the spectra live at once in the FFT path: output channels are
#: processed in blocks this small, which bounds memory and, at 16 MiB, keeps
#: a block in the 32 MiB L3 cache between its transforms and products.
FFT_BLOCK_BYTES = 1 << 24


# ---------------------------------------------------------------------------
# Entry points of the layer
# ---------------------------------------------------------------------------

def resolve_method(method, pass_name, x_shape, out_channels, filter_size, dtype):
    """``method``, with ``"auto"`` replaced by the :func:`choose_method` pick.

    Parameters
    ----------
    method : {"auto", "direct", "fft"}
    pass_name : {"forward", "backward", "weight_gradient"}
    x_shape : tuple of int
        ``(N, C_in, H, W)``.
    out_channels, filter_size : int
    dtype : dtype

    Returns
    -------
    {"direct", "fft"}
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "auto":
        return method
    return choose_method(pass_name, x_shape, out_channels, filter_size, dtype)


def correlate(x, weight, bias=None, *, method):
    """The 'valid' correlation plus bias (C1).

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
        C-contiguous, float32 or float64.
    weight : ndarray of shape (C_out, C_in, f, f)
        C-contiguous, in the dtype of ``x``.
    bias : ndarray of shape (C_out,), optional
    method : {"direct", "fft"}

    Returns
    -------
    ndarray of shape (N, C_out, H - f + 1, W - f + 1)
    """
    if method == "fft":
        return fft_correlate(x, weight, bias)                        # (C8)
    return _direct_backend().correlate(x, weight, bias)


def gradients(x, weight, dout, *, method, input_grad=True):
    """Input gradient (C3) and weight gradient (C4) of the correlation.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in, f, f)
    dout : ndarray of shape (N, C_out, H - f + 1, W - f + 1)
        C-contiguous, in the dtype of ``x``.
    method : {"direct", "fft"}
        The FFT path shares the transforms of ``dout`` between the two
        gradients (C9), (C10).
    input_grad : bool, optional
        Compute the input gradient.

    Returns
    -------
    dx : ndarray of shape (N, C_in, H, W), or None
        None when ``input_grad`` is False.
    dweight : ndarray of shape (C_out, C_in, f, f)
    """
    if method == "fft":
        return fft_backward(x, weight, dout, input_grad=input_grad)
    backend = _direct_backend()
    dx = backend.input_gradient(dout, weight) if input_grad else None  # (C6)
    return dx, backend.weight_gradient(x, dout, weight.shape[-1])


# ---------------------------------------------------------------------------
# "auto": a cost model
# ---------------------------------------------------------------------------

#: Seconds per unit of work (see :func:`work_counts`) on the 2-core
#: reference machine (AMD EPYC Zen 4, 2 threads), fitted by
#: ``benchmarks/bench_layers.py --calibrate``; see derivations/conv2d.md §7.
#: ``direct_*``: per multiply-add of each direct kernel. ``fft_transform``:
#: per ``n log2 n`` of the 1-D transforms; ``fft_product``: per complex
#: multiply-add in the frequency domain; ``fft_call``: per pass.
COST_CONSTANTS = {
    np.dtype(np.float64): dict(direct_forward=3.2e-11, direct_input=4.0e-11,
                               direct_weight=5.7e-11, fft_call=4.2e-3,
                               fft_transform=4.9e-10, fft_product=0.0),
    np.dtype(np.float32): dict(direct_forward=2.0e-11, direct_input=2.9e-11,
                               direct_weight=2.8e-11, fft_call=3.0e-4,
                               fft_transform=2.3e-10, fft_product=5.4e-10),
}


def work_counts(pass_name, x_shape, out_channels, filter_size):
    """Units of work of one pass, for each term of the cost model.

    Parameters
    ----------
    pass_name : {"forward", "backward", "weight_gradient"}
        ``"backward"`` is the input and the weight gradient together;
        ``"weight_gradient"`` the weight gradient alone.
    x_shape : tuple of int
        ``(N, C_in, H, W)``.
    out_channels, filter_size : int

    Returns
    -------
    dict
        Keyed like the entries of :data:`COST_CONSTANTS`:
        ``direct_forward``, ``direct_input``, ``direct_weight`` (multiply-adds
        of each direct kernel), ``fft_transform`` (sum of ``n log2 n`` over
        the 1-D transforms), ``fft_product`` (complex multiply-adds) and
        ``fft_call`` (1).
    """
    n_batch, channels, height, width = x_shape
    f = filter_size
    out_h, out_w = height - f + 1, width - f + 1
    taps = n_batch * out_channels * channels * f * f
    fft_h, fft_w = fft_shape(height, width)
    half_w = fft_w // 2 + 1

    def transform(rows):
        # real transforms of length fft_w along the rows that hold data,
        # then half_w complex ones of length fft_h (see _rfft2_padded); the
        # inverse, cropped to ``rows``, costs the same
        return (rows * fft_w * np.log2(fft_w) / 2
                + half_w * fft_h * np.log2(fft_h))

    spectrum = fft_h * half_w
    n_images, n_filters = n_batch * channels, out_channels * channels
    n_outputs = n_batch * out_channels
    counts = dict(direct_forward=0.0, direct_input=0.0, direct_weight=0.0,
                  fft_transform=0.0, fft_product=0.0, fft_call=1.0)
    if pass_name == "forward":
        counts["direct_forward"] = taps * out_h * out_w
        counts["fft_transform"] = (n_images * transform(height)
                                   + n_filters * transform(f)
                                   + n_outputs * transform(out_h))
        counts["fft_product"] = n_batch * n_filters * spectrum
    elif pass_name in ("backward", "weight_gradient"):
        # weight gradient: transforms of x and dout, inverse cropped to f rows
        counts["direct_weight"] = taps * out_h * out_w
        counts["fft_transform"] = (n_images * transform(height)
                                   + n_outputs * transform(out_h)
                                   + n_filters * transform(f))
        counts["fft_product"] = n_batch * n_filters * spectrum
        if pass_name == "backward":
            # input gradient: the padded correlation (C6); in the FFT path
            # the filter transforms and the inverse of dx are added
            counts["direct_input"] = taps * height * width
            counts["fft_transform"] += (n_filters * transform(f)
                                        + n_images * transform(height))
            counts["fft_product"] *= 2
    else:
        raise ValueError(f"unknown pass {pass_name!r}")
    return counts


def predicted_seconds(pass_name, x_shape, out_channels, filter_size, dtype):
    """Predicted run time of both methods for one pass.

    Parameters
    ----------
    pass_name, x_shape, out_channels, filter_size
        As for :func:`work_counts`.
    dtype : dtype
        float32 or float64.

    Returns
    -------
    dict
        ``{"direct": seconds, "fft": seconds}``: the products of
        :func:`work_counts` with :data:`COST_CONSTANTS`, summed per method.
    """
    counts = work_counts(pass_name, x_shape, out_channels, filter_size)
    costs = COST_CONSTANTS[np.dtype(dtype)]
    seconds = {"direct": 0.0, "fft": 0.0}
    for term, count in counts.items():
        seconds[term.split("_")[0]] += costs[term] * count
    return seconds


def choose_method(pass_name, x_shape, out_channels, filter_size, dtype):
    """The faster of ``"direct"`` and ``"fft"`` by :func:`predicted_seconds`.

    Without Numba the direct method is the im2col/BLAS fallback, whose
    speed the cost model does not describe; ``"fft"`` is then chosen.
    """
    if not HAVE_NUMBA:
        return "fft"
    seconds = predicted_seconds(pass_name, x_shape, out_channels, filter_size,
                                dtype)
    return "fft" if seconds["fft"] < seconds["direct"] else "direct"


# ---------------------------------------------------------------------------
# "direct": Numba kernels, or the im2col/BLAS fallback
# ---------------------------------------------------------------------------

class _Im2colBackend:
    """The direct method without Numba: the functions of the Numba module."""

    @staticmethod
    def correlate(x, weight, bias=None):
        return im2col_correlate(x, weight, bias)

    @staticmethod
    def input_gradient(dout, weight):
        return im2col_input_gradient(dout, weight)

    @staticmethod
    def weight_gradient(x, dout, filter_size):
        return im2col_weight_gradient(x, dout, filter_size)


def _direct_backend():
    """The Numba kernels, or the im2col fallback (saying so once per process)."""
    if HAVE_NUMBA:
        return conv_kernels
    warn_without_numba()
    return _Im2colBackend


def _row_chunk(n_rows, bytes_per_row):
    """Rows per chunk so that one chunk's im2col matrix fits BLOCK_BYTES."""
    return int(max(1, min(n_rows, BLOCK_BYTES // max(1, bytes_per_row))))


def im2col_correlate(x, weight, bias=None):
    """(C1) as BLAS products with im2col windows, a few rows at a time.

    ``cols[(c, u, v), (i, j)] = x[n, c, i + u, j + v]`` turns the
    correlation into ``weight.reshape(C_out, -1) @ cols``.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in, f, f)
    bias : ndarray of shape (C_out,), optional

    Returns
    -------
    ndarray of shape (N, C_out, H - f + 1, W - f + 1)
    """
    n_batch, channels, height, width = x.shape
    n_out, _, f, _ = weight.shape
    out_h, out_w = height - f + 1, width - f + 1
    weight_matrix = weight.reshape(n_out, channels * f * f)  # (C_out, K)
    out = np.empty((n_batch, n_out, out_h, out_w), dtype=x.dtype)
    rows = _row_chunk(out_h, channels * f * f * out_w * x.itemsize)
    for n in range(n_batch):
        for i0 in range(0, out_h, rows):
            i1 = min(i0 + rows, out_h)
            windows = sliding_window_view(x[n, :, i0:i1 + f - 1], (f, f),
                                          axis=(1, 2))  # (C, r, Wo, f, f)
            cols = windows.transpose(0, 3, 4, 1, 2).reshape(
                channels * f * f, (i1 - i0) * out_w)  # (K, r·Wo), a copy
            out[n, :, i0:i1] = (weight_matrix @ cols).reshape(n_out, i1 - i0,
                                                              out_w)
    if bias is not None:
        out += bias[:, None, None]
    return out


def im2col_input_gradient(dout, weight):
    """(C3) as (C1) of the zero-padded ``dout`` with flipped filters (C6)."""
    n_batch, n_out, out_h, out_w = dout.shape
    f = weight.shape[2]
    flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C_in, C_out, f, f)
    padded = np.pad(dout, ((0, 0), (0, 0), (f - 1, f - 1), (f - 1, f - 1)))
    return im2col_correlate(padded, np.ascontiguousarray(flipped))


def im2col_weight_gradient(x, dout, filter_size):
    """(C4) as ``dout.reshape(C_out, -1) @ cols.T``, a few rows at a time."""
    n_batch, channels, height, width = x.shape
    n_out, out_h, out_w = dout.shape[1:]
    f = filter_size
    dweight = np.zeros((n_out, channels * f * f), dtype=x.dtype)  # (C_out, K)
    rows = _row_chunk(out_h, channels * f * f * out_w * x.itemsize)
    for n in range(n_batch):
        for i0 in range(0, out_h, rows):
            i1 = min(i0 + rows, out_h)
            windows = sliding_window_view(x[n, :, i0:i1 + f - 1], (f, f),
                                          axis=(1, 2))  # (C, r, Wo, f, f)
            cols = windows.transpose(0, 3, 4, 1, 2).reshape(
                channels * f * f, (i1 - i0) * out_w)  # (K, r·Wo)
            dweight += dout[n, :, i0:i1].reshape(n_out, -1) @ cols.T
    return dweight.reshape(n_out, channels, f, f)


# ---------------------------------------------------------------------------
# "fft": zero-padded real FFTs (C7)-(C10)
# ---------------------------------------------------------------------------

def fft_shape(height, width):
    """FFT size for an H x W input: the smallest fast lengths >= (H, W) (C7)."""
    return (sp_fft.next_fast_len(height, real=True),
            sp_fft.next_fast_len(width, real=True))


def _rfft2_padded(a, shape):
    """``rfft2(a, s=shape)`` over the last two axes, skipping the zero rows.

    The real transform along the rows runs only over the rows of ``a``; the
    rows of zero padding are added by the complex transform along the
    columns. For a filter (f of ``shape[0]`` rows) this halves the work.

    Returns
    -------
    ndarray of shape a.shape[:-2] + (shape[0], shape[1] // 2 + 1), complex
    """
    workers = get_num_threads()
    rows = sp_fft.rfft(a, n=shape[1], axis=-1, workers=workers)
    return sp_fft.fft(rows, n=shape[0], axis=-2, workers=workers)


def _irfft2_cropped(spectrum, shape, crop):
    """``irfft2(spectrum, s=shape)[..., :crop[0], :crop[1]]``.

    Only the ``crop[0]`` rows that are kept go through the inverse real
    transform along the rows; for the f x f weight gradient this halves the
    work.
    """
    workers = get_num_threads()
    columns = sp_fft.ifft(spectrum, n=shape[0], axis=-2, workers=workers)
    rows = sp_fft.irfft(columns[..., :crop[0], :], n=shape[1], axis=-1,
                        workers=workers)
    return rows[..., :crop[1]]


def _channel_block(n_spectra, spectrum_bytes):
    """Output channels per block so that a block's spectra fit FFT_BLOCK_BYTES.

    ``n_spectra`` spectra per output channel (its filters, its outputs or
    output gradients) are live together while a block is processed.
    """
    return int(max(1, FFT_BLOCK_BYTES // max(1, n_spectra * spectrum_bytes)))


def fft_correlate(x, weight, bias=None):
    """(C1) by the FFT: ``out = irfft2(sum_c conj(W_oc) X_nc)`` cropped (C8).

    The output channels are processed in blocks small enough for the L3
    cache (FFT_BLOCK_BYTES): transform the block's filters, multiply,
    transform back, while the spectra are still in cache.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in, f, f), same dtype as ``x``
    bias : ndarray of shape (C_out,), optional

    Returns
    -------
    ndarray of shape (N, C_out, H - f + 1, W - f + 1)
    """
    n_batch, channels, height, width = x.shape
    n_out, _, f, _ = weight.shape
    out_h, out_w = height - f + 1, width - f + 1
    shape = fft_shape(height, width)
    x_hat = _rfft2_padded(x, shape)  # (N, C_in, P, Q)
    out = np.empty((n_batch, n_out, out_h, out_w), dtype=x.dtype)
    block = _channel_block(channels + n_batch, x_hat[0, 0].nbytes)
    out_hat = np.empty((n_batch, min(block, n_out)) + x_hat.shape[2:], x_hat.dtype)
    product = np.empty(x_hat.shape[2:], x_hat.dtype)  # (P, Q)
    for o0 in range(0, n_out, block):
        o1 = min(o0 + block, n_out)
        w_hat = _rfft2_padded(weight[o0:o1], shape)  # (B, C_in, P, Q)
        np.conjugate(w_hat, out=w_hat)
        for n in range(n_batch):
            for b in range(o1 - o0):
                np.multiply(w_hat[b, 0], x_hat[n, 0], out=out_hat[n, b])  # (C8)
                for c in range(1, channels):
                    np.multiply(w_hat[b, c], x_hat[n, c], out=product)
                    out_hat[n, b] += product
        out[:, o0:o1] = _irfft2_cropped(out_hat[:, :o1 - o0], shape, (out_h, out_w))
    if bias is not None:
        out += bias[:, None, None]
    return out


def fft_backward(x, weight, dout, *, input_grad=True):
    """(C3) and (C4) by the FFT, sharing the transforms of ``dout``.

    ``dX_nc = sum_o W_oc G_no`` (C9) and ``dW_oc = sum_n conj(G_no) X_nc``
    (C10), each transformed back and cropped. Output channels in blocks, as
    in :func:`fft_correlate`.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in, f, f)
    dout : ndarray of shape (N, C_out, H - f + 1, W - f + 1)
    input_grad : bool, optional
        Compute the input gradient.

    Returns
    -------
    dx : ndarray of shape (N, C_in, H, W), or None
    dweight : ndarray of shape (C_out, C_in, f, f)
    """
    n_batch, channels, height, width = x.shape
    n_out, _, f, _ = weight.shape
    shape = fft_shape(height, width)
    x_hat = _rfft2_padded(x, shape)  # (N, C_in, P, Q)
    dx_hat = np.zeros_like(x_hat) if input_grad else None
    dweight = np.empty(weight.shape, dtype=x.dtype)
    block = _channel_block(2 * channels + n_batch, x_hat[0, 0].nbytes)
    dw_hat = np.empty((min(block, n_out), channels) + x_hat.shape[2:], x_hat.dtype)
    product = np.empty(x_hat.shape[2:], x_hat.dtype)  # (P, Q)
    for o0 in range(0, n_out, block):
        o1 = min(o0 + block, n_out)
        g_hat = _rfft2_padded(dout[:, o0:o1], shape)  # (N, B, P, Q)
        if input_grad:
            w_hat = _rfft2_padded(weight[o0:o1], shape)  # (B, C_in, P, Q)
            for n in range(n_batch):
                for c in range(channels):
                    for b in range(o1 - o0):
                        np.multiply(w_hat[b, c], g_hat[n, b], out=product)  # (C9)
                        dx_hat[n, c] += product
        np.conjugate(g_hat, out=g_hat)
        for b in range(o1 - o0):
            for c in range(channels):
                np.multiply(g_hat[0, b], x_hat[0, c], out=dw_hat[b, c])  # (C10)
                for n in range(1, n_batch):
                    np.multiply(g_hat[n, b], x_hat[n, c], out=product)
                    dw_hat[b, c] += product
        dweight[o0:o1] = _irfft2_cropped(dw_hat[:o1 - o0], shape, (f, f))
    dx = None
    if input_grad:
        dx = np.ascontiguousarray(_irfft2_cropped(dx_hat, shape, (height, width)))
    return dx, dweight
