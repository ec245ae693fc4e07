"""Numba kernel of a stage's feature extraction, for float32 inference.

A stage maps its input ``x`` to the feature images by a convolution and four
pixel-wise layers (paper §3.1.1; derivations/conv2d.md, tanh.md,
recombine.md):

    features = W2 · tanh(W1 · tanh(conv(x) + b) + b1) + b2

In float64, :func:`refdeblur.network_fast.stage_features` runs them as the
layers do, as separate passes over stacks of 32 full-size images. That is
memory-bound: at 1024² each stack is 128 MiB, written and read again. This
kernel does all five on one output row at a time, in buffers that stay in
the core's cache (2048 x 32 float32 is 256 KiB), with the rows shared out
over the cores. The convolution of a row is one matrix product with the
row's im2col patches, and every product goes to BLAS.

tanh here is a rational function, not ``libm``'s ``tanhf``: ``libm`` calls
cannot be vectorised by LLVM, the rational can. It is Lambert's continued
fraction ``tanh x = x / (1 + x² / (3 + x² / (5 + ...)))`` cut after
``TANH_TERMS`` terms and written as one quotient ``x P(x²) / Q(x²)``, with
``x`` clamped to ``±TANH_CLAMP`` (``tanh(8) = 1 - 2.3e-7``). In float32 its
largest error on the whole real line is 4.1e-7 (float32 ``np.tanh``:
7.6e-8); tests/test_features_numba.py measures it and compares the whole
head against the NumPy layers.

The convolution can run two ways (``method``), both within float32
rounding of the layers:

* ``"direct"``: per output row, im2col and one sgemm, ``C f²`` multiply-adds
  per pixel and filter (the rows shared out with ``prange``);
* ``"fft"``: overlap-save over square tiles of ``T`` px (64 to 96 for
  the shipped 17 x 17 filters, chosen per image by
  :func:`fft_tile_size`). Per tile: the ``rfft2`` of its ``C`` input
  channels, the spectra multiplied by the filters' precomputed conjugate
  spectra and summed over the channels (C8 of derivations/conv2d.md), one
  batched ``irfft2`` of the 32 products, and the same head (bias, tanh,
  W1, tanh, W2) on the tile's ``(T - f + 1)²`` valid outputs while they
  are still in cache. A tile's spectra stay close to the core, which the
  32 image-sized spectra of the whole-image FFT
  (:func:`refdeblur._engine.conv_backends.fft_correlate`) do not; the tiles are
  shared out over the cores (the FFTs and the Numba kernels release the
  GIL). With 17 x 17 filters this is about a tenth of the direct method's
  arithmetic; ``benchmarks/bench_stage_features.py`` measures the two.

No fastmath is used and every row (or tile) is computed by the same code
whichever thread runs it, so the result does not depend on the number of
threads.

Without Numba (or with ``NUMBA_DISABLE_JIT=1``) the kernels run as plain
Python, minutes per image: :mod:`refdeblur.network_fast` then runs the
layers instead.
"""

import threading

import numpy as np
import scipy.fft
from numpy.polynomial import polynomial

from . import HAVE_NUMBA, njit, prange
from .threads import elementwise, for_each, get_num_threads, parallel_region

__all__ = ["stage_features", "fast_tanh", "lambert_tanh_coefficients",
           "fft_tile_size", "spectral_sum", "tanh_gradient", "TANH_TERMS", "TANH_CLAMP"]

#: Terms of Lambert's continued fraction kept (11: the fewest that reach the
#: float32 rounding floor of about 4e-7, see the module docstring).
TANH_TERMS = 11
#: |x| beyond which tanh is taken as ±tanh(TANH_CLAMP).
TANH_CLAMP = 8.0


def lambert_tanh_coefficients(terms):
    """Coefficients of ``P`` and ``Q`` with ``tanh x ≈ x P(x²) / Q(x²)``.

    Evaluates Lambert's continued fraction
    ``tanh x = x / (1 + t / (3 + t / (5 + ... t / (2n+1))))``, ``t = x²``,
    from the bottom up as a ratio of polynomials in ``t``.

    Parameters
    ----------
    terms : int
        Number ``n + 1`` of partial denominators ``1, 3, ..., 2n+1``.

    Returns
    -------
    p, q : ndarray of float64
        Coefficients in increasing powers of ``t``; all positive, so the
        float32 Horner evaluation has no cancellation.
    """
    numerator = np.array([2.0 * terms + 1.0])     # the innermost 2n+1
    denominator = np.array([1.0])
    for k in range(terms - 1, -1, -1):
        # R_k = (2k+1) + t / R_{k+1}, R_{k+1} = numerator / denominator
        numerator, denominator = (
            polynomial.polyadd((2 * k + 1) * numerator,
                               polynomial.polymulx(denominator)),
            numerator)
    return denominator, numerator                 # tanh x = x / R_0


