"""Per-pixel kernels of the hyper-Laplacian deconvolution (refdeblur.deconvolution).

Three operations run on every pixel of the padded grid at every continuation
step: the shrinkage of gradients (the w-subproblem), the divergence of the
shrunk gradients, and the Fourier-domain quotient (the x-subproblem). With
numba they are compiled loops, element-wise or in a fixed order, so their
results do not depend on the number of threads; without numba the same
formulas run as NumPy array expressions (equal within float rounding).

Equations: derivations/deconvolution.md, (D8) to (D14).
"""

import math
import types

import numpy as np

from . import HAVE_NUMBA, njit, prange, warn_without_numba
from .threads import parallel_region

__all__ = ["PARALLEL_MIN_SIZE", "shrink_into", "shrink_divergence", "fourier_solve",
           "shrink_numpy", "shrink_divergence_numpy", "fourier_solve_numpy"]

#: Added to a positive float64's bits divided by 3: within 3.2 % of its cube
#: root (the exponent divided by 3, the mantissa linearly), for (D13).
CBRT_MAGIC = 0x2A9F7893782DA1CE

#: Arrays with fewer elements run the serial kernels: for small grids the
#: threads' start-up and barriers cost more than they save, and much more
#: when another process occupies a core (measured: the 32 Levin cases take
#: 1.1 s serially and 8.3 s with two threads on a busy 2-core machine).
PARALLEL_MIN_SIZE = 1 << 20


# ---------------------------------------------------------------------------
# numba kernels


@njit(cache=True, inline="always")
def _shrink_scalar(v, beta, alpha, tau):
    """``argmin_w |w|^alpha + beta/2 (w - v)^2`` for one value (D10)-(D14)."""
    av = abs(v)
    if av <= tau:  # (D11)
        return 0.0
    if alpha == 1.0:  # soft threshold
        s = av - 1.0 / beta
    elif alpha == 0.5:
        # w = s^2 with s^3 - |v| s + 1/(2 beta) = 0: largest root of three (D12)
        c = 0.5 / beta
        arg = -1.5 * c / av * math.sqrt(3.0 / av)
        arg = min(1.0, max(-1.0, arg))
        s = 2.0 * math.sqrt(av / 3.0) * math.cos(math.acos(arg) / 3.0)
        s = s * s
    elif alpha == 2.0 / 3.0:
        # w = s^3 with s^4 - |v| s + 2/(3 beta) = 0, by Ferrari (D13)
        d = 2.0 / (3.0 * beta)
        q = av * av / 8.0
        root = math.sqrt(q * q / 4.0 - d * d * d / 27.0)  # > 0 above tau
        a3 = (q / 2.0 + root) ** (1.0 / 3.0)
        mm = a3 + d / (3.0 * a3)  # real root of the resolvent cubic
        r = math.sqrt(2.0 * mm)
        s = 0.5 * (r + math.sqrt(max(2.0 * av / r - 2.0 * mm, 0.0)))
        s = s * s * s
    else:
        # any 0 < alpha < 1: Newton from s = |v|, monotone (convex) (D14)
        s = av
        for _ in range(50):
            g = alpha * s ** (alpha - 1.0) + beta * (s - av)
            dg = alpha * (alpha - 1.0) * s ** (alpha - 2.0) + beta
            step = g / dg
            s -= step
            if abs(step) <= 1e-15 * av:
                break
    return s if v > 0 else -s


