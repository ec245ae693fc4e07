"""Schedules of the kernel refinement (step 6b): quality and time side by side.

Run ``python benchmarks/bench_refinement.py --data LEVIN_DIR --images TRAIN_IMAGES``
(either may be left out; ``--quick`` takes 8 synthetic pairs per size).
For each refinement configuration (keyword arguments of
:func:`refdeblur.inference.refinement.refine_kernel` and
:func:`~refdeblur.inference.refinement.refine_coarse_to_fine`, as
``estimate_kernel(refine=...)`` takes them) it prints:

* **Levin et al. 2009**, 32 cases: each case's network is the one
  ``kernel_size="auto"`` chooses with the default settings (chosen once, so
  that every configuration refines the same network's kernel); the
  estimate is deconvolved and scored exactly as ``refdeblur bench levin``
  does (error ratio ER up to shift, PSNR);
* **synthetic pairs**: ``--pairs`` per network size from the held-out
  training images (the split of ``refdeblur train``), 255 px crops blurred
  by sampled camera shake (11 to 17 px for the 17 px network, 19 to 25 px
  for 25, 27 to 33 px for 33; seed 777) plus 1 % noise, each refined from
  its network's kernel, with the smallest network that holds the blur; the
  same scoring against the true kernel's result;
* **ideal starts**: the true 17 px kernel smeared by a Gaussian (σ 1.5 px),
  refined on a 300 px crop of scikit-image's camera man (seeds 1 to 8), as
  the kernel error after / before;
* the mean seconds per case of each (the estimate, network included), in
  this one run, so that the ratios between configurations hold whatever
  else loads the machine.

derivations/kernel_refinement.md §3 gives the table of the latest run and
the choice of the default made from it.
"""

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from _bench_common import print_table  # this folder
from refdeblur import DeblurWarning, estimate_kernel, sample_kernel
from refdeblur.evaluation import levin
from refdeblur.image_io import find_images
from refdeblur.inference import estimate_kernel_and_size
from refdeblur.inference.refinement import refine_kernel
from refdeblur.metrics import kernel_error_up_to_shift
from refdeblur.models import load_shipped_model
from refdeblur.training.data import load_gray_images, validation_split

#: name -> options of ``estimate_kernel(refine=...)``; None: the defaults.
CONFIGURATIONS = {
    "default (3 alternations: 2 quadratic + 1 sparse; window 256/512 px)": None,
    "sparse throughout, 5 alternations, 512 px window": {"n_iter": 5, "n_sparse": 5,
                                                         "max_window": 512},
    "sparse throughout, 3 alternations": {"n_iter": 3, "n_sparse": 3},
    "4 alternations: 3 quadratic + 1 sparse": {"n_iter": 4},
    "default, finer scales 2 alternations": {"finer_n_iter": 2},
    "default, finer scales 1 alternation": {"finer_n_iter": 1},
}
NETWORK_BLURS = {17: (11, 13, 15, 17), 25: (19, 21, 23, 25), 33: (27, 29, 31, 33)}
NOISE_STD = 0.01


def refine_options(options, kernel_size):
    """``refine=`` for this network: ``finer_n_iter`` only where there are finer scales."""
    if options is None:
        return True
    if kernel_size == 17:
        options = {key: value for key, value in options.items() if key != "finer_n_iter"}
    return options or True


def levin_cases(data_dir):
    """(name, blurry, sharp, true kernel, SSD of the true kernel's result, network size)."""
    cases = []
    for row in levin.find_cases(data_dir):
        blurry, sharp, true = levin.load_case(data_dir, row)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeblurWarning)
            _, choice = estimate_kernel_and_size(blurry)
        ssd_true = levin.image_scores(levin.deconvolve_for_benchmark(blurry, true), sharp)["ssd"]
        cases.append((row["file"], blurry, sharp, true, ssd_true, choice.kernel_size))
    return cases


