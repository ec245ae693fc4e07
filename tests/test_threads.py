"""The threaded element-wise and matrix-product helpers of the inference path."""

import numpy as np

from refdeblur import _threads


def test_threaded_tanh_equals_numpy(rng):
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((3, 5, 300, 301)).astype(dtype)   # > threshold
        expected = np.tanh(x)
        np.testing.assert_array_equal(_threads.tanh_inplace(x.copy()), expected)
    small = rng.standard_normal((4, 4))
    np.testing.assert_array_equal(_threads.tanh_inplace(small.copy()), np.tanh(small))


def test_threaded_matmul_equals_column_by_column_products(rng):
    for dtype in (np.float32, np.float64):
        matrix = rng.standard_normal((7, 32)).astype(dtype)
        stack = rng.standard_normal((2, 32, 40000)).astype(dtype)
        out = _threads.matmul_columns(matrix, stack)
        assert out.shape == (2, 7, 40000) and out.dtype == dtype
        for n in range(2):
            np.testing.assert_allclose(out[n], matrix @ stack[n],
                                       rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_large_image_inference_path_equals_training_path(rng):
    from refdeblur import build_network
    net = build_network(17, rng=rng, filter_sizes=(5,), n_filters=8, n_hidden=8)
    image = rng.random((260, 250))
    lean = net.forward(image)
    full, _ = net.forward_with_cache(image)
    np.testing.assert_allclose(lean.kernel, full.kernel, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(lean.latent, full.latent, rtol=1e-10, atol=1e-12)
