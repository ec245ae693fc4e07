"""Tests of the GP camera-shake kernel sampler (refdeblur.camera_shake)."""

import numpy as np
import pytest
from scipy import ndimage

from refdeblur._engine import camera_shake as engine
from refdeblur.camera_shake import (
    check_kernel_size,
    check_rng,
    matern_covariance,
    rasterize_trajectory,
    sample_kernel,
    sample_kernels,
    sample_trajectory,
)

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def centre_of_mass(kernel):
    """(row, column) centre of mass in array indices, like the centre (m//2, m//2)."""
    idx = np.arange(kernel.shape[0])
    return (kernel.sum(axis=1) @ idx, kernel.sum(axis=0) @ idx)


# --------------------------------------------------------------------------
# Covariance
# --------------------------------------------------------------------------

@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
def test_closed_forms_match_general_bessel_form(nu):
    # The closed forms (G2-G4) must equal the general Bessel form (G1);
    # a relative offset of 1e-12 in nu forces the Bessel branch.
    r = np.linspace(0, 2, 41)
    closed = matern_covariance(r, 0.0, length_scale=0.3, signal_std=0.25, nu=nu)
    general = matern_covariance(r, 0.0, length_scale=0.3, signal_std=0.25,
                                nu=nu * (1 + 1e-12))
    err = np.abs(closed - general).max()
    assert err < 1e-9, f"closed form vs Bessel form for nu={nu}: max diff {err:.3g}"


def test_matern_values_and_paper_formula():
    s2 = 0.25 ** 2
    assert matern_covariance(0.3, 0.3) == pytest.approx(s2, rel=1e-15)
    # ν = 3/2 at r = l: σ²(1 + √3) e^{−√3}.
    val = matern_covariance(0.0, 0.3, length_scale=0.3, signal_std=0.25, nu=1.5)
    assert val == pytest.approx(s2 * (1 + np.sqrt(3)) * np.exp(-np.sqrt(3)), rel=1e-14)
    # The formula printed as the paper's Eq. 6 is the ν = 5/2 member.
    r, l = 0.17, 0.3
    eq6 = s2 * (1 + np.sqrt(5) * r / l + 5 * r**2 / (3 * l**2)) * np.exp(-np.sqrt(5) * r / l)
    val = matern_covariance(r, 0.0, length_scale=l, signal_std=0.25, nu=2.5)
    assert val == pytest.approx(eq6, rel=1e-14)
    # Symmetric and broadcasting.
    t = np.linspace(0, 1, 7)
    cov = matern_covariance(t[:, None], t[None, :])
    assert cov.shape == (7, 7)
    np.testing.assert_array_equal(cov, cov.T)


@pytest.mark.parametrize("bad", [dict(length_scale=0), dict(signal_std=-1),
                                 dict(nu=0), dict(nu=np.nan)])
def test_matern_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        matern_covariance(0.0, 0.1, **bad)


@pytest.mark.parametrize("nu", [1.5, 2.5])
def test_trajectory_covariance_matches_matern(nu):
    # A 251-point grid (spacing 0.004) instead of the default 1000 points
    # keeps the test fast; the factorisation and sampling code is the same.
    rng = np.random.default_rng(8713)
    n_draws = 6000
    n_t = 251
    # Each draw gives two independent coordinates, so 2 * n_draws samples.
    traj = np.stack([sample_trajectory(rng, n_samples=n_t, nu=nu)
                     for _ in range(n_draws)])
    samples = (traj - 0.5).transpose(0, 2, 1).reshape(-1, n_t)
    n = samples.shape[0]
    t = np.linspace(0, 1, n_t)
    i0 = 50
    sigma2 = 0.25 ** 2
    for lag in (0, 5, 25, 50, 100, 200):
        j = i0 + lag
        # Known mean 0.5, so the estimate is the mean of products. For a
        # centred bivariate normal with variance σ² and correlation ρ,
        # Var(ab) = σ⁴(1 + ρ²), hence standard error σ²·sqrt((1+ρ²)/n).
        # 5 standard errors: with 12 comparisons a false alarm has
        # probability < 1e-5 (and the seed is fixed).
        est = np.mean(samples[:, i0] * samples[:, j])
        expected = matern_covariance(t[i0], t[j], nu=nu)
        rho = expected / sigma2
        se = sigma2 * np.sqrt((1 + rho**2) / n)
        assert abs(est - expected) < 5 * se, (
            f"nu={nu} lag={t[j] - t[i0]:.3f}: empirical cov {est:.5f} vs "
            f"Matérn {expected:.5f} (5 SE = {5 * se:.5f}, n={n})")
    # The covariance products above are dominated by σ² and cannot tell
    # ν = 3/2 from 5/2 at short lags. Increments can: Var(f(t+h) - f(t)) =
    # 2(k(0) - k(h)), whose estimate from n Gaussian samples has relative
    # standard error sqrt(2/n) (1.3 % here, while the two ν differ by 40 %
    # at h = 0.02).
    for lag in (1, 5, 25):
        inc = samples[:, i0 + lag] - samples[:, i0]
        est = np.mean(inc**2)
        expected = 2 * (sigma2 - matern_covariance(0.0, t[lag], nu=nu))
        rel_se = np.sqrt(2 / n)
        assert abs(est / expected - 1) < 5 * rel_se, (
            f"nu={nu} h={t[lag]:.3f}: increment variance {est:.3e} vs "
            f"{expected:.3e} (5 SE = {5 * rel_se:.1%})")
    # The mean is 0.5 (standard error of the mean: σ_f / sqrt(n)).
    mean_err = abs(samples[:, 125].mean())
    assert mean_err < 5 * 0.25 / np.sqrt(n), f"mean off by {mean_err:.4f}"


