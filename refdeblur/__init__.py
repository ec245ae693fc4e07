"""refdeblur: a reference implementation of "Learning to Deblur".

Schuler, Hirsch, Harmeling and Schölkopf, "Learning to Deblur", IEEE TPAMI
38(7), 2016. Every layer has an explicit ``forward`` and ``backward``; the
backward passes are derived in the ``derivations/`` folder of the source tree.
"""

__version__ = "0.1.0.dev0"

from . import gradcheck  # noqa: E402

__all__ = ["__version__", "gradcheck"]
