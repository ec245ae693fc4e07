"""Numba kernel of a stage's pixel-wise feature head, for float32 inference.

A stage maps its convolution output ``z`` to the feature images by four
pixel-wise layers (paper §3.1.1, derivations/recombine.md, tanh.md):

    features = W2 · tanh(W1 · tanh(z) + b1) + b2

:meth:`refdeblur.network.Stage.predict` in float64 runs them as four NumPy
passes over stacks of 32 full-size images. That is memory-bound: at 1024²
each stack is 128 MiB, written and read again. This kernel does all four on
one image row at a time, in buffers that stay in the core's cache (32 x 2048
float32 is 256 KiB), with the rows shared out over the cores.

tanh here is a rational function, not ``libm``'s ``tanhf``: ``libm`` calls
cannot be vectorised by LLVM, the rational can. It is Lambert's continued
fraction ``tanh x = x / (1 + x² / (3 + x² / (5 + ...)))`` cut after
``TANH_TERMS`` terms and written as one quotient ``x P(x²) / Q(x²)``, with
``x`` clamped to ``±TANH_CLAMP`` (``tanh(8) = 1 - 2.3e-7``). In float32 its
largest error on the whole real line is 4.1e-7 (float32 ``np.tanh``:
7.6e-8); tests/test_features_numba.py measures it and compares the whole
head against the NumPy layers.

No fastmath is used and every row is computed by the same code whichever
thread runs it, so the result does not depend on the number of threads.
"""

import numba
import numpy as np
from numba import prange

__all__ = ["feature_head", "fast_tanh", "lambert_tanh_coefficients",
           "TANH_TERMS", "TANH_CLAMP"]

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
    from numpy.polynomial import polynomial
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


@numba.njit(inline="always", error_model="numpy")
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


@numba.njit(cache=True, error_model="numpy")
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


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _feature_head_kernel(z, w1, b1, w2, b2, out):
    n_batch, n_in, height, width = z.shape
    n_hidden = w1.shape[0]
    n_out = w2.shape[0]
    for task in prange(n_batch * height):
        n = task // height
        i = task % height
        activation = np.empty((n_in, width), dtype=np.float32)
        for c in range(n_in):                                       # tanh
            row = z[n, c, i]
            act = activation[c]
            for j in range(width):
                act[j] = _tanh(row[j])
        # The products go to BLAS (sgemm, one thread per call): about 5x
        # faster than the best loop nest tried here.
        hidden = np.dot(w1, activation)                             # W1
        for h in range(n_hidden):                                   # b1, tanh
            hid = hidden[h]
            bias = b1[h]
            for j in range(width):
                hid[j] = _tanh(hid[j] + bias)
        features = np.dot(w2, hidden)                               # W2
        for o in range(n_out):                                      # b2
            row = out[n, o, i]
            feature = features[o]
            bias = b2[o]
            for j in range(width):
                row[j] = feature[j] + bias


def feature_head(z, weight1, weight2, bias1=None, bias2=None):
    """``W2 tanh(W1 tanh(z) + b1) + b2`` per pixel, in float32.

    Parameters
    ----------
    z : ndarray of shape (N, C, H, W)
        Convolution output.
    weight1 : ndarray of shape (K, C)
    weight2 : ndarray of shape (P, K)
    bias1 : ndarray of shape (K,), optional
    bias2 : ndarray of shape (P,), optional

    Returns
    -------
    ndarray of shape (N, P, H, W), float32
    """
    z = np.ascontiguousarray(z, dtype=np.float32)
    weight1 = np.ascontiguousarray(weight1, dtype=np.float32)
    weight2 = np.ascontiguousarray(weight2, dtype=np.float32)
    bias1 = (np.zeros(weight1.shape[0], np.float32) if bias1 is None
             else np.ascontiguousarray(bias1, dtype=np.float32))
    bias2 = (np.zeros(weight2.shape[0], np.float32) if bias2 is None
             else np.ascontiguousarray(bias2, dtype=np.float32))
    if z.ndim != 4 or weight1.shape[1] != z.shape[1] or weight2.shape[1] != weight1.shape[0]:
        raise ValueError(f"shapes do not chain: z {z.shape}, W1 {weight1.shape}, "
                         f"W2 {weight2.shape}")
    n_batch, _, height, width = z.shape
    out = np.empty((n_batch, weight2.shape[0], height, width), dtype=np.float32)
    _feature_head_kernel(z, weight1, bias1, weight2, bias2, out)
    return out
