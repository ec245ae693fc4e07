"""A generic network against a condition-specific one (the paper's §6.1–6.2).

Run ``python benchmarks/bench_specific.py --specific MODEL`` (a model file or
a training checkpoint, e.g. of ``refdeblur train --init k17 --noise-std
0.05``), ``--condition text`` for a network fine-tuned on documents
(``--content text``); ``--quick`` takes 6 pairs per noise level.

The cases, fixed by ``--seed`` (default 777):

* ``--condition noise`` (default): the images that ``refdeblur train``
  holds out of the sorted ``--images`` folder (60,
  :func:`refdeblur.training.data.validation_split`), crops of ``--side``
  px (default 255), not flat (:func:`refdeblur.training.data.is_flat`),
  blurred by camera shake sampled at sizes that fit the network (11 to
  17 px for 17 px, :func:`refdeblur.sample_kernel`), then Gaussian noise
  of each of ``--noise-levels`` (default 0.01, 0.02, 0.03, 0.05). Every level
  has the same sharp crops and kernels; only the noise differs.
* ``--condition text``: the same with synthetic document pages
  (:func:`refdeblur.training.documents.document_images`, 512 px, one page
  per pair) instead of photos, noise 0.01 by default. The pages come from
  the generator ``[seed, 5]``: a text training run draws its training
  pages from ``[run seed, 3]`` and its validation pages from
  ``[run seed, 4]``, and no training generator ends in 5, so whatever the
  run's seed, these pages are none of those it trained or validated on.
  A second table scores the same rows on crops of scikit-image's ``text``
  photo (printed text on a sign; public domain), blurred alike.

Rows, each deconvolved by the same non-blind step
(:func:`refdeblur.evaluation.levin.deconvolve_for_benchmark`: hyper-Laplacian,
noise estimated from the image) and scored alike (Levin et al.'s protocol,
:func:`refdeblur.evaluation.levin.image_scores`): no deblurring (a delta
kernel), the generic network alone (``refine=False``), the specific network
alone, the generic network + refinement (the default for photos with little
noise), the specific network + refinement (these four with ``noise="low"``,
which leaves ``refine`` as given), refdeblur's default (``estimate_kernel``
with no model: the shipped networks and ``noise="auto"``, which takes the
shipped high-noise network without refinement for photos whose estimated
noise is at least ``HIGH_NOISE_STD``; for documents with
``content="text"``, the shipped document network), and the true kernel. Columns: mean
PSNR up to shift, mean kernel error ``||k - k_true||²`` up to shift
(:func:`refdeblur.metrics.kernel_error_up_to_shift`), median error ratio ER
(SSD over the true kernel's SSD), the count of cases at ER ≤ 3, the
warnings that the kernel reaches its window's border (all false: every
true kernel fits), then the seconds per estimate. A last table gives the mean PSNR of every row at
every level.

A training checkpoint runs the stages that its run trains at its step (all
the parent's for a fine-tuning run, ``refdeblur train --init``); the header
names both models with the SHA-256 prefix of their files and the step of a
checkpoint.
"""

import argparse
import dataclasses
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from _bench_common import print_table  # this folder
from refdeblur import DeblurWarning, estimate_kernel, sample_kernel
from refdeblur.evaluation import levin
from refdeblur.image_io import find_images
from refdeblur.kernels import delta_kernel
from refdeblur.metrics import kernel_error_up_to_shift
from refdeblur.model_io import read_model_file
from refdeblur.models import SHIPPED_KERNEL_SIZES, model_sha256, shipped_model_path
from refdeblur.network import Network
from refdeblur.training.data import (add_noise, blur_valid, is_flat, load_gray_images,
                                     validation_split)
from refdeblur.training.documents import document_images
from refdeblur.training.schedule import phase_at, stagewise_schedule

