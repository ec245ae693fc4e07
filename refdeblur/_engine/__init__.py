"""The speed engine: every Numba kernel, the convolution backends, the FFT and
thread settings. It is the only part of refdeblur that imports numba.

Numba is optional. Without it (or with ``NUMBA_DISABLE_JIT=1``),
:func:`njit` returns the plain Python function (the same code, run by the
interpreter) and :data:`prange` is ``range``; every caller with a NumPy
formulation of a kernel checks :data:`HAVE_NUMBA` and runs that instead,
after calling :func:`warn_without_numba`, which warns once per process that
the slower paths are in use.
"""

import warnings

try:
    import numba
except ImportError:  # numba is an optional dependency
    numba = None

__all__ = ["HAVE_NUMBA", "NUMBA_WARNING", "njit", "prange", "set_numba_threads",
           "warn_without_numba"]

#: True when numba is installed and its JIT is enabled: the kernels are
#: compiled. False without numba or under ``NUMBA_DISABLE_JIT=1``, where a
#: kernel would run as plain Python and its NumPy formulation is faster.
HAVE_NUMBA = numba is not None and not numba.config.DISABLE_JIT

prange = numba.prange if HAVE_NUMBA else range

#: Start of the message of :func:`warn_without_numba`, for warning filters.
NUMBA_WARNING = "numba is unavailable"

_warned = False


def njit(*args, **options):
    """``numba.njit`` when :data:`HAVE_NUMBA`, else the function unchanged.

    Usable bare (``@njit``) or with options (``@njit(cache=True)``), like
    ``numba.njit``.
    """
    if HAVE_NUMBA:
        return numba.njit(*args, **options)
    if len(args) == 1 and callable(args[0]) and not options:
        return args[0]
    return lambda function: function


def warn_without_numba():
    """Warn, once per process, that the NumPy/SciPy paths run instead of numba.

    Does nothing when :data:`HAVE_NUMBA`. Call it where a slow path is
    taken, not at import, so that a program that never reaches one is not
    warned.
    """
    global _warned
    if HAVE_NUMBA or _warned:
        return
    _warned = True
    reason = "not installed" if numba is None else "disabled by NUMBA_DISABLE_JIT"
    warnings.warn(f"{NUMBA_WARNING} ({reason}): refdeblur runs its NumPy/SciPy "
                  "paths, which give the same results more slowly "
                  "(pip install numba for speed)", RuntimeWarning, stacklevel=3)


def set_numba_threads(count):
    """Let numba's parallel kernels started from this thread use ``count`` threads.

    Numba's thread count is per calling thread and capped at its pool size
    (``NUMBA_NUM_THREADS``); returns the previous count, or ``None`` without
    numba. Used by :func:`refdeblur._engine.threads.parallel_region`.
    """
    if not HAVE_NUMBA:
        return None
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(count), numba.config.NUMBA_NUM_THREADS)))
    return previous
