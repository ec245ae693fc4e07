"""How :class:`refdeblur.layers.conv2d.Conv2D` computes its maps.

The layer's maths, (C1)-(C10), is in derivations/conv2d.md; this module
holds the three ways of computing it and the choice between them:

* ``"direct"``: loops over the filter taps, compiled with Numba
  (:mod:`refdeblur._engine.conv`). Without Numba it falls back, with the
  package's one-time warning (:func:`refdeblur._engine.warn_without_numba`),
  to im2col windows and BLAS matrix products (:func:`im2col_correlate` and
  friends below).
* ``"fft"``: products of zero-padded real FFTs, exact up to rounding because
  the padding removes every circular wrap-around (C7)-(C10). One task per
  sample (and block of output channels) on refdeblur's thread pool, each
  with single-threaded transforms and the per-frequency products in Numba
  kernels (NumPy expressions without Numba); the forward pass keeps the
  spectra of the filters and of the input for the backward pass.
* ``"auto"``: whichever a cost model, calibrated with
  ``benchmarks/bench_layers.py --calibrate``, predicts to be faster for the
  sizes at hand (derivations/conv2d.md §7); decided separately for the
  forward and the backward pass.

The layer calls :func:`resolve_method`, then :func:`correlate` (forward) or
:func:`gradients` (backward).
"""

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sp_fft

from . import HAVE_NUMBA, warn_without_numba
from . import conv as conv_kernels
from .threads import for_each, get_num_threads

