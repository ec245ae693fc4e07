import numpy as np
import pytest
import scipy.signal

from refdeblur import gradcheck
from refdeblur.layers.edge_taper import EdgeTaper, barthann_ramp, taper_window


@pytest.mark.parametrize("width", [1, 2, 5, 17])
def test_barthann_ramp_is_half_of_scipy_window(width):
    full = scipy.signal.windows.barthann(2 * width + 1, sym=True)
    np.testing.assert_allclose(barthann_ramp(width), full[:width], atol=1e-15)
    assert barthann_ramp(width)[0] == 0.0


def test_taper_window_is_flat_top_and_symmetric():
    window = taper_window((20, 13), 4)
    assert window.shape == (20, 13)
    np.testing.assert_array_equal(window[4:-4, 4:-4], 1.0)
    np.testing.assert_allclose(window, window[::-1, ::-1], atol=1e-15)
    assert np.all(window[0] == 0) and np.all(window[:, 0] == 0)
    assert not window.flags.writeable


def test_zero_width_is_identity(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    out, _ = EdgeTaper(0).forward(x)
    np.testing.assert_array_equal(out, x)


def test_edge_taper_rejects_too_small_image():
    with pytest.raises(ValueError, match="cannot taper"):
        EdgeTaper(4).forward(np.zeros((1, 1, 7, 20)))


def test_edge_taper_vjp_and_adjoint(rng):
    layer = EdgeTaper(3)
    shape = (2, 2, 11, 8)
    x = rng.standard_normal(shape)
    _, cache = layer.forward(x)
    errors = gradcheck.check_vjp(lambda a: layer.forward(a)[0], [x],
                                 lambda g: [layer.backward(g, cache)[0]], rng=rng)
    assert max(errors) <= 1e-6
    mismatch = gradcheck.adjoint_mismatch(
        lambda u: layer.forward(u)[0], lambda v: layer.backward(v, cache)[0],
        shape, shape, rng=rng)
    assert mismatch <= 1e-12


def test_edge_taper_preserves_float32(rng):
    x = rng.standard_normal((1, 1, 9, 9)).astype(np.float32)
    out, cache = EdgeTaper(2).forward(x)
    assert out.dtype == EdgeTaper(2).backward(out, cache)[0].dtype == np.float32
