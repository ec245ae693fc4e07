"""The blind-deblurring network: stages, scale networks and scales.

Paper §3 and §6 (Fig. 1). The chain rule through a stage and across scales
is derived in derivations/network.md, equations (N1)-(N12).

A *stage* turns its input (the blurry image, or the blurry image stacked with
the current latent image) into ``n`` sharp-like and ``n`` blurry-like
feature maps, estimates the kernel from them with the kernel quotient (Eq. 4)
and the latent image with the image quotient (Eq. 5). A *scale* stacks three
stages. A network for a large kernel runs coarser scales first on a
downsampled image and hands their latent image, upsampled, to the next scale.

This module is the reference: every stage runs its layers' ``forward`` and
``backward``. The inference path, which computes the same kernels with less
memory and, in float32, a fused Numba kernel, is :mod:`refdeblur.network_fast`.
"""

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from ._engine.threads import one_blas_thread
from .layers.conv2d import Conv2D
from .layers.image_quotient import ImageQuotient
from .layers.kernel_quotient import BETA_MODES, KernelQuotient
from .layers.recombine import Recombine
from .layers.resample import Resample
from .layers.tanh import Tanh

#: Kernel sizes handled by each scale, coarse to fine (paper §6; derivations/network.md, (O4)).
DEFAULT_SCALES = {17: (17,), 25: (17, 25), 33: (17, 25, 33)}


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Every architectural choice of a network; stored in the model file.

    Defaults are the paper's §6 numbers where it gives them; where it gives
    none, the field's comment names the derivation that argues the choice.
    """

    #: Kernel side handled by each scale, coarse to fine; the last one is the
    #: size of the estimated kernel. Scale j runs at the factor m_j / m_last.
    kernel_sizes: tuple = (17,)
    #: Stages per scale (paper: 3).
    n_stages: int = 3
    #: Feature pairs (x̃_i, ỹ_i) per stage (paper §6: 2, 2, 4).
    n_pairs: tuple = (2, 2, 4)
    #: Convolution filters per stage (paper §6: 32).
    n_filters: int = 32
    #: Hidden images after the first recombination (paper §6: 32).
    n_hidden: int = 32
    #: Side of the convolution filters per scale; None means the kernel size
    #: of that scale: the stage's only spatial operator must see the whole
    #: blur (derivations/conv2d.md §1).
    filter_sizes: tuple = None
    #: Bias in the convolution layer.
    conv_bias: bool = True
    #: Bias in the recombination layers (Eq. 2 has none).
    recombine_bias: bool = False
    #: Barthann ramp of the kernel quotient per scale; None means m_j
    #: (derivations/edge_taper.md, "Choice of shape").
    taper_widths: tuple = None
    #: beta_k of Eq. 4 (paper: 1e-4, fixed), or with ``beta_k_mode =
    #: "relative"`` its factor on the features' power.
    beta_k: float = 1e-4
    #: "constant": Eq. 4's beta_k is ``beta_k``. "relative": it is ``beta_k``
    #: times the mean over frequencies of sum_i |F x̃_i|^2 of each example,
    #: so that the features cannot drown it
    #: (derivations/kernel_quotient.md, "Scale of β_k", (K15)-(K17)).
    beta_k_mode: str = "constant"
    #: Starting value of the learned beta_x of Eq. 5
    #: (derivations/image_quotient.md, "Parametrisation of β_x").
    initial_beta_x: float = 1e-2
    #: Normalise the thresholded kernel to sum 1 inside the network
    #: (derivations/kernel_quotient.md, "Normalisation").
    normalize_kernel: bool = True
    #: Resampling kernel between scales (MATLAB imresize names).
    resample_kernel: str = "cubic"
    #: Initialise the blurry-like outputs of the last recombination as the
    #: sharp-like ones plus this much relative noise, so that a fresh stage
    #: estimates a kernel close to a delta (positive, with gradients flowing
    #: through the threshold) instead of a random-signed one. None: plain
    #: Glorot initialisation of every row.
    paired_init_noise: float = 0.3
    #: Initialise every convolution filter with zero sum over each input
    #: channel, so that a fresh stage's features respond to edges rather
    #: than to the brightness of the image (derivations/training.md).
    zero_mean_filters: bool = False
    #: Regularise the kernel quotient of every stage after the first of a
    #: scale towards the previous stage's kernel, beta_k ||k - k_prev||^2,
    #: so that a later stage keeps its start where its features carry
    #: little evidence (derivations/kernel_quotient.md §1b; network.md §2).
    #: False: the paper's beta_k ||k||^2.
    kernel_prior: bool = False
    #: Stages of the finest scale that :meth:`Network.forward` runs when not
    #: told otherwise; None: all. Set by ``refdeblur export-model --stages``
    #: for a multi-scale network whose last stages are not trained yet.
    inference_stages: int = None

    def __post_init__(self):
        sizes = tuple(int(m) for m in self.kernel_sizes)
        if not sizes or any(m < 1 or m % 2 == 0 for m in sizes):
            raise ValueError(f"kernel sizes must be odd and positive, got "
                             f"{self.kernel_sizes}")
        object.__setattr__(self, "kernel_sizes", sizes)
        pairs = tuple(int(n) for n in self.n_pairs)
        if len(pairs) != self.n_stages:
            raise ValueError(f"n_pairs needs one entry per stage "
                             f"({self.n_stages}), got {self.n_pairs}")
        object.__setattr__(self, "n_pairs", pairs)
        if self.beta_k_mode not in BETA_MODES:
            raise ValueError(f"beta_k_mode must be one of {BETA_MODES}, "
                             f"got {self.beta_k_mode!r}")
        if self.inference_stages is not None and not (
                1 <= int(self.inference_stages) <= self.n_stages):
            raise ValueError(f"inference_stages must be in 1..{self.n_stages}, "
                             f"got {self.inference_stages}")
        for name in ("filter_sizes", "taper_widths"):
            value = getattr(self, name)
            if value is None:
                value = sizes
            value = tuple(int(v) for v in value)
            if len(value) != len(sizes):
                raise ValueError(f"{name} needs one entry per scale "
                                 f"({len(sizes)}), got {value}")
            object.__setattr__(self, name, value)

    @property
    def kernel_size(self):
        """Side of the estimated kernel (that of the finest scale)."""
        return self.kernel_sizes[-1]

    def to_dict(self):
        """JSON-compatible dict (tuples become lists).

        ``kernel_prior`` appears only when True, so that the model files and
        training configurations of networks without it read as before.
        """
        values = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in dataclasses.asdict(self).items()}
        if not values["kernel_prior"]:
            del values["kernel_prior"]
        return values

    @classmethod
    def from_dict(cls, values):
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown architecture fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in values.items()})


class StageCache(NamedTuple):
    conv: object
    tanh1: object
    recombine1: object
    tanh2: object
    recombine2: object
    kernel_quotient: object
    image_quotient: object
    #: 1 where the stage's own kernel reached its image quotient, 0 where a
    #: forced kernel replaced it (N13); None when nothing was forced.
    kernel_kept: object = None


class Stage:
    """One iteration of the unrolled estimation loop (paper Fig. 1).

    conv -> tanh -> recombine -> tanh -> recombine -> split into
    (x̃_i, ỹ_i) -> kernel quotient -> image quotient.

    Parameters
    ----------
    prefix : str
        Prefix of this stage's names in the network's ``params``.
    in_channels : int
        1 (blurry image) or 2 (blurry image and latent image).
    kernel_size, filter_size, n_pairs, taper_width : int
    architecture : Architecture
    """

    def __init__(self, prefix, in_channels, kernel_size, filter_size,
                 n_pairs, taper_width, architecture):
        self.prefix = prefix
        self.in_channels = in_channels
        self.n_pairs = n_pairs
        arch = architecture
        self.paired_init_noise = arch.paired_init_noise
        self.zero_mean_filters = arch.zero_mean_filters
        self.kernel_prior = arch.kernel_prior
        self.conv = Conv2D(in_channels, arch.n_filters, filter_size,
                           bias=arch.conv_bias)
        self.tanh1 = Tanh()
        self.recombine1 = Recombine(arch.n_filters, arch.n_hidden,
                                    bias=arch.recombine_bias)
        self.tanh2 = Tanh()
        self.recombine2 = Recombine(arch.n_hidden, 2 * n_pairs,
                                    bias=arch.recombine_bias)
        self.kernel_quotient = KernelQuotient(
            kernel_size, taper_width=taper_width, beta=arch.beta_k,
            beta_mode=arch.beta_k_mode,
            normalize=arch.normalize_kernel)
        self.image_quotient = ImageQuotient(
            kernel_size, initial_beta=arch.initial_beta_x)

    def layers_with_params(self):
        """``(name, layer)`` of the layers that own parameters."""
        return [("conv", self.conv), ("recombine1", self.recombine1),
                ("recombine2", self.recombine2),
                ("image_quotient", self.image_quotient)]

    def init_params(self, rng, dtype=np.float64):
        """Fresh parameters of this stage, keyed by full network name."""
        params = {}
        for layer_name, layer in self.layers_with_params():
            for key, value in layer.init_params(rng, dtype).items():
                params[f"{self.prefix}{layer_name}.{key}"] = value
        if self.zero_mean_filters:
            weight = params[f"{self.prefix}conv.weight"]
            weight -= weight.mean(axis=(-2, -1), keepdims=True)
        if self.paired_init_noise is not None:
            # ỹ_i ≈ x̃_i makes the quotient of Eq. 4 close to a delta kernel.
            weight = params[f"{self.prefix}recombine2.weight"]
            sharp_rows = weight[:self.n_pairs]
            noise = rng.standard_normal(sharp_rows.shape) * sharp_rows.std()
            weight[self.n_pairs:] = (sharp_rows
                                     + self.paired_init_noise * noise)
        return params

    def params_of(self, params, layer_name):
        """The parameters of one layer of this stage, keyed by short name.

        Parameters
        ----------
        params : dict
            The network's parameters, keyed by full name.
        layer_name : str
            ``"conv"``, ``"recombine1"``, ``"recombine2"`` or
            ``"image_quotient"``.

        Returns
        -------
        dict
            E.g. ``{"weight": ..., "bias": ...}`` for ``"conv"``.
        """
        start = f"{self.prefix}{layer_name}."
        return {name[len(start):]: value for name, value in params.items()
                if name.startswith(start)}

    def forward(self, stage_input, blurry, params, forced=None, prior=None):
        """Run the stage (N1)-(N5).

        Parameters
        ----------
        stage_input : ndarray of shape (N, C_in, H, W)
        blurry : ndarray of shape (N, H, W)
            The blurry image of this scale, deconvolved by the image quotient.
        params : dict
            The network's parameters.
        forced : tuple (kernels, mask), optional
            Teacher forcing (N13): where ``mask`` (shape (N,), bool) is
            True, ``kernels`` (shape (N, m, m)) replaces the stage's own
            kernel as its output and as the kernel its image quotient
            deconvolves with.
        prior : ndarray of shape (N, m, m), optional
            The previous stage's kernel, which the kernel quotient
            regularises towards (N16); None: towards zero (N4).

        Returns
        -------
        kernel : ndarray of shape (N, m, m)
        latent : ndarray of shape (N, H, W)
        cache : StageCache
        """
        z, conv_cache = self.conv.forward(
            stage_input, self.params_of(params, "conv"))             # (N1)
        z, tanh1_cache = self.tanh1.forward(z)
        z, rec1_cache = self.recombine1.forward(
            z, self.params_of(params, "recombine1"))
        z, tanh2_cache = self.tanh2.forward(z)
        features, rec2_cache = self.recombine2.forward(
            z, self.params_of(params, "recombine2"))                 # (N2)
        x_sharp = features[:, :self.n_pairs]                         # (N3)
        y_blurry = features[:, self.n_pairs:]
        kernel, kq_cache = self.kernel_quotient.forward(x_sharp, y_blurry,
                                                        prior=prior)  # (N4), (N16)
        kernel_kept = None
        if forced is not None:
            forced_kernels, mask = forced
            mask = np.asarray(mask, dtype=bool)
            kernel_kept = (~mask).astype(kernel.dtype)
            kernel = np.where(mask[:, None, None],
                              np.asarray(forced_kernels, dtype=kernel.dtype),
                              kernel)                                # (N13)
        latent, iq_cache = self.image_quotient.forward(
            kernel, blurry, self.params_of(params, "image_quotient"))   # (N5)
        cache = StageCache(conv_cache, tanh1_cache, rec1_cache, tanh2_cache,
                           rec2_cache, kq_cache, iq_cache, kernel_kept)
        return kernel, latent, cache

    def backward(self, dkernel, dlatent, cache, *, input_grad=True,
                 prior_grad=False):
        """Back-propagate through the stage (N6)-(N9).

        Parameters
        ----------
        dkernel : ndarray of shape (N, m, m) or None
            Gradient reaching the kernel from outside the stage (the loss).
        dlatent : ndarray of shape (N, H, W) or None
            Gradient reaching the latent image (from the next stage or scale).
        cache : StageCache
        input_grad : bool, optional
            Compute the gradient with respect to ``stage_input``.
        prior_grad : bool, optional
            Also return the gradient with respect to the forward pass's
            ``prior`` (N17), None where it had none.

        Returns
        -------
        dinput : ndarray of shape (N, C_in, H, W) or None
        dblurry : ndarray of shape (N, H, W) or None
            The image quotient's direct gradient with respect to ``blurry``.
        grads : dict
            Keyed by full parameter name.
        dprior : ndarray of shape (N, m, m) or None
            Only with ``prior_grad``.
        """
        grads = {}
        dblurry = None
        total_dkernel = dkernel
        if dlatent is not None:
            (dkernel_iq, dblurry), iq_grads = self.image_quotient.backward(
                dlatent, cache.image_quotient)                       # (N6)
            self._store(grads, "image_quotient", iq_grads)
            total_dkernel = (dkernel_iq if total_dkernel is None
                             else total_dkernel + dkernel_iq)
        if total_dkernel is None:
            raise ValueError("stage backward needs a kernel or latent gradient")
        if cache.kernel_kept is not None:
            total_dkernel = total_dkernel * cache.kernel_kept[:, None, None]  # (N14)
        (dx_sharp, dy_blurry, *dprior), _ = self.kernel_quotient.backward(
            total_dkernel, cache.kernel_quotient)                    # (N7), (N17)
        dfeatures = np.concatenate([dx_sharp, dy_blurry], axis=1)    # (N8)
        dz, rec2_grads = self.recombine2.backward(dfeatures, cache.recombine2)
        dz, _ = self.tanh2.backward(dz, cache.tanh2)
        dz, rec1_grads = self.recombine1.backward(dz, cache.recombine1)
        dz, _ = self.tanh1.backward(dz, cache.tanh1)
        dinput, conv_grads = self.conv.backward(dz, cache.conv,
                                                input_grad=input_grad)  # (N9)
        self._store(grads, "recombine2", rec2_grads)
        self._store(grads, "recombine1", rec1_grads)
        self._store(grads, "conv", conv_grads)
        if prior_grad:
            return dinput, dblurry, grads, (dprior[0] if dprior else None)
        return dinput, dblurry, grads

    def _store(self, grads, layer_name, layer_grads):
        for key, value in layer_grads.items():
            grads[f"{self.prefix}{layer_name}.{key}"] = value


def stage_input(blurry, latent):
    """The input of a stage (N12).

    Parameters
    ----------
    blurry : ndarray of shape (N, H, W)
        The blurry image of the scale.
    latent : ndarray of shape (N, H, W) or None
        The latent image of the previous stage or scale; None for the first
        stage of the coarsest scale.

    Returns
    -------
    ndarray of shape (N, 1, H, W) or (N, 2, H, W)
    """
    if latent is None:
        return blurry[:, None]
    return np.stack([blurry, latent], axis=1)                         # (N12)


def previous_kernel(stage, kernels):
    """The prior of ``stage``'s kernel quotient (N16): the last of ``kernels``.

    None for the first stage of a scale or without ``kernel_prior``.
    """
    return kernels[-1] if stage.kernel_prior and kernels else None


def run_stages_with_cache(stages, blurry, latent, params, forced=None):
    """Run a scale's stages with :meth:`Stage.forward`, keeping every cache.

    The stage runner of :meth:`Network.forward_with_cache` (see
    :meth:`Network.run_scales`). ``forced`` maps a stage's index in
    ``stages`` to the ``(kernels, mask)`` that :meth:`Stage.forward` forces
    (N13).
    """
    forced = forced or {}
    kernels, caches = [], []
    for index, stage in enumerate(stages):
        kernel, latent, cache = stage.forward(stage_input(blurry, latent),
                                              blurry, params,
                                              forced=forced.get(index),
                                              prior=previous_kernel(stage, kernels))
        kernels.append(kernel)
        caches.append(cache)
    return kernels, latent, caches


def run_stages(stages, blurry, latent, params):
    """Run a scale's stages with :meth:`Stage.forward`, keeping no cache.

    The stage runner of :meth:`Network.forward` (see
    :meth:`Network.run_scales`): each stage's cache is released as soon as
    the stage is done.
    """
    kernels = []
    for stage in stages:
        kernel, latent, _ = stage.forward(stage_input(blurry, latent), blurry,
                                          params, prior=previous_kernel(stage, kernels))
        kernels.append(kernel)
    return kernels, latent, []


class NetworkOutput(NamedTuple):
    """What :meth:`Network.forward` returns.

    Attributes
    ----------
    kernel : ndarray of shape (m, m) or (N, m, m)
        Final kernel (last stage of the finest scale), convolution
        convention, non-negative, sums to 1.
    stage_kernels : list of list of ndarray
        ``stage_kernels[j][s]``: kernel of stage ``s`` of scale ``j``.
    latent : ndarray of shape (H, W) or (N, H, W)
        Latent image of the last stage (the image quotient's output; an
        intermediate feature, not the final deblurred photo).
    """

    kernel: np.ndarray
    stage_kernels: list
    latent: np.ndarray


class _ScaleCache(NamedTuple):
    down: object          # Resample cache of y -> this scale, or None
    up: object            # Resample cache of previous latent -> this scale
    stages: list          # StageCache per stage run
    in_shape: tuple       # (H, W) of this scale


def pyramid_shapes(image_shape, kernel_sizes):
    """Image size at every scale of a pyramid with these kernel sides.

    Scale ``j`` runs at the factor ``m_j / m_last`` (derivations/network.md
    §3); its size is ``ceil(factor * size)`` as in MATLAB ``imresize``. Used by the
    network and by the coarse-to-fine kernel refinement, which must see the
    same images.
    """
    return [tuple(int(math.ceil(m / kernel_sizes[-1] * side - 1e-9)) for side in image_shape)
            for m in kernel_sizes]


class NetworkCache(NamedTuple):
    scales: list
    resamplers: list      # (down, up) Resample layers per scale
    n_stages: int         # stages run at the finest scale
    image_shape: tuple    # (H, W) of the input


class Network:
    """A multi-scale, multi-stage kernel-estimation network.

    Build it with :func:`build_network` or :func:`refdeblur.load_model`.

    Attributes
    ----------
    architecture : Architecture
    params : dict of str to ndarray
        Every trainable array, keyed ``scale{j}.stage{s}.{layer}.{name}``
        (1-based). These are the very arrays the forward pass reads, so an
        optimiser may update them in place.
    scales : list of list of Stage
    """

    def __init__(self, architecture, params):
        self.architecture = architecture
        self.scales = _build_stages(architecture)
        expected = _init_params(self.scales, np.random.default_rng(0),
                                np.float64)
        missing = set(expected) - set(params)
        extra = set(params) - set(expected)
        if missing or extra:
            raise ValueError(f"parameters do not match the architecture: "
                             f"missing {sorted(missing)}, unexpected "
                             f"{sorted(extra)}")
        for name, value in params.items():
            if np.shape(value) != expected[name].shape:
                raise ValueError(f"parameter {name} has shape "
                                 f"{np.shape(value)}, expected "
                                 f"{expected[name].shape}")
        self.params = dict(params)

    @property
    def kernel_size(self):
        """Side of the estimated kernel."""
        return self.architecture.kernel_size

    @property
    def dtype(self):
        """Floating-point type of the parameters."""
        return next(iter(self.params.values())).dtype

    def astype(self, dtype):
        """A copy of the network with parameters cast to ``dtype``.

        float32 roughly halves inference time; tests bound its deviation
        from float64.
        """
        return Network(self.architecture,
                       {k: v.astype(dtype) for k, v in self.params.items()})

    def truncated(self, n_stages):
        """A network of the first ``n_stages`` stages of every scale.

        Shares no arrays with this one. Used to ship a network whose later
        stages are not trained well enough yet (``refdeblur export-model
        --stages``).
        """
        arch = self.architecture
        if not 1 <= n_stages <= arch.n_stages:
            raise ValueError(f"n_stages must be in 1..{arch.n_stages}")
        shorter = dataclasses.replace(arch, n_stages=n_stages,
                                      n_pairs=arch.n_pairs[:n_stages])
        keep = {name: value.copy() for name, value in self.params.items()
                if int(name.split(".")[1][len("stage"):]) <= n_stages}
        return Network(shorter, keep)

    def scale_shapes(self, image_shape):
        """Image size at every scale, coarse to fine.

        Scale ``j`` runs at the factor ``m_j / m_last`` (derivations/network.md
        §3); its size is ``ceil(factor * size)`` as in MATLAB ``imresize``.
        """
        return pyramid_shapes(image_shape, self.architecture.kernel_sizes)

    def min_image_size(self):
        """Smallest image side every scale can process."""
        arch = self.architecture
        best = 1
        for j, m in enumerate(arch.kernel_sizes):
            # valid convolution output must hold the kernel and its taper
            need_scale = arch.filter_sizes[j] - 1 + max(
                m, 2 * arch.taper_widths[j])
            factor = m / arch.kernel_sizes[-1]
            best = max(best, int(math.ceil(need_scale / factor)))
        return best

    @one_blas_thread()
    def forward(self, image, *, n_stages=None, n_scales=None):
        """Estimate the blur kernel of a blurry image with the reference layers.

        :func:`refdeblur.network_fast.predict` computes the same kernels
        (the same numbers in float64, within float32 rounding in float32)
        with less memory and, in float32, faster: use it for inference.

        Parameters
        ----------
        image : ndarray of shape (H, W) or (N, H, W)
            Grey values in [0, 1], float32 or float64.
        n_stages : int, optional
            Run only the first ``n_stages`` stages of the finest scale (used
            by stage-wise training); coarser scales always run all stages.
            Default: ``architecture.inference_stages``, else all.
        n_scales : int, optional
            Run only the first (coarsest) ``n_scales`` scales; the output's
            ``kernel`` is then the last of those scales' (its size is that
            scale's, its image the resized one). Used by the coarse-to-fine
            kernel refinement, which needs only the coarsest scale's kernel.
            Default: all scales.

        Returns
        -------
        NetworkOutput
        """
        output, _ = self.run_scales(image, run_stages, n_stages=n_stages,
                                    n_scales=n_scales)
        return output

    @one_blas_thread()
    def forward_with_cache(self, image, *, n_stages=None, forced=None):
        """:meth:`forward`, also returning what :meth:`backward` needs.

        ``forced`` (teacher forcing, derivations/network.md §2) maps a
        stage to ``(kernels, mask)``: for the examples where ``mask`` is
        True that stage hands ``kernels`` (of its scale's kernel size) on
        instead of its own estimate (N13), and :meth:`backward` sends no
        gradient through the estimate it replaced (N14). A stage is named
        by its 0-based index at the finest scale, or by ``(scale, stage)``,
        both 0-based, at any scale.
        """
        if not forced:
            return self.run_scales(image, run_stages_with_cache, n_stages=n_stages)
        finest = len(self.scales) - 1
        per_scale = {}
        for key, value in forced.items():
            j, s = (finest, key) if np.ndim(key) == 0 else key
            if not (0 <= j <= finest and 0 <= s < len(self.scales[j])):
                raise ValueError(f"no stage {key!r} to force")
            per_scale.setdefault(j, {})[s] = value

        def runner(stages, blurry, latent, params):
            j = next((j for j, scale in enumerate(self.scales)
                      if len(stages) and stages[0] is scale[0]), None)
            return run_stages_with_cache(stages, blurry, latent, params,
                                         forced=per_scale.get(j))

        return self.run_scales(image, runner, n_stages=n_stages)

    def run_scales(self, image, stage_runner, *, n_stages=None, n_scales=None):
        """The scales, coarse to fine, with the stages of each run by ``stage_runner``.

        Resamples the image to every scale (N10) and the latent image of
        each scale to the next (N11), and hands both to ``stage_runner``,
        which runs the stages of the scale (N1)-(N5), (N12).

        Parameters
        ----------
        image : ndarray of shape (H, W) or (N, H, W)
        stage_runner : callable
            ``stage_runner(stages, blurry, latent, params)`` returns
            ``(kernels, latent, stage_caches)``: the kernel of every stage
            run, the last stage's latent image and the caches that
            :meth:`backward` needs (an empty list where none are kept).
            ``latent`` is None for the coarsest scale. :func:`run_stages`,
            :func:`run_stages_with_cache` and
            :func:`refdeblur.network_fast.predict_stages` are such runners.
        n_stages, n_scales : int, optional
            As for :meth:`forward`.

        Returns
        -------
        output : NetworkOutput
        cache : NetworkCache
        """
        image = np.asarray(image)
        single = image.ndim == 2
        batch = image[None] if single else image
        if batch.ndim != 3:
            raise ValueError(f"expected an (H, W) or (N, H, W) image, got "
                             f"shape {image.shape}")
        batch = batch.astype(self.dtype, copy=False)
        arch = self.architecture
        if n_stages is None:
            n_stages = arch.inference_stages or arch.n_stages
        if not 1 <= n_stages <= arch.n_stages:
            raise ValueError(f"n_stages must be in 1..{arch.n_stages}")
        if n_scales is None:
            n_scales = len(self.scales)
        if not 1 <= n_scales <= len(self.scales):
            raise ValueError(f"n_scales must be in 1..{len(self.scales)}")
        if min(batch.shape[-2:]) < self.min_image_size():
            raise ValueError(f"image of {batch.shape[-2]}x{batch.shape[-1]} px "
                             f"is too small for this network (needs at least "
                             f"{self.min_image_size()} px per side)")
        shapes = self.scale_shapes(batch.shape[-2:])
        kind = arch.resample_kernel
        stage_kernels, scale_caches, resamplers = [], [], []
        latent = None
        for j, stages in enumerate(self.scales[:n_scales]):
            down = (Resample(batch.shape[-2:], shapes[j], kernel=kind)
                    if shapes[j] != batch.shape[-2:] else None)
            up = (Resample(shapes[j - 1], shapes[j], kernel=kind)
                  if j > 0 else None)
            resamplers.append((down, up))
            blurry, down_cache = (down.forward(batch) if down is not None
                                  else (batch, None))                 # (N10)
            up_cache = None
            if up is not None:
                latent, up_cache = up.forward(latent)                 # (N11)
            count = n_stages if j == len(self.scales) - 1 else len(stages)
            kernels, latent, stage_caches = stage_runner(stages[:count], blurry,
                                                         latent, self.params)
            stage_kernels.append([kernel[0] for kernel in kernels] if single
                                 else list(kernels))
            scale_caches.append(_ScaleCache(down_cache, up_cache,
                                            stage_caches, shapes[j]))
        output = NetworkOutput(kernel=stage_kernels[-1][-1],
                               stage_kernels=stage_kernels,
                               latent=latent[0] if single else latent)
        cache = NetworkCache(scale_caches, resamplers, n_stages,
                             batch.shape[-2:])
        return output, cache

    @one_blas_thread()
    def backward(self, dkernel, cache, *, dlatent=None, input_grad=False,
                 trainable=None, dstage_kernels=None):
        """Gradients of a loss on the final kernel (and latent image).

        Parameters
        ----------
        dkernel : ndarray of shape (N, m, m) (or (m, m) for one image)
            ``dL/d kernel`` of the final kernel.
        cache : NetworkCache
            From :meth:`forward_with_cache`.
        dlatent : ndarray, optional
            ``dL/d latent`` of the final latent image.
        input_grad : bool, optional
            Also return ``dL/d image`` (for activation maximisation).
        trainable : tuple of str, optional
            Name prefixes of the parameters that need gradients (e.g.
            ``("scale2.",)`` while the coarse scale is frozen). The backward
            pass stops after the earliest stage that matches; the gradients
            of the stages before it are left at zero. Default: all.
        dstage_kernels : dict, optional
            ``{stage index: dL/d kernel}`` for the kernels of earlier
            stages of the finest scale (0-based; a loss on every stage's
            kernel, derivations/network.md §4), added to what reaches
            their kernel from the stages after them.

        Returns
        -------
        grads : dict
            Keyed like ``params``; parameters of stages that did not run (or
            were not asked for) get zero gradients.
        dimage : ndarray or None
            ``dL/d image`` if ``input_grad``.
        """
        single = np.ndim(dkernel) == 2
        dkernel = dkernel[None] if single else dkernel
        if dlatent is not None and single:
            dlatent = dlatent[None]
        grads = {name: np.zeros_like(value)
                 for name, value in self.params.items()}
        dimage = None
        dlatent_next = dlatent
        dkernel_last = dkernel
        # The earliest stage (scale, stage) whose parameters are needed: the
        # chain rule need not go further back unless dL/d image is asked for.
        needed = [(j, s) for j, stages in enumerate(self.scales)
                  for s, stage in enumerate(stages)
                  if trainable is None or stage.prefix.startswith(tuple(trainable))]
        earliest = min(needed) if needed and not input_grad else (0, 0)
        finest = len(self.scales) - 1
        dstage_kernels = dict(dstage_kernels or {})
        for j in reversed(range(len(self.scales))):
            if j < earliest[0]:
                break
            scale_cache = cache.scales[j]
            stages = self.scales[j][:len(scale_cache.stages)]
            dblurry_total = None
            for s in reversed(range(len(stages))):
                if (j, s) < earliest:
                    break
                first_needed = (j, s) == earliest
                if j == finest and s in dstage_kernels:
                    extra = np.asarray(dstage_kernels.pop(s))
                    extra = extra[None] if single else extra
                    dkernel_last = (extra if dkernel_last is None
                                    else dkernel_last + extra)       # (N15)
                dinput, dblurry, stage_grads, dprior = stages[s].backward(
                    dkernel_last, dlatent_next, scale_cache.stages[s],
                    input_grad=input_grad or not first_needed, prior_grad=True)
                # the prior is the previous stage's kernel (N16): (N17)
                dkernel_last = dprior
                for name, value in stage_grads.items():
                    grads[name] += value
                contributions = [dblurry]
                if dinput is not None:
                    contributions.append(dinput[:, 0])                # (N12)
                    dlatent_next = dinput[:, 1] if dinput.shape[1] > 1 else None
                else:
                    dlatent_next = None
                for part in contributions:
                    if part is not None:
                        dblurry_total = (part if dblurry_total is None
                                         else dblurry_total + part)
            down, up = cache.resamplers[j]
            if up is not None and dlatent_next is not None:
                dlatent_next, _ = up.backward(dlatent_next,
                                              scale_cache.up)         # (N11)
            if input_grad and dblurry_total is not None:
                if down is not None:
                    dblurry_total, _ = down.backward(dblurry_total,
                                                     scale_cache.down)  # (N10)
                dimage = dblurry_total if dimage is None else dimage + dblurry_total
        if dimage is not None and single:
            dimage = dimage[0]
        return grads, dimage

    def loss_and_grad(self, image, true_kernel, *, n_stages=None, forced=None,
                      stage_loss_weight=0.0):
        """L2 kernel loss and its gradient with respect to every parameter.

        ``loss = (1/N) sum_n ||k_n - k_true_n||^2`` on the final kernel
        (paper §3.3; during stage-wise training, the kernel of the last stage
        present), plus ``stage_loss_weight`` times the same loss on the
        kernel of every earlier stage of the finest scale (N15).

        Parameters
        ----------
        image : ndarray of shape (H, W) or (N, H, W)
        true_kernel : ndarray of shape (m, m) or (N, m, m)
        n_stages : int, optional
            See :meth:`forward`.
        forced : dict, optional
            Teacher forcing, see :meth:`forward_with_cache`.
        stage_loss_weight : float, optional
            Weight of the earlier stages' kernel losses (default 0: the
            final kernel only).

        Returns
        -------
        loss : float
        grads : dict
            Keyed like ``params``.
        """
        output, cache = self.forward_with_cache(image, n_stages=n_stages,
                                                forced=forced)
        kernel = np.asarray(output.kernel)
        true_kernel = np.asarray(true_kernel, dtype=kernel.dtype)
        if true_kernel.shape != kernel.shape:
            raise ValueError(f"true kernel has shape {true_kernel.shape}, the "
                             f"network estimates {kernel.shape}")
        n_batch = 1 if kernel.ndim == 2 else kernel.shape[0]
        residual = kernel - true_kernel
        loss = float(np.sum(residual ** 2)) / n_batch
        dstage_kernels = {}
        if stage_loss_weight:
            for s, stage_kernel in enumerate(output.stage_kernels[-1][:-1]):
                stage_residual = np.asarray(stage_kernel) - true_kernel
                loss += stage_loss_weight * float(np.sum(stage_residual ** 2)) / n_batch
                dstage_kernels[s] = 2.0 * stage_loss_weight * stage_residual / n_batch
        grads, _ = self.backward(2.0 * residual / n_batch, cache,
                                 dstage_kernels=dstage_kernels)
        return loss, grads


def build_network(kernel_size, *, rng, dtype=np.float64, **architecture):
    """Create a randomly initialised network.

    Parameters
    ----------
    kernel_size : int
        Side of the kernel to estimate. 17, 25 and 33 give the paper's 1, 2
        and 3 scales (17; 17, 25; 17, 25, 33); other odd sizes a single
        scale, unless ``kernel_sizes`` is given.
    rng : numpy.random.Generator
        Source of the initial weights.
    dtype : dtype, optional
        Parameter type (float64 for training and gradient checks).
    **architecture
        Any field of :class:`Architecture` (``n_filters``, ``filter_sizes``,
        ``n_pairs``, ``n_stages``, ...).

    Returns
    -------
    Network

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur import build_network
    >>> net = build_network(17, rng=np.random.default_rng(0), n_filters=4,
    ...                     n_hidden=4, filter_sizes=(5,))
    >>> out = net.forward(np.random.default_rng(1).random((48, 48)))
    >>> out.kernel.shape, round(float(out.kernel.sum()), 6)
    ((17, 17), 1.0)
    """
    if "kernel_sizes" not in architecture:
        architecture["kernel_sizes"] = DEFAULT_SCALES.get(int(kernel_size),
                                                          (int(kernel_size),))
    arch = Architecture(**architecture)
    if arch.kernel_size != int(kernel_size):
        raise ValueError(f"kernel_sizes {arch.kernel_sizes} end in "
                         f"{arch.kernel_size}, not {kernel_size}")
    params = _init_params(_build_stages(arch), rng, np.dtype(dtype))
    return Network(arch, params)


def _build_stages(arch):
    """The stages of every scale, coarse to fine."""
    scales = []
    for j, kernel_size in enumerate(arch.kernel_sizes):
        stages = []
        for s in range(arch.n_stages):
            # Stage 1 of the coarsest scale sees only the blurry image.
            in_channels = 1 if (j == 0 and s == 0) else 2
            stages.append(Stage(
                f"scale{j + 1}.stage{s + 1}.", in_channels, kernel_size,
                arch.filter_sizes[j], arch.n_pairs[s], arch.taper_widths[j],
                arch))
        scales.append(stages)
    return scales


def _init_params(scales, rng, dtype):
    """Fresh parameters of every stage, keyed by full name."""
    params = {}
    for stages in scales:
        for stage in stages:
            params.update(stage.init_params(rng, dtype))
    return params
