import numpy as np

from refdeblur import gradcheck
from refdeblur.layers.tanh import Tanh

TOL = 1e-6


def test_tanh_forward_matches_numpy(rng):
    x = rng.standard_normal((2, 3, 5, 4))
    out, _ = Tanh().forward(x)
    np.testing.assert_array_equal(out, np.tanh(x))


def test_tanh_vjp(rng):
    layer = Tanh()
    x = rng.standard_normal((2, 3, 7, 5))
    _, cache = layer.forward(x)
    errors = gradcheck.check_vjp(lambda a: layer.forward(a)[0], [x],
                                 lambda g: [layer.backward(g, cache)[0]], rng=rng)
    assert max(errors) <= TOL, f"tanh vjp rel err {errors}"


def test_tanh_elementwise_gradient(rng):
    layer = Tanh()
    x = rng.standard_normal((1, 2, 3, 3))
    weight = rng.standard_normal(x.shape)
    _, cache = layer.forward(x)
    analytic, _ = layer.backward(weight, cache)
    numeric = gradcheck.numerical_gradient(
        lambda a: gradcheck.inner(weight, layer.forward(a)[0]), x)
    assert gradcheck.relative_error(analytic, numeric) <= TOL


def test_tanh_preserves_float32(rng):
    x = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    out, cache = Tanh().forward(x)
    dx, grads = Tanh().backward(np.ones_like(out), cache)
    assert out.dtype == dx.dtype == np.float32
    assert grads == {}


def test_tanh_backward_is_numpys_expression_bit_for_bit(rng):
    # the one-pass engine kernel: the same operations as NumPy, in float32 too
    layer = Tanh()
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((3, 4, 150, 160)).astype(dtype)  # split over threads
        dout = rng.standard_normal(x.shape).astype(dtype)
        y, cache = layer.forward(x)
        dx, _ = layer.backward(dout, cache)
        assert dx.dtype == dtype
        np.testing.assert_array_equal(dx, dout * (1.0 - y * y))
    # a gradient of another dtype than the output takes NumPy's promotion
    dx, _ = layer.backward(dout.astype(np.float32), cache)
    assert dx.dtype == np.float64
