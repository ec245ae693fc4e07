import numpy as np
import pytest
import scipy.signal

from refdeblur import gradcheck
from refdeblur.layers._quotient import quotient_backward, quotient_forward
from refdeblur.layers.crop_pad import kernel_to_grid
from refdeblur.layers.kernel_quotient import KernelQuotient

TOL = 1e-6

# (H, W, m, n, taper, beta): odd, even and non-square sizes, 2-4 feature pairs,
# the paper's beta_k = 1e-4 and a larger one.
CASES = [(12, 10, 5, 2, 2, 0.1), (11, 9, 3, 3, 3, 0.1), (16, 16, 7, 4, 3, 0.1),
         (24, 20, 7, 2, 7, 1e-4), (19, 23, 5, 4, 5, 1e-4)]


@pytest.mark.parametrize("height, width, m, n, taper, beta", CASES)
@pytest.mark.parametrize("normalize", [True, False])
def test_kernel_quotient_vjp(rng, height, width, m, n, taper, beta, normalize):
    layer = KernelQuotient(m, taper_width=taper, beta=beta, normalize=normalize)
    x_sharp = rng.standard_normal((2, n, height, width))
    y_blurry = rng.standard_normal((2, n, height, width))
    _, cache = layer.forward(x_sharp, y_blurry)
    errors = gradcheck.check_vjp(
        lambda a, b: layer.forward(a, b)[0], [x_sharp, y_blurry],
        lambda g: layer.backward(g, cache)[0], rng=rng)
    assert max(errors) <= TOL, f"kernel quotient rel errs {errors}"


def test_kernel_quotient_elementwise_gradient(rng):
    layer = KernelQuotient(3, taper_width=2, beta=0.1)
    x_sharp = rng.standard_normal((1, 2, 7, 6))
    y_blurry = rng.standard_normal((1, 2, 7, 6))
    weight = rng.standard_normal((1, 3, 3))
    _, cache = layer.forward(x_sharp, y_blurry)
    (dx, dy), _ = layer.backward(weight, cache)
    numeric_x = gradcheck.numerical_gradient(
        lambda a: gradcheck.inner(weight, layer.forward(a, y_blurry)[0]), x_sharp)
    numeric_y = gradcheck.numerical_gradient(
        lambda b: gradcheck.inner(weight, layer.forward(x_sharp, b)[0]), y_blurry)
    assert gradcheck.relative_error(dx, numeric_x) <= TOL
    assert gradcheck.relative_error(dy, numeric_y) <= TOL


@pytest.mark.parametrize("height, width, n", [(12, 10, 2), (11, 9, 1), (9, 14, 3)])
def test_generic_quotient_vjp_including_beta(rng, height, width, n):
    """The shared operator of both layers, with respect to a, b and beta (Q5)-(Q7)."""
    a = rng.standard_normal((2, n, height, width))
    b = rng.standard_normal((2, n, height, width))
    beta = np.array(0.3)
    _, cache = quotient_forward(a, b, beta)

    def vjp(g):
        da, db, dbeta = quotient_backward(g, cache, beta_grad=True)
        return da, db, np.array(dbeta.sum())

    errors = gradcheck.check_vjp(lambda a, b, beta: quotient_forward(a, b, beta)[0],
                                 [a, b, beta], vjp, rng=rng)
    assert max(errors) <= TOL, f"quotient rel errs (a, b, beta) {errors}"


def test_quotient_is_linear_in_b_with_adjoint(rng):
    a = rng.standard_normal((1, 2, 8, 9))
    _, cache = quotient_forward(a, np.zeros_like(a), 0.5)
    mismatch = gradcheck.adjoint_mismatch(
        lambda b: quotient_forward(a, b, 0.5)[0],
        lambda g: quotient_backward(g, cache)[1], a.shape, (1, 8, 9), rng=rng)
    assert mismatch <= 1e-12