@njit(cache=True, error_model="numpy")
def _shrink_two_thirds_dense(v, beta, out, roots, guesses):
    """(D13) for every element of a 1-D array of values above tau, vectorised.

    The formula of :func:`_shrink_scalar` with the cube root by three
    Halley steps from a bit-level guess instead of a call to ``pow``:
    neither ``pow`` nor ``cbrt`` vectorises without a vector maths
    library, these loops do (``error_model="numpy"``: no zero-division
    checks). ``roots`` (float64) and ``guesses`` (int64) are working memory
    of ``v``'s length.
    """
    n = v.size
    d = 2.0 / (3.0 * beta)
    d3 = d * d * d / 27.0
    for j in range(n):
        av = abs(v[j])
        q = av * av / 8.0
        roots[j] = q / 2.0 + math.sqrt(q * q / 4.0 - d3)  # > 0 above tau
    bits = roots.view(np.int64)
    for j in range(n):
        guesses[j] = bits[j] // 3 + CBRT_MAGIC
    start = guesses.view(np.float64)
    for j in range(n):
        c = roots[j]
        a3 = start[j]
        # Halley's iteration for a3^3 = c; cubic convergence: 3e-2 -> 3e-5
        # -> 3e-14 -> rounding
        cube = a3 * a3 * a3
        a3 = a3 * (cube + 2.0 * c) / (2.0 * cube + c)
        cube = a3 * a3 * a3
        a3 = a3 * (cube + 2.0 * c) / (2.0 * cube + c)
        cube = a3 * a3 * a3
        a3 = a3 * (cube + 2.0 * c) / (2.0 * cube + c)
        av = abs(v[j])
        mm = a3 + d / (3.0 * a3)
        r = math.sqrt(2.0 * mm)
        s = 0.5 * (r + math.sqrt(max(2.0 * av / r - 2.0 * mm, 0.0)))
        s = s * s * s
        out[j] = s if v[j] > 0 else -s


@njit(cache=True)
def _shrink_two_thirds(v, beta, tau, out, index, values, results, roots, guesses):
    """``out = shrink(v)`` for alpha = 2/3 and a 1-D ``v`` (D11), (D13).

    The values above tau are gathered, shrunk together by
    :func:`_shrink_two_thirds_dense` and scattered back; the others are
    zero. ``index`` (int64), ``values`` (``v``'s dtype), ``results``,
    ``roots`` (float64) and ``guesses`` (int64) are working memory of at
    least ``v``'s length.
    """
    count = 0
    for j in range(v.size):
        out[j] = 0.0
        if abs(v[j]) > tau:
            index[count] = j
            values[count] = v[j]
            count += 1
    if count == 0:
        return
    _shrink_two_thirds_dense(values[:count], beta, results[:count], roots[:count],
                             guesses[:count])
    for t in range(count):
        out[index[t]] = results[t]


