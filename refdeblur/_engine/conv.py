"""Numba loop kernels of the 'valid' multi-channel correlation and its adjoints.

Importable without numba, where the kernels are the same loops run as plain
Python (for their tests only: :mod:`refdeblur._engine.conv_backends` then
runs im2col and BLAS instead). The maths and the equation numbers (C1)-(C6)
are in derivations/conv2d.md; the layer is ``refdeblur.layers.conv2d.Conv2D``.

Two kernels do all the work:

:func:`correlate_valid_kernel`
    ``out[n, o, i, j] += sum_t w[o, t] * x[n, c_t, i + u_t, j + v_t]`` over
    the flattened taps ``t = (c, u, v)``. It is the forward pass (C1) and,
    applied to the zero-padded output gradient with the flipped, transposed
    filters, the input gradient (C3) in the form (C6).
:func:`weight_gradient_kernel`
    ``dw[o, t] = sum_{n, i, j} g[n, o, i, j] * x[n, c_t, i + u_t, j + v_t]``,
    the weight gradient (C4).

Three more, :func:`spectral_correlate_kernel`,
:func:`spectral_input_gradient_kernel` and
:func:`spectral_weight_gradient_kernel`, are the per-frequency products
(C8)-(C10) of the FFT path of :mod:`refdeblur._engine.conv_backends`, one
image or one output channel per call, without the GIL.

How they are made fast, without fastmath (every sum is evaluated in a fixed
order, so results do not depend on the number of threads):

* The innermost loop always runs along a contiguous image row, so LLVM
  vectorises it, and it carries no reduction (a float reduction cannot be
  vectorised without reassociation, i.e. without fastmath).
* Register blocking: one pass over a row updates 4 (or 2, or 1) output rows
  with 8 taps at once, so every input element loaded feeds 32 multiply-adds
  and every accumulator load/store is amortised over 8 taps.
* ``prange`` runs over tasks whose outputs are disjoint: (sample, row,
  output-channel block) in :func:`correlate_valid_kernel`; in
  :func:`weight_gradient_kernel` each task owns a private slice of a partial-sum
  array that :func:`weight_gradient` sums in a fixed order. The task
  split depends only on the array shapes, never on the thread count.
"""

from functools import lru_cache

import numpy as np

from . import njit, prange
from .threads import parallel_region

__all__ = ["correlate", "input_gradient", "weight_gradient",
           "correlate_valid_kernel", "weight_gradient_kernel", "flat_taps",
           "spectral_correlate_kernel", "spectral_input_gradient_kernel",
           "spectral_weight_gradient_kernel"]

#: Taps per inner loop of :func:`correlate_valid_kernel`.
TAP_BLOCK = 8
#: Columns per chunk in :func:`weight_gradient_kernel`: 16 partial-sum rows of this
#: length (16 KiB in float64) stay in the 32 KiB L1 data cache.
COLUMN_CHUNK = 128
#: Output rows per task in :func:`weight_gradient_kernel`. Longer chunks amortise
#: the final fold of the partial sums; 64 measured best (8 to 128 tried).
ROW_CHUNK = 64
#: Width of the vector lanes the partial sums are folded into.
LANES = 8


@lru_cache(maxsize=64)
def flat_taps(channels, filter_size):
    """Channel, row and column of every tap of a filter, in C order.

    Parameters
    ----------
    channels, filter_size : int

    Returns
    -------
    tap_c, tap_u, tap_v : ndarray of int64, shape (channels * filter_size**2,)
        Tap ``t`` of ``w.reshape(C_out, -1)`` multiplies
        ``x[:, tap_c[t], i + tap_u[t], j + tap_v[t]]``. Read-only (cached).
    """
    grids = np.meshgrid(np.arange(channels), np.arange(filter_size),
                        np.arange(filter_size), indexing="ij")
    taps = tuple(np.ascontiguousarray(g.ravel(), dtype=np.int64) for g in grids)
    for tap in taps:
        tap.setflags(write=False)
    return taps