def test_quotient_forward_matches_least_squares(rng):
    """Eq. 4 minimises Eq. 3: check against a dense least-squares solve."""
    height, width, n, beta = 6, 5, 2, 0.3
    a = rng.standard_normal((1, n, height, width))
    b = rng.standard_normal((1, n, height, width))
    q, _ = quotient_forward(a, b, beta)
    size = height * width
    rows, targets = [], []
    for i in range(n):
        # column p of the circular convolution matrix: a_i rolled by p
        matrix = np.empty((size, size))
        for p in range(size):
            basis = np.zeros(size)
            basis[p] = 1
            shifted = np.real(np.fft.ifft2(np.fft.fft2(basis.reshape(height, width))
                                           * np.fft.fft2(a[0, i])))
            matrix[:, p] = shifted.ravel()
        rows.append(matrix)
        targets.append(b[0, i].ravel())
    system = np.vstack(rows + [np.sqrt(beta) * np.eye(size)])
    rhs = np.concatenate(targets + [np.zeros(size)])
    solution = np.linalg.lstsq(system, rhs, rcond=None)[0]
    np.testing.assert_allclose(q[0].ravel(), solution, atol=1e-12)


def test_kernel_quotient_recovers_known_kernel(rng):
    """Noise-free circular data, no taper, tiny beta: the exact kernel comes back."""
    m, height, width = 7, 24, 20
    true_kernel = rng.random((m, m))
    true_kernel /= true_kernel.sum()
    sharp = rng.standard_normal((1, 3, height, width))
    otf = np.fft.fft2(kernel_to_grid(true_kernel, (height, width)))
    blurry = np.real(np.fft.ifft2(otf * np.fft.fft2(sharp)))
    layer = KernelQuotient(m, taper_width=0, beta=1e-12, normalize=False,
                           pad_to_fast_size=False)
    estimate, _ = layer.forward(sharp, blurry)
    assert np.max(np.abs(estimate[0] - true_kernel)) <= 1e-10


