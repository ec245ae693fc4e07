"""Element-wise work and matrix products split over the machine's cores.

NumPy releases the GIL inside ufunc loops and BLAS calls, so a plain thread
pool runs the halves of a large ``tanh`` or matrix product at the same
time. Used by the inference path only (:meth:`refdeblur.network.Stage.predict`):
the results are identical to the single-threaded ones, element by element
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


def tanh_inplace(array):
    """``np.tanh(array, out=array)`` on all cores; returns ``array``."""
    flat = array.reshape(-1)
    workers = _workers()
    if flat.size < _MIN_ELEMENTS or workers == 1:
        np.tanh(array, out=array)
        return array
    list(_pool().map(lambda span: np.tanh(flat[span], out=flat[span]),
                     _spans(flat.size, workers)))
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
