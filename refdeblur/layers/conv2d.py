"""Multi-channel 'valid' correlation: the learned filters of each stage.

Derivation: derivations/conv2d.md (equations C1-C10). How the correlation
and its adjoints are computed (Numba loops, im2col, FFT, and the cost model
behind ``method="auto"``) is :mod:`refdeblur._engine.conv_backends`.
"""

from typing import NamedTuple

import numpy as np

from .._engine import conv_backends

__all__ = ["Conv2D", "ConvCache", "METHODS"]

#: Values of ``Conv2D(method=...)``.
METHODS = conv_backends.METHODS


class ConvCache(NamedTuple):
    """What :meth:`Conv2D.backward` needs."""

    x: np.ndarray       # (N, C_in, H, W): the weight gradient (C4) correlates it with dout
    weight: np.ndarray  # (C_out, C_in, f, f) in x's dtype: the input gradient (C3)
    has_bias: bool      # whether to return a bias gradient (C5)
    method: str         # "direct" or "fft": what the forward pass used
    spectra: object     # the FFT path's spectra of w and x, reused by (C9), (C10); or None


class Conv2D:
    """Multi-channel 'valid' cross-correlation with bias, paper §3.1.1.

    ``out[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] x[n, c, i + u, j + v]``
    (C1) for ``0 <= i <= H - f``, ``0 <= j <= W - f``. The paper writes a
    convolution ``f_j * y``; with learned filters the two differ only by a
    flip of the filters. 'valid', so that the filters never learn from
    padding; the filter side ``f`` is configurable, by default the kernel
    size, so that the stage's only spatial operator sees the whole blur
    (derivations/conv2d.md §1).

    The layer holds only its configuration; parameters come in a dict and
    :meth:`forward` returns a cache for :meth:`backward`.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C_in`` and ``C_out``.
    filter_size : int
        Side ``f`` of the square filters.
    bias : bool, optional
        Learn one offset per output channel.
    method : {"auto", "direct", "fft"}, optional
        Implementation; all three compute the same maps up to rounding:
        Numba loops over the taps (im2col and BLAS without Numba), zero-padded
        FFTs (C7)-(C10), or whichever a cost model predicts to be faster,
        decided per call (:mod:`refdeblur._engine.conv_backends`).
    """

    def __init__(self, in_channels, out_channels, filter_size, *, bias=True,
                 method="auto"):
        for name, value in (("in_channels", in_channels),
                            ("out_channels", out_channels),
                            ("filter_size", filter_size)):
            if int(value) != value or value < 1:
                raise ValueError(f"Conv2D: {name} must be a positive integer, "
                                 f"got {value!r}")
        if method not in METHODS:
            raise ValueError(f"Conv2D: method must be one of {METHODS}, "
                             f"got {method!r}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.filter_size = int(filter_size)
        self.bias = bool(bias)
        self.method = method

    def __repr__(self):
        return (f"Conv2D({self.in_channels}, {self.out_channels}, "
                f"{self.filter_size}, bias={self.bias}, method={self.method!r})")

    def init_params(self, rng, dtype=np.float64):
        """LeCun-normal filters, zero bias.

        The filters are drawn from ``N(0, 1 / (C_in f²))``: each output is a
        sum of ``C_in f²`` products, so for inputs of unit variance the
        output has unit variance and the following tanh starts in its
        responsive range, neither linear nor saturated. (Intensities in
        [0, 1] with small gradients give outputs well below 1.)

        Parameters
        ----------
        rng : numpy.random.Generator
            The only source of randomness.
        dtype : dtype, optional
            Of the returned arrays.

        Returns
        -------
        dict
            ``"weight"``: (C_out, C_in, f, f); ``"bias"``: (C_out,) if the
            layer has a bias.
        """
        fan_in = self.in_channels * self.filter_size ** 2
        shape = (self.out_channels, self.in_channels, self.filter_size,
                 self.filter_size)
        params = {"weight": (rng.standard_normal(shape)
                             / np.sqrt(fan_in)).astype(dtype)}
        if self.bias:
            params["bias"] = np.zeros(self.out_channels, dtype=dtype)
        return params

    def forward(self, x, params):
        """Correlate the input with every filter and add the bias (C1).

        Parameters
        ----------
        x : ndarray of shape (N, C_in, H, W)
            float32 or float64; ``H, W >= f``. The computation runs in this
            dtype (the parameters are cast to it).
        params : dict
            ``"weight"`` (C_out, C_in, f, f) and, if the layer has a bias,
            ``"bias"`` (C_out,).

        Returns
        -------
        out : ndarray of shape (N, C_out, H - f + 1, W - f + 1)
            Same dtype as ``x``.
        cache : ConvCache
        """
        x = self._check_input(x)
        weight, bias = self._check_params(params, x.dtype)
        method = self._resolve_method("forward", x.shape, x.dtype)
        out, spectra = conv_backends.correlate(x, weight, bias, method=method,
                                               keep_spectra=True)      # (C1)
        return out, ConvCache(x, weight, bias is not None, method, spectra)

    def backward(self, dout, cache, *, input_grad=True):
        """Gradients with respect to the input, the filters and the bias.

        Parameters
        ----------
        dout : ndarray of shape (N, C_out, H - f + 1, W - f + 1)
            ``dL/d out``.
        cache : ConvCache
            From :meth:`forward`.
        input_grad : bool, optional
            Compute ``dL/dx``. Pass False where the input is data (the first
            stage): it skips the input gradient (C3), a third of the work.

        Returns
        -------
        dx : ndarray of shape (N, C_in, H, W), or None
            ``dx[n, c] = sum_o dout[n, o] *_full w[o, c]``, the full
            convolution (C3); None when ``input_grad`` is False.
        param_grads : dict
            ``"weight"``: ``dw[o, c, u, v] = sum_{n, i, j} dout[n, o, i, j]
            x[n, c, i + u, j + v]`` (C4); ``"bias"``, if the layer has one:
            ``dout`` summed over all but the channel axis (C5). All arrays
            in the dtype of the input.
        """
        x, weight, has_bias, forward_method, spectra = cache
        n_batch, _, height, width = x.shape
        expected = (n_batch, self.out_channels, height - self.filter_size + 1,
                    width - self.filter_size + 1)
        if np.shape(dout) != expected:
            raise ValueError(f"Conv2D.backward expects dout of shape {expected}, "
                             f"got {np.shape(dout)}")
        dout = np.ascontiguousarray(dout, dtype=x.dtype)
        pass_name = "backward" if input_grad else "weight_gradient"
        method = self._resolve_method(pass_name, x.shape, x.dtype)
        dx, dweight = conv_backends.gradients(
            x, weight, dout, method=method, input_grad=input_grad,
            spectra=spectra if method == forward_method else None)  # (C3), (C4)
        grads = {"weight": dweight}
        if has_bias:
            grads["bias"] = dout.sum(axis=(0, 2, 3))  # (C5)
        return dx, grads

    # -- helpers -----------------------------------------------------------

    def _check_input(self, x):
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"Conv2D expects x of shape (N, {self.in_channels}, "
                             f"H, W), got {x.ndim} dimensions {x.shape}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2D expects {self.in_channels} input channels, "
                             f"got x of shape {x.shape}")
        if min(x.shape[2:]) < self.filter_size:
            raise ValueError(f"Conv2D: image {x.shape[2]}x{x.shape[3]} is smaller "
                             f"than the {self.filter_size}x{self.filter_size} "
                             f"filter")
        if x.shape[0] < 1:
            raise ValueError("Conv2D: empty batch")
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        return np.ascontiguousarray(x)

    def _check_params(self, params, dtype):
        weight = np.asarray(params["weight"])
        shape = (self.out_channels, self.in_channels, self.filter_size,
                 self.filter_size)
        if weight.shape != shape:
            raise ValueError(f"Conv2D expects weight of shape {shape}, "
                             f"got {weight.shape}")
        weight = np.ascontiguousarray(weight, dtype=dtype)
        bias = None
        if self.bias:
            bias = np.asarray(params["bias"], dtype=dtype)
            if bias.shape != (self.out_channels,):
                raise ValueError(f"Conv2D expects bias of shape "
                                 f"({self.out_channels},), got {bias.shape}")
        return weight, bias

    def _resolve_method(self, pass_name, x_shape, dtype):
        return conv_backends.resolve_method(self.method, pass_name, x_shape,
                                            self.out_channels, self.filter_size,
                                            dtype)
