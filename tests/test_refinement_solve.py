"""The kernel step of the refinement against the dense solve it replaces (A6, A9).

``solve_kernel`` splits ``(G + beta I) k = b`` into the systems of the
kernel's point-symmetric and antisymmetric parts
(derivations/kernel_refinement.md, A9). These tests build the full
``m^2 x m^2`` system with :func:`gradient_gram` and solve it densely.
"""

import numpy as np
import pytest
import scipy.linalg

from refdeblur import sample_kernel
from refdeblur.inference.refinement import (ValidConvolution, gradient_gram, gradients,
                                            refine_kernel, solve_kernel)


def _dense_solution(sharp, blurry, size, regularisation):
    """(A4) to (A6) with the whole normal matrix, factorised as it is."""
    half = size // 2
    rhs = sum(ValidConvolution(p, size).adjoint(q[half:q.shape[0] - half,
                                                  half:q.shape[1] - half])
              for p, q in zip(sharp, blurry))
    gram = gradient_gram(sharp, size)
    energy = np.trace(gram)
    beta = max(regularisation * energy / size ** 4, 1e-12 * energy / size ** 2)
    gram[np.diag_indices_from(gram)] += beta
    return scipy.linalg.solve(gram, rhs.ravel(), assume_a="pos").reshape(size, size)


def _sparse_edges(rng, shape, fraction=0.05):
    return [rng.standard_normal(shape) * (rng.random(shape) < fraction) for _ in range(2)]


@pytest.mark.parametrize("size, shape", [(1, (9, 8)), (3, (20, 17)), (9, (40, 33)),
                                         (17, (60, 71)), (33, (110, 100))])
@pytest.mark.parametrize("regularisation", [1e-3, 0.3])
def test_split_solve_equals_the_dense_solve(size, shape, regularisation):
    rng = np.random.default_rng(size)
    sharp = _sparse_edges(rng, shape)
    blurry = [rng.standard_normal(shape) for _ in range(2)]
    dense = _dense_solution(sharp, blurry, size, regularisation)
    split = solve_kernel(sharp, blurry, size, regularisation)
    # Both are backward stable; they differ by rounding amplified by the
    # condition number (up to about 1e3 here, measured 1e-15 relative).
    np.testing.assert_allclose(split, dense, rtol=0, atol=1e-10 * np.abs(dense).max())


def test_split_solve_on_a_real_refinement_system():
    # Sharp and blurry gradients as the refinement meets them: the edges of a
    # natural image and its blur, with the default regularisation.
    from scipy.signal import fftconvolve
    from skimage import data

    rng = np.random.default_rng(7)
    sharp = data.camera()[100:260, 150:330] / 255.0
    true = sample_kernel(25, rng)
    blurry = fftconvolve(sharp, true, mode="same") + 0.01 * rng.standard_normal(sharp.shape)
    edges = gradients(sharp)
    magnitude = np.hypot(*edges)
    keep = magnitude >= np.quantile(magnitude, 0.95)
    edges = [e * keep for e in edges]
    dense = _dense_solution(edges, gradients(blurry), 25, 1e-3)
    split = solve_kernel(edges, gradients(blurry), 25, 1e-3)
    np.testing.assert_allclose(split, dense, rtol=0, atol=1e-9 * np.abs(dense).max())


def test_normal_matrix_commutes_with_the_kernel_reversal():
    # (A9): G[j, j'] depends on j - j' and is even in it, so reversing both
    # kernel indices leaves it unchanged; otherwise the split would be wrong.
    rng = np.random.default_rng(11)
    gram = gradient_gram(_sparse_edges(rng, (30, 26), 0.2), 7)
    np.testing.assert_allclose(gram[::-1, ::-1], gram, rtol=0,
                               atol=1e-12 * np.abs(gram).max())
    assert not np.allclose(gram[::-1], gram)  # not trivially symmetric per axis


def test_refine_kernel_repeats_its_result():
    # The blurry gradients' transforms are computed once per refine_kernel
    # call and reused by every alternation; nothing may leak between calls.
    from scipy.signal import fftconvolve
    from skimage import data

    rng = np.random.default_rng(3)
    sharp = data.camera()[::3, ::3] / 255.0
    blurry = fftconvolve(sharp, sample_kernel(13, rng), mode="valid")
    start = np.ones((13, 13))
    first = refine_kernel(blurry, start, n_iter=2)
    np.testing.assert_array_equal(refine_kernel(blurry, start, n_iter=2), first)
    one_more = refine_kernel(blurry, start, n_iter=3)
    assert not np.array_equal(one_more, first)