def test_kernel_quotient_orientation_with_valid_blur(rng):
    """True convolution (Eq. 1) gives the kernel itself, not its 180° rotation."""
    m = 5
    kernel = np.zeros((m, m))
    kernel[0, 0], kernel[2, 2], kernel[3, 4] = 0.5, 0.3, 0.2   # asymmetric
    sharp = rng.standard_normal((60, 60))
    blurry = scipy.signal.convolve2d(sharp, kernel, mode="valid")
    # align sharp with the valid region and use gradients as features
    sharp = sharp[m // 2:-(m // 2), m // 2:-(m // 2)]
    features = np.stack([np.diff(sharp, axis=0)[:, :-1], np.diff(sharp, axis=1)[:-1]])
    blurred = np.stack([np.diff(blurry, axis=0)[:, :-1], np.diff(blurry, axis=1)[:-1]])
    estimate, _ = KernelQuotient(m, taper_width=m).forward(features[None], blurred[None])
    assert np.abs(estimate[0] - kernel).max() < 0.05
    assert np.abs(estimate[0] - kernel[::-1, ::-1]).max() > 0.2


def test_kernel_quotient_output_is_nonnegative_and_normalised(rng):
    layer = KernelQuotient(5)
    kernel, _ = layer.forward(rng.standard_normal((3, 2, 20, 18)),
                              rng.standard_normal((3, 2, 20, 18)))
    assert kernel.shape == (3, 5, 5)
    assert np.all(kernel >= 0)
    np.testing.assert_allclose(kernel.sum(axis=(1, 2)), 1.0, rtol=1e-6)


def test_kernel_quotient_rejects_bad_input():
    layer = KernelQuotient(5)
    with pytest.raises(ValueError, match="smaller than"):
        layer.forward(np.ones((1, 2, 4, 8)), np.ones((1, 2, 4, 8)))
    with pytest.raises(ValueError, match="must both be"):
        layer.forward(np.ones((1, 2, 8, 8)), np.ones((1, 3, 8, 8)))
    with pytest.raises(ValueError, match="odd"):
        KernelQuotient(4)


def test_kernel_quotient_float32_close_to_float64(rng):
    layer = KernelQuotient(5)
    a = rng.standard_normal((1, 2, 32, 30))
    b = rng.standard_normal((1, 2, 32, 30))
    k64, _ = layer.forward(a, b)
    k32, cache = layer.forward(a.astype(np.float32), b.astype(np.float32))
    assert k32.dtype == np.float32
    assert np.abs(k32 - k64).max() <= 1e-5
    (dx, dy), _ = layer.backward(np.ones_like(k32), cache)
    assert dx.dtype == dy.dtype == np.float32


# (N, H, W, m, n, taper, c): relative beta_k (K15)-(K17), single and batched.
RELATIVE_CASES = [(1, 12, 10, 5, 2, 2, 0.05), (3, 11, 9, 3, 3, 3, 0.05),
                  (3, 16, 14, 5, 4, 3, 1e-3), (1, 19, 23, 5, 1, 5, 1e-3)]


@pytest.mark.parametrize("n_batch, height, width, m, n, taper, factor", RELATIVE_CASES)
@pytest.mark.parametrize("normalize", [True, False])
def test_relative_beta_vjp(rng, n_batch, height, width, m, n, taper, factor, normalize):
    layer = KernelQuotient(m, taper_width=taper, beta=factor, beta_mode="relative",
                           normalize=normalize)
    x_sharp = rng.standard_normal((n_batch, n, height, width))
    y_blurry = rng.standard_normal((n_batch, n, height, width))
    _, cache = layer.forward(x_sharp, y_blurry)
    errors = gradcheck.check_vjp(
        lambda a, b: layer.forward(a, b)[0], [x_sharp, y_blurry],
        lambda g: layer.backward(g, cache)[0], rng=rng)
    assert max(errors) <= TOL, f"relative-beta kernel quotient rel errs {errors}"


@pytest.mark.parametrize("n_batch", [1, 2])
def test_relative_beta_elementwise_gradient(rng, n_batch):
    layer = KernelQuotient(3, taper_width=2, beta=0.05, beta_mode="relative")
    x_sharp = rng.standard_normal((n_batch, 2, 7, 6))
    y_blurry = rng.standard_normal((n_batch, 2, 7, 6))
    weight = rng.standard_normal((n_batch, 3, 3))
    _, cache = layer.forward(x_sharp, y_blurry)
    (dx, dy), _ = layer.backward(weight, cache)
    numeric_x = gradcheck.numerical_gradient(
        lambda a: gradcheck.inner(weight, layer.forward(a, y_blurry)[0]), x_sharp)
    numeric_y = gradcheck.numerical_gradient(
        lambda b: gradcheck.inner(weight, layer.forward(x_sharp, b)[0]), y_blurry)
    assert gradcheck.relative_error(dx, numeric_x) <= TOL
    assert gradcheck.relative_error(dy, numeric_y) <= TOL
    # The path through beta_k (K17) is not negligible: without it the check fails.
    without_k17 = cache._replace(tapered_sharp=None)
    (dx_without, _), _ = layer.backward(weight, without_k17)
    assert gradcheck.relative_error(dx_without, numeric_x) > 1e-3


def test_relative_beta_makes_the_kernel_scale_free(rng):
    x_sharp = rng.standard_normal((2, 2, 20, 18))
    y_blurry = x_sharp + 0.3 * rng.standard_normal(x_sharp.shape)
    relative = KernelQuotient(5, beta=0.05, beta_mode="relative", normalize=False)
    constant = KernelQuotient(5, beta=0.05, normalize=False)
    reference, _ = relative.forward(x_sharp, y_blurry)
    for scale in (1e-3, 1e3):
        scaled, _ = relative.forward(scale * x_sharp, scale * y_blurry)
        np.testing.assert_allclose(scaled, reference, rtol=1e-12, atol=1e-12)
    small, _ = constant.forward(1e-3 * x_sharp, 1e-3 * y_blurry)
    assert np.abs(small - constant.forward(x_sharp, y_blurry)[0]).max() > 1e-2


def test_relative_beta_floor_keeps_zero_features_finite(rng):
    layer = KernelQuotient(3, beta=0.05, beta_mode="relative")
    x_sharp = np.zeros((2, 2, 9, 8))
    x_sharp[1] = rng.standard_normal((2, 9, 8))
    kernel, cache = layer.forward(x_sharp, rng.standard_normal(x_sharp.shape))
    assert np.all(kernel[0] == 0) and np.isfinite(kernel).all()
    (dx, dy), _ = layer.backward(rng.standard_normal(kernel.shape), cache)
    assert np.isfinite(dx).all() and np.isfinite(dy).all()


def test_beta_mode_is_checked():
    with pytest.raises(ValueError, match="beta_mode"):
        KernelQuotient(5, beta_mode="learned")


# -- a prior kernel (K18)-(K19), (Q8)-(Q10) --------------------------------

@pytest.mark.parametrize("mode, beta", [("constant", 0.3), ("relative", 0.05)])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("n_batch, height, width, m, n", [(1, 9, 8, 3, 1), (3, 11, 12, 5, 2)])
def test_prior_vjp(rng, mode, beta, normalize, n_batch, height, width, m, n):
    layer = KernelQuotient(m, taper_width=2, beta=beta, beta_mode=mode, normalize=normalize)
    x_sharp = rng.standard_normal((n_batch, n, height, width))
    y_blurry = rng.standard_normal((n_batch, n, height, width))
    prior = rng.random((n_batch, m, m))
    _, cache = layer.forward(x_sharp, y_blurry, prior=prior)
    errors = gradcheck.check_vjp(
        lambda a, b, p: layer.forward(a, b, prior=p)[0], [x_sharp, y_blurry, prior],
        lambda g: list(layer.backward(g, cache)[0]), rng=rng)
    assert max(errors) <= TOL, f"kernel quotient with a prior, rel errs {errors}"


def test_prior_backward_is_the_adjoint_of_its_linear_part(rng):
    # q is affine in the prior: q(p) - q(0) = T p with T self-adjoint (Q9)
    a = rng.standard_normal((2, 2, 10, 9))
    b = rng.standard_normal((2, 2, 10, 9))
    p1, p2 = rng.standard_normal((2, 2, 10, 9))
    beta = np.array([0.4, 2.0])[:, None, None]
    zero, _ = quotient_forward(a, b, beta)
    with_p1, cache = quotient_forward(a, b, beta, prior=p1)
    from refdeblur.layers._quotient import quotient_prior_backward
    applied = with_p1 - zero
    adjoint = quotient_prior_backward(p2, cache)
    assert np.sum(applied * p2) == pytest.approx(np.sum(p1 * adjoint), rel=1e-12)


def test_without_evidence_the_estimate_is_the_prior_and_with_strong_evidence_the_data(rng):
    kernel = rng.random((5, 5))
    kernel /= kernel.sum()
    x_sharp = rng.standard_normal((1, 2, 40, 40))
    y_blurry = np.stack([[scipy.signal.fftconvolve(x, kernel, mode="same") for x in x_sharp[0]]])
    prior = np.full((1, 5, 5), 1 / 25)
    layer = KernelQuotient(5, beta=1e9)
    np.testing.assert_allclose(layer.forward(1e-6 * x_sharp, 1e-6 * y_blurry, prior=prior)[0],
                               prior, atol=1e-9)
    weak = KernelQuotient(5, beta=1e-8)
    data_only, _ = weak.forward(x_sharp, y_blurry)
    np.testing.assert_allclose(weak.forward(x_sharp, y_blurry, prior=prior)[0], data_only,
                               atol=1e-9)
    assert len(layer.backward(np.ones((1, 5, 5)), layer.forward(x_sharp, y_blurry)[1])[0]) == 2
