"""Does the finest scale of a multi-scale network help? Full network against its coarse scale.

Run ``python benchmarks/diagnose_scales.py --images ../shared/data/train
[--levin ../shared/data/levin2009] [MODEL ...]`` (default: the shipped 25
and 33 px networks). For every model it prints the mean squared kernel
error ``||k - k_true||^2`` on held-out pairs (the validation split of
``refdeblur train``, a seed of its own, noise 0.01; one row per ``--crop``)
of

* the full network (its final kernel, as ``Network.forward`` returns it),
* its coarsest scale alone: the kernel of that scale's last stage, which is
  estimated on the image downsampled by ``m_1 / m`` (method-spec O4),
  resized to ``m x m`` with the network's own cubic resampling, negative
  values set to zero and normalised (what the network would give if its
  finer scales were removed),
* the best fixed kernel (the mean of many sampled kernels of that size),
  which an estimator that ignores the image cannot beat,

and, with ``--levin``, the error ratio (Levin et al.'s protocol, as
``refdeblur bench levin``) of the same two estimates on every case whose
true kernel is larger than 17 px, beside the shipped 17 px network with its
17 px window. A finer scale that makes the coarse estimate worse is a
training problem of that scale, not of the coarse one (derivations/
training.md, "Session 5").
"""

import argparse
import csv
import warnings
from pathlib import Path

import refdeblur  # noqa: F401  (first: it limits OpenBLAS to one thread before NumPy loads)
import numpy as np

from refdeblur.camera_shake import sample_kernels
from refdeblur.cli import _validation_split
from refdeblur.image_io import find_images
from refdeblur.inference import DeblurWarning, center_kernel, estimate_kernel
from refdeblur.layers.resample import imresize
from refdeblur.model_io import read_model_file
from refdeblur.models import load_shipped_model, shipped_model_path
from refdeblur.training_data import load_gray_images, validation_set


def normalised(kernel):
    kernel = np.maximum(np.asarray(kernel, dtype=np.float64), 0.0)
    return kernel / kernel.sum()


def full_and_coarse(net, image, n_stages=None):
    """The network's kernel and its coarsest scale's kernel resized to m x m."""
    output = net.forward(np.asarray(image, dtype=net.dtype), n_stages=n_stages)
    size = net.kernel_size
    coarse = imresize(np.asarray(output.stage_kernels[0][-1], dtype=np.float64),
                      output_shape=(size, size),
                      kernel=net.architecture.resample_kernel)
    return normalised(output.kernel), normalised(coarse)


def held_out_errors(net, held_out, n_pairs, crop, seed, n_stages=None):
    size = net.kernel_size
    images = load_gray_images(held_out, min_size=crop + size - 1)
    pairs = validation_set(images, n_pairs, crop, size, seed=seed, noise_std=0.01)
    errors = {"full": [], "coarse": []}
    for blurry, truth in zip(pairs.y, pairs.k):
        full, coarse = full_and_coarse(net, blurry, n_stages)
        errors["full"].append(np.sum((full - truth) ** 2))
        errors["coarse"].append(np.sum((coarse - truth) ** 2))
    mean_kernel = sample_kernels(2000, size, np.random.default_rng(1)).mean(axis=0)
    fixed = np.sum((pairs.k - mean_kernel) ** 2, axis=(1, 2))
    return {key: float(np.mean(value)) for key, value in errors.items()}, float(fixed.mean())


def levin_ratios(net, levin_dir, reference, n_stages=None):
    """Error ratios of the full and coarse estimates on the cases above 17 px."""
    from refdeblur.bench_levin import _deconvolve, _image_scores, _load_case

    with open(Path(levin_dir) / "index.csv", newline="", encoding="utf-8") as stream:
        rows = [row for row in csv.DictReader(stream) if int(row["kernel_size"]) > 17]
    ratios = {"full": [], "coarse": [], "17 px network": []}
    for row in rows:
        blurry, sharp, true_kernel = _load_case(levin_dir, row)
        ssd_true = _image_scores(_deconvolve(blurry, true_kernel), sharp)["ssd"]
        full, coarse = full_and_coarse(net, blurry, n_stages)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeblurWarning)
            small = estimate_kernel(blurry, 17, model=reference)
        for key, kernel in (("full", center_kernel(full)), ("coarse", center_kernel(coarse)),
                            ("17 px network", small)):
            ratios[key].append(_image_scores(_deconvolve(blurry, kernel), sharp)["ssd"]
                               / ssd_true)
    return {key: np.array(value) for key, value in ratios.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="*",
                        help="model files (a run's checkpoint.npz too); default: "
                             "the shipped 25 and 33 px networks")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--levin", type=Path, default=None)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--crop", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--stages", type=int, default=None,
                        help="stages of the finest scale to run (a checkpoint whose "
                             "last stages are not trained yet); default: the "
                             "file's inference_stages, else all")
    args = parser.parse_args(argv)
    paths = args.models or [shipped_model_path(25), shipped_model_path(33)]
    _, held_out = _validation_split(find_images(args.images), 60)
    reference = load_shipped_model(17) if args.levin else None
    for path in paths:
        net, _, _ = read_model_file(path)
        net = net.astype(np.float32)
        if len(net.architecture.kernel_sizes) < 2:
            print(f"\n{path}: a single-scale network; nothing to compare")
            continue
        print(f"\n## {path} ({net.kernel_size} px, scales "
              f"{net.architecture.kernel_sizes}, filters {net.architecture.filter_sizes})\n")
        print("| held-out pairs | full network | coarsest scale alone | best fixed kernel |")
        print("|---|---|---|---|")
        for crop in args.crop:
            errors, fixed = held_out_errors(net, held_out, args.pairs, crop, args.seed,
                                            args.stages)
            print(f"| {args.pairs}, crop {crop} | {errors['full']:.4f} | "
                  f"{errors['coarse']:.4f} | {fixed:.4f} |", flush=True)
        if args.levin:
            ratios = levin_ratios(net, args.levin, reference, args.stages)
            print(f"\nLevin et al. 2009, the {len(ratios['full'])} cases above 17 px:\n")
            print("| estimate | mean error ratio | median | ER ≤ 3 |")
            print("|---|---|---|---|")
            for key, value in ratios.items():
                print(f"| {key} | {value.mean():.2f} | {np.median(value):.2f} | "
                      f"{int((value <= 3).sum())} |", flush=True)


if __name__ == "__main__":
    main()