__all__ = ["METHODS", "PASSES", "resolve_method", "correlate", "gradients",
           "choose_method", "predicted_seconds", "work_counts", "COST_CONSTANTS",
           "fft_shape", "fft_correlate", "fft_backward", "FFTSpectra",
           "spectral_correlate_numpy", "spectral_input_gradient_numpy",
           "spectral_weight_gradient_numpy", "im2col_correlate",
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

#: Bytes of the spectra one task of the FFT path works on: output channels
#: are processed in blocks this small, so that a block stays in the core's
#: L2 cache (1 MiB on the reference machine) between its products and its
#: transforms.
FFT_BLOCK_BYTES = 1 << 20

# Tasks of the FFT path are whole transforms of many spectra: always worth
# a thread hand-off (see threads.for_each).
_TASK_ELEMENTS = 1 << 30


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


def correlate(x, weight, bias=None, *, method, keep_spectra=False):
    """The 'valid' correlation plus bias (C1).

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
        C-contiguous, float32 or float64.
    weight : ndarray of shape (C_out, C_in, f, f)
        C-contiguous, in the dtype of ``x``.
    bias : ndarray of shape (C_out,), optional
    method : {"direct", "fft"}
    keep_spectra : bool, optional
        Also return what :func:`gradients` can reuse: the
        :class:`FFTSpectra` of the FFT path, None for the direct one.

    Returns
    -------
    out : ndarray of shape (N, C_out, H - f + 1, W - f + 1)
    spectra : FFTSpectra or None
        Only if ``keep_spectra``.
    """
    if method == "fft":
        return fft_correlate(x, weight, bias, keep_spectra=keep_spectra)  # (C8)
    out = _direct_backend().correlate(x, weight, bias)
    return (out, None) if keep_spectra else out


def gradients(x, weight, dout, *, method, input_grad=True, spectra=None):
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
    spectra : FFTSpectra, optional
        What :func:`correlate` kept for these ``x`` and ``weight`` (FFT path).

    Returns
    -------
    dx : ndarray of shape (N, C_in, H, W), or None
        None when ``input_grad`` is False.
    dweight : ndarray of shape (C_out, C_in, f, f)
    """
    if method == "fft":
        return fft_backward(x, weight, dout, input_grad=input_grad, spectra=spectra)
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

class FFTSpectra(NamedTuple):
    """The spectra a forward FFT pass computed, for the backward pass to reuse."""

    filters: np.ndarray  # conj(F w), (C_out, C_in, P, Q): (C8), (C9)
    inputs: np.ndarray   # F x, (N, C_in, P, Q): (C10)


def fft_shape(height, width):
    """FFT size for an H x W input: the smallest fast lengths >= (H, W) (C7)."""
    return (sp_fft.next_fast_len(height, real=True),
            sp_fft.next_fast_len(width, real=True))


def _rfft2_padded(a, shape, workers=None):
    """``rfft2(a, s=shape)`` over the last two axes, skipping the zero rows.

    The real transform along the rows runs only over the rows of ``a``; the
    rows of zero padding are added by the complex transform along the
    columns. For a filter (f of ``shape[0]`` rows) this halves the work.

    Returns
    -------
    ndarray of shape a.shape[:-2] + (shape[0], shape[1] // 2 + 1), complex
    """
    workers = get_num_threads() if workers is None else workers
    rows = sp_fft.rfft(a, n=shape[1], axis=-1, workers=workers)
    return sp_fft.fft(rows, n=shape[0], axis=-2, workers=workers, overwrite_x=True)


def _irfft2_cropped(spectrum, shape, crop, workers=None, *, overwrite=False):
    """``irfft2(spectrum, s=shape)[..., :crop[0], :crop[1]]``.

    Only the ``crop[0]`` rows that are kept go through the inverse real
    transform along the rows; for the f x f weight gradient this halves the
    work. ``overwrite``: ``spectrum`` is a temporary the transform may use.
    """
    workers = get_num_threads() if workers is None else workers
    columns = sp_fft.ifft(spectrum, n=shape[0], axis=-2, workers=workers,
                          overwrite_x=overwrite)
    rows = sp_fft.irfft(columns[..., :crop[0], :], n=shape[1], axis=-1,
                        workers=workers)
    return rows[..., :crop[1]]


def spectral_correlate_numpy(filter_spectra, spectra, out):
    """NumPy form of :func:`refdeblur._engine.conv.spectral_correlate_kernel` (C8)."""
    np.multiply(filter_spectra[:, 0], spectra[0], out=out)
    for c in range(1, spectra.shape[0]):
        out += filter_spectra[:, c] * spectra[c]


def spectral_input_gradient_numpy(filter_spectra, grad_spectra, out):
    """NumPy form of :func:`refdeblur._engine.conv.spectral_input_gradient_kernel` (C9)."""
    np.multiply(np.conjugate(filter_spectra[0]), grad_spectra[0], out=out)
    for o in range(1, grad_spectra.shape[0]):
        out += np.conjugate(filter_spectra[o]) * grad_spectra[o]


def spectral_weight_gradient_numpy(grad_spectra, spectra, o, out):
    """NumPy form of :func:`refdeblur._engine.conv.spectral_weight_gradient_kernel` (C10)."""
    np.multiply(np.conjugate(grad_spectra[0, o]), spectra[0], out=out)
    for n in range(1, spectra.shape[0]):
        out += np.conjugate(grad_spectra[n, o]) * spectra[n]


def _spectral_products():
    """The products (C8), (C9), (C10): the Numba kernels, or their NumPy forms."""
    if HAVE_NUMBA:
        return (conv_kernels.spectral_correlate_kernel,
                conv_kernels.spectral_input_gradient_kernel,
                conv_kernels.spectral_weight_gradient_kernel)
    return (spectral_correlate_numpy, spectral_input_gradient_numpy,
            spectral_weight_gradient_numpy)


def _channel_blocks(n_channels, spectrum_bytes):
    """Spans of output channels whose spectra together fit FFT_BLOCK_BYTES.

    Depends on the sizes only, never on the thread count, so that the same
    transforms run whatever the number of threads.
    """
    size = int(max(1, min(n_channels, FFT_BLOCK_BYTES // max(1, spectrum_bytes))))
    count = -(-n_channels // size)
    edges = [n_channels * k // count for k in range(count + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def fft_correlate(x, weight, bias=None, *, keep_spectra=False):
    """(C1) by the FFT: ``out = irfft2(sum_c conj(W_oc) X_nc)`` cropped (C8).

    One task per sample and block of output channels, on the thread pool:
    multiply the sample's spectra by the block's filter spectra, transform
    back and crop, while the block's spectra are still in cache.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in, f, f), same dtype as ``x``
    bias : ndarray of shape (C_out,), optional
    keep_spectra : bool, optional
        Also return the spectra of the filters and of ``x``, which
        :func:`fft_backward` can reuse.

    Returns
    -------
    out : ndarray of shape (N, C_out, H - f + 1, W - f + 1)
    spectra : FFTSpectra
        Only if ``keep_spectra``.
    """
    n_batch, channels, height, width = x.shape
    n_out, _, f, _ = weight.shape
    out_h, out_w = height - f + 1, width - f + 1
    shape = fft_shape(height, width)
    filters = np.conjugate(_rfft2_padded(weight, shape))   # (C_out, C_in, P, Q)
    inputs = _rfft2_padded(x, shape)                       # (N, C_in, P, Q)
    out = np.empty((n_batch, n_out, out_h, out_w), dtype=x.dtype)
    blocks = _channel_blocks(n_out, 2 * inputs[0, 0].nbytes)
    correlate_products = _spectral_products()[0]

    def task(index):
        n, span = divmod(index, len(blocks))
        span = blocks[span]
        products = np.empty((span.stop - span.start,) + inputs.shape[2:], inputs.dtype)
        correlate_products(filters[span], inputs[n], products)           # (C8)
        rows = _irfft2_cropped(products, shape, (out_h, out_w), 1, overwrite=True)
        if bias is None:
            out[n, span] = rows
        else:
            np.add(rows, bias[span, None, None], out=out[n, span])

    for_each(task, n_batch * len(blocks), _TASK_ELEMENTS)
    if keep_spectra:
        return out, FFTSpectra(filters, inputs)
    return out


def fft_backward(x, weight, dout, *, input_grad=True, spectra=None):
    """(C3) and (C4) by the FFT, sharing the transforms of ``dout``.

    ``dX_nc = sum_o W_oc G_no`` (C9) and ``dW_oc = sum_n conj(G_no) X_nc``
    (C10), each transformed back and cropped. The transforms of ``dout``
    and the input gradient run one task per sample, the weight gradient one
    task per block of output channels, on the thread pool.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in, f, f)
    dout : ndarray of shape (N, C_out, H - f + 1, W - f + 1)
    input_grad : bool, optional
        Compute the input gradient.
    spectra : FFTSpectra, optional
        From :func:`fft_correlate` with these ``x`` and ``weight``; computed
        here if not given.

    Returns
    -------
    dx : ndarray of shape (N, C_in, H, W), or None
    dweight : ndarray of shape (C_out, C_in, f, f)
    """
    n_batch, channels, height, width = x.shape
    n_out, _, f, _ = weight.shape
    shape = fft_shape(height, width)
    if spectra is None:
        spectra = FFTSpectra(np.conjugate(_rfft2_padded(weight, shape)),
                             _rfft2_padded(x, shape))
    filters, inputs = spectra
    _, input_products, weight_products = _spectral_products()
    grads = np.empty((n_batch, n_out) + inputs.shape[2:], inputs.dtype)
    dx = np.empty(x.shape, dtype=x.dtype) if input_grad else None

    def sample_task(n):
        grads[n] = _rfft2_padded(dout[n], shape, 1)
        if input_grad:
            products = np.empty(inputs.shape[1:], inputs.dtype)
            input_products(filters, grads[n], products)                   # (C9)
            dx[n] = _irfft2_cropped(products, shape, (height, width), 1, overwrite=True)

    for_each(sample_task, n_batch, _TASK_ELEMENTS)
    dweight = np.empty(weight.shape, dtype=x.dtype)
    blocks = _channel_blocks(n_out, channels * inputs[0, 0].nbytes)

    def weight_task(block):
        span = blocks[block]
        products = np.empty((span.stop - span.start,) + inputs.shape[1:], inputs.dtype)
        for o in range(span.start, span.stop):
            weight_products(grads, inputs, o, products[o - span.start])  # (C10)
        dweight[span] = _irfft2_cropped(products, shape, (f, f), 1, overwrite=True)

    for_each(weight_task, len(blocks), _TASK_ELEMENTS)
    return dx, dweight
