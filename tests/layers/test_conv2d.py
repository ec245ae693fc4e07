"""Conv2D: gradient checks, adjoint tests, kernels against SciPy oracles.

Shapes are tiny on purpose: CI also runs this file with NUMBA_DISABLE_JIT=1,
where the Numba kernels run as plain Python loops.
"""

import numpy as np
import pytest
from scipy import signal

from refdeblur import _engine as engine
from refdeblur import gradcheck
from refdeblur._engine import conv as conv_kernels
from refdeblur._engine import conv_backends
from refdeblur.layers.conv2d import Conv2D

TOL = 1e-6
ADJOINT_TOL = 1e-12
METHODS = ["direct", "fft"]


def _oracle_forward(x, weight, bias):
    """(C1) with scipy.signal.correlate: 'valid' in 3-D sums over channels."""
    return np.stack([
        np.stack([bias[o] + signal.correlate(x[n], weight[o], mode="valid")[0]
                  for o in range(weight.shape[0])])
        for n in range(x.shape[0])])


def _oracle_input_gradient(dout, weight):
    """(C3): full 2-D convolutions of dout with each filter, summed over o."""
    return np.stack([
        np.stack([sum(signal.convolve2d(dout[n, o], weight[o, c], mode="full")
                      for o in range(weight.shape[0]))
                  for c in range(weight.shape[1])])
        for n in range(dout.shape[0])])


def _oracle_weight_gradient(x, dout):
    """(C4) as the direct sum over samples and output pixels."""
    n_batch, n_out, out_h, out_w = dout.shape
    f = x.shape[2] - out_h + 1
    dweight = np.zeros((n_out, x.shape[1], f, f))
    for u in range(f):
        for v in range(f):
            window = x[:, :, u:u + out_h, v:v + out_w]  # (N, C_in, Ho, Wo)
            dweight[:, :, u, v] = np.einsum("nohw,nchw->oc", dout, window)
    return dweight


def _random_params(layer, rng, bias_scale=1.0):
    params = layer.init_params(rng)
    if layer.bias:
        params["bias"] = bias_scale * rng.standard_normal(layer.out_channels)
    return params


# -- gradients ---------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("in_channels, filter_size", [(1, 3), (2, 5)])
def test_conv2d_vjp_wrt_input_weight_bias(rng, method, in_channels, filter_size):
    layer = Conv2D(in_channels, 3, filter_size, method=method)
    params = _random_params(layer, rng)
    x = rng.standard_normal((2, in_channels, 11, 8))

    def function(x, weight, bias):
        return layer.forward(x, {"weight": weight, "bias": bias})[0]

    _, cache = layer.forward(x, params)

    def vjp(dout):
        dx, grads = layer.backward(dout, cache)
        return [dx, grads["weight"], grads["bias"]]

    errors = gradcheck.check_vjp(function, [x, params["weight"], params["bias"]],
                                 vjp, rng=rng)
    assert max(errors) <= TOL, f"conv2d rel errs x, w, b: {errors}"


def test_conv2d_numerical_gradient_elementwise(rng):
    layer = Conv2D(2, 2, 3, method="direct")
    params = _random_params(layer, rng)
    x = rng.standard_normal((1, 2, 5, 4))
    out, cache = layer.forward(x, params)
    output_weight = rng.standard_normal(out.shape)
    dx, grads = layer.backward(output_weight, cache)

    def loss_of(name):
        def loss(value):
            trial = dict(params, **{name: value})
            trial_x = value if name == "x" else x
            return gradcheck.inner(output_weight, layer.forward(trial_x, trial)[0])
        return loss

    for name, analytic, point in [("x", dx, x),
                                  ("weight", grads["weight"], params["weight"]),
                                  ("bias", grads["bias"], params["bias"])]:
        numeric = gradcheck.numerical_gradient(loss_of(name), point)
        error = gradcheck.relative_error(analytic, numeric)
        assert error <= TOL, f"{name}: {error}"


