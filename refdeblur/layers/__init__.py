"""The network's layers, one module each (see :mod:`refdeblur.layers.base`).

Every module has a derivation with the same stem in ``derivations/`` and a
test file ``tests/layers/test_<stem>.py``.
"""

from .conv2d import Conv2D
from .crop_pad import KernelCrop, KernelPad, ReplicatePad
from .edge_taper import EdgeTaper
from .image_quotient import ImageQuotient
from .kernel_quotient import KernelQuotient
from .recombine import Recombine
from .resample import Resample
from .tanh import Tanh

__all__ = ["Conv2D", "EdgeTaper", "ImageQuotient", "KernelCrop",
           "KernelPad", "KernelQuotient", "Recombine", "ReplicatePad",
           "Resample", "Tanh"]
