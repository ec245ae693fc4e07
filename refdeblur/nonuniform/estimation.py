"""Local kernels inside the trained network: paper Eq. 7-8 (§6.3).

The network's stages are unchanged up to their feature maps ``x̃_i``,
``ỹ_i``. In place of the single kernel quotient (Eq. 4) every stage solves
one quotient per patch of the Efficient Filter Flow grid on the windowed,
cropped features (Eq. 8), each cropped, thresholded and normalised like the
uniform kernel; in place of the single image quotient (Eq. 5) the latent
image is estimated under the EFF model, patch by patch, and blended with
the windows. The grid is the same at every scale of the pyramid: its
windows are evaluated on each scale's image.

Derivation: derivations/nonuniform.md, equations (U1) to (U7); the uniform
layers it reuses: derivations/kernel_quotient.md (K1)-(K7),
derivations/image_quotient.md (I1)-(I5); the windows: derivations/eff.md
(F1), (F2).

Forward only: this is inference with a network trained on uniform blur.

Public functions
----------------
scale_windows
    The EFF windows of a grid on one scale's image and on its feature maps (U1).
local_kernel_quotient
    Eq. 8: one kernel per patch from the feature maps (U2)-(U4).
local_image_quotient
    Eq. 5 under the EFF model: per-patch image quotients blended by the
    windows (U5), or conjugate gradients on the EFF normal equations (U6).
predict_nonuniform
    The whole network with both replacements, every scale (U7).
"""

from typing import NamedTuple

import numpy as np

from .._engine.fft import fast_length
from .._engine.threads import one_blas_thread
from ..layers._quotient import quotient_forward
from ..layers.crop_pad import grid_to_kernel
from ..layers.edge_taper import taper_window
from ..network import stage_input
from ..network_fast import stage_features
from .eff import EffOperator, PatchGrid, patch_grid

__all__ = ["IMAGE_STEPS", "ScaleWindows", "scale_windows", "local_kernel_quotient",
           "local_image_quotient", "predict_nonuniform"]

#: How the latent image of a stage is estimated under the EFF model:
#: ``"patch"``, the image quotient of every patch blended by the windows
#: (U5, the default); ``"cg"``, conjugate gradients on the EFF normal
#: equations (U6). derivations/nonuniform.md §3 compares them.
IMAGE_STEPS = ("patch", "cg")

#: Iterations of the ``"cg"`` image step.
CG_ITERATIONS = 10


class ScaleWindows(NamedTuple):
    """The EFF windows of one grid on one scale (U1).

    ``image`` holds the windows on the scale's image, ``row_windows`` and
    ``col_windows`` the same windows on the domain of the feature maps
    (the image less ``offset`` pixels on every side), with the supports
    of each on that domain.
    """

    #: The grid on the scale's image, :func:`refdeblur.nonuniform.eff.patch_grid`.
    image: object
    #: ``(rows, Hf)`` and ``(cols, Wf)``: the 1-D windows on the features.
    row_windows: np.ndarray
    col_windows: np.ndarray
    #: ``(R, 4)``: ``row_start, row_stop, col_start, col_stop`` on the features.
    supports: np.ndarray


def _nonzero_span(window):
    nonzero = np.flatnonzero(window)
    return nonzero[0], nonzero[-1] + 1


def scale_windows(image_shape, feature_shape, grid):
    """The windows of ``grid`` on a scale's image and its feature maps (U1).

    Parameters
    ----------
    image_shape : tuple of int
        ``(H, W)`` of the scale's image.
    feature_shape : tuple of int
        ``(Hf, Wf)`` of its feature maps, the 'valid' output of the stage's
        convolution: pixel ``(i, j)`` of a map lies over image pixel
        ``(i + o, j + o)``, ``o = (H - Hf) // 2``.
    grid : tuple of int
        ``(rows, cols)`` of patches.

    Returns
    -------
    ScaleWindows
        The feature windows are the image's windows (F1), (F2) read on the
        feature pixels: they still sum to one there.

    Raises
    ------
    ValueError
        If a window has no pixel on the feature maps (the maps are too small
        for the grid).
    """
    # kernel_size=1: only the windows are used here; the limit of the grid
    # for a kernel size is checked once, at the full-size image.
    windows = patch_grid(image_shape, grid, kernel_size=1)
    top = (image_shape[0] - feature_shape[0]) // 2
    left = (image_shape[1] - feature_shape[1]) // 2
    rows = windows.row_windows[:, top:top + feature_shape[0]]
    cols = windows.col_windows[:, left:left + feature_shape[1]]
    if not (np.all(rows.max(axis=1) > 0) and np.all(cols.max(axis=1) > 0)):
        raise ValueError(f"feature maps of {feature_shape[0]} x {feature_shape[1]} px "
                         f"are too small for a {grid[0]} x {grid[1]} grid")
    row_spans = [_nonzero_span(w) for w in rows]
    col_spans = [_nonzero_span(w) for w in cols]
    supports = np.array([(r0, r1, c0, c1) for r0, r1 in row_spans for c0, c1 in col_spans])
    return ScaleWindows(windows, rows, cols, supports)


