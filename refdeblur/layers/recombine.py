"""Pixel-wise linear recombination of channels (a 1x1 convolution).

Derivation: derivations/recombine.md.
"""

from typing import NamedTuple

import numpy as np

from .._engine.threads import for_each


class RecombineCache(NamedTuple):
    x: np.ndarray       # (N, C_in, H, W), needed for the weight gradient (R3)
    weight: np.ndarray  # (C_out, C_in), needed for the input gradient (R2)


class Recombine:
    """Pixel-wise linear combination of feature maps, paper Eq. 2.

    ``out[n, o, p] = sum_c weight[o, c] * x[n, c, p] (+ bias[o])`` at every
    pixel ``p``: the coefficients ``alpha_ij`` and ``beta_ij`` of Eq. 2.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels before and after.
    bias : bool, optional
        Add a learned offset per output channel. Eq. 2 has none, so the
        default is False.
    """

    def __init__(self, in_channels, out_channels, *, bias=False):
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.bias = bool(bias)

    def init_params(self, rng, dtype=np.float64):
        """Glorot-normal weights, zero bias.

        tanh is linear near 0, so the Glorot scale
        ``sqrt(2 / (C_in + C_out))`` keeps activations and gradients of the
        same order from layer to layer.

        Parameters
        ----------
        rng : numpy.random.Generator
        dtype : dtype, optional

        Returns
        -------
        dict
            ``{"weight": (C_out, C_in)}`` plus ``"bias": (C_out,)`` if used.
        """
        std = np.sqrt(2.0 / (self.in_channels + self.out_channels))
        params = {"weight": (std * rng.standard_normal(
            (self.out_channels, self.in_channels))).astype(dtype)}
        if self.bias:
            params["bias"] = np.zeros(self.out_channels, dtype=dtype)
        return params

    def forward(self, x, params):
        """Recombine channels (R1).

        Parameters
        ----------
        x : ndarray of shape (N, C_in, H, W)
        params : dict
            ``"weight"`` (C_out, C_in) and, if ``bias``, ``"bias"`` (C_out,).

        Returns
        -------
        out : ndarray of shape (N, C_out, H, W)
        cache : RecombineCache
        """
        weight = params["weight"]
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Recombine expects (N, {self.in_channels}, H, W), "
                             f"got {x.shape}")
        n_batch, _, height, width = x.shape
        flat = x.reshape(n_batch, self.in_channels, height * width)
        out = np.empty((n_batch, self.out_channels, height * width),
                       dtype=np.result_type(weight, x))
        # One 2-D product per image, the images over the cores: a broadcast
        # np.matmul over the batch ran 2.6 times slower, and a whole image
        # per task makes the result independent of the number of cores.
        for_each(lambda n: np.matmul(weight, flat[n], out=out[n]), n_batch,
                 flat[0].size)                                       # (R1)
        if self.bias:
            out += params["bias"][:, None]
        out = out.reshape(n_batch, self.out_channels, height, width)
        return out, RecombineCache(x, weight)

    def backward(self, dout, cache):
        """Gradients with respect to the input and the coefficients.

        Parameters
        ----------
        dout : ndarray of shape (N, C_out, H, W)
        cache : RecombineCache

        Returns
        -------
        dx : ndarray of shape (N, C_in, H, W)
        param_grads : dict
            ``"weight"`` and, if used, ``"bias"``.
        """
        x, weight = cache
        n_batch, _, height, width = x.shape
        dout_flat = dout.reshape(n_batch, self.out_channels, height * width)
        x_flat = x.reshape(n_batch, self.in_channels, height * width)
        dx = np.empty(x_flat.shape, dtype=np.result_type(weight, dout))
        # (R3) per image, summed over the batch in a fixed order: no
        # transposed copies of the stacks, and the same bits on any number
        # of cores.
        per_image = np.empty((n_batch, self.out_channels, self.in_channels),
                             dtype=np.result_type(dout, x))

        def image_gradients(n):
            np.matmul(weight.T, dout_flat[n], out=dx[n])                 # (R2)
            np.matmul(dout_flat[n], x_flat[n].T, out=per_image[n])       # (R3)

        for_each(image_gradients, n_batch, dout_flat[0].size)
        dweight = per_image[0]
        for n in range(1, n_batch):
            dweight = dweight + per_image[n]
        grads = {"weight": dweight}
        if self.bias:
            grads["bias"] = dout_flat.sum(axis=(0, 2))  # (R4)
        return dx.reshape(x.shape), grads

