"""A fixed protocol to compare trained networks: kernel error on held-out pairs.

Run ``python benchmarks/bench_learning.py --model PATH [PATH ...]`` (model
files or training checkpoints of any kernel size), or without ``--model``
for the shipped networks (``--kernel-sizes 17 25 33``).

The protocol is the same for every model: ``--pairs`` pairs (default 200)
from the images that training holds out for validation (the split of
``refdeblur train``: every k-th image of the sorted list of ``--images``, 60
images), crops of ``--crop`` px (default 128) blurred with kernels sampled
at the model's kernel size, noise 0.01, and a seed (``--seed``, default
2024) different from the training runs' validation seed (12345). Models of
one kernel size see the very same pairs.

For each model it prints one row of a comparison table:

* error: the mean squared kernel error ``||k - k_true||^2`` of the final
  kernel (last stage of the finest scale), on the inference path
  (:func:`refdeblur.network_fast.predict`);
* best fixed kernel: the error of the mean of the true kernels, the best
  answer that does not look at the image; ratio = error / best fixed kernel;
* oracle: the kernel quotient (Eq. 4) with ideal features: the true sharp
  crop's horizontal and vertical differences as x̃, the blurry crop's as ỹ,
  at a constant β_k (``--oracle-beta``, default 10, where this oracle is
  best); what a network with perfect features would reach;
* DC share: the fraction of the power of the final stage's feature images
  x̃ and ỹ (the inputs of its kernel quotient, after the quotient's taper)
  at frequency zero, mean over examples and feature pairs. At frequency
  zero Eq. 4 only divides the features' means: power there tells nothing
  about the shape of the blur.

Then per model the error after every stage of the finest scale, and per
scale the last stage's kernel against the true kernel resized to that
scale (:func:`refdeblur.kernels.resize_kernel`) and against that scale's own
best fixed kernel. ``--references`` adds the untrained network, fixed
gradient features, a delta kernel, the best Gaussian and the oracle at
β_k = 1e-4 (the paper's value). ``--from-perturbed`` adds the later
stages' errors from a perturbed true kernel, ``--handover`` those from the
coarser scale's answer resized and from the true kernel resized to the
coarser scale and back (networks of several scales), and from the true
kernel. ``--markdown-only`` prints only the comparison table.

A training checkpoint is evaluated with the stages its stage-wise schedule
runs at its step (as its validation does); a model file with the stages it
runs at inference (``inference_stages``).
"""

import argparse
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter

from refdeblur.image_io import find_images
from refdeblur.kernels import delta_kernel, resize_kernel
from refdeblur.layers.edge_taper import taper_window
from refdeblur.layers.kernel_quotient import KernelQuotient
from refdeblur.models import SHIPPED_KERNEL_SIZES, shipped_model_path
from refdeblur.model_io import read_model_file
from refdeblur.network import Network, build_network, previous_kernel, stage_input
from refdeblur.network_fast import stage_features
from refdeblur.training.data import load_gray_images, validation_set, validation_split
from refdeblur.training.schedule import phase_at, stagewise_schedule
from refdeblur.training.teacher_forcing import PERTURBATIONS, perturb_kernel
from refdeblur.training.trainer import fine_tuning_phases

#: Noise of the protocol's pairs (that of training).
NOISE_STD = 0.01
#: Images held out of training (``refdeblur train --validation-images``).
HELD_OUT_IMAGES = 60
#: Constant β_k of the oracle quotient: of 1e-4, 1, 3, 10, 30 and 100 the one
#: with the lowest error for 17 px kernels at crops 128 and 256.
ORACLE_BETA = 10.0
#: Examples per forward pass.
BATCH_SIZE = 8

COMPARISON_COLUMNS = ("model", "kernel px", "scales", "stages", "crop", "error",
                      "best fixed kernel", "ratio", "oracle", "DC share x̃ / ỹ")


class ModelInfo(NamedTuple):
    """A network to evaluate and what its file says about it."""

    label: str
    net: Network
    n_stages: int       # stages run at the finest scale
    header: dict        # the model file's JSON metadata


