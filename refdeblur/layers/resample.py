"""Resizing between the scales of the multi-scale network, as MATLAB ``imresize``.

Resizing is linear and separable, so along each axis it is a dense
``out x in`` weight matrix, and an image is resized by
``out = R_rows @ x @ R_cols.T`` on its last two axes (S8). The weights are
those of the ``contributions`` subfunction of MATLAB's ``imresize.m`` (Image
Processing Toolbox, R2015b and later; the same code sits in MathWorks'
``resizeRaster.m`` of 2018): Keys' cubic kernel with ``a = -0.5`` (or the
triangle kernel), widened by ``1/scale`` and scaled by ``scale`` when
shrinking with antialiasing, rows normalised to sum to 1, and out-of-range
taps folded back by mirroring (``aux = [1:n, n:-1:1]``). Because the layer is
a fixed linear map its backward pass is the exact transpose (S9).

Derivation: derivations/resample.md.
"""

import math
from typing import NamedTuple

import numpy as np

__all__ = ["cubic", "triangle", "resize_matrix", "imresize", "Resample"]


def cubic(t):
    """Keys' cubic convolution kernel with ``a = -0.5`` (S3), as MATLAB.

    Parameters
    ----------
    t : array_like
        Distances in input pixels.

    Returns
    -------
    ndarray
        ``1.5|t|^3 - 2.5|t|^2 + 1`` for ``|t| <= 1``,
        ``-0.5|t|^3 + 2.5|t|^2 - 4|t| + 2`` for ``1 < |t| <= 2``, else 0.
    """
    a = np.abs(np.asarray(t, dtype=np.float64))
    a2 = a * a
    a3 = a2 * a
    return ((1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1.0)
            + (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((1.0 < a) & (a <= 2.0)))


def triangle(t):
    """The triangle (linear interpolation) kernel ``max(0, 1 - |t|)`` (S3').

    Written with MATLAB's half-open cases, which agree with
    ``max(0, 1 - |t|)`` everywhere because the kernel vanishes at ``|t| = 1``.

    Parameters
    ----------
    t : array_like

    Returns
    -------
    ndarray
    """
    t = np.asarray(t, dtype=np.float64)
    return ((t + 1.0) * ((-1.0 <= t) & (t < 0.0))
            + (1.0 - t) * ((0.0 <= t) & (t <= 1.0)))


# name -> (kernel, support width in input pixels); the MATLAB method names
# are accepted as aliases so that code ported from MATLAB reads the same.
_KERNELS = {
    "cubic": (cubic, 4.0),
    "bicubic": (cubic, 4.0),
    "linear": (triangle, 2.0),
    "bilinear": (triangle, 2.0),
    "triangle": (triangle, 2.0),
}


def _kernel(name):
    try:
        return _KERNELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown kernel {name!r}; expected one of "
                         f"{sorted(_KERNELS)}") from None


def _positive_int(value, what):
    if isinstance(value, (bool, np.bool_)) or int(value) != value or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _positive_scale(value):
    scale = float(value)
    if not (math.isfinite(scale) and scale > 0.0):
        raise ValueError(f"scale must be positive and finite, got {value!r}")
    return scale


