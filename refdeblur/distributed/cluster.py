"""A Dask client: on a local cluster of processes, or on a running scheduler.

Dask distributed is an optional dependency (``pip install
'refdeblur[distributed]'``); it is imported only when a client is made, so
the rest of refdeblur works without it.
"""

import contextlib
import logging
import os
import signal
import threading
import warnings

from .._engine.threads import ENVIRONMENT_VARIABLE, available_cores

__all__ = ["MISSING_DASK", "TRIM_SETTING", "require_distributed", "dask_client"]

#: What :func:`require_distributed` says where Dask distributed is missing.
MISSING_DASK = ("Dask distributed is not installed; install refdeblur[distributed] "
                "(pip install 'refdeblur[distributed]')")

#: The Dask setting that makes the nannies start their workers with
#: ``MALLOC_TRIM_THRESHOLD_=65536``, so that freed memory goes back to the
#: system at once. Setting it at all turns off glibc's adaptive threshold
#: for ``mmap``, and every array of 128 kB or more is then mapped and unmapped
#: afresh: a training step of refdeblur took twice as long. Local clusters
#: start without it; the README's "Scaling out" says how to do the same on
#: other clusters.
TRIM_SETTING = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def require_distributed():
    """The ``dask.distributed`` module.

    Raises
    ------
    ImportError
        With :data:`MISSING_DASK` as its message, where it is not installed.
    """
    try:
        import dask.distributed
    except ImportError:
        raise ImportError(MISSING_DASK) from None
    return dask.distributed


@contextlib.contextmanager
def dask_client(*, workers=None, scheduler=None):
    """A client of a new local cluster, or of the scheduler at an address.

    Parameters
    ----------
    workers : int, optional
        Start a ``LocalCluster`` of this many worker processes, one task at
        a time each; refdeblur's threads (:func:`refdeblur.set_num_threads`)
        share the cores among them, ``REFDEBLUR_NUM_THREADS`` being the
        cores divided by ``workers`` (at least 1). The cluster ends with
        the block.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) to connect to
        instead; its workers are left running.

    Yields
    ------
    dask.distributed.Client

    Raises
    ------
    ImportError
        Where Dask distributed is not installed (:data:`MISSING_DASK`).
    ValueError
        Unless exactly one of ``workers`` (at least 1) and ``scheduler`` is
        given.
    OSError
        If the scheduler cannot be reached.
    """
    distributed = require_distributed()
    import dask
    if (workers is None) == (scheduler is None):
        raise ValueError("give either the number of local workers or a scheduler's address")
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            _warn_of_memory_trimming(client)
            yield client
        return
    if workers < 1:
        raise ValueError(f"the number of workers must be at least 1, got {workers}")
    threads = max(1, available_cores() // workers)
    # A dashboard on a free port: a fixed one may be taken by another
    # cluster. Errors only from the cluster's own logs: on a busy machine
    # the workers can take longer to exit than the nannies wait, which they
    # log as a warning each, about nothing that matters once the work is done.
    environment = {ENVIRONMENT_VARIABLE: str(threads)}
    with dask.config.set({TRIM_SETTING: None}), distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.ERROR, env=environment) as cluster:
        with distributed.Client(cluster) as client:
            _ignore_interrupts(client, distributed)
            yield client


def _warn_of_memory_trimming(client):
    """Warn if the workers run with ``MALLOC_TRIM_THRESHOLD_`` (:data:`TRIM_SETTING`)."""
    settings = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
    trimming = sum(value is not None for value in settings.values())
    if trimming:
        warnings.warn(f"{trimming} of the {len(settings)} Dask workers run with "
                      f"MALLOC_TRIM_THRESHOLD_ set (Dask's default), which makes "
                      f"refdeblur's work up to twice as slow; start them with "
                      f"{TRIM_SETTING} set to null (README, 'Scaling out')",
                      RuntimeWarning, stacklevel=4)


def _ignore_interrupts(client, distributed):
    """Make the workers of a local cluster ignore SIGINT, now and when restarted.

    They share the terminal's process group with the client, so Ctrl-C
    reaches them too; ignoring it lets the client finish its step and write
    its checkpoint (:func:`refdeblur.training.train`), then close the cluster.
    """

    class IgnoreInterrupts(distributed.WorkerPlugin):
        name = "refdeblur-ignore-interrupts"

        def setup(self, worker):
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    client.register_plugin(IgnoreInterrupts())
