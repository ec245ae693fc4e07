"""Choose the kernel refinement's parameters: synthetic pairs first, Levin second.

Run ``python benchmarks/kernel_refinement_tuning.py --images
../shared/data/train --levin ../shared/data/levin2009 [--pairs 10]
[--config support_dilation=1 --config support_dilation=2,n_iter=10 ...]``.

For the network's kernel alone and for each configuration of the
refinement (:func:`refdeblur.kernel_refinement.refine_coarse_to_fine`, the
default of inference step 6b, or with ``coarse_to_fine=0`` the finest scale
only, :func:`refdeblur.kernel_refinement.refine_kernel`) it prints the error ratio
(Levin et al.'s protocol: SSD of the deconvolution with the estimate over
the SSD with the true kernel, the same non-blind deconvolution as
``refdeblur bench levin``) as mean, count at ER <= 3 and count at ER <= 2:

* on ``--pairs`` synthetic pairs per kernel size (17 and 25 px) made from
  the 60 images that training held out (256 px crops, noise 0.01, seed
  777, so neither the training validation set nor bench_learning's pairs),
  each with the shipped network of that size (``--sizes``, default 17 and
  25): **the parameters are chosen here**;
* on Levin et al.'s 32 cases with the shipped network the ``auto`` rule
  picks: reported, not tuned on.

derivations/kernel_refinement.md (§4) records the result.
"""

import argparse
import csv
import time
import warnings
from pathlib import Path

import refdeblur  # noqa: F401  (first: it limits OpenBLAS to one thread before NumPy loads)
import numpy as np

from refdeblur.bench_levin import (_available_shipped_sizes, _deconvolve, _image_scores,
                                   _load_case, choose_kernel_size)
from refdeblur.cli import _validation_split
from refdeblur.image_io import find_images
from refdeblur.inference import network_kernels
from refdeblur.kernel_refinement import (REFINEMENT_DEFAULTS, refine_coarse_to_fine,
                                         refine_kernel, resize_kernel)
from refdeblur.models import load_shipped_model
from refdeblur.training_data import load_gray_images, validation_set


#: Keys of ``--config`` besides refine_kernel's parameters: how the scales of
#: a multi-scale network are used (derivations/kernel_refinement.md, §5).
#: ``coarse_to_fine=0`` refines the finest scale's kernel at the finest scale
#: only (session 6); ``coarsest_start=1`` (with ``coarse_to_fine=0``) starts
#: that from the coarsest scale's kernel resized to the finest size.
SCALE_KEYS = ("coarse_to_fine", "coarsest_start")


def parse_config(text):
    """``"a=1,b=0.5"`` -> ``{"a": 1, "b": 0.5}`` (ints stay ints)."""
    config = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        if key not in REFINEMENT_DEFAULTS and key not in SCALE_KEYS:
            raise SystemExit(f"unknown refinement parameter {key!r}; "
                             f"known: {', '.join((*REFINEMENT_DEFAULTS, *SCALE_KEYS))}")
        config[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return config


def refine(blurry, scale_kernels, config):
    """The refined kernel of one configuration (as inference step 6b does it)."""
    config = dict(config)
    coarse_to_fine = config.pop("coarse_to_fine", 1)
    coarsest_start = config.pop("coarsest_start", 0)
    if coarse_to_fine:
        sizes = [k.shape[0] for k in scale_kernels]
        return refine_coarse_to_fine(blurry, scale_kernels[0], sizes, **config)
    start = scale_kernels[-1]
    if coarsest_start:
        start = resize_kernel(scale_kernels[0], start.shape[0])
    return refine_kernel(blurry, start, **config)


def error_ratio(blurry, sharp, kernel, ssd_true):
    return _image_scores(_deconvolve(blurry, kernel), sharp)["ssd"] / ssd_true


def cases_synthetic(images_dir, pairs, sizes):
    """``(label, blurry, sharp, true kernel, network size)`` of the synthetic pairs."""
    _, held_out = _validation_split(find_images(images_dir), 60)
    for size in sizes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            images = load_gray_images(held_out, min_size=256 + size - 1)
        data = validation_set(images, pairs, 256, size, seed=777, noise_std=0.01)
        for i in range(pairs):
            yield f"synthetic {size} px", data.y[i], data.x[i], data.k[i], size


def cases_levin(levin_dir):
    with open(Path(levin_dir) / "index.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    available = _available_shipped_sizes()
    for row in rows:
        blurry, sharp, true_kernel = _load_case(levin_dir, row)
        yield ("Levin 32 cases", blurry, sharp, true_kernel,
               choose_kernel_size(true_kernel.shape[0], available))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--levin", type=Path, default=None)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[17, 25])
    parser.add_argument("--config", action="append", default=[],
                        help="refinement parameters, e.g. support_dilation=2,n_iter=10 "
                             "(repeat for several; the defaults are always run)")
    args = parser.parse_args(argv)
    configs = [("network alone", None), ("refined, defaults", {})]
    configs += [(f"refined, {text}", parse_config(text)) for text in args.config]
    networks = {}
    scores = {}           # (set, config label) -> list of ER
    seconds = {label: 0.0 for label, _ in configs}
    sources = [cases_synthetic(args.images, args.pairs, args.sizes)]
    if args.levin is not None:
        sources.append(cases_levin(args.levin))
    for source in sources:
        for set_label, blurry, sharp, true_kernel, size in source:
            if size not in networks:
                networks[size] = load_shipped_model(size)
            # The whole image is the window (<= 1024 px), as in estimate_kernel.
            net = networks[size]
            scale_kernels = network_kernels(net.forward(blurry.astype(net.dtype)))
            network_kernel = scale_kernels[-1]
            ssd_true = _image_scores(_deconvolve(blurry, true_kernel), sharp)["ssd"]
            for label, config in configs:
                start = time.perf_counter()
                kernel = (network_kernel if config is None
                          else refine(blurry, scale_kernels, config))
                seconds[label] += time.perf_counter() - start
                scores.setdefault((set_label, label), []).append(
                    error_ratio(blurry, sharp, kernel, ssd_true))
    print(f"\nrefinement defaults: {REFINEMENT_DEFAULTS}\n")
    print("| cases | kernel | mean ER | ER ≤ 3 | ER ≤ 2 | n |")
    print("|---|---|---|---|---|---|")
    for (set_label, label), values in scores.items():
        values = np.array(values)
        print(f"| {set_label} | {label} | {values.mean():.2f} | {int((values <= 3).sum())} "
              f"| {int((values <= 2).sum())} | {values.size} |")
    print("\nrefinement time, all cases: " + ", ".join(
        f"{label} {value:.0f} s" for label, value in seconds.items() if value > 0.05))


if __name__ == "__main__":
    main()
