"""The fused float32 feature extraction of the inference path (refdeblur._engine.features).

Oracles: ``np.tanh`` in float64 for the rational tanh, and the layers
(Conv2D, Tanh, Recombine) in float64 for the whole pipeline, computed both
ways (``method="direct"`` and the tiled FFT, ``method="fft"``), and the
reference network (``Network.forward``) for the inference path
(:func:`refdeblur.network_fast.predict`). Also run with
``NUMBA_DISABLE_JIT=1`` by .ci/run.
"""

import numpy as np
import pytest
import scipy.fft

from refdeblur import build_network
from refdeblur._engine.features import (TANH_CLAMP, TANH_TERMS, fast_tanh, fft_tile_size,
                                        lambert_tanh_coefficients, stage_features)
from refdeblur.layers.conv2d import Conv2D
from refdeblur.layers.recombine import Recombine
from refdeblur.layers.tanh import Tanh
from refdeblur.network_fast import predict


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


# ``fft`` with tiles of 2f + 1 px, so that every input spans several tiles
# and partial tiles at the right and bottom edges (one tile for the 9 x 9).
@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("shape, filter_size", [((1, 1, 9, 11), 3), ((2, 2, 14, 40), 5),
                                                ((1, 2, 9, 9), 9)])
def test_stage_features_match_the_numpy_layers(shape, filter_size, with_bias, method, rng):
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
    tile_size = 2 * filter_size + 1 if method == "fft" else None
    fused = stage_features(x.astype(np.float32), conv_params["weight"],
                           params1["weight"], params2["weight"], conv_params.get("bias"),
                           params1.get("bias"), params2.get("bias"), method=method,
                           tile_size=tile_size)
    assert fused.dtype == np.float32 and fused.shape == expected.shape
    scale = np.abs(expected).max()
    assert np.abs(fused - expected).max() <= 2e-6 * max(1.0, scale)


def _paper_stage(rng, channels):
    """Weights of the shipped stage's shape: 32 filters of 17 x 17, 32 hidden, 4 out."""
    conv = (0.05 * rng.standard_normal((32, channels, 17, 17))).astype(np.float32)
    return (conv, (0.3 * rng.standard_normal((32, 32))).astype(np.float32),
            (0.3 * rng.standard_normal((4, 32))).astype(np.float32),
            (0.1 * rng.standard_normal(32)).astype(np.float32),
            (0.1 * rng.standard_normal(32)).astype(np.float32),
            (0.1 * rng.standard_normal(4)).astype(np.float32))


# Paper-sized: too slow as plain Python; the small cases above cover both methods.
@pytest.mark.requires_numba
@pytest.mark.parametrize("channels", [1, 2])
def test_fft_and_direct_features_agree_on_a_paper_sized_stage(channels, rng):
    # Several default-sized tiles with partial ones at the edges, two images.
    x = rng.random((2, channels, 301, 263)).astype(np.float32)
    weights = _paper_stage(rng, channels)
    direct = stage_features(x, *weights, method="direct")
    fft = stage_features(x, *weights, method="fft")
    assert fft_tile_size(285, 247, 17, channels=channels, batch=2) < 247  # several tiles
    assert np.abs(fft - direct).max() <= 2e-6 * np.abs(direct).max()
    # The same tiles give the same numbers whatever thread ran them.
    np.testing.assert_array_equal(stage_features(x, *weights, method="fft"), fft)
    # "auto" takes the FFT from 2 x 200² / C output pixels on.
    np.testing.assert_array_equal(stage_features(x, *weights),
                                  fft if channels == 2 else direct)
    large = rng.random((1, channels, 320, 320)).astype(np.float32)
    np.testing.assert_array_equal(stage_features(large, *weights),
                                  stage_features(large, *weights, method="fft"))
    small = x[:, :, :100, :100]
    np.testing.assert_array_equal(stage_features(small, *weights),
                                  stage_features(small, *weights, method="direct"))


@pytest.mark.parametrize("height, width, filter_size", [(2032, 2032, 17), (239, 239, 17),
                                                        (784, 1000, 17), (40, 50, 5),
                                                        (500, 500, 33), (500, 500, 81)])
def test_fft_tile_size_fits_the_filters(height, width, filter_size):
    side = fft_tile_size(height, width, filter_size, workers=2)
    assert side >= 2 * filter_size
    assert side == scipy.fft.next_fast_len(side, real=True)


def test_fft_tile_size_balances_the_cores():
    # 239² outputs: 64 px tiles (48 outputs) make 25 tiles, 13 rounds on
    # two cores; 96 px ones (80 outputs) 9 tiles, 5 rounds of a tile 2.5
    # times as dear: the smaller tile wins on two cores, not on one.
    assert fft_tile_size(239, 239, 17, workers=2) == 64
    assert fft_tile_size(239, 239, 17, workers=1) == 96
    # A large image: the cheapest tile per valid output, 96 px.
    assert fft_tile_size(2032, 2032, 17, workers=2) == 96


def test_stage_features_reject_bad_shapes():
    with pytest.raises(ValueError, match="do not chain"):
        stage_features(np.zeros((1, 3, 8, 8), np.float32), np.zeros((4, 3, 3, 3)),
                       np.zeros((5, 3)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="smaller than"):
        stage_features(np.zeros((1, 1, 4, 8), np.float32), np.zeros((4, 1, 5, 5)),
                       np.zeros((5, 4)), np.zeros((2, 5)))
    weights = (np.zeros((4, 1, 5, 5)), np.zeros((5, 4)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="method must be"):
        stage_features(np.zeros((1, 1, 8, 8), np.float32), *weights, method="winograd")
    with pytest.raises(ValueError, match="tile_size 4 is smaller"):
        stage_features(np.zeros((1, 1, 8, 8), np.float32), *weights, method="fft",
                       tile_size=4)


def test_float32_network_with_the_fused_features_matches_float64(rng):
    # The paper-sized stage (32 filters, 32 hidden units), where the fused
    # kernel runs in float32 and NumPy runs the float64 reference.
    net = build_network(9, rng=rng, filter_sizes=(5,))
    image = rng.random((60, 52))
    k64 = net.forward(image).kernel
    k32 = predict(net.astype(np.float32), image.astype(np.float32)).kernel
    assert k32.dtype == np.float32
    assert np.abs(k32 - k64).max() <= 1e-4 * max(1.0, float(np.abs(k64).max()))


# Without compiled kernels the float32 inference path runs the NumPy layers.
@pytest.mark.requires_numba
def test_float32_network_with_the_fft_features_matches_float64(rng):
    # 17 x 17 filters on a 230 px image: 214² outputs, so the stages with
    # two input channels (2 and 3) take the tiled FFT path.
    net = build_network(17, rng=rng, filter_sizes=(17,))
    image = rng.random((230, 230))
    k64 = net.forward(image).kernel
    k32 = predict(net.astype(np.float32), image.astype(np.float32)).kernel
    assert np.abs(k32 - k64).max() <= 1e-4 * max(1.0, float(np.abs(k64).max()))