class ScaleRow(NamedTuple):
    """One scale's last-stage kernel against its resized truth."""

    kernel_size: int
    error: float
    fixed: float        # error of the mean of the resized truths
    ratio: float
    dc_sharp: float     # DC share of the last stage's x̃
    dc_blurry: float    # DC share of the last stage's ỹ
    upsampled: float    # error of the coarser scale's kernel resized to this one (NaN at scale 1)


class Result(NamedTuple):
    """The protocol's numbers for one model."""

    kernel_size: int
    scales: tuple       # kernel side of every scale, coarse to fine
    n_stages: int
    crop: int
    error: float
    fixed: float
    ratio: float
    oracle: float
    oracle_beta: float
    dc_sharp: float
    dc_blurry: float
    stage_errors: list  # error after stage 1..n_stages of the finest scale
    scale_rows: list    # ScaleRow per scale, coarse to fine


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def held_out_paths(folder, n_held_out=HELD_OUT_IMAGES):
    """The image paths that ``refdeblur train`` holds out of ``folder``."""
    _, held_out = validation_split(find_images(folder), n_held_out)
    return held_out


def protocol_pairs(images, n_pairs, crop, kernel_size, *, seed):
    """The fixed held-out pairs of one kernel size.

    Parameters
    ----------
    images : list of ndarray
        Grey held-out images; those smaller than ``crop + kernel_size - 1``
        are left out.
    n_pairs, crop, kernel_size : int
    seed : int

    Returns
    -------
    refdeblur.training.data.TrainingBatch
        ``(y, k, x)``: blurry crops, true kernels, sharp crops.
    """
    patch = crop + kernel_size - 1
    usable = [image for image in images if min(image.shape) >= patch]
    if not usable:
        raise ValueError(f"no held-out image has {patch} px per side "
                         f"(crop {crop} + kernel {kernel_size} - 1)")
    return validation_set(usable, n_pairs, crop, kernel_size, seed=seed,
                          noise_std=NOISE_STD)


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

def stages_in_use(net, header):
    """Stages of the finest scale that a model file runs.

    A training checkpoint runs those of its stage-wise phase at its step
    (later stages are untrained), a fine-tuning checkpoint those of its
    parent; any other file its ``inference_stages``, else all.
    """
    state = header.get("metadata", {}).get("training_state")
    arch = net.architecture
    if state is None:
        return arch.inference_stages or arch.n_stages
    config = state["config"]
    if config.get("init_model"):        # a fine-tuning run trains its stages from step 0
        return fine_tuning_phases(arch)[0].n_stages
    n_scales = len(arch.kernel_sizes)
    phases = stagewise_schedule(
        config["stage_steps"], config["frozen_steps"], arch.n_stages,
        f"scale{n_scales}.", train_coarse_at_end=config.get("train_coarse_at_end", False),
        coarse_prefixes=tuple(f"scale{j}." for j in range(1, n_scales)))
    return phase_at(phases, int(state["step"])).n_stages


def model_label(path, header):
    """A short name: the file's name (with its folder for a checkpoint) and step."""
    path = Path(path)
    state = header.get("metadata", {}).get("training_state")
    if state is None:
        return path.name
    return f"{path.parent.name}/{path.name} @ step {int(state['step']):,}"


def load_model_info(path, dtype):
    """Read a model file or checkpoint as a :class:`ModelInfo` in ``dtype``."""
    net, header, _ = read_model_file(path)
    return ModelInfo(model_label(path, header), net.astype(dtype),
                     stages_in_use(net, header), header)


def training_config(header):
    """The training configuration stored in a model file ({} if none)."""
    metadata = header.get("metadata", {})
    return (metadata.get("training", {}).get("config")
            or metadata.get("training_state", {}).get("config") or {})


