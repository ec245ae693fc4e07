"""The per-frequency solve shared by both quotient layers, in one pass.

``Q = sum_i conj(A_i) B_i / D`` with ``D = beta + sum_i |A_i|^2``: steps
(Q2)-(Q3) of derivations/kernel_quotient.md, computed by
:func:`refdeblur.layers._quotient.quotient_forward`. In NumPy they take
about eight passes over the spectra (real and imaginary parts, squares, two
sums, a product, a division), each making a temporary; this kernel makes one
pass and keeps nothing but ``Q`` and ``D``. On an 800 x 800 feature pair it
runs in about a third of the NumPy time, which is a tenth of a network's
kernel-quotient step. The oracle is the NumPy formulation,
:func:`combine_spectra_numpy`, which also runs without numba
(tests/layers/test_quotient_spectra.py compares the two).

The pairs are summed in order, beta first; every frequency is computed by
the same code whichever thread runs it.
"""

import numpy as np

from . import HAVE_NUMBA, njit, prange, warn_without_numba
from .threads import parallel_region

__all__ = ["combine_spectra", "combine_spectra_numpy"]


@njit(parallel=True, cache=True, error_model="numpy")
def _combine_kernel(spectrum_a, spectrum_b, beta, quotient, denominator):
    n_batch, n_pairs, height, width = spectrum_a.shape
    for task in prange(n_batch * height):
        n = task // height
        i = task % height
        for j in range(width):
            a = spectrum_a[n, 0, i, j]
            power = beta + (a.real * a.real + a.imag * a.imag)
            numerator = a.conjugate() * spectrum_b[n, 0, i, j]
            for pair in range(1, n_pairs):
                a = spectrum_a[n, pair, i, j]
                power += a.real * a.real + a.imag * a.imag
                numerator += a.conjugate() * spectrum_b[n, pair, i, j]
            denominator[n, i, j] = power
            quotient[n, i, j] = numerator / power


def combine_spectra(spectrum_a, spectrum_b, beta):
    """``(Q, D)`` of the Fourier quotient, in the spectra's precision.

    Parameters
    ----------
    spectrum_a, spectrum_b : ndarray of shape (N, n, H, W), complex
        ``A_i`` and ``B_i``, of the same dtype.
    beta : float
        The regulariser, > 0.

    Returns
    -------
    quotient : ndarray of shape (N, H, W), complex
    denominator : ndarray of shape (N, H, W), real
    """
    if spectrum_a.shape != spectrum_b.shape or spectrum_a.dtype != spectrum_b.dtype:
        raise ValueError(f"spectra differ: {spectrum_a.shape} {spectrum_a.dtype} "
                         f"and {spectrum_b.shape} {spectrum_b.dtype}")
    if not HAVE_NUMBA:
        warn_without_numba()
        return combine_spectra_numpy(spectrum_a, spectrum_b, beta)
    real_dtype = spectrum_a.real.dtype
    n_batch, _, height, width = spectrum_a.shape
    quotient = np.empty((n_batch, height, width), dtype=spectrum_a.dtype)
    denominator = np.empty((n_batch, height, width), dtype=real_dtype)
    with parallel_region():
        _combine_kernel(np.ascontiguousarray(spectrum_a), np.ascontiguousarray(spectrum_b),
                        real_dtype.type(beta), quotient, denominator)
    return quotient, denominator


def combine_spectra_numpy(spectrum_a, spectrum_b, beta):
    """:func:`combine_spectra` as NumPy array expressions (Q2)-(Q3).

    Equal to the kernel within rounding (NumPy sums the pairs pairwise);
    ``beta`` may also be an array broadcasting against ``(N, H, W)``.
    """
    power = spectrum_a.real ** 2 + spectrum_a.imag ** 2
    denominator = power.sum(axis=1) + beta                       # (Q2)
    numerator = (np.conj(spectrum_a) * spectrum_b).sum(axis=1)
    return numerator / denominator, denominator                  # (Q3)
