"""The fused float32 feature extraction of the inference path (refdeblur._features_numba).

Oracles: ``np.tanh`` in float64 for the rational tanh, and the layers
(Conv2D, Tanh, Recombine) in float64 for the whole pipeline. Also run with
``NUMBA_DISABLE_JIT=1`` by .ci/run.
"""

import numpy as np
import pytest

from refdeblur import build_network
from refdeblur._features_numba import (TANH_CLAMP, TANH_TERMS, fast_tanh,
                                       lambert_tanh_coefficients, stage_features)
from refdeblur.layers.conv2d import Conv2D
from refdeblur.layers.recombine import Recombine
from refdeblur.layers.tanh import Tanh


def test_lambert_coefficients_are_positive_and_give_tanh_in_float64():
    p, q = lambert_tanh_coefficients(TANH_TERMS)
    assert np.all(p > 0) and np.all(q > 0)     # no cancellation in Horner
    x = np.linspace(-3.0, 3.0, 2001)
    t = x * x
    approx = x * np.polynomial.polynomial.polyval(t, p) / np.polynomial.polynomial.polyval(t, q)
    assert np.abs(approx - np.tanh(x)).max() < 1e-12
    # The continued fraction with a single term is x / 1.
    p1, q1 = lambert_tanh_coefficients(0)
    np.testing.assert_array_equal(p1, [1.0])
    np.testing.assert_array_equal(q1, [1.0])


def test_fast_tanh_is_within_4_2e_7_of_tanh_everywhere():
    x = np.concatenate([np.linspace(-12.0, 12.0, 480001),
                        [-1e30, -50.0, -TANH_CLAMP, 0.0, 1e-30, TANH_CLAMP, 50.0, 1e30]])
    approx = fast_tanh(x.astype(np.float32)).astype(np.float64)
    exact = np.tanh(x.astype(np.float32).astype(np.float64))
    assert np.abs(approx - exact).max() <= 4.2e-7
    # Odd, bounded by 1, zero at zero.
    np.testing.assert_array_equal(fast_tanh(-x.astype(np.float32)), -approx.astype(np.float32))
    assert np.abs(approx).max() <= 1.0 and fast_tanh(np.zeros(3, np.float32)).max() == 0.0


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("shape, filter_size", [((1, 1, 9, 11), 3), ((2, 2, 14, 40), 5),
                                                ((1, 2, 9, 9), 9)])
def test_stage_features_match_the_numpy_layers(shape, filter_size, with_bias, rng):
    n_batch, channels, height, width = shape
    n_filters, hidden, outputs = 6, 5, 4
    conv = Conv2D(channels, n_filters, filter_size, bias=with_bias)
    first = Recombine(n_filters, hidden, bias=with_bias)
    second = Recombine(hidden, outputs, bias=with_bias)
    conv_params, params1, params2 = (layer.init_params(rng) for layer in (conv, first, second))
    if with_bias:
        conv_params["bias"] = rng.standard_normal(n_filters)
        params1["bias"] = rng.standard_normal(hidden)
        params2["bias"] = rng.standard_normal(outputs)
    x = rng.random(shape) * 4.0
    a, _ = conv.forward(x, conv_params)
    a, _ = Tanh().forward(a)
    a, _ = first.forward(a, params1)
    a, _ = Tanh().forward(a)
    expected, _ = second.forward(a, params2)
    fused = stage_features(x.astype(np.float32), conv_params["weight"],
                           params1["weight"], params2["weight"], conv_params.get("bias"),
                           params1.get("bias"), params2.get("bias"))
    assert fused.dtype == np.float32 and fused.shape == expected.shape
    scale = np.abs(expected).max()
    assert np.abs(fused - expected).max() <= 2e-6 * max(1.0, scale)


def test_stage_features_reject_bad_shapes():
    with pytest.raises(ValueError, match="do not chain"):
        stage_features(np.zeros((1, 3, 8, 8), np.float32), np.zeros((4, 3, 3, 3)),
                       np.zeros((5, 3)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="smaller than"):
        stage_features(np.zeros((1, 1, 4, 8), np.float32), np.zeros((4, 1, 5, 5)),
                       np.zeros((5, 4)), np.zeros((2, 5)))


def test_float32_network_with_the_fused_features_matches_float64(rng):
    # The paper-sized stage (32 filters, 32 hidden units), where the fused
    # kernel runs in float32 and NumPy runs the float64 reference.
    net = build_network(9, rng=rng, filter_sizes=(5,))
    image = rng.random((60, 52))
    k64 = net.forward(image).kernel
    k32 = net.astype(np.float32).forward(image.astype(np.float32)).kernel
    assert k32.dtype == np.float32
    assert np.abs(k32 - k64).max() <= 1e-4 * max(1.0, float(np.abs(k64).max()))