def test_trajectory_shape_and_rng_type():
    traj = sample_trajectory(np.random.default_rng(0), n_samples=50)
    assert traj.shape == (50, 2) and traj.dtype == np.float64
    with pytest.raises(TypeError):
        sample_trajectory(np.random.RandomState(0))


# --------------------------------------------------------------------------
# Rasteriser
# --------------------------------------------------------------------------

def test_rasterizer_is_gap_free_for_a_fast_diagonal():
    # Two samples 10 px apart: the port's histogram would give two dots.
    k = rasterize_trajectory(np.array([[0.3, 1.2], [10.3, 8.7]]), 12)
    n_comp = ndimage.label(k > 0, structure=EIGHT_CONNECTED)[1]
    assert n_comp == 1, f"{n_comp} pieces"
    assert abs(k.sum() - 1) < 1e-14
    # Bilinear splatting keeps the centre of mass: the segment midpoint.
    com = centre_of_mass(k)
    np.testing.assert_allclose(com, [(1.2 + 8.7) / 2, (0.3 + 10.3) / 2], atol=1e-12)


def test_rasterizer_time_weighting():
    # Three samples: a slow segment (0.5 px) then a fast one (4 px), equal
    # time each. Exact masses: pixel 2 gets ∫_2^2.5 (3-x) dx of the slow
    # segment's density 1 (= 0.375) plus ∫_2.5^3 0.125 (3-x) dx (= 0.015625);
    # an inner pixel of the fast segment gets its density 0.125. The midpoint
    # rule is exact here because every sub-segment lies between integers.
    pts = np.array([[2.0, 3.0], [2.5, 3.0], [6.5, 3.0]])
    k = rasterize_trajectory(pts, 9)
    np.testing.assert_allclose(k[3, [2, 4, 5]], [0.390625, 0.125, 0.125], atol=1e-15)
    assert k.sum() - k[3].sum() == 0, "mass off the trajectory's row"


def test_rasterizer_rejects_points_outside():
    with pytest.raises(ValueError):
        rasterize_trajectory(np.array([[0.0, 0.0], [7.5, 1.0]]), 7)


# --------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------

@pytest.mark.parametrize("size,n_kernels", [(17, 600), (33, 500)])
def test_kernel_properties_over_many_draws(size, n_kernels):
    rng = np.random.default_rng(size)
    centre = size // 2
    for i in range(n_kernels):
        k = sample_kernel(size, rng)
        assert k.shape == (size, size) and k.dtype == np.float64
        assert k.min() >= 0, f"draw {i}: negative value {k.min():.3g}"
        assert k.max() > 0, f"draw {i}: empty kernel"
        assert abs(k.sum() - 1) <= 1e-12, f"draw {i}: sum - 1 = {k.sum() - 1:.3g}"
        com = centre_of_mass(k)
        off = max(abs(com[0] - centre), abs(com[1] - centre))
        assert off < 0.5, f"draw {i}: centre of mass {com} vs centre {centre}"
        n_comp = ndimage.label(k > 0, structure=EIGHT_CONNECTED)[1]
        assert n_comp == 1, f"draw {i}: support in {n_comp} pieces"


