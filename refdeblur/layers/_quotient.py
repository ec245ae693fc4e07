"""The Fourier quotient shared by both quotient layers.

``q = F^-1[ sum_i conj(A_i) B_i / (sum_i |A_i|^2 + beta) ]`` with
``A_i = F a_i``, ``B_i = F b_i``: the minimiser of
``sum_i ||q (*) a_i - b_i||^2 + beta ||q||^2`` under circular boundaries
(paper Eqs. 3-5). Derivation: derivations/kernel_quotient.md §2 (Q1-Q7).
"""

from typing import NamedTuple

import numpy as np

from .._engine import HAVE_NUMBA, spectral, warn_without_numba
from .._engine import fft as _fft

# Below this many frequencies NumPy's passes are as fast as the kernel.
_KERNEL_MIN_SIZE = 1 << 16


def _use_spectral_kernel(spectrum_a, beta):
    """Whether (Q2)-(Q3) go to the one-pass Numba kernel.

    It takes one scalar β per call: a β per example (shape (N, 1, 1))
    goes to it one example at a time.
    """
    per_example = np.ndim(beta) != 0
    if per_example and np.size(beta) != len(spectrum_a):
        return False
    if spectrum_a[:, 0].size < _KERNEL_MIN_SIZE:
        return False
    if not HAVE_NUMBA:
        warn_without_numba()
    return HAVE_NUMBA


def _combine_with_kernel(spectrum_a, spectrum_b, beta):
    """(Q2)-(Q3) by the Numba kernel, for a scalar β or one β per example."""
    if np.ndim(beta) == 0:
        return spectral.combine_spectra(spectrum_a, spectrum_b, beta)
    parts = [spectral.combine_spectra(spectrum_a[n:n + 1], spectrum_b[n:n + 1],
                                      float(example_beta))
             for n, example_beta in enumerate(np.ravel(beta))]
    return (np.concatenate([quotient for quotient, _ in parts]),
            np.concatenate([denominator for _, denominator in parts]))


class QuotientCache(NamedTuple):
    spectrum_a: np.ndarray   # A_i, (N, n, H, W//2+1): (Q5), (Q6)
    spectrum_b: np.ndarray   # B_i, (N, n, H, W//2+1): (Q6)
    denominator: np.ndarray  # D, (N, H, W//2+1): every backward line
    quotient: np.ndarray     # Q^, (N, H, W//2+1): (Q6), (Q7)
    shape: tuple             # (H, W), for irfft2 with odd sizes
    #: P = F p of the prior, (N, H, W//2+1), or None: (Q8)-(Q10)
    spectrum_prior: np.ndarray = None
    #: beta, for the prior's gradient (Q9); None without a prior
    beta: object = None


def quotient_forward(a, b, beta, *, spectrum_b=None, prior=None):
    """Solve the per-frequency least-squares problem (Q1)-(Q3).

    Parameters
    ----------
    a, b : ndarray of shape (N, n, H, W)
        Real; ``a`` the "sharp" and ``b`` the "blurry" signals.
    beta : float or ndarray of shape (N, 1, 1)
        Regulariser, > 0.
    spectrum_b : ndarray of shape (N, n, H, W//2+1), optional
        ``rfft2(b)`` if already known; ``b`` is then not used.
    prior : ndarray of shape (N, H, W), optional
        Regularise towards ``prior`` instead of towards zero:
        ``beta ||q - prior||^2`` (Q8).

    Returns
    -------
    q : ndarray of shape (N, H, W)
    cache : QuotientCache
    """
    shape = a.shape[-2:]
    spectrum_a = _fft.rfft2(a)                                   # (Q1)
    if spectrum_b is None:
        spectrum_b = _fft.rfft2(b)
    if _use_spectral_kernel(spectrum_a, beta):
        quotient, denominator = _combine_with_kernel(
            spectrum_a, spectrum_b, beta)                        # (Q2)-(Q3)
    else:
        power = spectrum_a.real ** 2 + spectrum_a.imag ** 2
        denominator = power.sum(axis=1) + beta                   # (Q2)
        numerator = (np.conj(spectrum_a) * spectrum_b).sum(axis=1)
        quotient = numerator / denominator                       # (Q3)
    spectrum_prior = None
    if prior is not None:
        spectrum_prior = _fft.rfft2(prior)
        quotient = quotient + beta * spectrum_prior / denominator   # (Q8)
    q = _fft.irfft2(quotient, shape)                             # (Q4)
    return q.astype(a.dtype, copy=False), QuotientCache(
        spectrum_a, spectrum_b, denominator, quotient, shape, spectrum_prior,
        None if prior is None else beta)


def quotient_backward(dq, cache, *, beta_grad=False):
    """Gradients of the quotient with respect to ``a``, ``b`` and ``beta``.

    With a prior (:func:`quotient_forward`), the gradient with respect to it
    is :func:`quotient_prior_backward`; (Q5)-(Q6) are unchanged because the
    cached ``Q^`` includes the prior's term, and (Q7) becomes (Q10).

    Parameters
    ----------
    dq : ndarray of shape (N, H, W)
        ``dL/dq``.
    cache : QuotientCache
    beta_grad : bool, optional
        Also return ``dL/d beta`` per example, shape (N,).

    Returns
    -------
    da, db : ndarray of shape (N, n, H, W)
    dbeta : ndarray of shape (N,) or None
    """
    spectrum_a, spectrum_b, denominator, quotient, shape = cache[:5]
    gamma = _fft.rfft2(dq)[:, None]                              # Γ = F dq
    scaled = gamma / denominator[:, None]                        # Γ / D
    db = _fft.irfft2(spectrum_a * scaled, shape)                 # (Q5)
    cross = np.real(np.conj(gamma[:, 0]) * quotient)             # Re(conj(Γ) Q^)
    da = _fft.irfft2((np.conj(gamma) * spectrum_b
                      - 2.0 * cross[:, None] * spectrum_a)
                     / denominator[:, None], shape)              # (Q6)
    dbeta = None
    if beta_grad:
        pulled = (quotient if cache.spectrum_prior is None
                  else quotient - cache.spectrum_prior)
        solution_derivative = _fft.irfft2(pulled / denominator, shape)
        dbeta = -np.sum(dq * solution_derivative, axis=(-2, -1))  # (Q7), (Q10)
    dtype = dq.dtype
    return da.astype(dtype, copy=False), db.astype(dtype, copy=False), dbeta


def quotient_prior_backward(dq, cache):
    """``dL/d prior`` of a quotient with a prior (Q9).

    Parameters
    ----------
    dq : ndarray of shape (N, H, W)
    cache : QuotientCache
        From :func:`quotient_forward` with ``prior``.

    Returns
    -------
    ndarray of shape (N, H, W)
    """
    weight = cache.beta / cache.denominator                      # real, even
    dprior = _fft.irfft2(weight * _fft.rfft2(dq), cache.shape)   # (Q9)
    return dprior.astype(dq.dtype, copy=False)
