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
