"""Golden traces: every layer's inputs, outputs and gradients, for porters.

A trace runs a network in float64 on a fixed synthetic blurry image and
records, under stable names, what every layer of every stage and scale
receives and returns, the resampling between the scales, and the gradients
of a fixed scalar loss on the final kernel back-propagated through the whole
network down to the input image. A port writes its own arrays under the same
names and :func:`refdeblur.porting.check.compare_traces` (``refdeblur
check-port``) finds the first one that differs.

The file format, every name with its shape, the input recipe, the loss and
the conventions a port must follow are specified in derivations/porting.md.

The forward pass is :meth:`refdeblur.network.Stage.forward` itself, run by
:meth:`refdeblur.network.Network.run_scales`; its caches hold most of the
intermediate arrays. The backward pass follows
:meth:`refdeblur.network.Network.backward` and
:meth:`refdeblur.network.Stage.backward` call for call, layer by layer, so
that every upstream gradient can be recorded; the tests check that it gives
the same gradients.
"""

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import scipy.signal

from .._engine import fft as _fft
from .._engine.threads import one_blas_thread
from .._version import __version__
from ..layers.crop_pad import kernel_to_grid, replicate_pad
from ..model_io import read_model_file, save_npz_atomically
from ..models import model_sha256, shipped_model_path
from ..network import Network, stage_input

__all__ = ["FORMAT", "FORMAT_VERSION", "METADATA_KEY", "LOSS", "INPUT_RECIPE",
           "CONVENTIONS", "default_size", "reference_kernel", "synthetic_blurry",
           "make_trace", "write_trace", "read_trace", "canonical_name"]

FORMAT = "refdeblur-trace"
FORMAT_VERSION = 1
#: The entry of the ``.npz`` file that holds the JSON metadata.
METADATA_KEY = "__metadata__"

#: Smallest default side of the input image (the network's minimum, if larger).
DEFAULT_MIN_SIDE = 64
#: Side of the constant blocks of the synthetic sharp image.
BLOCK = 4
#: Standard deviation of the Gaussian noise added to the synthetic blurry image.
NOISE_STD = 0.01

LOSS = ("L = 0.5 * sum((k - k_ref)**2) over the final kernel k "
        "(output/kernel, shape (1, m, m)) and the reference kernel k_ref "
        "(loss/k_ref); dL/dk = k - k_ref (loss/grad_kernel) enters the "
        "kernel quotient of the last stage run, and is back-propagated "
        "through every stage and scale down to the input image "
        "(input/grad_blurry)")

INPUT_RECIPE = (
    "rng = numpy.random.default_rng(seed); k_ref = reference_kernel(m); "
    "(Hs, Ws) = (H + m - 1, W + m - 1); "
    "coarse = rng.random((ceil(Hs / 4), ceil(Ws / 4))); "
    "sharp = repeat(repeat(coarse, 4, axis=0), 4, axis=1)[:Hs, :Ws]; "
    "blurry = clip(convolve2d(sharp, k_ref, 'valid') "
    "+ 0.01 * rng.standard_normal((H, W)), 0, 1) with a true convolution "
    "(scipy.signal.convolve2d, MATLAB conv2); "
    "reference_kernel(m)[i, j] is proportional to "
    "exp(-(i - r)**2 / (2 (m/10)**2) - (j - r - floor(m/8))**2 / (2 (m/5)**2)), "
    "r = (m - 1) / 2, normalised to sum 1; stored as input/blurry and loss/k_ref")

