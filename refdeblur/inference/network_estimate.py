"""What the network contributes to deblurring: its kernels and its image quotient.

Steps 4 to 6 of derivations/inference.md run the network on the window
(:func:`refdeblur.network_fast.predict`, the float32 path of
:meth:`refdeblur.network.Network.forward`: pyramid, then per scale the
stages of features, kernel quotient and image quotient). This module picks
the network, turns its output into usable kernels, and offers its last
stage's image quotient as a non-blind deconvolution.
"""

import numpy as np

from ..kernels import center_kernel, sharpen_kernel
from ..layers.image_quotient import ImageQuotient
from ..models import load_shipped_model

__all__ = ["SHARPENING_SIGMA", "resolve_model", "network_kernels", "network_deconvolve"]

#: Paper §6: the 33 px network's kernels are deconvolved with a Gaussian of
#: sigma 0.5 px "to counter the oversmoothing effect of the L2 norm".
SHARPENING_SIGMA = {33: 0.5}


def resolve_model(kernel_size, model=None):
    """The network that estimates ``kernel_size`` px kernels.

    Parameters
    ----------
    kernel_size : int
        Side of the kernel window.
    model : Network, optional
        A network to use instead of the shipped one.

    Returns
    -------
    Network
        ``model``, or the shipped network of that size (float32, cached).

    Raises
    ------
    ValueError
        If ``model`` estimates kernels of another size, or no network is
        shipped for ``kernel_size``.
    """
    if model is None:
        return load_shipped_model(kernel_size)
    if model.kernel_size != kernel_size:
        raise ValueError(f"the model estimates {model.kernel_size} px kernels, "
                         f"but kernel_size={kernel_size} was asked for")
    return model


def network_kernels(output):
    """The last stage's kernel of every scale of a network's output (step 6).

    Each normalised to sum 1, sharpened where the paper does it (the 33 px
    scale, :data:`SHARPENING_SIGMA`) and centred
    (:func:`refdeblur.kernels.center_kernel`).

    Parameters
    ----------
    output : NetworkOutput
        What :func:`refdeblur.network_fast.predict` (or
        :meth:`refdeblur.network.Network.forward`) returned for one
        (H, W) image.

    Returns
    -------
    list of ndarray or None
        float64 kernels, coarse to fine; ``None`` if any is not finite or
        has no mass.
    """
    kernels = []
    for stages in output.stage_kernels:
        kernel = np.asarray(stages[-1], dtype=np.float64)
        if kernel.ndim != 2 or not (np.all(np.isfinite(kernel)) and kernel.sum() > 0):
            return None
        size = kernel.shape[0]
        kernel = sharpen_kernel(kernel / kernel.sum(), SHARPENING_SIGMA.get(size, 0.0))
        kernels.append(center_kernel(kernel))
    return kernels


def network_deconvolve(planes, kernel, net):
    """Deconvolve every plane with the network's own image quotient (Eq. 5).

    Uses the learned ``beta_x`` of the last stage that inference runs, at
    the finest scale.

    Parameters
    ----------
    planes : ndarray of shape (C, H, W)
        Blurry colour planes in [0, 1].
    kernel : ndarray of shape (m, m)
        The blur kernel.
    net : Network
        Supplies ``log_beta`` of its last stage's image quotient.

    Returns
    -------
    ndarray of shape (C, H, W), float32
    """
    last_scale = len(net.architecture.kernel_sizes)
    last_stage = net.architecture.inference_stages or net.architecture.n_stages
    log_beta = net.params[f"scale{last_scale}.stage{last_stage}"
                          f".image_quotient.log_beta"]
    layer = ImageQuotient(kernel.shape[0])
    params = {"log_beta": np.asarray(log_beta, dtype=np.float32)}
    out = np.empty(planes.shape, dtype=np.float32)
    for c, plane in enumerate(planes):
        latent, _ = layer.forward(kernel[None].astype(np.float32),
                                  plane[None].astype(np.float32), params)
        out[c] = latent[0]
    return out