def _feature_window(windows, r):
    cols = windows.col_windows.shape[0]
    a, b = divmod(r, cols)
    r0, r1, c0, c1 = windows.supports[r]
    return np.outer(windows.row_windows[a, r0:r1], windows.col_windows[b, c0:c1])


def local_kernel_quotient(layer, x_sharp, y_blurry, windows):
    """Eq. 8: one kernel per patch from a stage's feature maps (U2)-(U4).

    Parameters
    ----------
    layer : refdeblur.layers.kernel_quotient.KernelQuotient
        The stage's kernel quotient: its kernel size, taper, ``beta_k`` (and
        mode), normalisation and padding are used per patch.
    x_sharp, y_blurry : ndarray of shape (1, n, Hf, Wf)
        The ``n`` sharp-like and blurry-like feature maps of one image.
    windows : ScaleWindows
        From :func:`scale_windows` for these maps.

    Returns
    -------
    ndarray of shape (R, m, m)
        Non-negative; each sums to 1 if ``layer.normalize`` (0 where all of
        the patch's cropped quotient was negative).

    Notes
    -----
    The maps are first tapered as the uniform layer tapers them (K1), so
    that the patches at the image border fade to zero there; every patch is
    then multiplied by its window, cropped to the window's support and
    zero-padded to a common fast transform size (U2). With a 1 x 1 grid the
    window is 1 everywhere and the support the whole map: the result is the
    uniform layer's kernel, bit for bit (U7).
    """
    if x_sharp.shape != y_blurry.shape or x_sharp.ndim != 4 or x_sharp.shape[0] != 1:
        raise ValueError(f"feature maps must both be (1, n, H, W), got {x_sharp.shape} "
                         f"and {y_blurry.shape}")
    height, width = x_sharp.shape[-2:]
    taper = taper_window((height, width), layer.taper_width, x_sharp.dtype)   # (K1)
    extent = windows.supports[:, 1::2] - windows.supports[:, ::2]
    shape = (int(extent[:, 0].max()), int(extent[:, 1].max()))
    if min(shape) < layer.kernel_size:
        raise ValueError(f"patches of {shape[0]} x {shape[1]} feature pixels are "
                         f"smaller than the {layer.kernel_size} px kernel")
    if layer.pad_to_fast_size:
        shape = (fast_length(shape[0]), fast_length(shape[1]))
    n_patches, n_maps = len(windows.supports), x_sharp.shape[1]
    dtype = np.result_type(x_sharp, taper)
    a = np.zeros((n_patches, n_maps) + shape, dtype=dtype)
    b = np.zeros_like(a)
    for r, (r0, r1, c0, c1) in enumerate(windows.supports):
        weight = taper[r0:r1, c0:c1] * _feature_window(windows, r)             # (U2)
        np.multiply(x_sharp[0, :, r0:r1, c0:c1], weight, out=a[r, :, :r1 - r0, :c1 - c0])
        np.multiply(y_blurry[0, :, r0:r1, c0:c1], weight, out=b[r, :, :r1 - r0, :c1 - c0])
    if layer.beta_mode == "relative":
        power = np.einsum("rchw,rchw->r", a, a)[:, None, None]
        beta = np.maximum(layer.beta * power, np.finfo(a.dtype).eps)           # (K16)
    else:
        beta = layer.beta
    full, _ = quotient_forward(a, b, beta)                                     # (U3)
    positive = np.maximum(grid_to_kernel(full, (layer.kernel_size,) * 2), 0)   # (K5), (K6)
    if not layer.normalize:
        return positive
    return positive / (positive.sum(axis=(-2, -1), keepdims=True) + layer.eps)  # (U4)


def _patch_image_quotient(layer, kernels, blurry, params, windows, margin):
    """(U5): the image quotient of every widened patch, blended by the windows."""
    grid = windows.image
    height, width = grid.shape
    latent = np.zeros((height, width), dtype=blurry.dtype)
    for r in range(grid.n_patches):
        r0, r1, c0, c1 = grid.supports[r]
        top, bottom = max(r0 - margin, 0), min(r1 + margin, height)
        left, right = max(c0 - margin, 0), min(c1 + margin, width)
        solution, _ = layer.forward(kernels[r:r + 1], blurry[None, top:bottom, left:right],
                                    params)
        latent[r0:r1, c0:c1] += (solution[0, r0 - top:r1 - top, c0 - left:c1 - left]
                                 * grid.window(r).astype(blurry.dtype))
    return latent


