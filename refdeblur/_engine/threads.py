"""One thread policy for all of refdeblur's parallel work, and its thread pool.

refdeblur parallelises above BLAS: a thread pool runs independent NumPy
calls (per-image matrix products, chunks of ``tanh``) at the same time
(NumPy releases the GIL inside ufunc loops and BLAS calls), numba's
parallel kernels share rows out over threads, and scipy.fft transforms
batches on several workers. One number decides all of them,
:func:`get_num_threads`:

* set by :func:`set_num_threads` or, for a block, :func:`num_threads`
  (public as ``refdeblur.set_num_threads`` and ``refdeblur.num_threads``);
* otherwise the environment variable ``REFDEBLUR_NUM_THREADS``;
* otherwise every core this process may run on.

The pool splits work into that many parts, scipy.fft gets it as
``workers``, and numba's parallel kernels run on that many threads (at most
numba's own pool, ``NUMBA_NUM_THREADS``). BLAS runs on one thread while
refdeblur's parallel work runs (:func:`one_blas_thread`): a multithreaded
BLAS inside these threads oversubscribes the cores, its worker threads
busy-waiting for work while the pool's and numba's threads hold them. On a
busy 2-core machine the 800 x 800 float32 forward pass of the 17 px network
(as ``benchmarks/bench_inference.py`` times it) took 4 to 6 s with a
two-thread OpenBLAS instead of 0.7 s. Outside refdeblur's calls BLAS keeps
the thread count it had. This works for OpenBLAS, the BLAS of the NumPy and
SciPy wheels and of most Linux distributions; with another BLAS (MKL, BLIS,
Accelerate) set its own variable, e.g. ``MKL_NUM_THREADS=1``.

Nothing here runs at import: no environment variable is written and no
thread is started until refdeblur computes something.

Element-wise work and :func:`for_each` give the same bits for every number
of threads (each element or call is computed by the same code whichever
thread runs it); :func:`matmul_columns` splits a product's columns, and
BLAS may round the columns at the edge of a split differently, by an ulp.
"""

import contextlib
import ctypes
import glob
import importlib.util
import numbers
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import set_numba_threads

__all__ = ["ENVIRONMENT_VARIABLE", "available_cores", "get_num_threads",
           "set_num_threads", "num_threads", "one_blas_thread",
           "parallel_region", "elementwise", "for_each", "tanh_inplace",
           "matmul_columns"]

#: The environment variable read when :func:`set_num_threads` was not called.
ENVIRONMENT_VARIABLE = "REFDEBLUR_NUM_THREADS"

# Below this many elements the thread hand-off costs more than it saves.
_MIN_ELEMENTS = 1 << 18


# ---------------------------------------------------------------------------
# The thread count
# ---------------------------------------------------------------------------

_chosen_count = None     # set_num_threads' value; None: the environment decides