# ---------------------------------------------------------------------------
# correlate_valid_kernel: forward (C1) and input gradient (C3)
# ---------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _tap_rows(xn, tap_c, tap_u, tap_v, t, i):
    """The 8 input rows, shifted by their tap column, that taps t..t+7 read."""
    return (xn[tap_c[t], i + tap_u[t], tap_v[t]:],
            xn[tap_c[t + 1], i + tap_u[t + 1], tap_v[t + 1]:],
            xn[tap_c[t + 2], i + tap_u[t + 2], tap_v[t + 2]:],
            xn[tap_c[t + 3], i + tap_u[t + 3], tap_v[t + 3]:],
            xn[tap_c[t + 4], i + tap_u[t + 4], tap_v[t + 4]:],
            xn[tap_c[t + 5], i + tap_u[t + 5], tap_v[t + 5]:],
            xn[tap_c[t + 6], i + tap_u[t + 6], tap_v[t + 6]:],
            xn[tap_c[t + 7], i + tap_u[t + 7], tap_v[t + 7]:])


@njit(cache=True, inline="always")
def _correlate_row_4(xn, w, tap_c, tap_u, tap_v, i, o, outn):
    """Output rows ``outn[o:o+4, i]`` += their correlation sums (C1)."""
    n_taps = w.shape[1]
    width = outn.shape[2]
    acc0 = outn[o, i]
    acc1 = outn[o + 1, i]
    acc2 = outn[o + 2, i]
    acc3 = outn[o + 3, i]
    t = 0
    while t + TAP_BLOCK <= n_taps:
        r0, r1, r2, r3, r4, r5, r6, r7 = _tap_rows(xn, tap_c, tap_u, tap_v, t, i)
        # 32 filter taps held in registers for the whole row
        w00, w01, w02, w03 = w[o, t], w[o, t + 1], w[o, t + 2], w[o, t + 3]
        w04, w05, w06, w07 = w[o, t + 4], w[o, t + 5], w[o, t + 6], w[o, t + 7]
        w10, w11, w12, w13 = w[o + 1, t], w[o + 1, t + 1], w[o + 1, t + 2], w[o + 1, t + 3]
        w14, w15, w16, w17 = w[o + 1, t + 4], w[o + 1, t + 5], w[o + 1, t + 6], w[o + 1, t + 7]
        w20, w21, w22, w23 = w[o + 2, t], w[o + 2, t + 1], w[o + 2, t + 2], w[o + 2, t + 3]
        w24, w25, w26, w27 = w[o + 2, t + 4], w[o + 2, t + 5], w[o + 2, t + 6], w[o + 2, t + 7]
        w30, w31, w32, w33 = w[o + 3, t], w[o + 3, t + 1], w[o + 3, t + 2], w[o + 3, t + 3]
        w34, w35, w36, w37 = w[o + 3, t + 4], w[o + 3, t + 5], w[o + 3, t + 6], w[o + 3, t + 7]
        for j in range(width):
            x0, x1, x2, x3 = r0[j], r1[j], r2[j], r3[j]
            x4, x5, x6, x7 = r4[j], r5[j], r6[j], r7[j]
            acc0[j] += (w00 * x0 + w01 * x1 + w02 * x2 + w03 * x3
                        + w04 * x4 + w05 * x5 + w06 * x6 + w07 * x7)
            acc1[j] += (w10 * x0 + w11 * x1 + w12 * x2 + w13 * x3
                        + w14 * x4 + w15 * x5 + w16 * x6 + w17 * x7)
            acc2[j] += (w20 * x0 + w21 * x1 + w22 * x2 + w23 * x3
                        + w24 * x4 + w25 * x5 + w26 * x6 + w27 * x7)
            acc3[j] += (w30 * x0 + w31 * x1 + w32 * x2 + w33 * x3
                        + w34 * x4 + w35 * x5 + w36 * x6 + w37 * x7)
        t += TAP_BLOCK
    while t < n_taps:
        row = xn[tap_c[t], i + tap_u[t], tap_v[t]:]
        w0, w1, w2, w3 = w[o, t], w[o + 1, t], w[o + 2, t], w[o + 3, t]
        for j in range(width):
            xv = row[j]
            acc0[j] += w0 * xv
            acc1[j] += w1 * xv
            acc2[j] += w2 * xv
            acc3[j] += w3 * xv
        t += 1