def protocol_notes(model, seed):
    """Lines on where a model's training data differ from the protocol's.

    The protocol holds out the default split and draws its pairs with
    ``seed``; a model trained on another split may have seen some of the
    held-out images, and one validated with ``seed`` has its validation
    pairs among them.
    """
    config = training_config(model.header)
    notes = []
    if (config.get("validation_folder") or config.get("validation_fraction")
            or config.get("validation_images", HELD_OUT_IMAGES) != HELD_OUT_IMAGES):
        notes.append(f"note: {model.label} was trained with another validation split; "
                     f"some held-out images may be among its training images")
    if config.get("validation_seed") == seed:
        notes.append(f"note: {model.label} was validated with seed {seed}, the "
                     f"protocol's seed: choose another --seed")
    return notes


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------

def dc_share(features):
    """Fraction of each feature image's power at frequency zero.

    ``|F f(0)|^2 / sum_w |F f(w)|^2 = mean(f)^2 / mean(f^2)`` (Parseval):
    1 for a constant image, 0 for a zero-mean one.

    Parameters
    ----------
    features : ndarray of shape (..., H, W)

    Returns
    -------
    ndarray of shape (...)
        0 where an image is all zero.
    """
    features = np.asarray(features, dtype=np.float64)
    mean = features.mean(axis=(-2, -1))
    power = (features ** 2).mean(axis=(-2, -1))
    return np.divide(mean ** 2, power, out=np.zeros_like(power), where=power > 0)


def predict_recording(net, images, n_stages):
    """The inference path, also recording each scale's last-stage DC shares.

    Runs the stages as :func:`refdeblur.network_fast.predict_stage` does
    (features, kernel quotient, image quotient) and keeps, for the last
    stage of every scale, the DC share of its x̃ and ỹ after the kernel
    quotient's taper (Eq. 4 divides the tapered maps).

    Returns
    -------
    output : refdeblur.network.NetworkOutput
    shares : list of (ndarray, ndarray)
        Per scale, coarse to fine, the DC shares of x̃ and ỹ, each (N, n).
    """
    shares = []

    def runner(stages, blurry, latent, params):
        prepared = stages[0].image_quotient.prepare_blurry(blurry)
        kernels = []
        for stage in stages:
            maps = stage_features(stage, stage_input(blurry, latent), params)
            sharp, blurry_like = maps[:, :stage.n_pairs], maps[:, stage.n_pairs:]
            kernel, _ = stage.kernel_quotient.forward(
                sharp, blurry_like, prior=previous_kernel(stage, kernels))
            latent, _ = stage.image_quotient.forward(
                kernel, blurry, stage.params_of(params, "image_quotient"),
                prepared=prepared)
            kernels.append(kernel)
        # the quotient divides the tapered maps: measure what it sees
        window = taper_window(sharp.shape[-2:], stage.kernel_quotient.taper_width,
                              sharp.dtype)
        shares.append((dc_share(sharp * window), dc_share(blurry_like * window)))
        return kernels, latent, []

    output, _ = net.run_scales(images, runner, n_stages=n_stages)
    return output, shares


def squared_errors(kernels, truth):
    """``||k_n - t_n||^2`` per example."""
    return np.sum((np.asarray(kernels, dtype=np.float64) - truth) ** 2, axis=(-2, -1))


def fixed_kernel_errors(truth):
    """Errors of the best fixed kernel, the mean of the true kernels."""
    return squared_errors(truth.mean(axis=0), truth)


def scale_rows(scale_kernels, truth, dc_shares):
    """Each scale's kernel against the true kernel resized to that scale.

    Parameters
    ----------
    scale_kernels : list of ndarray
        Per scale, coarse to fine, the last stage's kernels (N, m_j, m_j).
    truth : ndarray of shape (N, m, m)
        The true kernels at the finest scale; resized with
        :func:`refdeblur.kernels.resize_kernel` to every coarser scale's
        size, taken as they are at the finest.
    dc_shares : list of (float, float)
        Per scale, the DC shares of the last stage's x̃ and ỹ.

    Returns
    -------
    list of ScaleRow
    """
    rows = []
    coarser = None
    for kernels, (dc_sharp, dc_blurry) in zip(scale_kernels, dc_shares):
        size = kernels.shape[-1]
        resized = (truth if size == truth.shape[-1]
                   else np.stack([resize_kernel(k, size) for k in truth]))
        error = float(squared_errors(kernels, resized).mean())
        fixed = float(fixed_kernel_errors(resized).mean())
        # what a finer scale has to beat: the coarser scale's answer, resized
        upsampled = (math.nan if coarser is None else float(squared_errors(
            np.stack([resize_kernel(k, size) for k in coarser]), resized).mean()))
        rows.append(ScaleRow(size, error, fixed, error / fixed, dc_sharp, dc_blurry,
                             upsampled))
        coarser = kernels
    return rows


