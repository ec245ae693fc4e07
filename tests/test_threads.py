"""The thread policy (one count for the pool, scipy.fft, numba and BLAS) and
the threaded element-wise and matrix-product helpers of the inference path."""

import numpy as np
import pytest
import scipy.fft

import refdeblur
from refdeblur import build_network
from refdeblur._engine import HAVE_NUMBA, fft, set_numba_threads
from refdeblur._engine import threads


def test_threaded_tanh_equals_numpy(rng):
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((3, 5, 300, 301)).astype(dtype)   # > threshold
        expected = np.tanh(x)
        np.testing.assert_array_equal(threads.tanh_inplace(x.copy()), expected)
    small = rng.standard_normal((4, 4))
    np.testing.assert_array_equal(threads.tanh_inplace(small.copy()), np.tanh(small))


def test_threaded_matmul_equals_column_by_column_products(rng):
    for dtype in (np.float32, np.float64):
        matrix = rng.standard_normal((7, 32)).astype(dtype)
        stack = rng.standard_normal((2, 32, 40000)).astype(dtype)
        out = threads.matmul_columns(matrix, stack)
        assert out.shape == (2, 7, 40000) and out.dtype == dtype
        for n in range(2):
            np.testing.assert_allclose(out[n], matrix @ stack[n],
                                       rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_results_do_not_depend_on_the_number_of_threads(rng):
    matrix = rng.standard_normal((7, 32))
    stack = rng.standard_normal((2, 32, 40000))
    x = rng.standard_normal((3, 300, 301))
    results = []
    for count in (1, 2, 3):
        with refdeblur.num_threads(count):
            results.append((threads.matmul_columns(matrix, stack),
                            threads.tanh_inplace(x.copy())))
    for product, tanh in results[1:]:
        # BLAS may round the columns at the edge of a split differently
        np.testing.assert_allclose(product, results[0][0], rtol=1e-14, atol=0)
        np.testing.assert_array_equal(tanh, results[0][1])


def test_one_count_from_the_function_the_block_or_the_environment(monkeypatch):
    monkeypatch.delenv(threads.ENVIRONMENT_VARIABLE, raising=False)
    assert refdeblur.get_num_threads() == threads.available_cores()
    monkeypatch.setenv(threads.ENVIRONMENT_VARIABLE, "3")
    assert refdeblur.get_num_threads() == 3
    with refdeblur.num_threads(1):
        assert refdeblur.get_num_threads() == 1
        with refdeblur.num_threads(5):
            assert refdeblur.get_num_threads() == 5
        assert refdeblur.get_num_threads() == 1
    assert refdeblur.get_num_threads() == 3
    refdeblur.set_num_threads(2)
    try:
        assert refdeblur.get_num_threads() == 2
    finally:
        refdeblur.set_num_threads(None)
    assert refdeblur.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_raise(bad):
    with pytest.raises(ValueError, match="positive integer"):
        refdeblur.set_num_threads(bad)


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_environment_value_raises(monkeypatch, bad):
    monkeypatch.setenv(threads.ENVIRONMENT_VARIABLE, bad)
    with pytest.raises(ValueError, match=threads.ENVIRONMENT_VARIABLE):
        refdeblur.get_num_threads()


def test_fft_workers_follow_the_count(monkeypatch):
    seen = []
    real_rfft2 = scipy.fft.rfft2

    def recording_rfft2(*args, workers=None, **kwargs):
        seen.append(workers)
        return real_rfft2(*args, workers=workers, **kwargs)

    monkeypatch.setattr(scipy.fft, "rfft2", recording_rfft2)
    with refdeblur.num_threads(3):
        fft.rfft2(np.ones((4, 4)))
    assert seen == [3]


def test_blas_runs_on_one_thread_inside_and_is_restored_after():
    with threads.one_blas_thread():
        controls = threads._blas_controls
        if not controls:
            pytest.skip("no OpenBLAS found: BLAS is not controlled")
        assert [get() for get, _ in controls] == [1] * len(controls)
        with threads.one_blas_thread():              # re-entrant
            assert [get() for get, _ in controls] == [1] * len(controls)
        assert [get() for get, _ in controls] == [1] * len(controls)
    before = [get() for get, _ in controls]
    with threads.one_blas_thread():
        pass
    assert [get() for get, _ in controls] == before


@pytest.mark.requires_numba
def test_numba_kernels_run_on_the_count():
    previous = set_numba_threads(2)
    try:
        with refdeblur.num_threads(1), threads.parallel_region():
            assert set_numba_threads(1) == 1   # the count inside the region
        assert set_numba_threads(2) == 2       # restored after it
    finally:
        set_numba_threads(previous)
    assert HAVE_NUMBA


def test_large_image_inference_path_equals_training_path(rng):
    net = build_network(17, rng=rng, filter_sizes=(5,), n_filters=8, n_hidden=8)
    image = rng.random((260, 250))
    lean = net.forward(image)
    full, _ = net.forward_with_cache(image)
    np.testing.assert_allclose(lean.kernel, full.kernel, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(lean.latent, full.latent, rtol=1e-10, atol=1e-12)