def _cg_image_quotient(layer, kernels, blurry, params, windows, iterations):
    """(U6): ``(A^T A + beta_x I) x = A^T y`` by conjugate gradients.

    ``y`` is extended by replicating its border (``pad`` of the image
    quotient per side) and ``A`` is the EFF blur on that larger domain, as
    the uniform layer extends ``y`` (I1); the solution is cropped back.
    """
    beta = float(np.exp(params["log_beta"]))
    pad = layer.pad
    height, width = blurry.shape
    base = windows.image
    cols = base.grid[1]
    # the same windows, with room for the kernels around every patch (F4)
    grid = PatchGrid(base.shape, base.grid, kernels.shape[-1], base.row_windows,
                     base.col_windows, base.centres[::cols, 0], base.centres[:cols, 1])
    padded = np.pad(blurry.astype(np.float64), pad, mode="edge")
    big = grid.embedded((pad, pad), padded.shape)
    operator = EffOperator(big, kernels.astype(np.float64))
    rhs = operator.adjoint(padded)
    x = padded.copy()
    residual = rhs - operator.adjoint(operator.forward(x)) - beta * x
    direction = residual.copy()
    rr = float(np.vdot(residual, residual))
    for _ in range(int(iterations)):
        product = operator.adjoint(operator.forward(direction)) + beta * direction
        step = rr / float(np.vdot(direction, product))
        x += step * direction
        residual -= step * product
        rr, rr_old = float(np.vdot(residual, residual)), rr
        direction = residual + (rr / rr_old) * direction
    return x[pad:pad + height, pad:pad + width].astype(blurry.dtype)


def local_image_quotient(layer, kernels, blurry, params, windows, *, method="patch"):
    """The latent image of a stage under the EFF model (U5) or (U6).

    Parameters
    ----------
    layer : refdeblur.layers.image_quotient.ImageQuotient
        The stage's image quotient (its learned ``beta_x`` is in ``params``).
    kernels : ndarray of shape (R, m, m)
        The stage's local kernels.
    blurry : ndarray of shape (H, W)
        The scale's blurry image.
    params : dict
        ``{"log_beta": ...}`` of the layer.
    windows : ScaleWindows
    method : {'patch', 'cg'}, optional
        ``'patch'`` (default): every patch's support, widened by the
        layer's padding (the kernel size) and clipped to the image, is
        deconvolved by the uniform image quotient with its own kernel; the
        solutions on the supports are weighted by the windows and added
        (U5). ``'cg'``: :data:`CG_ITERATIONS` conjugate-gradient iterations
        on the EFF normal equations (U6).

    Returns
    -------
    ndarray of shape (H, W)
    """
    if method == "patch":
        return _patch_image_quotient(layer, kernels, blurry, params, windows, layer.pad)
    if method == "cg":
        return _cg_image_quotient(layer, kernels, blurry, params, windows, CG_ITERATIONS)
    raise ValueError(f"method must be one of {IMAGE_STEPS}, got {method!r}")


def _stage_runner(grid, image_step):
    """A stage runner for :meth:`refdeblur.network.Network.run_scales`."""
    def run(stages, blurry, latent, params):
        if blurry.shape[0] != 1:
            raise ValueError("the non-uniform estimate takes one image at a time")
        kernels = []
        windows = None
        for stage in stages:
            features = stage_features(stage, stage_input(blurry, latent), params)
            if windows is None:   # the same feature shape for every stage of a scale
                windows = scale_windows(blurry.shape[-2:], features.shape[-2:], grid)
            local = local_kernel_quotient(stage.kernel_quotient,                  # (U2)-(U4)
                                          features[:, :stage.n_pairs],
                                          features[:, stage.n_pairs:], windows)
            image = local_image_quotient(stage.image_quotient, local, blurry[0],  # (U5)
                                         stage.params_of(params, "image_quotient"),
                                         windows, method=image_step)
            latent = image[None]
            kernels.append(local[None])
        return kernels, latent, []
    return run


@one_blas_thread()
def predict_nonuniform(network, image, grid, *, n_scales=None, image_step="patch"):
    """Local kernels of a blurry image from a network trained on uniform blur (U7).

    Parameters
    ----------
    network : refdeblur.network.Network
        Unchanged weights; every stage's kernel quotient is replaced by
        :func:`local_kernel_quotient` and its image quotient by
        :func:`local_image_quotient`.
    image : ndarray of shape (H, W)
        Grey values in [0, 1] (cast to the network's dtype).
    grid : tuple of int
        ``(rows, cols)`` of patches, the same at every scale.
    n_scales : int, optional
        Run only the coarsest ``n_scales`` scales (as
        :meth:`refdeblur.network.Network.forward`).
    image_step : {'patch', 'cg'}, optional
        See :func:`local_image_quotient`.

    Returns
    -------
    refdeblur.network.NetworkOutput
        ``kernel`` of shape ``(R, m, m)``, the local kernels of the last
        stage run, patches row-major; ``stage_kernels[j][s]`` those of every
        stage; ``latent`` the last latent image.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur import build_network
    >>> from refdeblur.nonuniform.estimation import predict_nonuniform
    >>> net = build_network(17, rng=np.random.default_rng(0), n_filters=4,
    ...                     n_hidden=4, filter_sizes=(5,))
    >>> image = np.random.default_rng(1).random((96, 96))
    >>> predict_nonuniform(net, image, (2, 2)).kernel.shape
    (4, 17, 17)
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) image, got shape {image.shape}")
    if image_step not in IMAGE_STEPS:
        raise ValueError(f"image_step must be one of {IMAGE_STEPS}, got {image_step!r}")
    grid = tuple(int(g) for g in grid)
    output, _ = network.run_scales(image.astype(network.dtype, copy=False),
                                   _stage_runner(grid, image_step), n_scales=n_scales)
    return output
