"""The inference path: the network's forward pass, lean and fast.

:meth:`refdeblur.network.Network.forward` runs every layer's ``forward``,
each keeping what its ``backward`` would need. Inference needs no backward
pass, so here

* every intermediate stack of images is overwritten or released as soon as
  the next one exists (tanh runs in place), so a stage needs about two
  stacks of ``n_filters`` images instead of five;
* the stages of a scale share the padded, tapered transform of the blurry
  image (:meth:`refdeblur.layers.image_quotient.ImageQuotient.prepare_blurry`);
* the kernel quotient (N3)-(N4) keeps no spectra once it has its kernel,
  releases each tapered stack of feature maps once it is transformed, and
  inverts the quotient only on the rows of the ``m x m`` kernel it crops
  (:func:`kernel_estimate`): the same numbers as
  :meth:`refdeblur.layers.kernel_quotient.KernelQuotient.forward`, with a
  fraction of the last inverse pass and fewer image-sized arrays alive at
  once;
* in float32 with compiled Numba kernels, convolution, tanh, recombination,
  tanh and recombination run fused, a row or (on larger images, by FFT) a
  tile at a time, so not even the convolution output is stored
  (:mod:`refdeblur._engine.features`; its tanh is a rational approximation
  within 4.1e-7 of the true one).

In float64 the numbers are those of
:meth:`~refdeblur.network.Network.forward`, bit for bit; in float32 they
agree to float32 rounding (tests/test_network.py and
tests/test_features_numba.py check both).
"""

import numpy as np

from ._engine import HAVE_NUMBA, features, spectral, warn_without_numba
from ._engine.fft import fast_length, irfft2_rows, rfft2
from ._engine.threads import matmul_columns, one_blas_thread, tanh_inplace
from .layers.edge_taper import taper_window
from .layers.kernel_quotient import tapered_on_grid
from .network import previous_kernel, stage_input

__all__ = ["predict", "predict_stages", "predict_stage", "stage_features", "kernel_estimate"]

#: From this many frequencies per feature map the kernel quotient's
#: per-frequency solve runs in the Numba kernel, as
#: :func:`refdeblur.layers._quotient.quotient_forward` decides.
SPECTRAL_KERNEL_MIN_SIZE = 1 << 16


@one_blas_thread()
def predict(network, image, *, n_stages=None, n_scales=None):
    """Estimate the blur kernel of a blurry image: the inference path.

    Parameters
    ----------
    network : refdeblur.network.Network
    image : ndarray of shape (H, W) or (N, H, W)
        Grey values in [0, 1], float32 or float64 (cast to the network's
        dtype).
    n_stages, n_scales : int, optional
        As for :meth:`refdeblur.network.Network.forward`.

    Returns
    -------
    refdeblur.network.NetworkOutput

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur import build_network
    >>> from refdeblur.network_fast import predict
    >>> net = build_network(17, rng=np.random.default_rng(0), n_filters=4,
    ...                     n_hidden=4, filter_sizes=(5,))
    >>> image = np.random.default_rng(1).random((48, 48))
    >>> out = predict(net, image)
    >>> bool(np.array_equal(out.kernel, net.forward(image).kernel))
    True
    """
    output, _ = network.run_scales(image, predict_stages, n_stages=n_stages,
                                   n_scales=n_scales)
    return output


def predict_stages(stages, blurry, latent, params):
    """Run a scale's stages with :func:`predict_stage`.

    A stage runner for :meth:`refdeblur.network.Network.run_scales`: the
    stages share the transform of ``blurry``, and no cache is kept.
    """
    prepared = stages[0].image_quotient.prepare_blurry(blurry)
    kernels = []
    for stage in stages:
        kernel, latent = predict_stage(stage, stage_input(blurry, latent), blurry,
                                       params, prepared_blurry=prepared,
                                       prior=previous_kernel(stage, kernels))
        kernels.append(kernel)
    return kernels, latent, []


def predict_stage(stage, stage_input, blurry, params, *, prepared_blurry=None,
                  prior=None):
    """:meth:`refdeblur.network.Stage.forward` for inference, without a cache.

    Parameters
    ----------
    stage : refdeblur.network.Stage
    stage_input : ndarray of shape (N, C_in, H, W)
    blurry : ndarray of shape (N, H, W)
    params : dict
        The network's parameters.
    prepared_blurry : PreparedBlurry, optional
        :meth:`~refdeblur.layers.image_quotient.ImageQuotient.prepare_blurry`
        of ``blurry``, shared by the stages of a scale.
    prior : ndarray of shape (N, m, m), optional
        The previous stage's kernel, with ``kernel_prior`` (N16).

    Returns
    -------
    kernel : ndarray of shape (N, m, m)
    latent : ndarray of shape (N, H, W)
    """
    feature_maps = stage_features(stage, stage_input, params)       # (N1)-(N2)
    kernel = kernel_estimate(stage.kernel_quotient, feature_maps[:, :stage.n_pairs],
                             feature_maps[:, stage.n_pairs:], prior=prior)  # (N3)-(N4), (N16)
    del feature_maps
    latent, _ = stage.image_quotient.forward(
        kernel, blurry, stage.params_of(params, "image_quotient"),
        prepared=prepared_blurry)                                    # (N5)
    return kernel, latent


