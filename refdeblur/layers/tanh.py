"""Element-wise hyperbolic tangent. Derivation: derivations/tanh.md."""

from typing import NamedTuple

import numpy as np

from .._engine.features import tanh_gradient


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
        out = np.tanh(x)                                            # (T1)
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
            ``dL/dx = dout * (1 - tanh(x)**2)``.
        param_grads : dict
            Empty.
        """
        dx = tanh_gradient(dout, cache.output)                      # (T2)
        return dx, {}
