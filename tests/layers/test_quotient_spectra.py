"""The one-pass Numba solve of (Q2)-(Q3) against the NumPy expressions."""

import numpy as np
import pytest

from refdeblur._engine.spectral import combine_spectra
from refdeblur.layers import _quotient


def numpy_combination(spectrum_a, spectrum_b, beta):
    power = spectrum_a.real ** 2 + spectrum_a.imag ** 2
    denominator = power.sum(axis=1) + beta
    numerator = (np.conj(spectrum_a) * spectrum_b).sum(axis=1)
    return numerator / denominator, denominator


@pytest.mark.parametrize("dtype, rtol", [(np.complex128, 1e-13), (np.complex64, 2e-6)])
@pytest.mark.parametrize("n_pairs", [1, 2, 4])
def test_combine_spectra_matches_numpy(rng, dtype, rtol, n_pairs):
    shape = (2, n_pairs, 9, 6)
    a = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    b = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    quotient, denominator = combine_spectra(a, b, 1e-2)
    expected_q, expected_d = numpy_combination(a, b, 1e-2)
    assert quotient.dtype == dtype and denominator.dtype == a.real.dtype
    np.testing.assert_allclose(denominator, expected_d, rtol=rtol)
    np.testing.assert_allclose(quotient, expected_q, rtol=rtol, atol=rtol * np.abs(expected_q).max())


def test_combine_spectra_rejects_mismatched_spectra():
    with pytest.raises(ValueError, match="differ"):
        combine_spectra(np.zeros((1, 2, 3, 3), np.complex64), np.zeros((1, 2, 3, 3), np.complex128), 1.0)


@pytest.mark.requires_numba
def test_quotient_forward_is_the_same_on_both_paths(rng, monkeypatch):
    # Large spectra go to the kernel; force both paths on one input.
    a = rng.standard_normal((1, 2, 40, 40))
    b = rng.standard_normal((1, 2, 40, 40))
    monkeypatch.setattr(_quotient, "_KERNEL_MIN_SIZE", 1)
    fast, _ = _quotient.quotient_forward(a, b, 1e-3)
    monkeypatch.setattr(_quotient, "_KERNEL_MIN_SIZE", 1 << 60)
    slow, _ = _quotient.quotient_forward(a, b, 1e-3)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-14)


@pytest.mark.requires_numba
def test_quotient_forward_with_a_beta_per_example_is_the_same_on_both_paths(rng, monkeypatch):
    # The relative beta_k of the kernel quotient: the kernel one example at a time.
    a = rng.standard_normal((3, 2, 40, 40))
    b = rng.standard_normal((3, 2, 40, 40))
    beta = np.array([1e-3, 0.5, 20.0])[:, None, None]
    monkeypatch.setattr(_quotient, "_KERNEL_MIN_SIZE", 1)
    fast, fast_cache = _quotient.quotient_forward(a, b, beta)
    monkeypatch.setattr(_quotient, "_KERNEL_MIN_SIZE", 1 << 60)
    slow, slow_cache = _quotient.quotient_forward(a, b, beta)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast_cache.denominator, slow_cache.denominator, rtol=1e-12)
