"""Data-parallel training: a step's examples computed on Dask workers.

Every step, the client scatters the network's weights to all workers once,
each worker makes the examples it is given from their own seeds and
computes their losses and gradients
(:func:`refdeblur.training.trainer.example_result`), and the client sums
the gradients in example order and steps the optimiser
(:func:`refdeblur.training.trainer.per_example_step`). The weights are
therefore the same bits as those of the single-process trainer with
per-example seeding, whatever the number of workers (derivations/training.md,
"Data-parallel training").
"""

import functools
import time
from concurrent.futures import CancelledError

from ..training.trainer import example_result, train

__all__ = ["DaskExamples", "train_distributed"]

#: Seconds a step that lost its workers waits for one to come back.
RECONNECT_SECONDS = 120


class DaskExamples:
    """Computes the examples of a step on the workers of a Dask cluster.

    The example source (the training images) is scattered to every worker
    once; the weights once per step. Each example is one task; a task lost
    with its worker is recomputed by Dask on another worker, from the same
    seed, so it gives the same result. Scattered data has no recipe Dask
    could recompute it from: where a worker's death takes some of it with
    it (or interrupts a scatter), the step is computed again from the start,
    up to ``attempts`` times, with the same result.

    Parameters
    ----------
    client : dask.distributed.Client
    source : callable
        :class:`refdeblur.training.data.ExampleSource`.
    attempts : int, optional
        Tries of a step before its error is raised.

    Attributes
    ----------
    steps : int
        Steps computed.
    scatter_seconds, wall_seconds, compute_seconds : float
        Summed over the steps: the time the weights took to reach the
        workers, the time of the whole step's examples as the client sees
        it, and the time the workers spent on them
        (:attr:`refdeblur.training.trainer.ExampleResult.seconds`).
    """

    def __init__(self, client, source, *, attempts=3):
        self.client = client
        self.example_source = source
        self.attempts = attempts
        self.source = None
        self.steps = 0
        self.scatter_seconds = 0.0
        self.wall_seconds = 0.0
        self.compute_seconds = 0.0

    def __call__(self, net, phase, seeds):
        """The :class:`~refdeblur.training.trainer.ExampleResult` of each seed, in order."""
        for attempt in range(1, self.attempts + 1):
            try:
                return self._compute(net, phase, seeds)
            except _LostWork:
                if attempt == self.attempts:
                    raise
                # let the nannies restart their workers, then send everything again
                time.sleep(attempt)
                self.source = None

    def _compute(self, net, phase, seeds):
        started = time.perf_counter()
        if self.source is None:
            self.client.wait_for_workers(1, timeout=RECONNECT_SECONDS)
            self.source = self._scatter(self.example_source)
        weights = self._scatter(net)
        scattered = time.perf_counter()
        futures = [self.client.submit(example_result, self.source, weights, phase, seed,
                                      pure=False)
                   for seed in seeds]
        try:
            results = self.client.gather(futures)
        except (OSError, CancelledError) as error:
            # a closed connection, or a task cancelled because scattered
            # data it needed went with a worker; a task's own error is raised
            raise _LostWork(f"the cluster lost work of a step ({error})") from error
        self.steps += 1
        self.scatter_seconds += scattered - started
        self.wall_seconds += time.perf_counter() - started
        self.compute_seconds += sum(result.seconds for result in results)
        return results

    def _scatter(self, value):
        """One future of ``value``, on every worker."""
        try:
            # hash=False: tokenising the weights would cost a pass over
            # them, and they are new every step anyway
            return self.client.scatter(value, broadcast=True, hash=False)
        except Exception as error:     # workers that come and go make it fail many ways
            raise _LostWork(f"the cluster lost work of a step ({error})") from error


class _LostWork(RuntimeError):
    """A step's data or tasks were lost with a worker; the step can be computed again."""


def train_distributed(config=None, *, client, **options):
    """:func:`refdeblur.training.train` with the examples computed on a cluster.

    Parameters
    ----------
    config : dict or None
        As for :func:`refdeblur.training.train`; it must have per-example
        seeding (``config["example_seeding"] == "per_example"``), and so
        must the configuration of a resumed run.
    client : dask.distributed.Client
        E.g. from :func:`refdeblur.distributed.dask_client`.
    **options
        ``out_dir``, ``steps``, ``resume``, ``progress`` and
        ``checkpoint_seconds`` of :func:`refdeblur.training.train`.

    Returns
    -------
    refdeblur.training.TrainingResult

    Raises
    ------
    ValueError
        For a run that draws its examples from one stream, and as
        :func:`refdeblur.training.train`.
    """
    return train(config, examples=functools.partial(DaskExamples, client), **options)
