"""Training and batch deblurring on the workers of a Dask cluster.

Optional: needs Dask distributed (``pip install 'refdeblur[distributed]'``),
which is imported only when a client is made (:func:`dask_client`).

* :func:`dask_client`: a local cluster of processes, or a running
  scheduler (:mod:`~refdeblur.distributed.cluster`);
* :func:`train_distributed`, :class:`DaskExamples`: data-parallel
  training, bit-identical to the single-process trainer with per-example
  seeding (:mod:`~refdeblur.distributed.training`);
* :func:`deblur_files_distributed`: image files mapped over the workers
  (:mod:`~refdeblur.distributed.deblurring`).

The README's "Scaling out" gives the recipes for a laptop, an SSH cluster
and a SLURM cluster.
"""

from .cluster import MISSING_DASK, dask_client, require_distributed
from .deblurring import deblur_files_distributed
from .training import DaskExamples, train_distributed

__all__ = ["MISSING_DASK", "dask_client", "require_distributed", "DaskExamples",
           "train_distributed", "deblur_files_distributed"]
