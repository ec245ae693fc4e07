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
estimate_kernel, deblur, choose_kernel_size
    Blind deblurring of photos with the shipped networks
    (:mod:`refdeblur.inference`); the network is chosen from the image
    unless a kernel size is given.
estimate_kernels_nonuniform, deblur_nonuniform
    Blind deblurring of a blur that changes across the photo (camera
    rotation): one kernel per patch, optionally projected onto camera motions
    (:mod:`refdeblur.nonuniform`, paper §6.3).
deconvolve
    Non-blind deconvolution (:mod:`refdeblur.deconvolution`).
sample_kernel
    Synthetic camera-shake kernels (:mod:`refdeblur.camera_shake`).
metrics
    Image and kernel quality up to shift, with Levin et al.'s protocol.
get_num_threads, set_num_threads, num_threads
    The number of threads refdeblur computes on: its thread pool, scipy.fft
    workers and numba kernels, with BLAS on one thread inside them
    (default: the environment variable ``REFDEBLUR_NUM_THREADS``, else every
    available core). Importing refdeblur changes no setting.
"""

from ._version import __version__
from . import gradcheck, metrics
from .model_io import save_model
from .models import load_model
from .network import Architecture, Network, build_network
from .camera_shake import sample_kernel
from .deconvolution import deconvolve
from .inference import DeblurWarning, choose_kernel_size, deblur, estimate_kernel
from .nonuniform import deblur_nonuniform, estimate_kernels_nonuniform
from ._engine.threads import get_num_threads, num_threads, set_num_threads

__all__ = ["__version__", "Architecture", "DeblurWarning", "Network",
           "build_network", "choose_kernel_size", "deblur", "deblur_nonuniform", "deconvolve",
           "estimate_kernel", "estimate_kernels_nonuniform",
           "get_num_threads", "gradcheck", "load_model", "metrics", "num_threads",
           "sample_kernel", "save_model", "set_num_threads"]
