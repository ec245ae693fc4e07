"""Element-wise hyperbolic tangent. Derivation: derivations/tanh.md."""

from typing import NamedTuple

import numpy as np

from .._threads import elementwise


class TanhCache(NamedTuple):
    output: np.ndarray  # tanh(x); (T2) needs only the output, not x


class Tanh:
    """The tanh non-linearity of the feature-extraction module (paper Eq. 2).

    No parameters. ``forward`` keeps only its output, because the derivative
    ``1 - tanh(x)**2`` is a function of the output alone.
    """

    def init_params(self, rng=None, dtype=np.float64):
        """Tanh has no parameters; returns an empty dict."""
        return {}

    def forward(self, x, params=None):
        """Apply tanh element-wise (T1).

        Parameters
        ----------
        x : ndarray
            Any shape, float.
        params : None
            Unused.

        Returns
        -------
        out : ndarray
            ``tanh(x)``, same shape and dtype.
        cache : TanhCache
        """
        # Flat C-ordered views, so that the cores can take halves of them.
        x = np.asarray(x)
        out = np.empty(x.shape, dtype=np.result_type(x, np.float16))  # np.tanh's type
        flat_x, flat_out = x.reshape(-1), out.reshape(-1)
        elementwise(lambda span: np.tanh(flat_x[span], out=flat_out[span]), x.size)  # (T1)
        return out, TanhCache(out)

    def backward(self, dout, cache):
        """Gradient of the loss with respect to the input.

        Parameters
        ----------
        dout : ndarray
            ``dL/d out``, same shape as the output.
        cache : TanhCache

        Returns
        -------
        dx : ndarray
            ``dL/dx``.
        param_grads : dict
            Empty.
        """
        dout = np.asarray(dout)
        dx = np.empty(dout.shape, dtype=np.result_type(dout, cache.output))
        flat_dout, flat_y, flat_dx = (a.reshape(-1) for a in (dout, cache.output, dx))

        def chunk(span):
            slope = flat_y[span] * flat_y[span]
            np.subtract(1.0, slope, out=slope)
            np.multiply(flat_dout[span], slope, out=flat_dx[span])  # (T2)
        elementwise(chunk, dout.size)
        return dx, {}