def synthetic_cases(images_dir, n_per_size, side=255, seed=777):
    """Held-out synthetic pairs, in the layout of :func:`levin_cases`."""
    paths = sorted(find_images(images_dir))
    _, held_out = validation_split(paths, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # images too small are skipped
        images = load_gray_images(held_out, min_size=side + 40)
    rng = np.random.default_rng(seed)
    cases = []
    for network, blurs in NETWORK_BLURS.items():
        for i in range(n_per_size):
            image = images[rng.integers(len(images))]
            size = blurs[i % len(blurs)]
            true = sample_kernel(size, rng)
            top = rng.integers(image.shape[0] - side - size)
            left = rng.integers(image.shape[1] - side - size)
            patch = image[top:top + side + size - 1, left:left + side + size - 1]
            blurry = fftconvolve(patch, true, mode="valid")
            blurry += NOISE_STD * rng.standard_normal(blurry.shape)
            sharp = patch[size // 2:size // 2 + side, size // 2:size // 2 + side]
            padded = np.pad(true, (network - size) // 2)
            ssd_true = levin.image_scores(levin.deconvolve_for_benchmark(blurry, padded),
                                          sharp)["ssd"]
            cases.append((f"synthetic {network}/{i}", blurry, sharp, padded, ssd_true, network))
    return cases


def score(cases, options, networks):
    """Error ratios, PSNRs and seconds of one configuration on a set of cases."""
    ratios, psnrs, seconds = [], [], []
    for _, blurry, sharp, _, ssd_true, size in cases:
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeblurWarning)
            kernel = estimate_kernel(blurry, size, model=networks[size], max_window=None,
                                     refine=refine_options(options, size))
        seconds.append(time.perf_counter() - started)
        scores = levin.image_scores(levin.deconvolve_for_benchmark(blurry, kernel), sharp)
        ratios.append(scores["ssd"] / ssd_true)
        psnrs.append(scores["psnr_db"])
    return np.array(ratios), np.array(psnrs), np.array(seconds)


def ideal_start_ratios(options, seeds=range(1, 9)):
    """Kernel error after / before refining a smeared true kernel (17 px)."""
    from skimage import data

    sharp = data.camera().astype(np.float64)[100:400, 100:400] / 255
    options = {key: value for key, value in (options or {}).items() if key != "finer_n_iter"}
    ratios = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        true = sample_kernel(17, rng)
        blurry = fftconvolve(sharp, true, mode="valid")
        blurry += NOISE_STD * rng.standard_normal(blurry.shape)
        blob = gaussian_filter(true, 1.5, mode="constant")
        blob /= blob.sum()
        refined = refine_kernel(blurry, blob, **options)
        ratios.append(kernel_error_up_to_shift(refined, true)
                      / kernel_error_up_to_shift(blob, true))
    return np.array(ratios)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("REFDEBLUR_LEVIN_DATA"),
                        help="Levin et al.'s data folder (default: $REFDEBLUR_LEVIN_DATA; "
                             "without it the Levin columns are left out)")
    parser.add_argument("--images", default=os.environ.get("REFDEBLUR_TRAIN_DATA"),
                        help="training images (default: $REFDEBLUR_TRAIN_DATA; without "
                             "them the synthetic columns are left out)")
    parser.add_argument("--pairs", type=int, default=24,
                        help="synthetic pairs per network size (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="8 synthetic pairs per size")
    args = parser.parse_args(argv)
    pairs = 8 if args.quick else args.pairs

    networks = {size: load_shipped_model(size) for size in NETWORK_BLURS}
    sets = {}
    if args.data:
        sets["Levin"] = levin_cases(args.data)
    if args.images:
        sets["synthetic"] = synthetic_cases(args.images, pairs)
    for cases in sets.values():                 # JIT compilation out of the timings
        score(cases[:1], None, networks)

    header = ["configuration"]
    for name, cases in sets.items():
        header += [f"{name} ER ≤ 3 (of {len(cases)})", f"{name} median ER",
                   f"{name} PSNR (dB)", f"{name} s / case"]
    header += ["ideal start: error after / before (mean, worst)"]
    rows = []
    for label, options in CONFIGURATIONS.items():
        row = [label]
        for cases in sets.values():
            ratios, psnrs, seconds = score(cases, options, networks)
            row += [str(int(np.sum(ratios <= 3))), f"{np.median(ratios):.2f}",
                    f"{psnrs.mean():.2f}", f"{seconds.mean():.3f}"]
        ideal = ideal_start_ratios(options)
        row.append(f"{ideal.mean():.2f}, {ideal.max():.2f}")
        rows.append(row)
        print(f"  {label}: done", file=sys.stderr, flush=True)
    print("# Refinement schedules (step 6b): quality and time in one run")
    print(f"\nload average: {', '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"configurations: {json.dumps(CONFIGURATIONS)}")
    print_table("Levin et al. 2009 and synthetic pairs", header, rows,
                note="ER: error ratio to the true kernel's result, Levin's protocol "
                     "(refdeblur bench levin). Seconds: the estimate, network included, "
                     "mean per case in this run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