def resize_matrix(in_size, out_size, *, scale=None, kernel="cubic",
                  antialias=True):
    """MATLAB ``imresize`` weight matrix along one axis.

    Reproduces the ``contributions`` subfunction of ``imresize.m`` (R2015b and
    later), scattering its ``(weights, indices)`` pairs into a dense matrix:
    output pixel ``i`` (1-based) sits at input coordinate
    ``u = i/scale + 0.5*(1 - 1/scale)`` (S1); the kernel is widened and
    scaled when shrinking with antialiasing (S2); the taps
    ``floor(u - width/2) + (0 .. ceil(width) + 1)`` get weights
    ``h(u - tap)`` normalised to sum to 1 (S4, S5); taps outside ``1..n``
    are mirrored back, ``0 -> 1``, ``-1 -> 2``, ``n+1 -> n`` (S6); weights of
    taps that land on the same pixel add up (S7).

    Parameters
    ----------
    in_size, out_size : int
        Lengths of the axis before and after resizing.
    scale : float, optional
        The scale factor. ``None`` (default) uses ``out_size / in_size``,
        which is what MATLAB does when it is given an output size. MATLAB
        given a scale ``s`` uses ``s`` itself, with
        ``out_size = ceil(s * in_size)``; pass both to reproduce that.
    kernel : {"cubic", "linear"}, optional
        Keys cubic with ``a = -0.5`` (MATLAB "bicubic", the default) or the
        triangle (MATLAB "bilinear"). The MATLAB names are accepted too.
    antialias : bool, optional
        Widen the kernel when shrinking (MATLAB's default ``true``).

    Returns
    -------
    ndarray of shape (out_size, in_size), float64
        ``R`` such that ``R @ v`` resizes a vector ``v``. Every row sums to 1
        (up to rounding).
    """
    in_size = _positive_int(in_size, "in_size")
    out_size = _positive_int(out_size, "out_size")
    scale = out_size / in_size if scale is None else _positive_scale(scale)
    base_kernel, width = _kernel(kernel)

    if scale < 1.0 and antialias:
        # (S2) Stretching the kernel by 1/scale makes it a low-pass filter at
        # the output's Nyquist rate; the factor scale keeps its integral 1.
        def h(t):
            return scale * base_kernel(scale * t)
        width = width / scale
    else:
        h = base_kernel

    x = np.arange(1, out_size + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # (S1), 1-based input coords
    left = np.floor(u - width / 2.0)  # (S4)
    n_taps = int(math.ceil(width)) + 2  # one spare tap, as MATLAB
    taps = left[:, None] + np.arange(n_taps)
    weights = h(u[:, None] - taps)
    weights = weights / np.sum(weights, axis=1, keepdims=True)  # (S5)

    # (S6) MATLAB indexes aux = [1:n, n:-1:1] periodically: a half-sample
    # symmetric extension of the signal (numpy's pad mode "symmetric").
    period = 2 * in_size
    folded = np.mod(taps.astype(np.int64) - 1, period)
    index = np.where(folded < in_size, folded, period - 1 - folded)

    matrix = np.zeros((out_size, in_size))
    rows = np.broadcast_to(np.arange(out_size)[:, None], index.shape)
    np.add.at(matrix, (rows, index), weights)  # (S7) repeated taps add up
    return matrix


def _pair(value, what):
    if np.ndim(value) == 0:
        return (value, value)
    value = tuple(value)
    if len(value) != 2:
        raise ValueError(f"{what} must be a scalar or a pair, got {value!r}")
    return value


def _resize_plan(in_shape, out_shape, scale, kernel, antialias):
    """Row and column matrices and the order MATLAB applies them in."""
    if scale is None:
        scales = (None, None)
        sort_key = [o / i for o, i in zip(out_shape, in_shape)]
    else:
        scales = tuple(_positive_scale(s) for s in _pair(scale, "scale"))
        sort_key = list(scales)
    matrices = tuple(
        resize_matrix(n_in, n_out, scale=s, kernel=kernel, antialias=antialias)
        for n_in, n_out, s in zip(in_shape, out_shape, scales))
    # MATLAB resizes the axis with the smaller scale first (a stable sort, so
    # rows first on a tie). Mathematically the order is irrelevant; keeping
    # MATLAB's reproduces its rounding more closely and is the cheaper order
    # when shrinking.
    rows_first = sort_key[0] <= sort_key[1]
    return matrices, rows_first


def _apply(x, row_matrix, col_matrix, rows_first):
    """``row_matrix @ x @ col_matrix.T`` on the last two axes (S8)."""
    if rows_first:
        return np.matmul(np.matmul(row_matrix, x), col_matrix.T)
    return np.matmul(row_matrix, np.matmul(x, col_matrix.T))


def imresize(image, *, scale=None, output_shape=None, kernel="cubic",
             antialias=True):
    """Resize the last two axes of an array as MATLAB ``imresize`` does.

    Parameters
    ----------
    image : ndarray of shape (..., H, W)
        A grey image ``(H, W)`` or any stack of them (``(N, H, W)``,
        ``(N, C, H, W)``, also ``(..., H, W)`` colour stacks with the
        channels in front). Floating arrays keep their dtype; other arrays
        are converted to float64 (MATLAB would round and clip a ``uint8``
        result; this function does not).
    scale : float or pair of float, optional
        Scale factor for both axes, or ``(rows, cols)``. The output size is
        ``ceil(scale * size)`` per axis, and the weights use ``scale``
        itself, as MATLAB ``imresize(A, scale)``.
    output_shape : pair of int, optional
        ``(H_out, W_out)``; the scale per axis is then ``out / in``, as
        MATLAB ``imresize(A, [H_out W_out])``. Give exactly one of
        ``scale`` and ``output_shape``.
    kernel : {"cubic", "linear"}, optional
        See :func:`resize_matrix`.
    antialias : bool, optional
        See :func:`resize_matrix`.

    Returns
    -------
    ndarray of shape (..., H_out, W_out)
    """
    image = np.asarray(image)
    if image.ndim < 2:
        raise ValueError(f"need an array with at least 2 axes, got shape "
                         f"{image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float64)
    in_shape = image.shape[-2:]
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale and output_shape")
    if scale is not None:
        scales = tuple(_positive_scale(s) for s in _pair(scale, "scale"))
        # MATLAB's deriveSizeFromScale: ceil of the product in double.
        out_shape = tuple(int(math.ceil(s * n)) for s, n in zip(scales, in_shape))
    else:
        out_shape = tuple(_positive_int(n, "output_shape entry")
                          for n in _pair(output_shape, "output_shape"))
        scales = None
    (row_matrix, col_matrix), rows_first = _resize_plan(
        in_shape, out_shape, scales, kernel, antialias)
    return _apply(image, row_matrix.astype(image.dtype, copy=False),
                  col_matrix.astype(image.dtype, copy=False), rows_first)


class ResampleCache(NamedTuple):
    input_shape: tuple  # full shape of x; (S9) maps the gradient back to it


class Resample:
    """Fixed-size MATLAB-``imresize`` resampling as a layer (no parameters).

    Downsamples the blurry image for a coarser scale and upsamples the
    coarse latent estimate to the next scale (derivations/resample.md). The
    row and column matrices are built once here; they are configuration,
    not state.

    Parameters
    ----------
    in_shape, out_shape : pair of int
        ``(H_in, W_in)`` and ``(H_out, W_out)`` of the last two axes.
    kernel : {"cubic", "linear"}, optional
        See :func:`resize_matrix`; default MATLAB's bicubic.
    antialias : bool, optional
        Antialias when shrinking; default ``True`` as MATLAB.
    scale : float or pair of float, optional
        By default the scale per axis is ``out / in`` (MATLAB
        ``imresize(x, [H_out W_out])``). Give the scale to reproduce
        ``imresize(x, scale)`` instead; ``out_shape`` must then be
        ``ceil(scale * in_shape)``.

    Attributes
    ----------
    row_matrix : ndarray of shape (H_out, H_in), read-only
    col_matrix : ndarray of shape (W_out, W_in), read-only
    """

    def __init__(self, in_shape, out_shape, *, kernel="cubic", antialias=True,
                 scale=None):
        self.in_shape = tuple(_positive_int(n, "in_shape entry")
                              for n in _pair(in_shape, "in_shape"))
        self.out_shape = tuple(_positive_int(n, "out_shape entry")
                               for n in _pair(out_shape, "out_shape"))
        self.kernel = kernel
        self.antialias = bool(antialias)
        if scale is not None:
            scales = tuple(_positive_scale(s) for s in _pair(scale, "scale"))
            expected = tuple(int(math.ceil(s * n))
                             for s, n in zip(scales, self.in_shape))
            if expected != self.out_shape:
                raise ValueError(f"scale {scales} maps {self.in_shape} to "
                                 f"{expected}, not to {self.out_shape}")
            scale = scales
        self.scale = scale
        (row_matrix, col_matrix), self._rows_first = _resize_plan(
            self.in_shape, self.out_shape, scale, kernel, self.antialias)
        row_matrix.flags.writeable = False
        col_matrix.flags.writeable = False
        self.row_matrix = row_matrix
        self.col_matrix = col_matrix

    def init_params(self, rng=None, dtype=np.float64):
        """No parameters; returns an empty dict."""
        return {}

    def _matrices(self, dtype):
        # float32 in, float32 out: cast the float64 configuration per call
        # (two small matrices) rather than keep per-dtype copies around.
        return (self.row_matrix.astype(dtype, copy=False),
                self.col_matrix.astype(dtype, copy=False))

    def forward(self, x, params=None):
        """Resize the last two axes: ``(..., H_in, W_in) -> (..., H_out, W_out)``.

        Parameters
        ----------
        x : ndarray of shape (..., H_in, W_in), float
            ``(H, W)``, ``(N, H, W)`` or ``(N, C, H, W)``.
        params : None
            Unused.

        Returns
        -------
        out : ndarray of shape (..., H_out, W_out), dtype of ``x``
            ``R_rows @ x @ R_cols.T`` (S8).
        cache : ResampleCache
        """
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[-2:] != self.in_shape:
            raise ValueError(f"Resample expects an input of shape (..., "
                             f"{self.in_shape[0]}, {self.in_shape[1]}), got "
                             f"{x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"Resample expects a floating array, got {x.dtype}")
        row_matrix, col_matrix = self._matrices(x.dtype)
        out = _apply(x, row_matrix, col_matrix, self._rows_first)  # (S8)
        return out, ResampleCache(x.shape)

    def backward(self, dout, cache):
        """Gradient with respect to the input: the transposed resize.

        Parameters
        ----------
        dout : ndarray of shape (..., H_out, W_out)
            ``dL/d out``.
        cache : ResampleCache

        Returns
        -------
        dx : ndarray of shape (..., H_in, W_in), dtype of ``dout``
            ``R_rows.T @ dout @ R_cols`` (S9).
        param_grads : dict
            Empty.
        """
        dout = np.asarray(dout)
        expected = tuple(cache.input_shape[:-2]) + self.out_shape
        if dout.shape != expected:
            raise ValueError(f"Resample.backward expects a gradient of shape "
                             f"{expected}, got {dout.shape}")
        row_matrix, col_matrix = self._matrices(dout.dtype)
        # (S9) The transpose of (apply rows, then columns) applies the
        # transposed columns first and the transposed rows last.
        if self._rows_first:
            dx = np.matmul(row_matrix.T, np.matmul(dout, col_matrix))  # (S9)
        else:
            dx = np.matmul(np.matmul(row_matrix.T, dout), col_matrix)  # (S9)
        return dx, {}