@njit(cache=True, inline="always")
def _correlate_row_2(xn, w, tap_c, tap_u, tap_v, i, o, outn):
    """Output rows ``outn[o:o+2, i]`` += their correlation sums (C1)."""
    n_taps = w.shape[1]
    width = outn.shape[2]
    acc0 = outn[o, i]
    acc1 = outn[o + 1, i]
    t = 0
    while t + TAP_BLOCK <= n_taps:
        r0, r1, r2, r3, r4, r5, r6, r7 = _tap_rows(xn, tap_c, tap_u, tap_v, t, i)
        w00, w01, w02, w03 = w[o, t], w[o, t + 1], w[o, t + 2], w[o, t + 3]
        w04, w05, w06, w07 = w[o, t + 4], w[o, t + 5], w[o, t + 6], w[o, t + 7]
        w10, w11, w12, w13 = w[o + 1, t], w[o + 1, t + 1], w[o + 1, t + 2], w[o + 1, t + 3]
        w14, w15, w16, w17 = w[o + 1, t + 4], w[o + 1, t + 5], w[o + 1, t + 6], w[o + 1, t + 7]
        for j in range(width):
            x0, x1, x2, x3 = r0[j], r1[j], r2[j], r3[j]
            x4, x5, x6, x7 = r4[j], r5[j], r6[j], r7[j]
            acc0[j] += (w00 * x0 + w01 * x1 + w02 * x2 + w03 * x3
                        + w04 * x4 + w05 * x5 + w06 * x6 + w07 * x7)
            acc1[j] += (w10 * x0 + w11 * x1 + w12 * x2 + w13 * x3
                        + w14 * x4 + w15 * x5 + w16 * x6 + w17 * x7)
        t += TAP_BLOCK
    while t < n_taps:
        row = xn[tap_c[t], i + tap_u[t], tap_v[t]:]
        w0, w1 = w[o, t], w[o + 1, t]
        for j in range(width):
            xv = row[j]
            acc0[j] += w0 * xv
            acc1[j] += w1 * xv
        t += 1


@njit(cache=True, inline="always")
def _correlate_row_1(xn, w, tap_c, tap_u, tap_v, i, o, outn):
    """Output row ``outn[o, i]`` += its correlation sum (C1)."""
    n_taps = w.shape[1]
    width = outn.shape[2]
    acc0 = outn[o, i]
    t = 0
    while t + TAP_BLOCK <= n_taps:
        r0, r1, r2, r3, r4, r5, r6, r7 = _tap_rows(xn, tap_c, tap_u, tap_v, t, i)
        w00, w01, w02, w03 = w[o, t], w[o, t + 1], w[o, t + 2], w[o, t + 3]
        w04, w05, w06, w07 = w[o, t + 4], w[o, t + 5], w[o, t + 6], w[o, t + 7]
        for j in range(width):
            acc0[j] += (w00 * r0[j] + w01 * r1[j] + w02 * r2[j] + w03 * r3[j]
                        + w04 * r4[j] + w05 * r5[j] + w06 * r6[j] + w07 * r7[j])
        t += TAP_BLOCK
    while t < n_taps:
        row = xn[tap_c[t], i + tap_u[t], tap_v[t]:]
        w0 = w[o, t]
        for j in range(width):
            acc0[j] += w0 * row[j]
        t += 1