def available_cores():
    """Number of cores this process may run on (its CPU affinity, where known)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:      # not on Linux
        return max(1, os.cpu_count() or 1)


def _count_from_environment():
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not value:
        return available_cores()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{ENVIRONMENT_VARIABLE} must be a positive integer, "
                         f"got {value!r}")
    return int(value)


def _checked_count(count):
    if (not isinstance(count, numbers.Integral) or isinstance(count, bool)
            or count < 1):
        raise ValueError(f"the number of threads must be a positive integer or "
                         f"None, got {count!r}")
    return int(count)


def get_num_threads():
    """The number of threads refdeblur computes on.

    Returns
    -------
    int
        The value of :func:`set_num_threads` if one is in force, else the
        environment variable ``REFDEBLUR_NUM_THREADS``, else the number of
        cores this process may run on.

    Raises
    ------
    ValueError
        If ``REFDEBLUR_NUM_THREADS`` is set to something other than a
        positive integer.

    Examples
    --------
    >>> import refdeblur
    >>> refdeblur.get_num_threads() >= 1
    True
    """
    if _chosen_count is not None:
        return _chosen_count
    return _count_from_environment()


def set_num_threads(count):
    """Set the number of threads refdeblur computes on, for the whole process.

    One number for the thread pool, scipy.fft's workers and numba's parallel
    kernels; BLAS runs on one thread inside them. The results agree for
    every count, up to rounding where a matrix product is split.

    Parameters
    ----------
    count : int or None
        A positive number of threads, or ``None`` to go back to the default
        (``REFDEBLUR_NUM_THREADS``, else every available core).

    Raises
    ------
    ValueError
        If ``count`` is neither a positive integer nor ``None``.

    See Also
    --------
    num_threads : the same for a ``with`` block.

    Examples
    --------
    >>> import refdeblur
    >>> refdeblur.set_num_threads(1)
    >>> refdeblur.get_num_threads()
    1
    >>> refdeblur.set_num_threads(None)
    """
    global _chosen_count
    _chosen_count = None if count is None else _checked_count(count)


@contextlib.contextmanager
def num_threads(count):
    """Compute on ``count`` threads inside a ``with`` block.

    Parameters
    ----------
    count : int or None
        As in :func:`set_num_threads`. The previous setting is restored when
        the block ends. The setting is process-wide, not per thread.

    Examples
    --------
    >>> import refdeblur
    >>> with refdeblur.num_threads(1):
    ...     refdeblur.get_num_threads()
    1
    """
    global _chosen_count
    previous = _chosen_count
    set_num_threads(count)
    try:
        yield
    finally:
        _chosen_count = previous



# ---------------------------------------------------------------------------
# BLAS on one thread while refdeblur's threads run
# ---------------------------------------------------------------------------

_blas_lock = threading.Lock()
_blas_controls = None    # [(get, set)] of every OpenBLAS found, at first use
_blas_depth = 0          # one_blas_thread blocks open, over all threads
_blas_saved_counts = ()


def _openblas_candidates():
    """Paths of the OpenBLAS libraries NumPy and SciPy use."""
    paths = set()
    try:                      # Linux: every library the process has loaded
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and "openblas" in os.path.basename(
                        fields[5].strip()).lower():
                    paths.add(fields[5].strip())
    except OSError:
        pass
    # The copies vendored in the wheels (numpy.libs, scipy.libs on Linux and
    # Windows, .dylibs on macOS): SciPy's is loaded only by scipy.linalg,
    # which numba's parallel kernels call for their matrix products.
    for package in ("numpy", "scipy"):
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        root = os.path.dirname(spec.origin)
        for folder in (root + ".libs", os.path.join(root, ".dylibs")):
            paths.update(glob.glob(os.path.join(folder, "*openblas*")))
    return sorted(paths)


def _find_openblas():
    controls = []
    for path in _openblas_candidates():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("openblas", "scipy_openblas"):
            for suffix in ("", "64_"):
                getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    getter.restype = ctypes.c_int
                    setter.argtypes = [ctypes.c_int]
                    controls.append((getter, setter))
    return controls


@contextlib.contextmanager
def one_blas_thread():
    """Run BLAS on one thread inside the block, then restore its thread count.

    Re-entrant and safe to enter from several threads at once: the count is
    restored when the last open block ends. Also a decorator
    (``@one_blas_thread()``), for the entry points of computations whose BLAS
    calls run between numba kernels: a BLAS thread still busy-waiting after
    a multithreaded call slows the next kernel. Only OpenBLAS is controlled
    (see the module docstring).
    """
    global _blas_controls, _blas_depth, _blas_saved_counts
    with _blas_lock:
        if _blas_controls is None:
            _blas_controls = _find_openblas()
        if _blas_depth == 0:
            _blas_saved_counts = tuple(getter() for getter, _ in _blas_controls)
            for (_, setter), count in zip(_blas_controls, _blas_saved_counts):
                if count != 1:
                    setter(1)
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for (_, setter), count in zip(_blas_controls, _blas_saved_counts):
                    if count != 1:
                        setter(count)


@contextlib.contextmanager
def parallel_region():
    """The block launches numba parallel kernels: run them on
    :func:`get_num_threads` threads, and BLAS on one thread.

    Numba's thread count belongs to the calling thread, so it is set here
    and restored at the end of the block.
    """
    with one_blas_thread():
        previous = set_numba_threads(get_num_threads())
        try:
            yield
        finally:
            if previous is not None:
                set_numba_threads(previous)


# ---------------------------------------------------------------------------
# The pool
# ---------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool = None
_pool_size = 0


def _executor(size):
    """The shared pool, grown to at least ``size`` threads."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < size:
            previous = _pool
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="refdeblur")
            _pool_size = size
            if previous is not None:
                previous.shutdown(wait=False)
        return _pool


def _spans(length, parts):
    edges = np.linspace(0, length, parts + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def elementwise(function, size):
    """Run ``function(span)`` over index spans of a flat array on all threads.

    ``function`` gets a ``slice`` of ``range(size)`` and must write only
    there (e.g. ``np.tanh(x[span], out=out[span])`` on C-contiguous
    arrays' flat views). Each element is computed by the same NumPy loop
    whatever the split, so the result does not depend on the number of
    threads. Small arrays run in one call on the calling thread.
    """
    count = get_num_threads()
    if size < _MIN_ELEMENTS or count == 1:
        function(slice(0, size))
        return
    list(_executor(count).map(function, _spans(size, count)))


def for_each(function, count, elements_per_call):
    """``function(i)`` for ``i`` in ``range(count)``, spread over the threads.

    For independent calls that release the GIL (BLAS products, ufuncs)
    and write disjoint outputs; each call is the same whichever thread
    runs it, and BLAS runs on one thread. Runs in a plain loop when there
    is one call or the calls are small (``elements_per_call`` below the
    hand-off threshold).
    """
    threads = get_num_threads()
    with one_blas_thread():
        if count < 2 or elements_per_call < _MIN_ELEMENTS or threads == 1:
            for index in range(count):
                function(index)
            return
        list(_executor(threads).map(function, range(count)))


def tanh_inplace(array):
    """``np.tanh(array, out=array)`` on all threads; returns ``array``."""
    if not array.flags.c_contiguous:        # no flat view to share out
        np.tanh(array, out=array)
        return array
    flat = array.reshape(-1)
    elementwise(lambda span: np.tanh(flat[span], out=flat[span]), flat.size)
    return array


def matmul_columns(matrix, stack):
    """``matrix @ stack[n]`` for every n, the columns split over the threads.

    ``stack`` is ``(N, K, P)``; returns ``(N, M, P)``. Equal to the
    unsplit products up to an ulp in the columns at the edges of the split.
    """
    n_batch, _, n_columns = stack.shape
    out = np.empty((n_batch, matrix.shape[0], n_columns),
                   dtype=np.result_type(matrix, stack))
    threads = get_num_threads()
    spans = (_spans(n_columns, threads)
             if stack[0].size >= _MIN_ELEMENTS and threads > 1 else [slice(None)])

    def product(task):
        n, span = task
        np.matmul(matrix, stack[n][:, span], out=out[n][:, span])

    with one_blas_thread():
        list(_executor(threads).map(product,
                                    [(n, span) for n in range(n_batch) for span in spans]))
    return out
