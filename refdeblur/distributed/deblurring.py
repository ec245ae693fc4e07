"""Batch deblurring with the files mapped over the workers of a Dask cluster.

Each input is one task (:func:`refdeblur.inference.files.deblur_plan`): the
worker reads the input, deblurs it and writes its two outputs itself,
atomically (a temporary file, then a rename), and sends back only the
report entry. Images thus go from disk to the worker and back to disk once,
never through the client, whose network link would otherwise carry every
image twice and limit the cluster; the inputs and outputs must therefore
be on a file system every worker sees at the same paths (a laptop, the
shared file system of a cluster).
"""

from ..inference.files import FileResult, deblur_plan, outputs_exist
from .cluster import require_distributed

__all__ = ["deblur_files_distributed"]


def deblur_files_distributed(client, plans, *, overwrite=False, model=None, **options):
    """Deblur image files on a cluster; a failing input stops no other.

    Parameters
    ----------
    client : dask.distributed.Client
    plans : list of refdeblur.inference.files.OutputPlan
        What :func:`refdeblur.inference.files.plan_outputs` returns.
    overwrite : bool, optional
        Deblur every input and replace existing outputs (never an input).
        Without it, an input whose two outputs exist is skipped, so that a
        rerun of an interrupted batch does only what is left.
    model : refdeblur.network.Network, optional
        Sent to every worker once; None for the shipped networks, which
        each worker loads.
    **options
        ``kernel_size`` and the options of
        :func:`refdeblur.inference.files.deblur_file`.

    Yields
    ------
    refdeblur.inference.files.FileResult
        One per input, as soon as it is done (in the order they finish;
        the skipped inputs first, with ``skipped`` set). An input whose
        task fails on the worker (a worker that died three times on it,
        an unexpected error) gives its one-line error like any other
        failing input.
    """
    distributed = require_distributed()
    if model is not None:
        model = client.scatter(model, broadcast=True, hash=False)
    futures = {}
    for plan in plans:
        if not overwrite and outputs_exist(plan):
            yield FileResult(plan.source, plan.sharp_path, plan.kernel_path, skipped=True)
            continue
        future = client.submit(deblur_plan, plan, overwrite=overwrite, model=model,
                               pure=False, **options)
        futures[future] = plan
    for future in distributed.as_completed(futures):
        plan = futures.pop(future)
        try:
            yield future.result()
        except Exception as error:     # any failure of one task is that input's
            reason = str(error).splitlines()[0] if str(error) else ""
            yield FileResult(plan.source, plan.sharp_path, plan.kernel_path,
                             error=f"{plan.source}: failed on a worker "
                                   f"({type(error).__name__}: {reason})")