@njit(parallel=True, cache=True)
def correlate_valid_kernel(x, w, tap_c, tap_u, tap_v, out):
    """Accumulate the 'valid' multi-channel correlation into ``out`` (C1).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), C-contiguous
    w : ndarray of shape (O, K), C-contiguous
        Filters with their taps flattened, ``K = C * f * f``
        (``weight.reshape(O, -1)``).
    tap_c, tap_u, tap_v : ndarray of int64, shape (K,)
        From :func:`flat_taps`.
    out : ndarray of shape (N, O, H - f + 1, W - f + 1), C-contiguous
        Updated in place: ``out[n, o, i, j] += sum_t w[o, t] *
        x[n, tap_c[t], i + tap_u[t], j + tap_v[t]]``. Same dtype as ``x``.
    """
    n_batch = x.shape[0]
    n_out = w.shape[0]
    out_h = out.shape[2]
    # Output channels in blocks of 4, then one block of 2 and/or 1 for the
    # remainder; the input gradient has only C_in = 1 or 2 "output" channels.
    n_quads = n_out // 4
    has_pair = (n_out % 4) >= 2
    has_single = (n_out % 2) == 1
    n_blocks = n_quads + has_pair + has_single
    # Block index fastest, so that consecutive tasks re-read the same input
    # rows while they are in cache. Each task writes its own output rows.
    for task in prange(n_batch * out_h * n_blocks):
        n = task // (out_h * n_blocks)
        i = (task // n_blocks) % out_h
        block = task % n_blocks
        if block < n_quads:
            _correlate_row_4(x[n], w, tap_c, tap_u, tap_v, i, 4 * block, out[n])
        elif has_pair and block == n_quads:
            _correlate_row_2(x[n], w, tap_c, tap_u, tap_v, i, 4 * n_quads, out[n])
        else:
            _correlate_row_1(x[n], w, tap_c, tap_u, tap_v, i, n_out - 1, out[n])


# ---------------------------------------------------------------------------
# weight_gradient_kernel (C4)
# ---------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _fold_into_lanes(partial_rows, lanes, length):
    """``lanes[k, l] += sum_b partial_rows[k, b * LANES + l]``.

    Summing column chunks into LANES-wide vectors is elementwise (it
    vectorises), unlike a scalar sum along the row.
    """
    n_full = length // LANES
    for k in range(partial_rows.shape[0]):
        row = partial_rows[k]
        lane = lanes[k]
        for b in range(n_full):
            for l in range(LANES):
                lane[l] += row[b * LANES + l]
        for j in range(n_full * LANES, length):
            lane[j - n_full * LANES] += row[j]


@njit(cache=True, inline="always")
def _tap_block(index, n_quads):
    """First tap and tap count of tap block ``index``: fours, then single taps."""
    if index < n_quads:
        return 4 * index, 4
    return 4 * n_quads + (index - n_quads), 1


@njit(cache=True, inline="always")
def _weight_gradient_tile(xn, gn, tap_c, tap_u, tap_v, t, n_tap_block, o,
                          row_start, row_stop, col, length, partial_rows, lanes):
    """Add one tile's share of (C4) to ``lanes``.

    The tile is output-gradient rows ``row_start..row_stop-1``, columns
    ``col..col+length-1``, output channels ``o..o+3`` and taps
    ``t..t+n_tap_block-1`` (``n_tap_block`` is 4, or 1 for the taps left
    over). ``partial_rows[4 * k + s, j]`` first sums ``g * x`` down the
    rows, for each column ``j`` separately (a vectorisable update, no
    reduction along the row); the columns are then folded into
    ``lanes[4 * k + s, :]``, the LANES-wide partial sums of
    ``dw[o + k, t + s]``.
    """
    partial_rows[:, :length] = 0.0
    i = row_start
    if n_tap_block == 4:
        # Two output-gradient rows per pass, so that each load and store of
        # a partial sum carries two multiply-adds instead of one.
        while i + 2 <= row_stop:
            xa0 = xn[tap_c[t], i + tap_u[t], col + tap_v[t]:]
            xa1 = xn[tap_c[t + 1], i + tap_u[t + 1], col + tap_v[t + 1]:]
            xa2 = xn[tap_c[t + 2], i + tap_u[t + 2], col + tap_v[t + 2]:]
            xa3 = xn[tap_c[t + 3], i + tap_u[t + 3], col + tap_v[t + 3]:]
            xb0 = xn[tap_c[t], i + 1 + tap_u[t], col + tap_v[t]:]
            xb1 = xn[tap_c[t + 1], i + 1 + tap_u[t + 1], col + tap_v[t + 1]:]
            xb2 = xn[tap_c[t + 2], i + 1 + tap_u[t + 2], col + tap_v[t + 2]:]
            xb3 = xn[tap_c[t + 3], i + 1 + tap_u[t + 3], col + tap_v[t + 3]:]
            ga0, gb0 = gn[o, i, col:], gn[o, i + 1, col:]
            ga1, gb1 = gn[o + 1, i, col:], gn[o + 1, i + 1, col:]
            ga2, gb2 = gn[o + 2, i, col:], gn[o + 2, i + 1, col:]
            ga3, gb3 = gn[o + 3, i, col:], gn[o + 3, i + 1, col:]
            for j in range(length):
                a0, a1, a2, a3 = xa0[j], xa1[j], xa2[j], xa3[j]
                b0, b1, b2, b3 = xb0[j], xb1[j], xb2[j], xb3[j]
                p, q = ga0[j], gb0[j]
                partial_rows[0, j] += p * a0 + q * b0
                partial_rows[1, j] += p * a1 + q * b1
                partial_rows[2, j] += p * a2 + q * b2
                partial_rows[3, j] += p * a3 + q * b3
                p, q = ga1[j], gb1[j]
                partial_rows[4, j] += p * a0 + q * b0
                partial_rows[5, j] += p * a1 + q * b1
                partial_rows[6, j] += p * a2 + q * b2
                partial_rows[7, j] += p * a3 + q * b3
                p, q = ga2[j], gb2[j]
                partial_rows[8, j] += p * a0 + q * b0
                partial_rows[9, j] += p * a1 + q * b1
                partial_rows[10, j] += p * a2 + q * b2
                partial_rows[11, j] += p * a3 + q * b3
                p, q = ga3[j], gb3[j]
                partial_rows[12, j] += p * a0 + q * b0
                partial_rows[13, j] += p * a1 + q * b1
                partial_rows[14, j] += p * a2 + q * b2
                partial_rows[15, j] += p * a3 + q * b3
            i += 2
        while i < row_stop:
            xa0 = xn[tap_c[t], i + tap_u[t], col + tap_v[t]:]
            xa1 = xn[tap_c[t + 1], i + tap_u[t + 1], col + tap_v[t + 1]:]
            xa2 = xn[tap_c[t + 2], i + tap_u[t + 2], col + tap_v[t + 2]:]
            xa3 = xn[tap_c[t + 3], i + tap_u[t + 3], col + tap_v[t + 3]:]
            for k in range(4):
                ga = gn[o + k, i, col:]
                for j in range(length):
                    p = ga[j]
                    partial_rows[4 * k, j] += p * xa0[j]
                    partial_rows[4 * k + 1, j] += p * xa1[j]
                    partial_rows[4 * k + 2, j] += p * xa2[j]
                    partial_rows[4 * k + 3, j] += p * xa3[j]
            i += 1
    else:
        for i in range(row_start, row_stop):
            xa0 = xn[tap_c[t], i + tap_u[t], col + tap_v[t]:]
            ga0, ga1 = gn[o, i, col:], gn[o + 1, i, col:]
            ga2, ga3 = gn[o + 2, i, col:], gn[o + 3, i, col:]
            for j in range(length):
                a0 = xa0[j]
                partial_rows[0, j] += ga0[j] * a0
                partial_rows[4, j] += ga1[j] * a0
                partial_rows[8, j] += ga2[j] * a0
                partial_rows[12, j] += ga3[j] * a0
    _fold_into_lanes(partial_rows, lanes, length)


@njit(parallel=True, cache=True)
def weight_gradient_kernel(x, g, tap_c, tap_u, tap_v, partial):
    """Partial sums of the weight gradient (C4), one slice per task.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), C-contiguous
    g : ndarray of shape (N, O, Ho, Wo), C-contiguous, ``O % 4 == 0``
        Output gradient, ``Ho = H - f + 1``, ``Wo = W - f + 1``.
    tap_c, tap_u, tap_v : ndarray of int64, shape (K,)
        From :func:`flat_taps`, ``K = C * f * f``.
    partial : ndarray of shape (N * n_row_chunks, O // 4, 4, K)
        Zeros on entry; ``n_row_chunks = ceil(Ho / ROW_CHUNK)``. Task
        ``(n, chunk, block)`` writes only ``partial[n * n_row_chunks + chunk,
        block]``: the sum of (C4) over its rows, for output channels
        ``4 * block .. 4 * block + 3``. :func:`weight_gradient` adds
        the slices.
    """
    n_batch = x.shape[0]
    n_out = g.shape[1]
    out_h = g.shape[2]
    n_taps = tap_c.shape[0]
    n_chunks = partial.shape[0] // n_batch
    n_blocks = n_out // 4
    n_tap_quads = n_taps // 4
    n_tap_blocks = n_tap_quads + n_taps % 4
    width = g.shape[3]
    for task in prange(n_batch * n_chunks * n_blocks):
        n = task // (n_chunks * n_blocks)
        chunk = (task // n_blocks) % n_chunks
        block = task % n_blocks
        o = 4 * block
        row_start = chunk * ROW_CHUNK
        row_stop = min(row_start + ROW_CHUNK, out_h)
        out_slice = partial[n * n_chunks + chunk, block]  # (4, K)
        partial_rows = np.empty((16, COLUMN_CHUNK), dtype=x.dtype)
        lanes = np.zeros((n_tap_blocks, 16, LANES), dtype=x.dtype)
        # Column chunks outside, tap blocks inside: the chunk of the output
        # gradient (4 channels x ROW_CHUNK rows x COLUMN_CHUNK columns) stays
        # in the L2 cache while all the taps sweep over it.
        for col in range(0, width, COLUMN_CHUNK):
            length = min(COLUMN_CHUNK, width - col)
            for block_index in range(n_tap_blocks):
                t, n_tap_block = _tap_block(block_index, n_tap_quads)
                _weight_gradient_tile(x[n], g[n], tap_c, tap_u, tap_v, t,
                                      n_tap_block, o, row_start, row_stop, col,
                                      length, partial_rows, lanes[block_index])
        for block_index in range(n_tap_blocks):
            t, n_tap_block = _tap_block(block_index, n_tap_quads)
            for k in range(4):
                for s in range(n_tap_block):
                    lane = lanes[block_index, 4 * k + s]
                    total = lane[0]
                    for l in range(1, LANES):
                        total += lane[l]
                    out_slice[k, t + s] = total


# ---------------------------------------------------------------------------
# Spectral products of the FFT path (C8)-(C10)
# ---------------------------------------------------------------------------
# One image's (or one output channel's) products per call, without the GIL,
# so that refdeblur's thread pool runs several calls at once. Frequency rows
# innermost: the complex products vectorise. Every sum runs over its channel
# (or sample) index in increasing order, whichever thread runs it.

@njit(nogil=True, cache=True)
def spectral_correlate_kernel(filter_spectra, spectra, out):
    """``out[o] = sum_c filter_spectra[o, c] * spectra[c]`` (C8).

    Parameters
    ----------
    filter_spectra : ndarray of shape (O, C, P, Q), complex
        The filters' conjugate spectra.
    spectra : ndarray of shape (C, P, Q), complex
        One image's spectra.
    out : ndarray of shape (O, P, Q), complex
        Overwritten.
    """
    n_out, channels, rows, columns = filter_spectra.shape
    for o in range(n_out):
        for p in range(rows):
            target = out[o, p]
            source = spectra[0, p]
            weight = filter_spectra[o, 0, p]
            for q in range(columns):
                target[q] = weight[q] * source[q]
            for c in range(1, channels):
                source = spectra[c, p]
                weight = filter_spectra[o, c, p]
                for q in range(columns):
                    target[q] += weight[q] * source[q]


@njit(nogil=True, cache=True)
def spectral_input_gradient_kernel(filter_spectra, grad_spectra, out):
    """``out[c] = sum_o conj(filter_spectra[o, c]) * grad_spectra[o]`` (C9).

    Parameters
    ----------
    filter_spectra : ndarray of shape (O, C, P, Q), complex
        The filters' conjugate spectra (their conjugates are the spectra).
    grad_spectra : ndarray of shape (O, P, Q), complex
        One sample's output-gradient spectra.
    out : ndarray of shape (C, P, Q), complex
        Overwritten.
    """
    n_out, channels, rows, columns = filter_spectra.shape
    for c in range(channels):
        for p in range(rows):
            target = out[c, p]
            source = grad_spectra[0, p]
            weight = filter_spectra[0, c, p]
            for q in range(columns):
                target[q] = weight[q].conjugate() * source[q]
            for o in range(1, n_out):
                source = grad_spectra[o, p]
                weight = filter_spectra[o, c, p]
                for q in range(columns):
                    target[q] += weight[q].conjugate() * source[q]


@njit(nogil=True, cache=True)
def spectral_weight_gradient_kernel(grad_spectra, spectra, o, out):
    """``out[c] = sum_n conj(grad_spectra[n, o]) * spectra[n, c]`` (C10).

    Parameters
    ----------
    grad_spectra : ndarray of shape (N, O, P, Q), complex
        Output-gradient spectra of every sample.
    spectra : ndarray of shape (N, C, P, Q), complex
        Input spectra of every sample.
    o : int
        The output channel.
    out : ndarray of shape (C, P, Q), complex
        Overwritten.
    """
    n_batch, channels, rows, columns = spectra.shape
    for c in range(channels):
        for p in range(rows):
            target = out[c, p]
            gradient = grad_spectra[0, o, p]
            source = spectra[0, c, p]
            for q in range(columns):
                target[q] = gradient[q].conjugate() * source[q]
            for n in range(1, n_batch):
                gradient = grad_spectra[n, o, p]
                source = spectra[n, c, p]
                for q in range(columns):
                    target[q] += gradient[q].conjugate() * source[q]


# ---------------------------------------------------------------------------
# NumPy-facing wrappers used by refdeblur.layers.conv2d
# ---------------------------------------------------------------------------

def correlate(x, weight, bias=None):
    """'Valid' multi-channel correlation plus bias (C1).

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in, f, f)
        Cast to the dtype of ``x``.
    bias : ndarray of shape (C_out,), optional

    Returns
    -------
    ndarray of shape (N, C_out, H - f + 1, W - f + 1)
    """
    n_batch, channels, height, width = x.shape
    n_out, _, filter_size, _ = weight.shape
    weight = weight.astype(x.dtype, copy=False)
    out = np.zeros((n_batch, n_out, height - filter_size + 1,
                    width - filter_size + 1), dtype=x.dtype)
    if bias is not None:
        out += bias[:, None, None]
    weight_matrix = np.ascontiguousarray(weight.reshape(n_out, -1))  # (C_out, C_in·f²)
    with parallel_region():
        correlate_valid_kernel(np.ascontiguousarray(x), weight_matrix,
                               *flat_taps(channels, filter_size), out)
    return out


def input_gradient(dout, weight):
    """Full convolution of the output gradient with the filters (C3).

    Computed as (C6): the 'valid' correlation (C1) of ``dout`` zero-padded by
    ``f - 1`` on every side with the flipped filters, input and output
    channels swapped. One sample at a time, so that only one padded copy of
    ``dout`` exists.

    Parameters
    ----------
    dout : ndarray of shape (N, C_out, Ho, Wo)
    weight : ndarray of shape (C_out, C_in, f, f)

    Returns
    -------
    ndarray of shape (N, C_in, Ho + f - 1, Wo + f - 1)
    """
    n_batch, n_out, out_h, out_w = dout.shape
    _, channels, filter_size, _ = weight.shape
    pad = filter_size - 1
    # (C_in, C_out·f²): filter taps reversed in both axes, channels swapped  (C6)
    flipped = np.ascontiguousarray(
        weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(channels, -1)
    taps = flat_taps(n_out, filter_size)
    dx = np.zeros((n_batch, channels, out_h + pad, out_w + pad), dtype=dout.dtype)
    padded = np.zeros((1, n_out, out_h + 2 * pad, out_w + 2 * pad), dtype=dout.dtype)
    with parallel_region():
        for n in range(n_batch):
            padded[0, :, pad:pad + out_h, pad:pad + out_w] = dout[n]
            correlate_valid_kernel(padded, flipped, *taps, dx[n:n + 1])
    return dx


def weight_gradient(x, dout, filter_size):
    """Weight gradient (C4): correlation of the input with the output gradient.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    dout : ndarray of shape (N, C_out, H - f + 1, W - f + 1)
    filter_size : int

    Returns
    -------
    ndarray of shape (C_out, C_in, f, f)
    """
    n_batch, channels = x.shape[:2]
    n_out, out_h = dout.shape[1], dout.shape[2]
    n_blocks = -(-n_out // 4)
    if n_out % 4:
        # the kernel works on output channels in fours; pad with zero gradients
        dout_padded = np.zeros((n_batch, 4 * n_blocks) + dout.shape[2:], dout.dtype)
        dout_padded[:, :n_out] = dout
        dout = dout_padded
    n_chunks = -(-out_h // ROW_CHUNK)
    n_taps = channels * filter_size * filter_size
    partial = np.zeros((n_batch * n_chunks, n_blocks, 4, n_taps), dtype=x.dtype)
    with parallel_region():
        weight_gradient_kernel(np.ascontiguousarray(x), np.ascontiguousarray(dout),
                               *flat_taps(channels, filter_size), partial)
    # fixed summation order over (sample, row chunk): deterministic
    dweight = partial.sum(axis=0).reshape(4 * n_blocks, n_taps)[:n_out]  # (C_out, K)
    return dweight.reshape(n_out, channels, filter_size, filter_size)