def test_conv2d_input_grad_false_skips_dx(rng):
    layer = Conv2D(1, 4, 3)
    params = _random_params(layer, rng)
    x = rng.standard_normal((2, 1, 6, 7))
    out, cache = layer.forward(x, params)
    dout = rng.standard_normal(out.shape)
    dx, grads = layer.backward(dout, cache, input_grad=False)
    _, grads_full = layer.backward(dout, cache)
    assert dx is None
    np.testing.assert_allclose(grads["weight"], grads_full["weight"], rtol=1e-12)


# -- adjoint (dot-product) tests ---------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_conv2d_input_gradient_is_adjoint(rng, method):
    layer = Conv2D(2, 3, 4, method=method)
    params = _random_params(layer, rng, bias_scale=0.0)
    shape = (2, 2, 9, 7)
    _, cache = layer.forward(np.zeros(shape), params)
    mismatch = gradcheck.adjoint_mismatch(
        lambda u: layer.forward(u, params)[0],
        lambda v: layer.backward(v, cache)[0], shape, (2, 3, 6, 4), rng=rng)
    assert mismatch <= ADJOINT_TOL


@pytest.mark.parametrize("method", METHODS)
def test_conv2d_weight_gradient_is_adjoint(rng, method):
    layer = Conv2D(2, 3, 4, bias=False, method=method)
    x = rng.standard_normal((2, 2, 9, 7))
    _, cache = layer.forward(x, layer.init_params(rng))
    mismatch = gradcheck.adjoint_mismatch(
        lambda w: layer.forward(x, {"weight": w})[0],
        lambda v: layer.backward(v, cache)[1]["weight"], (3, 2, 4, 4),
        (2, 3, 6, 4), rng=rng)
    assert mismatch <= ADJOINT_TOL


# -- every kernel against its oracle -----------------------------------------

# C_out = 7 runs the 4-, 2- and 1-channel blocks of the correlation kernel;
# C_in f² = 18 and 25 leave taps over after the blocks of 8 (and of 4 in the
# weight gradient).
KERNEL_CASES = [(2, 2, 7, 9, 8, 3), (1, 1, 1, 6, 9, 5), (2, 3, 4, 7, 7, 2)]


@pytest.mark.parametrize("n_batch, in_channels, out_channels, height, width, f",
                         KERNEL_CASES)
def test_numba_forward_matches_scipy_correlate(rng, n_batch, in_channels,
                                               out_channels, height, width, f):
    x = rng.standard_normal((n_batch, in_channels, height, width))
    weight = rng.standard_normal((out_channels, in_channels, f, f))
    bias = rng.standard_normal(out_channels)
    expected = _oracle_forward(x, weight, bias)
    np.testing.assert_allclose(conv_kernels.correlate(x, weight, bias), expected,
                               rtol=1e-12, atol=1e-12)
    # and channel by channel against correlate2d, the 2-D oracle
    out = conv_kernels.correlate(x, weight)
    for n in range(n_batch):
        for o in range(out_channels):
            planes = sum(signal.correlate2d(x[n, c], weight[o, c], mode="valid")
                         for c in range(in_channels))
            np.testing.assert_allclose(out[n, o], planes, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_batch, in_channels, out_channels, height, width, f",
                         KERNEL_CASES)
def test_numba_input_gradient_matches_full_convolution(
        rng, n_batch, in_channels, out_channels, height, width, f):
    weight = rng.standard_normal((out_channels, in_channels, f, f))
    dout = rng.standard_normal((n_batch, out_channels, height - f + 1,
                                width - f + 1))
    np.testing.assert_allclose(conv_kernels.input_gradient(dout, weight),
                               _oracle_input_gradient(dout, weight),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_batch, in_channels, out_channels, height, width, f",
                         KERNEL_CASES + [(1, 1, 4, 70, 3, 2), (1, 1, 4, 3, 140, 2)])
def test_numba_weight_gradient_matches_direct_sum(
        rng, n_batch, in_channels, out_channels, height, width, f):
    # the last two cases span two row chunks (ROW_CHUNK = 64) and two column
    # chunks (COLUMN_CHUNK = 128) of the kernel
    x = rng.standard_normal((n_batch, in_channels, height, width))
    dout = rng.standard_normal((n_batch, out_channels, height - f + 1,
                                width - f + 1))
    np.testing.assert_allclose(conv_kernels.weight_gradient(x, dout, f),
                               _oracle_weight_gradient(x, dout),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_batch, in_channels, out_channels, height, width, f",
                         KERNEL_CASES)
