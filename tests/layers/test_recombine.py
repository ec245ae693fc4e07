import numpy as np
import pytest

from refdeblur import gradcheck
from refdeblur.layers.recombine import Recombine

TOL = 1e-6


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 4, 6, 6)])
def test_recombine_vjp_wrt_input_and_params(rng, bias, shape):
    layer = Recombine(shape[1], 5, bias=bias)
    params = layer.init_params(rng)
    if bias:
        params["bias"] = rng.standard_normal(5)
    x = rng.standard_normal(shape)
    names = sorted(params)

    def function(x, *values):
        return layer.forward(x, dict(zip(names, values)))[0]

    _, cache = layer.forward(x, params)

    def vjp(g):
        dx, grads = layer.backward(g, cache)
        return [dx] + [grads[n] for n in names]

    errors = gradcheck.check_vjp(function, [x] + [params[n] for n in names],
                                 vjp, rng=rng)
    assert max(errors) <= TOL, f"recombine rel errs {dict(zip(['x'] + names, errors))}"


def test_recombine_forward_is_pixelwise_matrix(rng):
    layer = Recombine(3, 2)
    params = layer.init_params(rng)
    x = rng.standard_normal((2, 3, 4, 5))
    out, _ = layer.forward(x, params)
    expected = np.einsum("oc,nchw->nohw", params["weight"], x)
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-14)


def test_recombine_adjoint(rng):
    layer = Recombine(3, 4)
    params = layer.init_params(rng)
    shape = (2, 3, 5, 7)
    _, cache = layer.forward(np.zeros(shape), params)
    mismatch = gradcheck.adjoint_mismatch(
        lambda u: layer.forward(u, params)[0],
        lambda v: layer.backward(v, cache)[0], shape, (2, 4, 5, 7), rng=rng)
    assert mismatch <= 1e-12


def test_recombine_weight_map_adjoint(rng):
    layer = Recombine(3, 4)
    x = rng.standard_normal((2, 3, 5, 7))
    _, cache = layer.forward(x, {"weight": np.zeros((4, 3))})
    mismatch = gradcheck.adjoint_mismatch(
        lambda w: layer.forward(x, {"weight": w})[0],
        lambda v: layer.backward(v, cache)[1]["weight"], (4, 3), (2, 4, 5, 7),
        rng=rng)
    assert mismatch <= 1e-12


def test_recombine_rejects_wrong_channels(rng):
    layer = Recombine(3, 2)
    with pytest.raises(ValueError, match="Recombine expects"):
        layer.forward(np.zeros((1, 2, 4, 4)), layer.init_params(rng))


def test_recombine_preserves_float32(rng):
    layer = Recombine(2, 3)
    params = layer.init_params(rng, np.float32)
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    out, cache = layer.forward(x, params)
    dx, grads = layer.backward(out, cache)
    assert out.dtype == dx.dtype == grads["weight"].dtype == np.float32