_P, _Q = (c.astype(np.float32) for c in lambert_tanh_coefficients(TANH_TERMS))
# Numba freezes module-level scalars as compile-time constants.
P0, P1, P2, P3, P4, P5 = (np.float32(c) for c in _P)
Q0, Q1, Q2, Q3, Q4, Q5, Q6 = (np.float32(c) for c in _Q)
_CLAMP = np.float32(TANH_CLAMP)


@njit(inline="always", cache=True, error_model="numpy")
def _tanh(x):
    # Plain comparisons, not min/max, and error_model="numpy" (no
    # ZeroDivisionError branch): both are needed for LLVM to vectorise.
    if x > _CLAMP:
        x = _CLAMP
    if x < -_CLAMP:
        x = -_CLAMP
    t = x * x
    p = ((((P5 * t + P4) * t + P3) * t + P2) * t + P1) * t + P0
    q = (((((Q6 * t + Q5) * t + Q4) * t + Q3) * t + Q2) * t + Q1) * t + Q0
    return x * p / q


@njit(cache=True, error_model="numpy")
def _tanh_array(x, out):
    flat_in = x.reshape(-1)
    flat_out = out.reshape(-1)
    for index in range(flat_in.size):
        flat_out[index] = _tanh(flat_in[index])


def fast_tanh(x):
    """The kernel's tanh on a float32 array (for tests and inspection)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    _tanh_array(x, out)
    return out


@njit(nogil=True, cache=True)
def _tanh_gradient_kernel(dout, y, one, dx):
    # ``one`` in the arrays' dtype: a float64 literal would promote float32
    for index in range(dout.size):
        value = y[index]
        dx[index] = dout[index] * (one - value * value)


def tanh_gradient(dout, y):
    """``dout * (1 - y**2)``, the derivative of tanh at its output ``y`` (T2).

    One pass over the arrays, spread over the cores, instead of NumPy's
    three passes and two temporaries; the same operations in the same
    order, so the same bits. NumPy's expression without Numba, or for
    arrays that are not C-contiguous float32/float64 arrays of one dtype.

    Parameters
    ----------
    dout, y : ndarray
        Same shape.

    Returns
    -------
    ndarray
        In the dtype of ``dout * y``.
    """
    if (not HAVE_NUMBA or dout.dtype != y.dtype or dout.shape != y.shape
            or dout.dtype not in (np.float32, np.float64)
            or not (dout.flags.c_contiguous and y.flags.c_contiguous)):
        return dout * (1.0 - y * y)
    dx = np.empty_like(dout)
    flat_dout, flat_y, flat_dx = dout.reshape(-1), y.reshape(-1), dx.reshape(-1)
    one = dout.dtype.type(1.0)
    # The thread pool, not a prange: a Numba parallel region measured ten
    # times slower than this one pass on a busy 2-core machine.
    elementwise(lambda span: _tanh_gradient_kernel(flat_dout[span], flat_y[span], one,
                                                   flat_dx[span]), flat_dout.size)
    return dx


@njit(parallel=True, cache=True, error_model="numpy")
def _stage_features_kernel(x, wconv_t, bconv, filter_size, w1_t, b1, w2_t, b2, out):
    n_batch, n_channels, _, _ = x.shape
    _, n_out, height, width = out.shape
    n_filters = wconv_t.shape[1]
    n_hidden = w1_t.shape[1]
    for task in prange(n_batch * height):
        n = task // height
        i = task % height
        # im2col of output row i: one matrix row per output pixel j, holding
        # its taps (c, u, v) in the filters' C order, so that the 'valid'
        # correlation (C1) of the row is one sgemm. Pixels as rows (not
        # columns) measured about 13 % faster in OpenBLAS.
        patches = np.empty((width, n_channels * filter_size * filter_size),
                           dtype=np.float32)
        for c in range(n_channels):
            for u in range(filter_size):
                source = x[n, c, i + u]
                first_tap = (c * filter_size + u) * filter_size
                for j in range(width):
                    taps = patches[j]
                    for v in range(filter_size):
                        taps[first_tap + v] = source[j + v]
        activation = np.dot(patches, wconv_t)                       # conv
        for j in range(width):                                      # bias, tanh
            pixel = activation[j]
            for f in range(n_filters):
                pixel[f] = _tanh(pixel[f] + bconv[f])
        hidden = np.dot(activation, w1_t)                           # W1
        for j in range(width):                                      # b1, tanh
            pixel = hidden[j]
            for h in range(n_hidden):
                pixel[h] = _tanh(pixel[h] + b1[h])
        features = np.dot(hidden, w2_t)                             # W2
        for o in range(n_out):                                      # b2
            row = out[n, o, i]
            bias = b2[o]
            for j in range(width):
                row[j] = features[j, o] + bias


@njit(nogil=True, cache=True, error_model="numpy")
def spectral_sum(filter_spectra, tile_spectra, out):
    """``out[o] = sum_c filter_spectra[c, o] * tile_spectra[c]`` (C8), in place.

    The filters' conjugate spectra are stored, so this is the correlation
    of a tile with every filter. Rows in the innermost loop so that LLVM
    vectorises the complex products.
    """
    n_channels, n_filters, rows, columns = filter_spectra.shape
    for o in range(n_filters):
        for p in range(rows):
            out_row = out[o, p]
            filter_row = filter_spectra[0, o, p]
            tile_row = tile_spectra[0, p]
            for q in range(columns):
                out_row[q] = filter_row[q] * tile_row[q]
            for c in range(1, n_channels):
                filter_row = filter_spectra[c, o, p]
                tile_row = tile_spectra[c, p]
                for q in range(columns):
                    out_row[q] += filter_row[q] * tile_row[q]


@njit(nogil=True, cache=True, error_model="numpy")
def _tile_head(conv_out, valid_h, valid_w, bconv, w1, b1, w2, b2, out, row0, col0):
    # The head of the direct kernel on a tile's valid convolution outputs
    # conv_out[:, :valid_h, :valid_w], written to out[:, row0:, col0:].
    n_filters = conv_out.shape[0]
    n_pixels = valid_h * valid_w
    activation = np.empty((n_filters, n_pixels), dtype=np.float32)
    for f in range(n_filters):
        pixels = activation[f]
        bias = bconv[f]
        for i in range(valid_h):
            source = conv_out[f, i]
            for j in range(valid_w):
                pixels[i * valid_w + j] = _tanh(source[j] + bias)
    hidden = np.dot(w1, activation)                                 # W1
    for h in range(hidden.shape[0]):
        pixels = hidden[h]
        bias = b1[h]
        for m in range(n_pixels):
            pixels[m] = _tanh(pixels[m] + bias)
    features = np.dot(w2, hidden)                                   # W2
    for o in range(features.shape[0]):
        bias = b2[o]
        for i in range(valid_h):
            target = out[o, row0 + i]
            source = features[o]
            for j in range(valid_w):
                target[col0 + j] = source[i * valid_w + j] + bias


def _float32(array, length):
    if array is None:
        return np.zeros(length, np.float32)
    return np.ascontiguousarray(array, dtype=np.float32)


#: Tile sides tried by :func:`fft_tile_size`: lengths with small prime
#: factors. Measured per valid output pixel, 96 and 128 px tiles were the
#: cheapest and 108 to 160 px ones 10 to 20 % dearer (the tile's 32
#: spectra leave the core's cache), but 128 px ones lose to 96 px ones
#: through load balance on all but the largest images.
_TILE_SIDES = (64, 72, 80, 96)


def fft_tile_size(out_height, out_width, filter_size, *, channels=1, batch=1,
                  workers=None):
    """The overlap-save tile side for ``out_height x out_width`` outputs.

    A tile yields ``T - f + 1`` outputs per side. Its cost is taken as
    ``T² log2 T`` (its FFTs; the head's work is the same whatever the
    tiling), the tiles are dealt out to ``workers`` cores, and the
    filters' spectra cost about ``channels`` tiles more, shared by the
    cores. Minimised over :data:`_TILE_SIDES` (and, for filters too large
    for them, the fast lengths from two to four filter sizes).
    """
    if workers is None:
        workers = get_num_threads()
    sides = [side for side in _TILE_SIDES if side >= 2 * filter_size]
    if not sides:
        sides = sorted({scipy.fft.next_fast_len(n, real=True)
                        for n in range(2 * filter_size, 4 * filter_size + 1)})

    def work(side):
        valid = side - filter_size + 1
        tiles = batch * -(-out_height // valid) * -(-out_width // valid)
        rounds = -(-tiles // workers) + channels / workers
        return rounds * side * side * np.log2(side), side

    return min(work(side) for side in sides)[1]


def _uses_fft(channels, out_height, out_width, filter_size):
    """``method="auto"``: where the tiled FFT measured faster than direct."""
    # 17 x 17 filters (benchmarks/bench_stage_features.py): 1.4 to 1.9 times
    # faster from 200 px with two input channels; with one, from about
    # 300 px (the direct method's work grows with the channels, the FFT's
    # hardly).
    return filter_size >= 9 and channels * out_height * out_width >= 2 * 200 * 200


def _stage_features_fft(x, conv_weight, bconv, w1, b1, w2, b2, out, side):
    n_batch = x.shape[0]
    n_filters, _, filter_size, _ = conv_weight.shape
    out_h, out_w = out.shape[-2:]
    valid = side - filter_size + 1
    # (C8) by correlation: the conjugate spectra, (C, F, T, T//2+1)
    filter_spectra = np.conjugate(scipy.fft.rfft2(
        conv_weight.transpose(1, 0, 2, 3), s=(side, side),
        workers=get_num_threads())).astype(np.complex64)
    tiles = [(n, row0, col0) for n in range(n_batch)
             for row0 in range(0, out_h, valid) for col0 in range(0, out_w, valid)]
    buffers = threading.local()

    def one_tile(index):
        n, row0, col0 = tiles[index]
        if not hasattr(buffers, "products"):
            buffers.products = np.empty((n_filters, side, side // 2 + 1), np.complex64)
        tile_spectra = scipy.fft.rfft2(x[n, :, row0:row0 + side, col0:col0 + side],
                                       s=(side, side), workers=1)  # zero-padded
        spectral_sum(filter_spectra, tile_spectra, buffers.products)
        conv_out = scipy.fft.irfft2(buffers.products, s=(side, side), workers=1)
        # Output (i, j) of the tile needs inputs up to i + f - 1 < T: these
        # circular correlations equal the linear ones.
        _tile_head(conv_out, min(valid, out_h - row0), min(valid, out_w - col0),
                   bconv, w1, b1, w2, b2, out[n], row0, col0)

    # A tile's work is its FFTs, about F T² log2(T²) operations: far above
    # the thread hand-off cost even for the smallest tile.
    for_each(one_tile, len(tiles), int(2 * n_filters * side * side * np.log2(side)))


def stage_features(x, conv_weight, weight1, weight2, conv_bias=None, bias1=None,
                   bias2=None, *, method="auto", tile_size=None):
    """A stage's whole pixel pipeline, conv to features, in float32.

    ``W2 tanh(W1 tanh(conv(x) + b) + b1) + b2`` with ``conv`` the 'valid'
    correlation of :class:`refdeblur.layers.conv2d.Conv2D` (C1). No image
    of the 32 convolution outputs is ever stored: each row (``"direct"``)
    or tile (``"fft"``) of them lives only while its features are computed.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
        Stage input.
    conv_weight : ndarray of shape (F, C, f, f)
    weight1 : ndarray of shape (K, F)
    weight2 : ndarray of shape (P, K)
    conv_bias, bias1, bias2 : ndarray of shape (F,), (K,), (P,), optional
    method : {"auto", "direct", "fft"}, optional
        How the convolution is computed (see the module docstring).
        ``"auto"``: the FFT for filters of 9 px and more on outputs of at
        least ``2 x 200² / C`` pixels (200² for two input channels, 283²
        for one), where it measured faster; else direct.
    tile_size : int, optional
        Side ``T >= f`` of the FFT tiles (default :func:`fft_tile_size`);
        for tests and benchmarks.

    Returns
    -------
    ndarray of shape (N, P, H - f + 1, W - f + 1), float32
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_filters, channels, filter_size, filter_size2 = conv_weight.shape
    if (x.ndim != 4 or channels != x.shape[1] or filter_size != filter_size2
            or weight1.shape[1] != n_filters or weight2.shape[1] != weight1.shape[0]):
        raise ValueError(f"shapes do not chain: x {x.shape}, conv {conv_weight.shape}, "
                         f"W1 {weight1.shape}, W2 {weight2.shape}")
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"method must be 'auto', 'direct' or 'fft', not {method!r}")
    n_batch, _, height, width = x.shape
    if height < filter_size or width < filter_size:
        raise ValueError(f"input {height}x{width} is smaller than the "
                         f"{filter_size}x{filter_size} filters")
    out_h, out_w = height - filter_size + 1, width - filter_size + 1
    if method == "auto":
        method = "fft" if _uses_fft(channels, out_h, out_w, filter_size) else "direct"

    def transposed(weight):
        return np.ascontiguousarray(weight.T, dtype=np.float32)

    out = np.empty((n_batch, weight2.shape[0], out_h, out_w), dtype=np.float32)
    bconv = _float32(conv_bias, n_filters)
    b1 = _float32(bias1, weight1.shape[0])
    b2 = _float32(bias2, weight2.shape[0])
    if method == "fft":
        if tile_size is None:
            tile_size = fft_tile_size(out_h, out_w, filter_size, channels=channels,
                                      batch=n_batch)
        if tile_size < filter_size:
            raise ValueError(f"tile_size {tile_size} is smaller than the "
                             f"{filter_size}x{filter_size} filters")
        _stage_features_fft(
            x, np.asarray(conv_weight, dtype=np.float32), bconv,
            np.ascontiguousarray(weight1, dtype=np.float32), b1,
            np.ascontiguousarray(weight2, dtype=np.float32), b2, out, int(tile_size))
    else:
        with parallel_region():
            _stage_features_kernel(
                x, transposed(conv_weight.reshape(n_filters, -1)), bconv, filter_size,
                transposed(weight1), b1, transposed(weight2), b2, out)
    return out