def _shrink_array(v, beta, alpha, tau, out):
    flat_v = v.ravel()
    flat_o = out.ravel()
    if alpha == 2.0 / 3.0:
        block = 4096
        for b in prange((flat_v.size + block - 1) // block):
            start = b * block
            stop = min(start + block, flat_v.size)
            n = stop - start
            _shrink_two_thirds(flat_v[start:stop], beta, tau, flat_o[start:stop],
                               np.empty(n, np.int64), np.empty(n, flat_v.dtype),
                               np.empty(n), np.empty(n), np.empty(n, np.int64))
        return
    for i in prange(flat_v.size):
        flat_o[i] = _shrink_scalar(flat_v[i], beta, alpha, tau)


#: Rows per block of the alpha = 2/3 path of :func:`_shrink_divergence`,
#: which allocates its working memory once per block.
ROWS_PER_BLOCK = 16


def _shrink_divergence(x, beta, alpha, tau, w_scratch, out):
    """``out = D_x^T w_x + D_y^T w_y`` with ``w = shrink(D x)`` (D8), (D10).

    ``D`` are circular forward differences, ``(D_x x)[i, j] = x[i, j+1] -
    x[i, j]``, and ``(D_x^T w)[i, j] = w[i, j-1] - w[i, j]``. ``w_scratch``
    (shape of ``x``) holds one shrunk gradient at a time. For alpha = 2/3
    the differences of a row are formed first and shrunk together by
    :func:`_shrink_two_thirds`, in blocks of rows.
    """
    h, w = x.shape
    if alpha == 2.0 / 3.0:
        n_blocks = (h + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK
        for direction in range(2):
            for b in prange(n_blocks):
                row = np.empty(w, x.dtype)
                index = np.empty(w, np.int64)
                values = np.empty(w, x.dtype)
                results = np.empty(w)
                roots = np.empty(w)
                guesses = np.empty(w, np.int64)
                for i in range(b * ROWS_PER_BLOCK, min((b + 1) * ROWS_PER_BLOCK, h)):
                    if direction == 0:
                        for j in range(w - 1):
                            row[j] = x[i, j + 1] - x[i, j]
                        row[w - 1] = x[i, 0] - x[i, w - 1]
                    else:
                        i_n = i + 1 if i + 1 < h else 0
                        for j in range(w):
                            row[j] = x[i_n, j] - x[i, j]
                    _shrink_two_thirds(row, beta, tau, w_scratch[i], index, values,
                                       results, roots, guesses)
                    if direction == 0:
                        out[i, 0] = w_scratch[i, w - 1] - w_scratch[i, 0]
                        for j in range(1, w):
                            out[i, j] = w_scratch[i, j - 1] - w_scratch[i, j]
    else:
        for i in prange(h):
            for j in range(w):
                jn = j + 1 if j + 1 < w else 0
                w_scratch[i, j] = _shrink_scalar(x[i, jn] - x[i, j], beta, alpha,
                                                 tau)
            for j in range(w):
                jp = j - 1 if j > 0 else w - 1
                out[i, j] = w_scratch[i, jp] - w_scratch[i, j]
        for i in prange(h):
            i_n = i + 1 if i + 1 < h else 0
            for j in range(w):
                w_scratch[i, j] = _shrink_scalar(x[i_n, j] - x[i, j], beta, alpha,
                                                 tau)
    for i in prange(h):
        ip = i - 1 if i > 0 else h - 1
        for j in range(w):
            out[i, j] += w_scratch[ip, j] - w_scratch[i, j]


def _fourier_solve(r_hat, u_hat, otf, grad_rows, grad_cols, gamma):
    """``r_hat <- (conj(K) U + gamma R) / (|K|^2 + gamma |D|^2)`` in place (D9)."""
    h, w = r_hat.shape
    for i in prange(h):
        gr = grad_rows[i]
        for j in range(w):
            k = otf[i, j]
            den = k.real * k.real + k.imag * k.imag + gamma * (gr + grad_cols[j])
            if den > 0:
                r_hat[i, j] = (k.conjugate() * u_hat[i, j]
                               + gamma * r_hat[i, j]) / den
            else:
                r_hat[i, j] = 0.0


def _two_variants(py_func):
    """Serial and parallel compilations of one ``prange`` kernel.

    The serial one is compiled from a renamed copy of the function: Numba's
    on-disk cache is keyed by the qualified name and not by the compilation
    flags, so the two would otherwise overwrite each other's cache entries.
    """
    name = py_func.__name__ + "_serial"
    serial = types.FunctionType(py_func.__code__, py_func.__globals__, name,
                                py_func.__defaults__, py_func.__closure__)
    serial.__qualname__ = name
    return (njit(cache=True)(serial), njit(cache=True, parallel=True)(py_func))


if HAVE_NUMBA:
    _SHRINK_ARRAY = _two_variants(_shrink_array)
    _SHRINK_DIVERGENCE = _two_variants(_shrink_divergence)
    _FOURIER_SOLVE = _two_variants(_fourier_solve)


# ---------------------------------------------------------------------------
# NumPy formulations (used without numba; the tests compare the two)


def shrink_numpy(v, beta, alpha, tau):
    """:func:`shrink_into` as array expressions, evaluated in float64."""
    av = np.abs(np.asarray(v, dtype=np.float64))
    if alpha == 1.0:
        s = av - 1.0 / beta
    elif alpha == 0.5:
        c = 0.5 / beta
        with np.errstate(divide="ignore", invalid="ignore"):
            arg = np.clip(-1.5 * c / av * np.sqrt(3.0 / av), -1.0, 1.0)
        s = (2.0 * np.sqrt(av / 3.0) * np.cos(np.arccos(arg) / 3.0)) ** 2
    elif alpha == 2.0 / 3.0:
        d = 2.0 / (3.0 * beta)
        q = av * av / 8.0
        with np.errstate(divide="ignore", invalid="ignore"):
            root = np.sqrt(q * q / 4.0 - d * d * d / 27.0)
            a3 = (q / 2.0 + root) ** (1.0 / 3.0)
            mm = a3 + d / (3.0 * a3)
            r = np.sqrt(2.0 * mm)
            s = (0.5 * (r + np.sqrt(np.maximum(2.0 * av / r - 2.0 * mm, 0.0)))) ** 3
    else:
        s = av.copy()
        active = av > tau
        for _ in range(50):
            if not active.any():
                break
            sa, va = s[active], av[active]
            g = alpha * sa ** (alpha - 1.0) + beta * (sa - va)
            dg = alpha * (alpha - 1.0) * sa ** (alpha - 2.0) + beta
            step = g / dg
            s[active] = sa - step
            still = np.abs(step) > 1e-15 * va
            active[active] = still
    s = np.where(av <= tau, 0.0, s)  # (D11)
    return np.where(np.asarray(v) > 0, s, -s)


def shrink_divergence_numpy(x, beta, alpha, tau, out):
    """:func:`shrink_divergence` with ``np.roll`` for the circular differences."""
    w_cols = shrink_numpy(np.roll(x, -1, axis=1) - x, beta, alpha, tau)
    w_rows = shrink_numpy(np.roll(x, -1, axis=0) - x, beta, alpha, tau)
    w_cols = w_cols.astype(x.dtype, copy=False)
    w_rows = w_rows.astype(x.dtype, copy=False)
    out[...] = np.roll(w_cols, 1, axis=1) - w_cols
    out += np.roll(w_rows, 1, axis=0) - w_rows


def fourier_solve_numpy(r_hat, u_hat, otf, grad_rows, grad_cols, gamma):
    """:func:`fourier_solve` as array expressions, in place."""
    den = (otf.real ** 2 + otf.imag ** 2
           + gamma * (grad_rows[:, None] + grad_cols[None, :]))
    numerator = np.conj(otf) * u_hat + gamma * r_hat
    with np.errstate(divide="ignore", invalid="ignore"):
        r_hat[...] = np.where(den > 0, numerator / np.where(den > 0, den, 1), 0)


# ---------------------------------------------------------------------------
# the entry points deconvolution calls


def _parallel(parallel, size):
    return size >= PARALLEL_MIN_SIZE if parallel is None else bool(parallel)


def shrink_into(v, beta, alpha, tau, out, *, parallel=None):
    """``out[...] = argmin_w |w|^alpha + beta/2 (w - v)^2``, element-wise (D10)-(D14).

    ``v`` and ``out`` are C-contiguous float arrays of one shape; ``tau`` is
    the threshold below which the result is exactly zero (D11). With numba,
    ``parallel`` picks the multi-threaded compilation (default: arrays of
    at least :data:`PARALLEL_MIN_SIZE` elements); the result is the same.
    """
    if HAVE_NUMBA:
        with parallel_region():
            _SHRINK_ARRAY[_parallel(parallel, v.size)](v, beta, alpha, tau, out)
        return
    warn_without_numba()
    out[...] = shrink_numpy(v, beta, alpha, tau)


def shrink_divergence(x, beta, alpha, tau, scratch, out, *, parallel=None):
    """``out = D_x^T w_x + D_y^T w_y`` with ``w = shrink(D x)`` (D8), (D10).

    ``D`` are circular forward differences; ``scratch`` (shape of ``x``) is
    working memory; ``parallel`` as in :func:`shrink_into`.
    """
    if HAVE_NUMBA:
        with parallel_region():
            _SHRINK_DIVERGENCE[_parallel(parallel, x.size)](x, beta, alpha, tau, scratch,
                                                            out)
        return
    warn_without_numba()
    shrink_divergence_numpy(x, beta, alpha, tau, out)


def fourier_solve(r_hat, u_hat, otf, grad_rows, grad_cols, gamma, *, parallel=None):
    """``r_hat <- (conj(K) U + gamma R) / (|K|^2 + gamma |D|^2)`` in place (D9).

    ``|D|^2 = grad_rows[:, None] + grad_cols``; frequencies where the
    denominator vanishes are set to zero; ``parallel`` as in
    :func:`shrink_into`.
    """
    if HAVE_NUMBA:
        with parallel_region():
            _FOURIER_SOLVE[_parallel(parallel, r_hat.size)](r_hat, u_hat, otf, grad_rows,
                                                            grad_cols, gamma)
        return
    warn_without_numba()
    fourier_solve_numpy(r_hat, u_hat, otf, grad_rows, grad_cols, gamma)