def gradient_quotient(blurry, sharp, kernel_size, beta):
    """The kernel quotient (Eq. 4) with ideal features, constant ``beta``.

    x̃ = the true sharp crops' horizontal and vertical differences, ỹ = the
    blurry crops': what a network whose features were perfect sharp-like
    images would reach, limited by the noise and ``beta``.
    """
    def differences(images):
        return np.stack([np.diff(images, axis=-1)[..., :-1, :],
                         np.diff(images, axis=-2)[..., :, :-1]], axis=1)
    quotient = KernelQuotient(kernel_size, beta=beta)
    kernels = [quotient.forward(differences(sharp[start:start + BATCH_SIZE]),
                                differences(blurry[start:start + BATCH_SIZE]))[0]
               for start in range(0, len(blurry), BATCH_SIZE)]
    return np.concatenate(kernels)


def evaluate(model, pairs, *, crop, oracle_beta=ORACLE_BETA):
    """The protocol's numbers for one model on its kernel size's pairs.

    Parameters
    ----------
    model : ModelInfo
    pairs : TrainingBatch
        From :func:`protocol_pairs` at the model's kernel size.
    crop : int
    oracle_beta : float

    Returns
    -------
    Result
    """
    net = model.net
    truth = pairs.k
    n_scales = len(net.architecture.kernel_sizes)
    stage_kernels = [[] for _ in range(model.n_stages)]
    scale_kernels = [[] for _ in range(n_scales)]
    shares = [([], []) for _ in range(n_scales)]
    for start in range(0, len(pairs.y), BATCH_SIZE):
        output, batch_shares = predict_recording(
            net, pairs.y[start:start + BATCH_SIZE], model.n_stages)
        for s, kernel in enumerate(output.stage_kernels[-1]):
            stage_kernels[s].append(kernel)
        for j, kernels in enumerate(output.stage_kernels):
            scale_kernels[j].append(kernels[-1])
            shares[j][0].append(batch_shares[j][0])
            shares[j][1].append(batch_shares[j][1])
    stage_errors = [float(squared_errors(np.concatenate(k), truth).mean())
                    for k in stage_kernels]
    dc = [(float(np.concatenate(x).mean()), float(np.concatenate(y).mean()))
          for x, y in shares]
    rows = scale_rows([np.concatenate(k) for k in scale_kernels], truth, dc)
    fixed = float(fixed_kernel_errors(truth).mean())
    error = stage_errors[-1]
    oracle = float(squared_errors(gradient_quotient(pairs.y, pairs.x, net.kernel_size,
                                                    oracle_beta), truth).mean())
    return Result(net.kernel_size, net.architecture.kernel_sizes, model.n_stages, crop,
                  error, fixed, error / fixed, oracle, oracle_beta, dc[-1][0],
                  dc[-1][1], stage_errors, rows)


# --------------------------------------------------------------------------
# Refining a perturbed true kernel (--from-perturbed)
# --------------------------------------------------------------------------

def perturbed_starts(truth, kinds, *, seed):
    """Every pair's true kernel with random errors of ``kinds`` (fixed seed)."""
    rng = np.random.default_rng([seed, 7])
    n = len(truth)
    return np.stack([perturb_kernel(truth[i], rng, other=truth[(i + 1) % n],
                                    kinds=kinds) for i in range(n)])