#: Conventions a port must follow; stored in every trace, explained in
#: derivations/porting.md, "Conventions".
CONVENTIONS = {
    "layout": "images (N, H, W), feature maps (N, C, H, W), kernels (N, m, m), "
              "row-major, N = 1 in a trace; parameters without a batch axis",
    "conv2d": "'valid' cross-correlation (no filter flip), weight (C_out, C_in, f, f), "
              "output (H - f + 1) x (W - f + 1), plus bias per output channel",
    "recombine": "1x1 convolution: out[:, o] = sum_c weight[o, c] * in[:, c], weight (C_out, C_in)",
    "split": "the first n_pairs channels of recombine2/out are x_sharp, the last n_pairs y_blurry",
    "fft": "unnormalised forward DFT (numpy/MATLAB fft2), 1/(HW) in the inverse",
    "kernel": "odd m x m, centre at (m//2, m//2), true convolution y = k * x",
    "psf2otf": "kernel centre placed at the grid origin (0, 0), the rest wrapped "
               "circularly (MATLAB psf2otf/otf2psf)",
    "taper": "separable flat-top Barthann window: ramp w(j / (2R)), j = 0..R-1, "
             "w(t) = 0.62 - 0.48|t - 1/2| + 0.38 cos(2 pi (t - 1/2)), ones, ramp reversed",
    "kernel_quotient_grid": "tapered features zero-padded at the end of each axis to the "
                            "smallest 5-smooth length >= H (and W)",
    "image_quotient_padding": "replicate-pad by before = T // 2, after = T - T // 2 per axis, "
                              "T = (smallest 5-smooth length >= H + 2m) - H; taper ramp m "
                              "on the padded grid",
    "resampling": "MATLAB imresize to an output size, bicubic (Keys a = -0.5), "
                  "antialiased when shrinking, symmetric boundary, scale per axis out/in",
    "pyramid": "scale j (coarse to fine) runs on ceil(m_j / m_J * H) x ceil(m_j / m_J * W)",
    "stage_input": "stage 1 of the coarsest scale: the blurry image (1 channel); every "
                   "other stage: [blurry, latent] (2 channels, blurry first)",
}


def default_size(net):
    """The default input side of a trace of ``net``: 64 px or the network's minimum.

    Parameters
    ----------
    net : Network

    Returns
    -------
    tuple of int
        ``(side, side)``.
    """
    side = max(DEFAULT_MIN_SIDE, net.min_image_size())
    return side, side


