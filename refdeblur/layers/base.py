"""The layer protocol shared by every module in :mod:`refdeblur.layers`.

A layer object holds only its configuration (sizes, fixed constants). It
keeps no state between calls:

``out, cache = layer.forward(*inputs, params=params)``
    ``params`` is a dict of the layer's trainable arrays (see
    :meth:`init_params` for the names), or omitted for layers without
    parameters. ``cache`` is a NamedTuple with exactly what ``backward``
    needs.

``input_grads, param_grads = layer.backward(dout, cache)``
    ``dout`` is ``dL/d out``. ``input_grads`` is the gradient with respect to
    the input (a tuple, one entry per input, for layers with several inputs);
    ``param_grads`` is a dict keyed like ``params`` (empty for layers without
    parameters).

Arrays are float64 for the reference and gradient checks; float32 is allowed
for inference and every layer preserves the dtype of its input.

Array layouts (``N`` is the batch size):

* images and feature maps: ``(N, C, H, W)``;
* a single-channel image where a layer needs one: ``(N, H, W)``;
* blur kernels: ``(N, m, m)``, ``m`` odd, centre at ``(m // 2, m // 2)``,
  convolution convention (``y = k * x``).
"""

from typing import Protocol


class Layer(Protocol):
    """Structural type of a layer (see the module docstring)."""

    def init_params(self, rng):
        """Return a dict of freshly initialised parameter arrays."""

    def forward(self, *inputs, params=None):
        """Return ``(output, cache)``."""

    def backward(self, dout, cache):
        """Return ``(input_grads, param_grads)``."""
