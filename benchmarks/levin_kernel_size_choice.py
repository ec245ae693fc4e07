"""Could the network size be chosen from the image? A check on Levin et al.'s set.

Run ``python benchmarks/levin_kernel_size_choice.py --data LEVIN_DATA``.
``refdeblur bench levin`` picks each case's network from the *true* kernel
size (an oracle a user does not have). Here the kernel is first estimated
with the largest network (33 px, the default pipeline), the radius ``r`` of
its support around the centre is measured, and the smallest network whose
window holds ``2 (r + margin) + 1`` px is used (33 px if none is smaller).
Prints per case the chosen size and error ratio (the benchmark's
deconvolution and protocol) for margins 0 to 3, then the counts at ER <= 3
and ER <= 2 beside the fixed sizes.
"""

import argparse
import warnings

import numpy as np

from refdeblur import DeblurWarning, estimate_kernel
from refdeblur.evaluation.levin import (deconvolve_for_benchmark, find_cases, image_scores,
                                        load_case)

SIZES = (17, 25, 33)
MARGINS = (0, 1, 2, 3)


def needed_window(kernel, margin):
    """Side of the centred square that holds the kernel's support plus ``margin``."""
    rows, cols = np.nonzero(kernel > 0)
    centre = kernel.shape[0] // 2
    radius = max(np.abs(rows - centre).max(), np.abs(cols - centre).max())
    return 2 * (radius + margin) + 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    args = parser.parse_args(argv)
    ratios = {key: [] for key in [*SIZES, *(f"margin {m}" for m in MARGINS)]}
    for row in find_cases(args.data):
        blurry, sharp, true_kernel = load_case(args.data, row)
        ssd_true = image_scores(deconvolve_for_benchmark(blurry, true_kernel), sharp)["ssd"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeblurWarning)
            kernels = {size: estimate_kernel(blurry, size) for size in SIZES}
        errors = {size: image_scores(deconvolve_for_benchmark(blurry, kernels[size]),
                                     sharp)["ssd"] / ssd_true
                  for size in SIZES}
        line = [row["file"], f"true {true_kernel.shape[0]}"]
        for size in SIZES:
            ratios[size].append(errors[size])
        for margin in MARGINS:
            need = needed_window(kernels[33], margin)
            chosen = next((size for size in SIZES if size >= need), SIZES[-1])
            ratios[f"margin {margin}"].append(errors[chosen])
            line.append(f"margin {margin}: {chosen} px, ER {errors[chosen]:.2f}")
        print(" | ".join(line), flush=True)
    print("\n| network size | ER ≤ 3 | ER ≤ 2 | mean ER |")
    print("|---|---|---|---|")
    for key, values in ratios.items():
        values = np.array(values)
        label = f"{key} px for every case" if isinstance(key, int) else f"chosen, {key}"
        print(f"| {label} | {int((values <= 3).sum())} | {int((values <= 2).sum())} "
              f"| {values.mean():.2f} |")


if __name__ == "__main__":
    main()