#: Images held out of training (``refdeblur train --validation-images``).
HELD_OUT_IMAGES = 60
#: Side of the synthetic document pages (that of ``--content text`` training).
PAGE_SIZE = 512
#: Last element of the page generator's seed; training uses 3 and 4.
PAGE_STREAM = 5
#: Side of the crops of scikit-image's ``text`` photo (172 px high), which
#: leaves room for the 'valid' blur of a 17 px kernel (less for larger ones).
REAL_TEXT_SIDE = 150
#: Crops drawn per pair before a flat one is accepted anyway.
MAX_ATTEMPTS = 100
DEFAULT_NOISE = {"noise": (0.01, 0.02, 0.03, 0.05), "text": (0.01,)}
CONTENT = {"noise": "held-out photos", "text": "synthetic documents"}

ROWS = ("no deblurring (delta kernel)", "generic network alone", "specific network alone",
        "generic network + refinement (noise='low')", "specific network + refinement",
        "default: shipped networks, noise='auto', content as the cases", "true kernel")
TRUE_ROW = ROWS[-1]


@dataclasses.dataclass
class Case:
    """One sharp crop and its blur, before noise."""

    sharp: np.ndarray       # (side, side)
    blurred: np.ndarray     # noise-free blurry crop, aligned with ``sharp``
    kernel: np.ndarray      # the true kernel padded to the network's size


@dataclasses.dataclass
class LoadedModel:
    """A network and the words that name it in the header."""

    net: Network
    description: str


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

def trained_stages(net, header):
    """Stages of the finest scale that a model file's training has trained.

    A model file runs its ``inference_stages`` (or all). A training
    checkpoint runs those of its run's phase at its step, as the run
    itself does: a fine-tuning run (``init_model``) trains the stages its
    parent runs from step 0; a run from scratch grows them stage by stage,
    and the later ones are still untrained.
    """
    arch = net.architecture
    state = header.get("metadata", {}).get("training_state")
    if state is None or state.get("config", {}).get("init_model"):
        return arch.inference_stages or arch.n_stages
    config = state["config"]
    n_scales = len(arch.kernel_sizes)
    phases = stagewise_schedule(
        config["stage_steps"], config["frozen_steps"], arch.n_stages, f"scale{n_scales}.",
        train_coarse_at_end=config.get("train_coarse_at_end", False),
        coarse_prefixes=tuple(f"scale{j}." for j in range(1, n_scales)))
    return phase_at(phases, int(state["step"])).n_stages


def with_stages(net, n_stages):
    """``net`` running ``n_stages`` stages of its finest scale at inference."""
    if n_stages == (net.architecture.inference_stages or net.architecture.n_stages):
        return net
    return Network(dataclasses.replace(net.architecture, inference_stages=n_stages),
                   net.params)


def load_network(path):
    """A model file or checkpoint as float32 network, with its description.

    Raises
    ------
    FileNotFoundError, ValueError
        If ``path`` is not a readable model file.
    """
    net, header, _ = read_model_file(path)
    n_stages = trained_stages(net, header)
    state = header.get("metadata", {}).get("training_state")
    words = [str(path), f"sha256 {model_sha256(path)[:12]}", f"{net.kernel_size} px"]
    if state is not None:
        config = state.get("config", {})
        words.append(f"training checkpoint at step {int(state['step']):,}")
        words.append(f"noise_std {config.get('noise_std')}, content "
                     f"{config.get('content', 'natural')}")
        if config.get("init_model"):
            words.append(f"fine-tuned from {config['init_model']}")
    words.append(f"{n_stages} stage(s) at the finest scale")
    return LoadedModel(with_stages(net, n_stages).astype(np.float32), "; ".join(words))


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

def blur_sizes(kernel_size):
    """Sizes of the sampled shake for a network: its size and the three below."""
    return tuple(range(max(3, kernel_size - 6), kernel_size + 1, 2))