def refinement_rows(model, pairs, *, seed):
    """How much the later stages improve a kernel with known errors.

    Stage 1 of the finest scale hands on the true kernel perturbed by
    :func:`refdeblur.training.teacher_forcing.perturb_kernel` instead of
    its own estimate (teacher forcing, derivations/network.md (N13)); the
    rows give the error of that start and of the kernels of stages 2, 3,
    ... that follow it: the errors a later stage can correct. One row per
    kind of error alone, and one for the mixture that ``--teacher-forcing``
    trains on.

    Returns
    -------
    list of (label, start error, [error after stage 2, ...])
    """
    return [(label, *errors_from_a_start(model, pairs,
                                         perturbed_starts(pairs.k, kinds, seed=seed)))
            for label, kinds in ([("mixture of 1-3", PERTURBATIONS)]
                                 + [(kind, (kind,)) for kind in PERTURBATIONS])]


def errors_from_a_start(model, pairs, starts):
    """The later stages' errors when stage 1 of the finest scale hands on ``starts``.

    Returns
    -------
    start_error : float
    later_errors : list of float
        After stage 2, 3, ... of the finest scale.
    """
    net = model.net
    later = [[] for _ in range(model.n_stages - 1)]
    for begin in range(0, len(pairs.y), BATCH_SIZE):
        batch = slice(begin, begin + BATCH_SIZE)
        forced = {0: (starts[batch], np.ones(len(starts[batch]), dtype=bool))}
        output, _ = net.forward_with_cache(pairs.y[batch], n_stages=model.n_stages,
                                           forced=forced)
        for s, kernel in enumerate(output.stage_kernels[-1][1:]):
            later[s].append(kernel)
    return (float(squared_errors(starts, pairs.k).mean()),
            [float(squared_errors(np.concatenate(k), pairs.k).mean()) for k in later])


def refinement_lines(label, rows):
    """The table of :func:`refinement_rows` for one model."""
    n_later = len(rows[0][2])
    lines = [f"\n#### {label}: the later stages from a perturbed true kernel\n",
             "| error kind | start (stage 1 forced) | "
             + " | ".join(f"after stage {s}" for s in range(2, n_later + 2)) + " |",
             "|---|---|" + "---|" * n_later]
    lines += [f"| {kind} | {start:.4f} | "
              + " | ".join(f"{error:.4f} ({error / start:.2f}x)" for error in errors) + " |"
              for kind, start, errors in rows]
    return lines


# --------------------------------------------------------------------------
# What the finest scale makes of a coarse answer (--handover)
# --------------------------------------------------------------------------

def handover_starts(model, pairs):
    """The starts of :func:`handover_rows`, each (N, m, m) at the finest scale.

    ``"coarser scale's answer"``: the kernel of the coarser scale's last
    stage, resized to the finest scale (what the finest scale would refine
    were the kernel handed over with the latent image); ``"ideal coarse
    answer"``: the true kernel resized to the coarser scale and back, the
    best a coarser scale can hand on; ``"true kernel"``, the only start of a
    network of one scale.
    """
    net = model.net
    size = net.kernel_size
    truth = {"true kernel": pairs.k.astype(net.dtype)}
    if len(net.architecture.kernel_sizes) == 1:
        return truth
    coarse_size = net.architecture.kernel_sizes[-2]
    coarse = []
    for begin in range(0, len(pairs.y), BATCH_SIZE):
        output = net.forward(pairs.y[begin:begin + BATCH_SIZE], n_stages=model.n_stages)
        coarse.append(output.stage_kernels[-2][-1])
    return {
        "coarser scale's answer": np.stack([resize_kernel(k, size)
                                            for k in np.concatenate(coarse)]),
        "ideal coarse answer": np.stack([resize_kernel(resize_kernel(k, coarse_size), size)
                                         for k in pairs.k]).astype(net.dtype),
        **truth,
    }


def handover_rows(model, pairs):
    """The finest scale's later stages from a coarse answer handed to stage 1.

    A finer scale of the paper's layout receives only the coarser scale's
    latent image, and its first stage estimates the kernel afresh. Here
    stage 1 of the finest scale hands on a given kernel instead of its own
    (teacher forcing, derivations/network.md (N13)), and the rows give the
    errors of the later stages from it: how much of a coarse answer the
    finest scale keeps, and how much a perfect coarse scale would leave to
    the finest scale (the ideal coarse answer's error is the loss of the
    resizing alone); and from the true kernel, what the later stages keep
    of a perfect start. For networks of more than one stage.

    Returns
    -------
    list of (label, start error, [error after stage 2, ...])
    """
    return [(label, *errors_from_a_start(model, pairs, starts))
            for label, starts in handover_starts(model, pairs).items()]