def stage_features(stage, stage_input, params):
    """The stage's feature maps: conv, tanh, recombine, tanh, recombine.

    Fused into :func:`refdeblur._engine.features.stage_features` for
    float32 input where the Numba kernels are compiled; else the layers,
    with tanh in place and the 1 x 1 products split over the cores.

    Returns
    -------
    ndarray of shape (N, 2 n_pairs, H - f + 1, W - f + 1)
    """
    conv = stage.params_of(params, "conv")
    first = stage.params_of(params, "recombine1")
    second = stage.params_of(params, "recombine2")
    if stage_input.dtype == np.float32:
        if HAVE_NUMBA:
            return features.stage_features(
                stage_input, conv["weight"], first["weight"], second["weight"],
                conv.get("bias"), first.get("bias"), second.get("bias"))
        warn_without_numba()
    z, _ = stage.conv.forward(stage_input, conv)
    tanh_inplace(z)
    z = _recombine(z, first)
    tanh_inplace(z)
    return _recombine(z, second)


def _recombine(z, layer_params):
    """:meth:`refdeblur.layers.recombine.Recombine.forward` (R1), no cache."""
    n_batch, channels, height, width = z.shape
    out = matmul_columns(layer_params["weight"].astype(z.dtype, copy=False),
                         z.reshape(n_batch, channels, height * width))
    if "bias" in layer_params:
        out += layer_params["bias"].astype(z.dtype, copy=False)[:, None]
    return out.reshape(n_batch, -1, height, width)


def kernel_estimate(layer, x_sharp, y_blurry, *, prior=None):
    """The kernel of :meth:`refdeblur.layers.kernel_quotient.KernelQuotient.forward`.

    The same operations on the same numbers, for inference: no cache is
    kept, each tapered stack of feature maps is released once it is
    transformed, and of the quotient's inverse transform only the rows of
    the cropped ``m x m`` kernel (K5) go through the last pass
    (:func:`refdeblur._engine.fft.irfft2_rows`). With a ``prior`` (K18) or
    the relative ``beta`` (K16) the layer's own forward runs.

    Parameters
    ----------
    layer : refdeblur.layers.kernel_quotient.KernelQuotient
    x_sharp, y_blurry : ndarray of shape (N, n, H, W)
    prior : ndarray of shape (N, m, m), optional
        As for the layer's forward.

    Returns
    -------
    ndarray of shape (N, m, m)

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.layers.kernel_quotient import KernelQuotient
    >>> layer = KernelQuotient(9)
    >>> rng = np.random.default_rng(0)
    >>> for side in (40, 400):     # the NumPy and the Numba per-frequency solve
    ...     sharp, blurry = rng.random((2, 1, 2, side, side), dtype=np.float32)
    ...     print(np.array_equal(kernel_estimate(layer, sharp, blurry),
    ...                          layer.forward(sharp, blurry)[0]))
    True
    True
    """
    if prior is not None or layer.beta_mode != "constant":
        return layer.forward(x_sharp, y_blurry, prior=prior)[0]
    if x_sharp.shape != y_blurry.shape or x_sharp.ndim != 4:
        raise ValueError(f"feature maps must both be (N, n, H, W), got "
                         f"{x_sharp.shape} and {y_blurry.shape}")
    height, width = x_sharp.shape[-2:]
    size = layer.kernel_size
    if min(height, width) < size:
        raise ValueError(f"{height}x{width} feature maps are smaller than "
                         f"the {size} px kernel")
    window = taper_window((height, width), layer.taper_width, x_sharp.dtype)
    grid = ((fast_length(height), fast_length(width)) if layer.pad_to_fast_size
            else (height, width))
    spectrum_a = rfft2(tapered_on_grid(x_sharp, window, grid))           # (K1)-(K3)
    spectrum_b = rfft2(tapered_on_grid(y_blurry, window, grid))
    if spectrum_a[:, 0].size >= SPECTRAL_KERNEL_MIN_SIZE and HAVE_NUMBA:
        quotient, _ = spectral.combine_spectra(spectrum_a, spectrum_b, layer.beta)
    else:
        if spectrum_a[:, 0].size >= SPECTRAL_KERNEL_MIN_SIZE:
            warn_without_numba()
        power = spectrum_a.real ** 2 + spectrum_a.imag ** 2
        denominator = power.sum(axis=1) + layer.beta                   # (Q2)
        numerator = (np.conj(spectrum_a) * spectrum_b).sum(axis=1)
        quotient = numerator / denominator                             # (Q3)
    del spectrum_a, spectrum_b
    # (K5): the kernel centre at the grid's origin, the rest wrapped around
    rows = (np.arange(size) - size // 2) % grid[0]
    cols = (np.arange(size) - size // 2) % grid[1]
    kernel_rows = irfft2_rows(quotient, grid, rows)
    # indexed as grid_to_kernel indexes the whole grid: the same memory
    # layout, hence the same order of the sum (K7)
    cropped = kernel_rows[..., np.arange(size)[:, None], cols[None, :]].astype(
        x_sharp.dtype, copy=False)
    positive = np.maximum(cropped, 0)                                  # (K6)
    if not layer.normalize:
        return positive
    return positive / (positive.sum(axis=(-2, -1), keepdims=True) + layer.eps)  # (K7)