@pytest.mark.parametrize("size", [17, 33])
def test_unsmoothed_kernels_are_connected_and_exactly_centred(size):
    # Without the 3×3 smoothing nothing could hide gaps, and the centring is
    # exact because no mass can leave the box.
    rng = np.random.default_rng(100 + size)
    centre = size // 2
    for i in range(200):
        k = sample_kernel(size, rng, smoothing_sigma=0)
        n_comp = ndimage.label(k > 0, structure=EIGHT_CONNECTED)[1]
        assert n_comp == 1, f"draw {i}: unsmoothed support in {n_comp} pieces"
        err = np.abs(np.subtract(centre_of_mass(k), centre)).max()
        assert err < 1e-9, f"draw {i}: centre of mass off by {err:.3g} px"


def test_kernels_are_not_degenerate():
    # The paper's kernels are trajectories, not dots: check the typical extent.
    rng = np.random.default_rng(5)
    ks = sample_kernels(100, 17, rng)
    extents = [np.ptp(np.nonzero(k > 1e-3 * k.max())[0]) + 1 for k in ks]
    med = np.median(extents)
    assert 5 <= med <= 16, f"median row extent {med} px of 17"


def test_determinism():
    a = sample_kernels(5, 17, np.random.default_rng(42))
    b = sample_kernels(5, 17, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    c = sample_kernels(5, 17, np.random.default_rng(43))
    assert not np.array_equal(a, c)
    # Keyword rng and the loop of sample_kernel give the same kernels.
    rng = np.random.default_rng(42)
    d = np.stack([sample_kernel(size=17, rng=rng) for _ in range(5)])
    np.testing.assert_array_equal(a, d)


@pytest.mark.parametrize("nu", [0.5, 2.5])
def test_other_smoothness(nu):
    # 200 time points: a new parameter set means a new Cholesky factorisation.
    k = sample_kernel(17, np.random.default_rng(1), nu=nu, n_samples=200)
    assert abs(k.sum() - 1) < 1e-12


@pytest.mark.parametrize("size", [16, 2, 1, 0, -3, 17.0, True])
def test_bad_sizes_raise(size, rng):
    with pytest.raises(ValueError):
        sample_kernel(size, rng)


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError):
        sample_kernel(17, 0)
    with pytest.raises(TypeError, match="Generator"):
        check_rng(np.random.RandomState(0))
    check_rng(np.random.default_rng(0))


def test_check_kernel_size():
    assert check_kernel_size(np.int64(17)) == 17
    assert type(check_kernel_size(np.int64(17))) is int
    for bad in (16, 1, 17.0, True, "17"):
        with pytest.raises(ValueError, match="odd integer"):
            check_kernel_size(bad)


def test_lower_triangular_product_numpy_gives_the_kernels_bits(rng):
    # the Cholesky factor of the sampler, 300 points (the loop kernel may run
    # as plain Python here, in the runs without numba's JIT)
    t = np.linspace(0.0, 1.0, 300)
    chol = np.linalg.cholesky(matern_covariance(t[:, None], t[None, :]) + 1e-12 * np.eye(300))
    z = rng.standard_normal((300, 2))
    expected = engine.lower_triangular_product_kernel(chol, z)
    np.testing.assert_array_equal(engine.lower_triangular_product_numpy(chol, z), expected)
    np.testing.assert_allclose(expected, chol @ z, rtol=1e-12, atol=1e-14)
    # the upper triangle is not read
    np.testing.assert_array_equal(
        engine.lower_triangular_product_numpy(chol + np.triu(np.ones_like(chol), 1), z),
        expected)


def test_kernels_are_the_same_without_numba(monkeypatch):
    with_numba = sample_kernels(3, 17, np.random.default_rng(7))
    monkeypatch.setattr(engine, "HAVE_NUMBA", False)
    np.testing.assert_array_equal(sample_kernels(3, 17, np.random.default_rng(7)), with_numba)


def test_exhausted_attempts_raise_runtime_error(rng):
    # σ_f = 2 puts nearly every trajectory outside the box.
    with pytest.raises(RuntimeError, match="attempts"):
        sample_kernel(17, rng, signal_std=2.0, n_samples=50, max_attempts=5)