def held_out_images(folder, min_size):
    """The grey images that ``refdeblur train`` holds out of ``folder``."""
    paths = sorted(find_images(folder))
    if len(paths) < 2:
        raise ValueError(f"{folder} has {len(paths)} images; the held-out split of "
                         f"refdeblur train needs at least two")
    _, held_out = validation_split(paths, HELD_OUT_IMAGES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # images too small are skipped
        images = load_gray_images(held_out, min_size=min_size)
    if not images:
        raise ValueError(f"no held-out image of {folder} has {min_size} px per side")
    return images


def document_pages(n, seed):
    """``n`` synthetic pages from the generator ``[seed, PAGE_STREAM]``."""
    return document_images(n, (PAGE_SIZE, PAGE_SIZE), np.random.default_rng([seed, PAGE_STREAM]))


def draw_cases(images, n, side, kernel_size, rng, *, one_per_image=False):
    """``n`` sharp crops (not flat, when one can be found) and their blurs.

    With ``one_per_image`` the i-th case comes from ``images[i]``, else
    from an image drawn at random.
    """
    sizes = blur_sizes(kernel_size)
    cases = []
    for i in range(n):
        size = sizes[i % len(sizes)]
        patch_side = side + size - 1
        for _ in range(MAX_ATTEMPTS):
            image = images[i] if one_per_image else images[rng.integers(len(images))]
            top = rng.integers(image.shape[0] - patch_side + 1)
            left = rng.integers(image.shape[1] - patch_side + 1)
            patch = image[top:top + patch_side, left:left + patch_side]
            sharp = patch[size // 2:size // 2 + side, size // 2:size // 2 + side]
            if not is_flat(sharp):
                break
        true = sample_kernel(size, rng)
        padded = np.pad(true, (kernel_size - size) // 2)
        cases.append(Case(sharp, blur_valid(patch, true), padded))
    return cases


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------

def estimates(blurry, true_kernel, generic, specific, content="natural"):
    """Row label -> (kernel, seconds of its estimate or NaN, border warnings).

    ``content`` is what the default row tells :func:`estimate_kernel`.
    """
    size = true_kernel.shape[0]
    kernels = {ROWS[0]: (delta_kernel(size), np.nan, 0), TRUE_ROW: (true_kernel, np.nan, 0)}
    # noise="low" keeps each row's refine as given; the default row decides
    # the condition from the image, as refdeblur deblur does.
    for label, net, options in (
            (ROWS[1], generic, dict(refine=False, noise="low")),
            (ROWS[2], specific, dict(refine=False, noise="low")),
            (ROWS[3], generic, dict(refine=True, noise="low")),
            (ROWS[4], specific, dict(refine=True, noise="low")),
            (ROWS[5], None, dict(content=content))):
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeblurWarning)
            kernel = estimate_kernel(blurry, size, model=net, **options)
        border = sum("border" in str(w.message) for w in caught
                     if issubclass(w.category, DeblurWarning))
        kernels[label] = (kernel, time.perf_counter() - started, border)
    return kernels


def score_level(cases, noise_std, rng, generic, specific, content="natural"):
    """Per row: arrays of PSNR, kernel error, SSD and seconds over the cases."""
    results = {label: {"psnr": [], "kernel_error": [], "ssd": [], "seconds": [],
                       "warnings": []}
               for label in ROWS}
    for case in cases:
        blurry = add_noise(case.blurred, noise_std, rng)
        for label, (kernel, seconds, border) in estimates(blurry, case.kernel, generic,
                                                          specific, content).items():
            scores = levin.image_scores(levin.deconvolve_for_benchmark(blurry, kernel),
                                        case.sharp)
            row = results[label]
            row["psnr"].append(scores["psnr_db"])
            row["ssd"].append(scores["ssd"])
            row["kernel_error"].append(kernel_error_up_to_shift(kernel, case.kernel))
            row["seconds"].append(seconds)
            row["warnings"].append(border)
    return {label: {key: np.array(values) for key, values in row.items()}
            for label, row in results.items()}


def level_rows(results):
    """Formatted table rows of one noise level."""
    ssd_true = np.maximum(results[TRUE_ROW]["ssd"], np.finfo(float).tiny)
    rows = []
    for label in ROWS:
        row = results[label]
        ratios = row["ssd"] / ssd_true
        seconds = row["seconds"]
        rows.append([label, f"{row['psnr'].mean():.2f}", f"{row['kernel_error'].mean():.5f}",
                     f"{np.median(ratios):.2f}", str(int(np.sum(ratios <= 3))),
                     str(int(np.sum(row["warnings"]))),
                     "–" if np.all(np.isnan(seconds)) else f"{np.nanmean(seconds):.2f}"])
    return rows


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def parse_levels(text):
    """``"0.01,0.03"`` -> (0.01, 0.03); argparse type."""
    try:
        levels = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}")
    if not levels or any(not np.isfinite(v) or v < 0 for v in levels):
        raise argparse.ArgumentTypeError(f"noise levels must be finite and >= 0: {text!r}")
    return levels


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specific", required=True,
                        help="the condition-specific network: a model file or a training "
                             "checkpoint")
    parser.add_argument("--generic", default=None,
                        help="the generic network (default: the shipped one of --kernel-size)")
    parser.add_argument("--kernel-size", type=int, default=17,
                        help="kernel size of both networks (default: %(default)s)")
    parser.add_argument("--condition", choices=("noise", "text"), default="noise",
                        help="held-out photos or synthetic documents (default: %(default)s)")
    parser.add_argument("--images", default=os.environ.get("REFDEBLUR_TRAIN_DATA"),
                        help="training images, for --condition noise (default: "
                             "$REFDEBLUR_TRAIN_DATA)")
    parser.add_argument("--noise-levels", type=parse_levels, default=None,
                        help="comma-separated noise standard deviations (default: "
                             "0.01,0.02,0.03,0.05 for noise, 0.01 for text)")
    parser.add_argument("--pairs", type=int, default=None,
                        help="pairs per noise level (default: 24, or 6 with --quick)")
    parser.add_argument("--side", type=int, default=255,
                        help="side of the crops in px (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=777, help="seed (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="6 pairs per noise level")
    return parser


def check_arguments(parser, args):
    """Refuse bad input with one line (parser.error exits with status 2)."""
    if args.condition == "noise" and not args.images:
        parser.error("--condition noise needs --images (or $REFDEBLUR_TRAIN_DATA)")
    if args.condition == "noise" and not Path(args.images).is_dir():
        parser.error(f"--images: not a folder: {args.images}")
    if args.pairs is not None and args.pairs < 1:
        parser.error("--pairs must be at least 1")
    if args.side < 2 * args.kernel_size:
        parser.error(f"--side must be at least {2 * args.kernel_size} px for "
                     f"{args.kernel_size} px kernels")
    if args.generic is None and args.kernel_size not in SHIPPED_KERNEL_SIZES:
        parser.error(f"no shipped network of {args.kernel_size} px; give --generic")


def load_models(parser, args):
    """(generic, specific) LoadedModel, both of ``--kernel-size``."""
    generic_path = args.generic or shipped_model_path(args.kernel_size)
    models = []
    for option, path in (("--generic", generic_path), ("--specific", args.specific)):
        try:
            model = load_network(path)
        except (FileNotFoundError, ValueError) as error:
            parser.error(f"{option}: {error}")
        if model.net.kernel_size != args.kernel_size:
            parser.error(f"{option}: {path} is a {model.net.kernel_size} px network, "
                         f"--kernel-size is {args.kernel_size}")
        models.append(model)
    return models


def make_cases(parser, args, n_pairs):
    """The sharp crops and blurs of the condition, and a line saying where they come from."""
    rng = np.random.default_rng(args.seed)
    patch_side = args.side + args.kernel_size - 1
    if args.condition == "text":
        if patch_side > PAGE_SIZE:
            parser.error(f"--side {args.side} does not fit {PAGE_SIZE} px document pages")
        pages = document_pages(n_pairs, args.seed)
        return (draw_cases(pages, n_pairs, args.side, args.kernel_size, rng,
                           one_per_image=True),
                f"{n_pairs} synthetic document pages of {PAGE_SIZE} px from the generator "
                f"[{args.seed}, {PAGE_STREAM}] (training uses [run seed, 3] and [run seed, 4])")
    try:
        images = held_out_images(args.images, patch_side)
    except ValueError as error:
        parser.error(f"--images: {error}")
    return (draw_cases(images, n_pairs, args.side, args.kernel_size, rng),
            f"{len(images)} usable held-out images of {args.images} "
            f"(the validation split of refdeblur train, {HELD_OUT_IMAGES} held out)")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    n_pairs = args.pairs or (6 if args.quick else 24)
    levels = args.noise_levels or DEFAULT_NOISE[args.condition]
    generic, specific = load_models(parser, args)
    cases, source = make_cases(parser, args, n_pairs)

    command = shlex.join(["python", "benchmarks/bench_specific.py",
                          *(sys.argv[1:] if argv is None else argv)])
    print(f"# Generic against {args.condition}-specific network ({args.kernel_size} px)")
    print(f"\ncommand: `{command}`  ")
    print(f"generic: {generic.description}  ")
    print(f"specific: {specific.description}  ")
    print(f"cases: {n_pairs} crops of {args.side} px per level, {source}; camera shake of "
          f"{', '.join(map(str, blur_sizes(args.kernel_size)))} px; seed {args.seed}  ")
    print(f"load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")

    header = ["row", "PSNR (dB)", "kernel error", "median ER", f"ER ≤ 3 (of {n_pairs})",
              "border warnings", "s / estimate"]
    psnr_by_level = {}
    for index, noise_std in enumerate(levels):
        rng = np.random.default_rng([args.seed, index])    # the noise of this level
        results = score_level(cases, noise_std, rng, generic.net, specific.net,
                              "text" if args.condition == "text" else "natural")
        psnr_by_level[noise_std] = {label: results[label]["psnr"].mean() for label in ROWS}
        print_table(f"{CONTENT[args.condition]}, noise {noise_std:g}", header, level_rows(results))
        print(f"  noise {noise_std:g}: done", file=sys.stderr, flush=True)
    print_table("PSNR (dB) per noise level", ["row"] + [f"noise {v:g}" for v in levels],
                [[label] + [f"{psnr_by_level[v][label]:.2f}" for v in levels]
                 for label in ROWS],
                note="PSNR and kernel error up to shift (Levin et al.'s protocol, "
                     "refdeblur bench levin); ER: SSD over the true kernel's SSD; every "
                     "row deconvolved by the same hyper-Laplacian step, noise estimated "
                     "from the image. Seconds: the estimate, in this run.")
    if args.condition == "text":
        real_text_photo(args, n_pairs, header, generic.net, specific.net)
    return 0


def real_text_photo(args, n_pairs, header, generic, specific):
    """The same rows on scikit-image's ``text`` photo (public domain), blurred.

    A photo of printed text on a sign (172 x 448 px), the one openly
    licensed photo of text that the project's dependencies ship; its
    crops of ``REAL_TEXT_SIDE`` px are blurred as the pages are, at the
    first noise level.
    """
    from skimage import data
    photo = data.text().astype(np.float64) / 255.0
    side = min(REAL_TEXT_SIDE, photo.shape[0] - args.kernel_size + 1)
    rng = np.random.default_rng([args.seed, 6])
    cases = draw_cases([photo], n_pairs, side, args.kernel_size, rng)
    levels = args.noise_levels or DEFAULT_NOISE[args.condition]
    results = score_level(cases, levels[0], rng, generic, specific, "text")
    print_table(f"scikit-image's text photo (public domain), {n_pairs} crops of "
                f"{side} px, noise {levels[0]:g}", header, level_rows(results))


if __name__ == "__main__":
    sys.exit(main())