def handover_lines(label, rows, fixed):
    """The table of :func:`handover_rows`, errors with their ratio to ``fixed``."""
    n_later = len(rows[0][2])

    def cell(error):
        return f"{error:.4f} ({error / fixed:.3f})"

    lines = [f"\n#### {label}: the finest scale's later stages from a coarse answer "
             "(ratio to the best fixed kernel)\n",
             "| stage 1 hands on | start | "
             + " | ".join(f"after stage {s}" for s in range(2, n_later + 2)) + " |",
             "|---|---|" + "---|" * n_later]
    lines += [f"| {kind} | {cell(start)} | " + " | ".join(cell(e) for e in errors) + " |"
              for kind, start, errors in rows]
    return lines


# --------------------------------------------------------------------------
# References (--references)
# --------------------------------------------------------------------------

def fixed_gradient_network(trained):
    """The trained network's architecture with fixed linear gradient features.

    Filters fixed to horizontal and vertical differences of the blurry and
    latent images and identity recombinations: the classical alternation of
    Eq. 4 and Eq. 5 on gradient features (the paper's Fig. 5 comparison),
    with the trained network's beta_x.
    """
    arch = trained.architecture
    net = build_network(arch.kernel_size, rng=np.random.default_rng(0),
                        **arch.to_dict())
    params = {name: np.zeros_like(value, dtype=np.float64)
              for name, value in net.params.items()}
    small = 0.01        # keeps both tanh layers in their linear range
    for stages in net.scales:
        for stage in stages:
            prefix = stage.prefix
            weight = params[f"{prefix}conv.weight"]
            centre = weight.shape[-1] // 2
            for channel in range(stage.in_channels):
                horizontal, vertical = 2 * channel, 2 * channel + 1
                weight[horizontal, channel, centre, centre] = -small
                weight[horizontal, channel, centre, centre + 1] = small
                weight[vertical, channel, centre, centre] = -small
                weight[vertical, channel, centre + 1, centre] = small
            recombine1 = params[f"{prefix}recombine1.weight"]
            recombine1[:4, :4] = np.eye(4)[:recombine1.shape[0], :4]
            recombine2 = params[f"{prefix}recombine2.weight"]
            sharp_source = 2 if stage.in_channels == 2 else 0
            for pair in range(stage.n_pairs):
                direction = pair % 2
                recombine2[pair, sharp_source + direction] = 1 / small
                recombine2[stage.n_pairs + pair, direction] = 1 / small
            name = f"{prefix}image_quotient.log_beta"
            params[name] = np.asarray(trained.params[name], dtype=np.float64)
    return Network(arch, params).astype(trained.dtype)


def best_gaussian_error(kernels):
    """Error of the best isotropic Gaussian blob (sigma on a grid of 40)."""
    size = kernels.shape[-1]
    best = np.inf
    for sigma in np.linspace(0.5, size / 4, 40):
        blob = gaussian_filter(delta_kernel(size), sigma)
        blob /= blob.sum()
        best = min(best, float(squared_errors(blob, kernels).mean()))
    return best