def test_im2col_fallback_matches_oracles(rng, n_batch, in_channels, out_channels,
                                         height, width, f):
    x = rng.standard_normal((n_batch, in_channels, height, width))
    weight = rng.standard_normal((out_channels, in_channels, f, f))
    bias = rng.standard_normal(out_channels)
    dout = rng.standard_normal((n_batch, out_channels, height - f + 1,
                                width - f + 1))
    np.testing.assert_allclose(conv_backends.im2col_correlate(x, weight, bias),
                               _oracle_forward(x, weight, bias),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_backends.im2col_input_gradient(dout, weight),
                               _oracle_input_gradient(dout, weight),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_backends.im2col_weight_gradient(x, dout, f),
                               _oracle_weight_gradient(x, dout),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [False, True])
def test_fft_path_matches_direct_path(rng, bias):
    shape, out_channels, f = (2, 2, 13, 10), 5, 4
    direct = Conv2D(2, out_channels, f, bias=bias, method="direct")
    fft = Conv2D(2, out_channels, f, bias=bias, method="fft")
    params = _random_params(direct, rng)
    x = rng.standard_normal(shape)
    out_direct, cache_direct = direct.forward(x, params)
    out_fft, cache_fft = fft.forward(x, params)
    assert cache_direct.method == "direct" and cache_fft.method == "fft"
    np.testing.assert_allclose(out_fft, out_direct, rtol=1e-11, atol=1e-12)
    dout = rng.standard_normal(out_direct.shape)
    dx_direct, grads_direct = direct.backward(dout, cache_direct)
    dx_fft, grads_fft = fft.backward(dout, cache_fft)
    np.testing.assert_allclose(dx_fft, dx_direct, rtol=1e-11, atol=1e-12)
    for name in grads_direct:
        np.testing.assert_allclose(grads_fft[name], grads_direct[name],
                                   rtol=1e-11, atol=1e-12)


