"""Post-processing of the estimated kernel, tried on Levin's benchmark (not adopted).

Run ``python benchmarks/levin_kernel_postprocessing.py --data
../shared/data/levin2009 [--model FILE]``. With one network (default the
shipped 17 px one) and its window for every case, prints the mean error
ratio and the number of the 32 cases at ER ≤ 3 (Levin et al.'s protocol, as
``refdeblur bench levin``) of

* the kernel as ``estimate_kernel`` returns it,
* that kernel sharpened by the paper's Gaussian deconvolution
  (``refdeblur.inference.sharpen_kernel``; §6 uses σ = 0.5 px for its
  33 px network) at several σ,
* the mean of the kernels estimated on the 4 rotations of the image (and on
  the 8 rotations and flips), each turned back: a test-time average.

derivations/training.md ("Tried at inference") records the result.
"""

import argparse
import csv
import warnings
from pathlib import Path

import refdeblur  # noqa: F401  (first: it limits OpenBLAS to one thread before NumPy loads)
import numpy as np

from refdeblur.bench_levin import _deconvolve, _image_scores, _load_case
from refdeblur.inference import DeblurWarning, center_kernel, estimate_kernel, sharpen_kernel
from refdeblur.model_io import read_model_file
from refdeblur.models import load_shipped_model

SIGMAS = (0.3, 0.5, 0.7, 1.0)


def dihedral_estimates(blurry, net, count):
    """Kernels estimated on ``count`` rotations/flips of the image, turned back."""
    kernels = []
    for index in range(count):
        turns, flip = index % 4, index // 4
        image = np.rot90(blurry, turns)
        if flip:
            image = image[:, ::-1]
        kernel = estimate_kernel(np.ascontiguousarray(image), net.kernel_size, model=net)
        if flip:
            kernel = kernel[:, ::-1]
        kernels.append(np.rot90(kernel, -turns))
    return kernels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args(argv)
    net = (load_shipped_model(17) if args.model is None
           else read_model_file(args.model)[0].astype(np.float32))
    with open(args.data / "index.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    labels = (["as estimated"] + [f"sharpened, sigma {s}" for s in SIGMAS]
              + ["mean over 4 rotations", "mean over 8 rotations and flips"])
    ratios = {label: [] for label in labels}
    for row in rows:
        blurry, sharp, true_kernel = _load_case(args.data, row)
        ssd_true = _image_scores(_deconvolve(blurry, true_kernel), sharp)["ssd"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeblurWarning)
            kernels = dihedral_estimates(blurry, net, 8)
        candidates = [kernels[0]] + [center_kernel(sharpen_kernel(kernels[0], s))
                                     for s in SIGMAS]
        for group in (kernels[:4], kernels):
            mean = np.mean(group, axis=0)
            candidates.append(center_kernel(mean / mean.sum()))
        for label, kernel in zip(labels, candidates):
            ssd = _image_scores(_deconvolve(blurry, kernel), sharp)["ssd"]
            ratios[label].append(ssd / ssd_true)
    print(f"\n{net.kernel_size} px network, {len(rows)} cases of {args.data}\n")
    print("| kernel | mean error ratio | ER ≤ 3 | ER ≤ 2 |")
    print("|---|---|---|---|")
    for label, values in ratios.items():
        values = np.array(values)
        print(f"| {label} | {values.mean():.2f} | {int((values <= 3).sum())} | "
              f"{int((values <= 2).sum())} |")


if __name__ == "__main__":
    main()