def reference_rows(model, pairs, result):
    """``(label, mean, median)`` of the trained network and the references."""
    net = model.net
    truth = pairs.k
    seed = training_config(model.header).get("seed", 0)
    untrained = build_network(net.kernel_size, rng=np.random.default_rng(seed),
                              dtype=net.dtype, **net.architecture.to_dict())

    def network_errors(network):
        kernels = [predict_recording(network, pairs.y[start:start + BATCH_SIZE],
                                     model.n_stages)[0].kernel
                   for start in range(0, len(pairs.y), BATCH_SIZE)]
        return squared_errors(np.concatenate(kernels), truth)

    def summary(label, errors):
        return label, float(np.mean(errors)), float(np.median(errors))

    paper_oracle = gradient_quotient(pairs.y, pairs.x, net.kernel_size, 1e-4)
    sharp_oracle = gradient_quotient(pairs.y, pairs.x, net.kernel_size,
                                     result.oracle_beta)
    return [
        summary("trained", network_errors(net)),
        summary("untrained (initialisation)", network_errors(untrained)),
        summary("fixed gradient features", network_errors(fixed_gradient_network(net))),
        summary("delta kernel", squared_errors(delta_kernel(net.kernel_size), truth)),
        summary("oracle: best fixed kernel (mean of the truths)",
                fixed_kernel_errors(truth)),
        ("oracle: best isotropic Gaussian", best_gaussian_error(truth), np.nan),
        summary("oracle: Eq. 4 on the true sharp image's gradients, β_k = 1e-4",
                squared_errors(paper_oracle, truth)),
        summary(f"oracle: Eq. 4 on the true sharp image's gradients, "
                f"β_k = {result.oracle_beta:g}", squared_errors(sharp_oracle, truth)),
    ]


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------

def percent(share):
    return f"{100 * share:.0f} %"


def comparison_header(oracle_beta=ORACLE_BETA):
    """The two header lines of the comparison table."""
    columns = list(COMPARISON_COLUMNS)
    columns[columns.index("oracle")] = f"oracle β_k = {oracle_beta:g}"
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def comparison_row(label, result):
    """One model's row of the comparison table."""
    cells = [label, str(result.kernel_size),
             ", ".join(str(m) for m in result.scales), str(result.n_stages),
             str(result.crop), f"{result.error:.4f}", f"{result.fixed:.4f}",
             f"{result.ratio:.3f}", f"{result.oracle:.4f}",
             f"{percent(result.dc_sharp)} / {percent(result.dc_blurry)}"]
    return "| " + " | ".join(cells) + " |"


def detail_lines(label, result):
    """The per-stage and per-scale tables of one model."""
    lines = [f"\n### {label}: {result.kernel_size} px, crop {result.crop}\n",
             "| stages run (finest scale) | error | ratio to best fixed kernel |",
             "|---|---|---|"]
    lines += [f"| {s} | {error:.4f} | {error / result.fixed:.3f} |"
              for s, error in enumerate(result.stage_errors, start=1)]
    lines += ["", "| scale | kernel px | error vs resized truth | best fixed kernel "
              "| ratio | coarser scale's kernel resized | DC share x̃ / ỹ (last stage) |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {j} | {row.kernel_size} | {row.error:.4f} | {row.fixed:.4f} | "
              f"{row.ratio:.3f} | "
              + ("–" if math.isnan(row.upsampled) else f"{row.upsampled:.4f}")
              + f" | {percent(row.dc_sharp)} / {percent(row.dc_blurry)} |"
              for j, row in enumerate(result.scale_rows, start=1)]
    return lines