def reference_kernel(kernel_size):
    """The kernel that blurs a trace's input and that its loss aims at.

    An anisotropic Gaussian shifted off the centre along the columns, so
    that a transposed or rotated kernel is told apart from it.

    Parameters
    ----------
    kernel_size : int
        Odd side ``m``.

    Returns
    -------
    ndarray of shape (m, m), float64
        Non-negative, sums to 1.
    """
    m = int(kernel_size)
    offset = np.arange(m) - (m - 1) / 2.0
    rows = np.exp(-0.5 * (offset / (m / 10.0)) ** 2)
    cols = np.exp(-0.5 * ((offset - m // 8) / (m / 5.0)) ** 2)
    kernel = rows[:, None] * cols[None, :]
    return kernel / kernel.sum()


def synthetic_blurry(shape, kernel_size, seed):
    """The input image of a trace (:data:`INPUT_RECIPE`).

    Parameters
    ----------
    shape : pair of int
        ``(H, W)`` of the blurry image.
    kernel_size : int
        Side ``m`` of :func:`reference_kernel`.
    seed : int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    blurry : ndarray of shape (H, W), float64
        In [0, 1].
    kernel : ndarray of shape (m, m), float64
        :func:`reference_kernel` of ``kernel_size``.
    """
    height, width = (int(n) for n in shape)
    kernel = reference_kernel(kernel_size)
    m = kernel.shape[0]
    rng = np.random.default_rng(seed)
    sharp_shape = (height + m - 1, width + m - 1)
    coarse = rng.random(tuple(math.ceil(n / BLOCK) for n in sharp_shape))
    sharp = np.repeat(np.repeat(coarse, BLOCK, axis=0), BLOCK, axis=1)
    sharp = sharp[:sharp_shape[0], :sharp_shape[1]]
    blurry = scipy.signal.convolve2d(sharp, kernel, mode="valid")
    blurry = blurry + NOISE_STD * rng.standard_normal((height, width))
    return np.clip(blurry, 0.0, 1.0), kernel


class _Recorder:
    """Arrays in recording order, and the names that are aliases of others.

    An alias is a second name of an array already recorded (a layer's input
    that is the previous layer's output, a gradient handed on unchanged); it
    costs no space in the file.
    """

    def __init__(self):
        self.arrays = {}
        self.names = []
        self.aliases = {}

    def record(self, name, array):
        if name in self.names:
            raise ValueError(f"trace name recorded twice: {name}")
        # A copy: views of cached arrays must not change with them, and the
        # file needs contiguous float64 arrays.
        self.arrays[name] = np.array(array, dtype=np.float64, order="C")
        self.names.append(name)

    def alias(self, name, target):
        if name in self.names:
            raise ValueError(f"trace name recorded twice: {name}")
        target = self.aliases.get(target, target)
        if target not in self.arrays:
            raise ValueError(f"alias {name} of unrecorded {target}")
        self.aliases[name] = target
        self.names.append(name)

    def insert_before(self, anchor, name, array):
        position = self.names.index(anchor)
        self.record(name, array)
        self.names.insert(position, self.names.pop())


def _load_network(model):
    """``(float64 network, description)`` of a network, model file or shipped size."""
    if isinstance(model, Network):
        _check_traceable(model)
        return model.astype(np.float64), {"name": "in-memory network", "sha256": None}
    if isinstance(model, (int, np.integer)) and not isinstance(model, bool):
        path = shipped_model_path(int(model))
        name = f"shipped {path.name}"
    else:
        path = Path(model)
        name = path.name
    net, _, _ = read_model_file(path)
    _check_traceable(net)
    return net.astype(np.float64), {"name": name, "sha256": model_sha256(path)}


def _check_traceable(net):
    # The trace records the paper's stage; a kernel prior adds a path it
    # does not record (derivations/porting.md).
    if net.architecture.kernel_prior:
        raise ValueError("networks with kernel_prior cannot be traced for a port")


def make_trace(model, *, seed=0, size=None):
    """Run a network in float64 and record every layer's arrays.

    Parameters
    ----------
    model : Network, int, str or path-like
        A network, the kernel size of a shipped network (17, 25 or 33) or
        a model file. Its parameters are converted to float64.
    seed : int, optional
        Seed of the synthetic input (:func:`synthetic_blurry`).
    size : pair of int, optional
        ``(H, W)`` of the input; default :func:`default_size`.

    Returns
    -------
    dict
        ``name -> ndarray`` (float64) for every name, an alias mapping to
        the very array of the name it repeats, and ``"__metadata__"`` ->
        the metadata dict (JSON-compatible), whose ``"names"`` lists every
        name in network order and ``"aliases"`` maps each alias to the name
        the file stores its array under. derivations/porting.md specifies
        both.

    Raises
    ------
    ValueError
        If the size is below the network's minimum or the model is not
        readable.

    Examples
    --------
    >>> from refdeblur.porting import make_trace
    >>> trace = make_trace(17, size=(50, 50))
    >>> trace["scale1/stage1/kernel_quotient/out"].shape
    (1, 17, 17)
    >>> trace["__metadata__"]["aliases"]["output/kernel"]
    'scale1/stage3/kernel_quotient/out'
    >>> trace["output/kernel"] is trace["scale1/stage3/kernel_quotient/out"]
    True
    """
    net, description = _load_network(model)
    size = default_size(net) if size is None else tuple(int(n) for n in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be two positive integers, got {size}")
    if min(size) < net.min_image_size():
        raise ValueError(f"a {size[0]}x{size[1]} input is too small for this "
                         f"network (needs at least {net.min_image_size()} px per side)")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    blurry, k_ref = synthetic_blurry(size, net.kernel_size, int(seed))
    recorder = _Recorder()
    recorder.record("input/blurry", blurry[None])
    for name, value in net.params.items():
        recorder.record(f"params/{name}", value)
    # BLAS on one thread, as in Network.forward and backward: the same bits.
    with one_blas_thread():
        output, cache = net.run_scales(blurry[None], _ForwardRecorder(recorder))
        kernel = output.kernel
        _record_resampling_matrices(recorder, cache)
        final = _last_stage_prefix(cache)
        recorder.alias("output/kernel", f"{final}kernel_quotient/out")
        recorder.alias("output/latent", f"{final}image_quotient/out")
        recorder.record("loss/k_ref", k_ref[None])
        residual = kernel - k_ref[None]
        recorder.record("loss/value", 0.5 * np.sum(residual ** 2))
        recorder.record("loss/grad_kernel", residual)
        _record_backward(net, cache, residual, recorder)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "refdeblur_version": __version__,
        "specification": "derivations/porting.md",
        "model": dict(description, architecture=net.architecture.to_dict()),
        "stages_run_at_finest_scale": cache.n_stages,
        "scale_shapes": [list(scale.in_shape) for scale in cache.scales],
        "seed": int(seed),
        "size": list(size),
        "dtype": "float64",
        "input": INPUT_RECIPE,
        "loss": LOSS,
        "conventions": dict(CONVENTIONS),
        "names": list(recorder.names),
        "aliases": dict(recorder.aliases),
    }
    trace = dict(recorder.arrays)
    trace.update({alias: trace[name] for alias, name in recorder.aliases.items()})
    trace[METADATA_KEY] = metadata
    return trace


def _last_stage_prefix(cache):
    return f"scale{len(cache.scales)}/stage{len(cache.scales[-1].stages)}/"


class _ForwardRecorder:
    """A stage runner for :meth:`Network.run_scales` that records every layer.

    Each stage runs :meth:`Stage.forward`; the three layer outputs that its
    cache does not keep (the convolution's and the recombinations', the
    caches keep what the backward passes need, which is the tanh outputs)
    are recomputed by the same layer calls on the cached inputs.
    """

    def __init__(self, recorder):
        self.recorder = recorder
        self.latent_name = None   # the last latent image recorded, for resample_up

    def __call__(self, stages, blurry, latent, params):
        rec = self.recorder
        j = int(stages[0].prefix.split(".")[0][len("scale"):])
        scale = f"scale{j}/"
        if blurry.shape[-2:] == rec.arrays["input/blurry"].shape[-2:]:
            blurry_name = "input/blurry"
        else:
            rec.alias(f"{scale}resample_down/in/x", "input/blurry")
            rec.record(f"{scale}resample_down/out", blurry)
            blurry_name = f"{scale}resample_down/out"
        if latent is not None:
            rec.alias(f"{scale}resample_up/in/x", self.latent_name)
            rec.record(f"{scale}resample_up/out", latent)
        kernels, caches = [], []
        for s, stage in enumerate(stages, start=1):
            kernel, latent, cache = stage.forward(stage_input(blurry, latent),
                                                  blurry, params)        # (N1)-(N5), (N12)
            self._record_stage(f"{scale}stage{s}/", stage, params, cache, blurry,
                               blurry_name, kernel, latent)
            kernels.append(kernel)
            caches.append(cache)
        self.latent_name = f"{scale}stage{len(stages)}/image_quotient/out"
        return kernels, latent, caches

    def _record_stage(self, prefix, stage, params, cache, blurry, blurry_name,
                      kernel, latent):
        rec = self.recorder
        conv_out, _ = stage.conv.forward(cache.conv.x, stage.params_of(params, "conv"))
        rec1_out, _ = stage.recombine1.forward(cache.tanh1.output,
                                               stage.params_of(params, "recombine1"))
        features, _ = stage.recombine2.forward(cache.tanh2.output,
                                               stage.params_of(params, "recombine2"))
        rec.record(f"{prefix}conv/in/x", cache.conv.x)
        rec.record(f"{prefix}conv/out", conv_out)
        chain = [("tanh1", cache.tanh1.output), ("recombine1", rec1_out),
                 ("tanh2", cache.tanh2.output), ("recombine2", features)]
        previous = f"{prefix}conv/out"
        for layer, out in chain:
            rec.alias(f"{prefix}{layer}/in/x", previous)
            rec.record(f"{prefix}{layer}/out", out)
            previous = f"{prefix}{layer}/out"
        n = stage.n_pairs
        kq = f"{prefix}kernel_quotient/"
        kq_cache = cache.kernel_quotient
        rec.record(f"{kq}in/x_sharp", features[:, :n])                  # (N3)
        rec.record(f"{kq}in/y_blurry", features[:, n:])
        window = kq_cache.window
        height, width = window.shape
        rec.record(f"{kq}step/window", window)
        for name, maps in (("tapered_sharp", features[:, :n]),
                           ("tapered_blurry", features[:, n:])):
            grid = np.zeros(maps.shape[:2] + kq_cache.quotient.shape)
            grid[..., :height, :width] = maps * window                  # (K1), (K2)
            rec.record(f"{kq}step/{name}", grid)
        rec.record(f"{kq}step/quotient",
                   _fft.irfft2(kq_cache.quotient.quotient, kq_cache.quotient.shape))  # (K4)
        rec.record(f"{kq}step/cropped", kq_cache.cropped)               # (K5)
        rec.record(f"{kq}out", kernel)
        iq = f"{prefix}image_quotient/"
        iq_cache = cache.image_quotient
        rec.alias(f"{iq}in/kernel", f"{kq}out")
        rec.alias(f"{iq}in/blurry", blurry_name)
        rec.record(f"{iq}step/window", iq_cache.window)
        rec.record(f"{iq}step/padded_blurry",
                   replicate_pad(blurry, iq_cache.before, iq_cache.after)
                   * iq_cache.window)                                   # (I1), (I2)
        rec.record(f"{iq}step/kernel_grid",
                   kernel_to_grid(kernel, iq_cache.window.shape))       # (I3)
        rec.record(f"{iq}step/beta_x", iq_cache.beta)
        rec.record(f"{iq}step/solution",
                   _fft.irfft2(iq_cache.quotient.quotient, iq_cache.quotient.shape))  # (I4)
        rec.record(f"{iq}out", latent)                                  # (I5)


def _record_resampling_matrices(recorder, cache):
    """The row and column matrices of every resampling, before its output."""
    for j, (down, up) in enumerate(cache.resamplers, start=1):
        for kind, layer in (("resample_down", down), ("resample_up", up)):
            if layer is None:
                continue
            out = f"scale{j}/{kind}/out"
            recorder.insert_before(out, f"scale{j}/{kind}/step/row_matrix",
                                   layer.row_matrix)
            recorder.insert_before(out, f"scale{j}/{kind}/step/col_matrix",
                                   layer.col_matrix)


def _record_backward(net, cache, dkernel, recorder):
    """:meth:`Network.backward` with ``input_grad=True``, recording every gradient."""
    dlatent, dlatent_name = None, None
    dimage = None
    for j in reversed(range(len(cache.scales))):
        scale = f"scale{j + 1}/"
        scale_cache = cache.scales[j]
        stages = net.scales[j][:len(scale_cache.stages)]
        dblurry_total = None
        for s in reversed(range(len(stages))):
            dinput, dblurry = _record_stage_backward(
                recorder, f"{scale}stage{s + 1}/", stages[s], scale_cache.stages[s],
                dkernel, dlatent, dlatent_name)
            dkernel = None
            dlatent = dinput[:, 1] if dinput.shape[1] > 1 else None
            dlatent_name = None
            for part in (dblurry, dinput[:, 0]):                        # (N12)
                if part is not None:
                    dblurry_total = (part if dblurry_total is None
                                     else dblurry_total + part)
        recorder.record(f"{scale}grad_blurry", dblurry_total)
        down, up = cache.resamplers[j]
        if up is not None and dlatent is not None:
            recorder.record(f"{scale}resample_up/grad_out", dlatent)
            dlatent, _ = up.backward(dlatent, scale_cache.up)           # (N11)
            dlatent_name = f"{scale}resample_up/grad_in/x"
            recorder.record(dlatent_name, dlatent)
        if down is not None:
            recorder.alias(f"{scale}resample_down/grad_out", f"{scale}grad_blurry")
            dblurry_total, _ = down.backward(dblurry_total, scale_cache.down)  # (N10)
            recorder.record(f"{scale}resample_down/grad_in/x", dblurry_total)
        dimage = dblurry_total if dimage is None else dimage + dblurry_total
    recorder.record("input/grad_blurry", dimage)


def _record_stage_backward(recorder, prefix, stage, cache, dkernel, dlatent,
                           dlatent_name):
    """:meth:`Stage.backward` with ``input_grad=True``, recording every gradient.

    Returns ``(dinput, dblurry)``; ``dblurry`` is None where no latent
    gradient reached the stage.
    """
    rec = recorder
    iq = f"{prefix}image_quotient/"
    total_dkernel, dblurry = dkernel, None
    if dlatent is not None:
        if dlatent_name is None:
            rec.record(f"{iq}grad_out", dlatent)
        else:
            rec.alias(f"{iq}grad_out", dlatent_name)
        (dkernel_iq, dblurry), iq_grads = stage.image_quotient.backward(
            dlatent, cache.image_quotient)                              # (N6)
        rec.record(f"{iq}grad_in/kernel", dkernel_iq)
        rec.record(f"{iq}grad_in/blurry", dblurry)
        _record_params(rec, f"{iq}grad_param/", iq_grads)
        total_dkernel = (dkernel_iq if total_dkernel is None
                         else total_dkernel + dkernel_iq)
    kq = f"{prefix}kernel_quotient/"
    rec.record(f"{kq}grad_out", total_dkernel)
    (dx_sharp, dy_blurry), _ = stage.kernel_quotient.backward(
        total_dkernel, cache.kernel_quotient)                           # (N7)
    rec.record(f"{kq}grad_in/x_sharp", dx_sharp)
    rec.record(f"{kq}grad_in/y_blurry", dy_blurry)
    dz = np.concatenate([dx_sharp, dy_blurry], axis=1)                  # (N8)
    chain = [("recombine2", stage.recombine2, cache.recombine2),
             ("tanh2", stage.tanh2, cache.tanh2),
             ("recombine1", stage.recombine1, cache.recombine1),
             ("tanh1", stage.tanh1, cache.tanh1)]
    rec.record(f"{prefix}recombine2/grad_out", dz)
    for layer_name, layer, layer_cache in chain:
        dz, grads = layer.backward(dz, layer_cache)
        rec.record(f"{prefix}{layer_name}/grad_in/x", dz)
        _record_params(rec, f"{prefix}{layer_name}/grad_param/", grads)
        below = {"recombine2": "tanh2", "tanh2": "recombine1",
                 "recombine1": "tanh1", "tanh1": "conv"}[layer_name]
        rec.alias(f"{prefix}{below}/grad_out", f"{prefix}{layer_name}/grad_in/x")
    dinput, conv_grads = stage.conv.backward(dz, cache.conv, input_grad=True)  # (N9)
    rec.record(f"{prefix}conv/grad_in/x", dinput)
    _record_params(rec, f"{prefix}conv/grad_param/", conv_grads)
    return dinput, dblurry


def _record_params(recorder, prefix, grads):
    for key, value in grads.items():
        recorder.record(f"{prefix}{key}", value)


def canonical_name(trace, name):
    """The name under which a trace stores the array called ``name``.

    Parameters
    ----------
    trace : dict
        From :func:`make_trace` or :func:`read_trace`.
    name : str
        Any name of the trace, alias or not.

    Returns
    -------
    str or None
        ``name`` itself, the name it is an alias of, or None if the trace
        has no such name.
    """
    name = trace[METADATA_KEY]["aliases"].get(name, name)
    return name if name in trace and name != METADATA_KEY else None


def write_trace(trace, path, *, overwrite=False):
    """Write a trace to an ``.npz`` file, atomically.

    Parameters
    ----------
    trace : dict
        From :func:`make_trace`.
    path : str or path-like
    overwrite : bool, optional
        Replace an existing file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (use --overwrite to replace it)")
    metadata = trace[METADATA_KEY]
    # an alias costs no space: its array is stored under its target's name
    arrays = {name: value for name, value in trace.items()
              if name != METADATA_KEY and name not in metadata["aliases"]}
    arrays[METADATA_KEY] = np.array(json.dumps(trace[METADATA_KEY]))
    save_npz_atomically(path, arrays)


def read_trace(path):
    """Read a trace file written by :func:`write_trace`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    dict
        As :func:`make_trace` returns, aliases included.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a readable refdeblur trace.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trace file not found: {path}")
    if path.is_dir() or not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a readable trace (not an .npz archive)")
    try:
        with open(path, "rb") as stream, np.load(stream, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a readable trace (corrupt or truncated: "
                         f"{error})") from None
    if METADATA_KEY not in contents:
        raise ValueError(f"{path} is an .npz archive but not a refdeblur trace "
                         f"(no {METADATA_KEY} entry)")
    try:
        metadata = json.loads(str(contents.pop(METADATA_KEY)))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: trace metadata is not valid JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is an .npz archive but not a refdeblur trace")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has trace format version "
                         f"{metadata.get('format_version')}, this refdeblur reads "
                         f"version {FORMAT_VERSION}")
    if not isinstance(metadata.get("names"), list) or not isinstance(
            metadata.get("aliases"), dict):
        raise ValueError(f"{path}: trace metadata lacks its names or aliases")
    missing = [name for name in metadata["names"]
               if metadata["aliases"].get(name, name) not in contents]
    if missing:
        raise ValueError(f"{path}: {len(missing)} arrays of the trace are missing, "
                         f"e.g. {missing[0]}")
    contents.update({alias: contents[name] for alias, name in metadata["aliases"].items()})
    contents[METADATA_KEY] = metadata
    return contents