def test_fft_path_with_small_channel_blocks(rng, monkeypatch):
    # a tiny BLOCK_BYTES forces one output channel per block, as at 2048²
    monkeypatch.setattr(conv_backends, "FFT_BLOCK_BYTES", 1)
    monkeypatch.setattr(conv_backends, "BLOCK_BYTES", 1)
    x = rng.standard_normal((2, 2, 8, 9))
    weight = rng.standard_normal((3, 2, 3, 3))
    dout = rng.standard_normal((2, 3, 6, 7))
    np.testing.assert_allclose(conv_backends.fft_correlate(x, weight),
                               _oracle_forward(x, weight, np.zeros(3)),
                               rtol=1e-11, atol=1e-12)
    dx, dweight = conv_backends.fft_backward(x, weight, dout)
    np.testing.assert_allclose(dx, _oracle_input_gradient(dout, weight),
                               rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dweight, _oracle_weight_gradient(x, dout),
                               rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(conv_backends.im2col_correlate(x, weight),
                               conv_backends.fft_correlate(x, weight),
                               rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_float32_close_to_float64(rng, method):
    layer = Conv2D(2, 3, 5, method=method)
    params = _random_params(layer, rng)
    x = rng.standard_normal((2, 2, 11, 8))
    out64, cache64 = layer.forward(x, params)
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    out32, cache32 = layer.forward(x.astype(np.float32), params32)
    dout = rng.standard_normal(out64.shape)
    dx64, grads64 = layer.backward(dout, cache64)
    dx32, grads32 = layer.backward(dout.astype(np.float32), cache32)
    assert gradcheck.relative_error(out32, out64) <= 1e-6
    assert gradcheck.relative_error(dx32, dx64) <= 1e-6
    assert gradcheck.relative_error(grads32["weight"], grads64["weight"]) <= 1e-6


# -- dtypes, determinism, fallback -------------------------------------------

@pytest.mark.parametrize("method", METHODS + ["auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_preserves_dtype(rng, method, dtype):
    layer = Conv2D(1, 4, 3, method=method)
    params = layer.init_params(rng, dtype)
    x = rng.standard_normal((1, 1, 6, 5)).astype(dtype)
    out, cache = layer.forward(x, params)
    dx, grads = layer.backward(out, cache)
    assert out.dtype == dx.dtype == grads["weight"].dtype == grads["bias"].dtype
    assert out.dtype == dtype


def test_direct_path_is_deterministic(rng):
    layer = Conv2D(2, 5, 3, method="direct")
    params = _random_params(layer, rng)
    x = rng.standard_normal((2, 2, 9, 10))
    out, cache = layer.forward(x, params)
    first = layer.backward(out, cache)
    second = layer.backward(out, cache)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1]["weight"], second[1]["weight"])


@pytest.mark.requires_numba
def test_direct_falls_back_to_im2col_without_numba(rng, monkeypatch):
    layer = Conv2D(2, 3, 3, method="direct")
    params = _random_params(layer, rng)
    x = rng.standard_normal((2, 2, 6, 7))
    out, cache = layer.forward(x, params)
    dout = rng.standard_normal(out.shape)
    dx, grads = layer.backward(dout, cache)
    monkeypatch.setattr(conv_backends, "HAVE_NUMBA", False)
    monkeypatch.setattr(engine, "HAVE_NUMBA", False)
    monkeypatch.setattr(engine, "_warned", False)
    with pytest.warns(RuntimeWarning, match=engine.NUMBA_WARNING):
        out_fallback, cache_fallback = layer.forward(x, params)
    dx_fallback, grads_fallback = layer.backward(dout, cache_fallback)
    np.testing.assert_allclose(out_fallback, out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx_fallback, dx, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(grads_fallback["weight"], grads["weight"],
                               rtol=1e-12, atol=1e-13)
    assert conv_backends.choose_method("forward", x.shape, 3, 3, np.float64) == "fft"


@pytest.mark.requires_numba
def test_auto_picks_direct_for_small_and_fft_for_large_filters():
    small = conv_backends.choose_method("forward", (1, 2, 128, 128), 32, 3, np.float64)
    large = conv_backends.choose_method("forward", (1, 2, 800, 800), 32, 33, np.float64)
    assert (small, large) == ("direct", "fft")


# -- parameters and validation -----------------------------------------------

def test_init_params_shapes_and_scale(rng):
    layer = Conv2D(2, 32, 17)
    params = layer.init_params(rng)
    assert params["weight"].shape == (32, 2, 17, 17)
    assert np.all(params["bias"] == 0.0)
    assert abs(params["weight"].std() * np.sqrt(2 * 17 * 17) - 1.0) < 0.05
    assert "bias" not in Conv2D(2, 32, 17, bias=False).init_params(rng)
    assert layer.init_params(rng, np.float32)["weight"].dtype == np.float32
    again = layer.init_params(np.random.default_rng(7))["weight"]
    np.testing.assert_array_equal(
        again, layer.init_params(np.random.default_rng(7))["weight"])


@pytest.mark.parametrize("shape, message", [
    ((2, 6, 6), "4 dimensions|got 3 dimensions"),
    ((1, 3, 6, 6), "input channels"),
    ((1, 2, 6, 2), "smaller than"),
])
def test_conv2d_rejects_bad_inputs(rng, shape, message):
    layer = Conv2D(2, 3, 3)
    with pytest.raises(ValueError, match=message):
        layer.forward(np.zeros(shape), layer.init_params(rng))


def test_conv2d_rejects_bad_params_and_dout(rng):
    layer = Conv2D(2, 3, 3)
    x = np.zeros((1, 2, 6, 6))
    with pytest.raises(ValueError, match="weight of shape"):
        layer.forward(x, {"weight": np.zeros((3, 2, 5, 5)), "bias": np.zeros(3)})
    with pytest.raises(ValueError, match="bias of shape"):
        layer.forward(x, {"weight": np.zeros((3, 2, 3, 3)), "bias": np.zeros(4)})
    _, cache = layer.forward(x, layer.init_params(rng))
    with pytest.raises(ValueError, match="dout of shape"):
        layer.backward(np.zeros((1, 3, 6, 6)), cache)
    with pytest.raises(ValueError, match="method"):
        Conv2D(2, 3, 3, method="winograd")
    with pytest.raises(ValueError, match="filter_size"):
        Conv2D(2, 3, 0)


# -- the FFT path's spectral products and reused spectra ----------------------

@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_spectral_kernels_match_their_numpy_forms(rng, dtype):
    def spectra(*shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)

    filters, inputs, grads = spectra(5, 3, 6, 4), spectra(2, 3, 6, 4), spectra(2, 5, 6, 4)
    pairs = [
        (lambda out: conv_kernels.spectral_correlate_kernel(filters, inputs[1], out),
         lambda out: conv_backends.spectral_correlate_numpy(filters, inputs[1], out),
         (5, 6, 4)),
        (lambda out: conv_kernels.spectral_input_gradient_kernel(filters, grads[1], out),
         lambda out: conv_backends.spectral_input_gradient_numpy(filters, grads[1], out),
         (3, 6, 4)),
        (lambda out: conv_kernels.spectral_weight_gradient_kernel(grads, inputs, 4, out),
         lambda out: conv_backends.spectral_weight_gradient_numpy(grads, inputs, 4, out),
         (3, 6, 4)),
    ]
    # the sums the kernels compute, written out
    expected = [np.einsum("ocpq,cpq->opq", filters, inputs[1]),
                np.einsum("ocpq,opq->cpq", np.conj(filters), grads[1]),
                np.einsum("npq,ncpq->cpq", np.conj(grads[:, 4]), inputs)]
    tolerance = 1e-5 if dtype == np.complex64 else 1e-12
    for (kernel, numpy_form, shape), target in zip(pairs, expected):
        out_kernel = np.full(shape, np.nan, dtype)
        out_numpy = np.full(shape, np.nan, dtype)
        kernel(out_kernel)
        numpy_form(out_numpy)
        np.testing.assert_allclose(out_kernel, target, rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(out_numpy, target, rtol=tolerance, atol=tolerance)


def test_fft_backward_reuses_the_forward_spectra(rng):
    x = rng.standard_normal((3, 2, 12, 10))
    weight = rng.standard_normal((5, 2, 4, 4))
    dout = rng.standard_normal((3, 5, 9, 7))
    out, spectra = conv_backends.fft_correlate(x, weight, keep_spectra=True)
    np.testing.assert_array_equal(out, conv_backends.fft_correlate(x, weight))
    reused = conv_backends.fft_backward(x, weight, dout, spectra=spectra)
    fresh = conv_backends.fft_backward(x, weight, dout)
    for a, b in zip(reused, fresh):
        np.testing.assert_array_equal(a, b)
    # the spectra are those of the filters (conjugated) and of x
    np.testing.assert_allclose(np.conj(spectra.filters), np.fft.rfft2(weight, s=(12, 10)),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(spectra.inputs, np.fft.rfft2(x, s=(12, 10)),
                               rtol=1e-12, atol=1e-12)


def test_fft_path_with_numpy_products(rng, monkeypatch):
    # without Numba the products run as NumPy expressions
    monkeypatch.setattr(conv_backends, "HAVE_NUMBA", False)
    x = rng.standard_normal((2, 2, 9, 8))
    weight = rng.standard_normal((3, 2, 3, 3))
    dout = rng.standard_normal((2, 3, 7, 6))
    np.testing.assert_allclose(conv_backends.fft_correlate(x, weight),
                               _oracle_forward(x, weight, np.zeros(3)),
                               rtol=1e-11, atol=1e-12)
    dx, dweight = conv_backends.fft_backward(x, weight, dout)
    np.testing.assert_allclose(dx, _oracle_input_gradient(dout, weight),
                               rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dweight, _oracle_weight_gradient(x, dout),
                               rtol=1e-11, atol=1e-12)


def test_fft_path_does_not_depend_on_the_thread_count(rng):
    from refdeblur._engine.threads import num_threads

    x = rng.standard_normal((3, 2, 40, 36)).astype(np.float32)
    weight = rng.standard_normal((6, 2, 9, 9)).astype(np.float32)
    dout = rng.standard_normal((3, 6, 32, 28)).astype(np.float32)
    results = []
    for count in (1, 2, 3):
        with num_threads(count):
            out = conv_backends.fft_correlate(x, weight)
            dx, dweight = conv_backends.fft_backward(x, weight, dout)
        results.append((out, dx, dweight))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