def reference_lines(rows):
    lines = ["", "| estimator | mean kernel error | median |", "|---|---|---|"]
    lines += [f"| {label} | {mean:.4f} | {median:.4f} |" for label, mean, median in rows]
    return lines


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def fail(message):
    """Stop with one line on stderr and exit status 2."""
    print(f"bench_learning.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, nargs="+", default=[],
                        help="model files or training checkpoints (any kernel size)")
    parser.add_argument("--kernel-sizes", type=int, nargs="+", default=None,
                        help="shipped networks to evaluate (default: 17 25 33 "
                             "when no --model is given)")
    parser.add_argument("--images", type=Path,
                        default=Path(os.environ.get("REFDEBLUR_TRAIN_DATA",
                                                    "../shared/data/train")),
                        help="training images (default: $REFDEBLUR_TRAIN_DATA or "
                             "../shared/data/train)")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 pairs (smoke run)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--oracle-beta", type=float, default=ORACLE_BETA)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="precision of the networks (float32 is the "
                             "deblurring path and faster)")
    parser.add_argument("--references", action="store_true",
                        help="also the untrained network, fixed gradient features, "
                             "a delta kernel, the best Gaussian, the β_k = 1e-4 oracle")
    parser.add_argument("--from-perturbed", action="store_true",
                        help="also the later stages' errors when stage 1 hands on the "
                             "true kernel with random errors (teacher forcing's test)")
    parser.add_argument("--handover", action="store_true",
                        help="also the finest scale's later stages when stage 1 hands "
                             "on the coarser scale's answer, the ideal coarse answer "
                             "(networks of several scales) or the true kernel")
    parser.add_argument("--markdown-only", action="store_true",
                        help="print only the comparison table")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs = 20
    if args.pairs < 1:
        fail(f"--pairs must be positive, got {args.pairs}")
    if args.crop < 8:
        fail(f"--crop must be at least 8, got {args.crop}")
    if not args.oracle_beta > 0:
        fail(f"--oracle-beta must be positive, got {args.oracle_beta}")
    if not args.images.is_dir():
        fail(f"--images: no such folder: {args.images}")
    if args.kernel_sizes is None:
        args.kernel_sizes = [] if args.model else list(SHIPPED_KERNEL_SIZES)
    return args


def model_paths(args):
    """The shipped networks of ``--kernel-sizes``, then the ``--model`` files."""
    paths = []
    for size in args.kernel_sizes:
        try:
            paths.append(shipped_model_path(size))
        except ValueError as error:
            fail(f"--kernel-sizes: {error}")
    return paths + list(args.model)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    dtype = np.dtype(args.dtype)
    models = []
    for path in model_paths(args):
        try:
            models.append(load_model_info(path, dtype))
        except (OSError, ValueError, KeyError) as error:
            fail(f"--model: {error}")
    for model in models:
        for note in protocol_notes(model, args.seed):
            print(note, file=sys.stderr)
        if args.crop < model.net.min_image_size():
            fail(f"--crop {args.crop} is too small for {model.label} "
                 f"(needs {model.net.min_image_size()} px)")
    try:
        paths = held_out_paths(args.images)
    except ValueError as error:
        fail(f"--images: {error}")
    images = load_gray_images(paths)
    pairs = {}
    results = []
    for model in models:
        size = model.net.kernel_size
        if size not in pairs:
            try:
                pairs[size] = protocol_pairs(images, args.pairs, args.crop, size,
                                             seed=args.seed)
            except ValueError as error:
                fail(f"--images: {error}")
        started = time.perf_counter()
        result = evaluate(model, pairs[size], crop=args.crop,
                          oracle_beta=args.oracle_beta)
        references = (reference_rows(model, pairs[size], result)
                      if args.references else None)
        refinements = (refinement_rows(model, pairs[size], seed=args.seed)
                       if args.from_perturbed and model.n_stages > 1 else None)
        handovers = (handover_rows(model, pairs[size])
                     if args.handover and model.n_stages > 1 else None)
        results.append((model, result, references, refinements, handovers,
                        time.perf_counter() - started))
    if not args.markdown_only:
        command = "python benchmarks/bench_learning.py " + shlex.join(argv)
        print(f"$ {command}\n")
        print(f"{args.pairs} pairs from the {len(paths)} held-out images of "
              f"{args.images} (seed {args.seed}), crop {args.crop}, noise "
              f"{NOISE_STD}, networks in {args.dtype}; error = mean "
              f"||k - k_true||^2, ratio = error / best fixed kernel\n")
    for line in comparison_header(args.oracle_beta):
        print(line)
    for model, result, *_ in results:
        print(comparison_row(model.label, result))
    if args.markdown_only:
        return
    for model, result, references, refinements, handovers, seconds in results:
        for line in detail_lines(model.label, result):
            print(line)
        if references is not None:
            for line in reference_lines(references):
                print(line)
        if refinements is not None:
            for line in refinement_lines(model.label, refinements):
                print(line)
        if handovers is not None:
            for line in handover_lines(model.label, handovers, result.fixed):
                print(line)
        print(f"\n({seconds:.0f} s)")


if __name__ == "__main__":
    main()
