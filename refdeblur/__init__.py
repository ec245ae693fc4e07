"""refdeblur: a reference implementation of "Learning to Deblur".

Schuler, Hirsch, Harmeling and Schölkopf, "Learning to Deblur", IEEE TPAMI
38(7), 2016. Every layer has an explicit ``forward`` and ``backward``; the
backward passes are derived in the ``derivations/`` folder of the source tree.

Public API
----------
build_network
    A randomly initialised multi-scale network (:mod:`refdeblur.network`).
save_model, load_model
    Model files: ``.npz`` arrays plus JSON metadata, never pickles.
gradcheck
    Finite-difference and adjoint checks, for this package's tests and for
    people checking their own ports.
estimate_kernel, deblur
    Blind deblurring of photos with the shipped networks
    (:mod:`refdeblur.inference`).
deconvolve
    Non-blind deconvolution (:mod:`refdeblur.deconvolution`).
sample_kernel
    Synthetic camera-shake kernels (:mod:`refdeblur.camera_shake`).
metrics
    Image and kernel quality up to shift, with Levin et al.'s protocol.
"""

__version__ = "0.1.0.dev0"

import os  # noqa: E402

# OpenBLAS's worker threads compete with Numba's and scipy.fft's threads for
# the cores; on a busy 2-core machine the small matrix products of the
# recombination layers then ran up to 100x slower multithreaded than on one
# thread (1.05 s against 0.01 s for a 32 x 50176 x 32 product). This only
# takes effect if NumPy was not imported before refdeblur, and never
# overrides a value the user set.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from . import gradcheck, metrics  # noqa: E402
from .model_io import load_model, save_model  # noqa: E402
from .network import Architecture, Network, build_network  # noqa: E402
from .camera_shake import sample_kernel  # noqa: E402
from .deconvolution import deconvolve  # noqa: E402
from .inference import DeblurWarning, deblur, estimate_kernel  # noqa: E402

__all__ = ["__version__", "Architecture", "DeblurWarning", "Network",
           "build_network", "deblur", "deconvolve", "estimate_kernel",
           "gradcheck", "load_model", "metrics", "sample_kernel", "save_model"]
