"""Element-wise work and matrix products split over the machine's cores.

NumPy releases the GIL inside ufunc loops and BLAS calls, so a plain thread
pool runs the halves of a large ``tanh`` or matrix product at the same
time. Used by the inference path (:meth:`refdeblur.network.Stage.predict`)
and by the tanh layer (:mod:`refdeblur.layers.tanh`): the results are identical to the single-threaded ones, element by element
(every output is computed by the same loop, only on another thread).
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Below this many elements the thread hand-off costs more than it saves.
_MIN_ELEMENTS = 1 << 18

_POOL = None


def _workers():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:      # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool():
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_workers(),
                                   thread_name_prefix="refdeblur")
    return _POOL


def _spans(length, parts):
    edges = np.linspace(0, length, parts + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def elementwise(function, size):
    """Run ``function(span)`` over index spans of a flat array on all cores.

    ``function`` gets a ``slice`` of ``range(size)`` and must write only
    there (e.g. ``np.tanh(x[span], out=out[span])`` on C-contiguous
    arrays' flat views). Each element is computed by the same NumPy loop
    whatever the split, so the result does not depend on the number of
    cores. Small arrays run in one call on the calling thread.
    """
    workers = _workers()
    if size < _MIN_ELEMENTS or workers == 1:
        function(slice(0, size))
        return
    list(_pool().map(function, _spans(size, workers)))


def for_each(function, count, elements_per_call):
    """``function(i)`` for ``i`` in ``range(count)``, spread over the cores.

    For independent calls that release the GIL (BLAS products, ufuncs)
    and write disjoint outputs; each call is the same whichever thread
    runs it. Runs in a plain loop when there is one call or the calls are
    small (``elements_per_call`` below the hand-off threshold).
    """
    if count < 2 or elements_per_call < _MIN_ELEMENTS or _workers() == 1:
        for index in range(count):
            function(index)
        return
    list(_pool().map(function, range(count)))


def tanh_inplace(array):
    """``np.tanh(array, out=array)`` on all cores; returns ``array``."""
    if not array.flags.c_contiguous:        # no flat view to share out
        np.tanh(array, out=array)
        return array
    flat = array.reshape(-1)
    elementwise(lambda span: np.tanh(flat[span], out=flat[span]), flat.size)
    return array


def matmul_columns(matrix, stack):
    """``matrix @ stack[n]`` for every n, the columns split over the cores.

    ``stack`` is ``(N, K, P)``; returns ``(N, M, P)``.
    """
    n_batch, _, n_columns = stack.shape
    out = np.empty((n_batch, matrix.shape[0], n_columns),
                   dtype=np.result_type(matrix, stack))
    workers = _workers()
    spans = (_spans(n_columns, workers)
             if stack[0].size >= _MIN_ELEMENTS and workers > 1 else [slice(None)])

    def product(task):
        n, span = task
        np.matmul(matrix, stack[n][:, span], out=out[n][:, span])

    list(_pool().map(product, [(n, span) for n in range(n_batch) for span in spans]))
    return out
