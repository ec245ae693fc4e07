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
metrics
    Image and kernel quality up to shift, with Levin et al.'s protocol.
"""

__version__ = "0.1.0.dev0"

from . import gradcheck, metrics  # noqa: E402
from .model_io import load_model, save_model  # noqa: E402
from .network import Architecture, Network, build_network  # noqa: E402

__all__ = ["__version__", "Architecture", "Network", "build_network",
           "gradcheck", "load_model", "metrics", "save_model"]
