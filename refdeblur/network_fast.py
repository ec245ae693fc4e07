"""The inference path: the network's forward pass, lean and fast.

:meth:`refdeblur.network.Network.forward` runs every layer's ``forward``,
each keeping what its ``backward`` would need. Inference needs no backward
pass, so here

* every intermediate stack of images is overwritten or released as soon as
  the next one exists (tanh runs in place), so a stage needs about two
  stacks of ``n_filters`` images instead of five;
* the stages of a scale share the padded, tapered transform of the blurry
  image (:meth:`refdeblur.layers.image_quotient.ImageQuotient.prepare_blurry`);
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

from ._engine import HAVE_NUMBA, features, warn_without_numba
from ._engine.threads import matmul_columns, one_blas_thread, tanh_inplace
from .network import previous_kernel, stage_input

__all__ = ["predict", "predict_stages", "predict_stage", "stage_features"]


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
    kernel, _ = stage.kernel_quotient.forward(
        feature_maps[:, :stage.n_pairs], feature_maps[:, stage.n_pairs:],
        prior=prior)                                                 # (N3)-(N4), (N16)
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
