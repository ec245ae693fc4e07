"""Kernel-estimation time against the paper's Table 1, and a 12-megapixel run.

Run ``python benchmarks/bench_inference.py`` (``--quick`` skips 2048 px and
the 12 MP photo). Prints, for the 17, 25 and 33 px networks and square grey
images of 255, 800, 1024 and 2048 px, the best-of-N time of the network's
forward pass (:func:`refdeblur.network_fast.predict`, the inference path)
on the *whole* image (no window, float32), the paper's time
(Table 1: MATLAB on an Intel i5) and their ratio; the target is a tenth of
the paper's time. Beside it, the same forward pass with the stage features'
convolution computed by the direct method (im2col and sgemm per row)
instead of the tiled FFT that inference uses from 200 x 200 px, so that the
two are compared on the same machine in the same run. Beside it, the
default estimate, ``estimate_kernel(image, size, max_window=None)`` on a
blurred natural image of the same size: the
network as inference runs it plus the refinement of step 6b (not in the
paper; on at most 256 px for the 17 px network and 512 px for the 25 and 33
px ones, those coarse to fine from
the coarsest scale, whose finer scales then do not run). A grid in the
layout of Table 1 then gives, per kernel and image size, the paper's time,
the network alone and the default estimate with the ratio paper / refdeblur
(target: at least 10). Then deblurs a 4000 x 3000 colour photo through the
command line in a child process and reports its wall time and peak memory.

All times are wall times, best of several runs, measured in the one run of
this script; the header gives the load average before and after, since
other processes on the machine slow every row.

Where a shipped model is missing, a network of the same architecture as
the shipped 17 px one is built with random weights: the time depends on the
architecture only.
"""

import argparse
import contextlib
import functools
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _bench_common import best_time  # this folder
import numpy as np

from refdeblur import build_network, get_num_threads
from refdeblur._engine import features
from refdeblur.models import SHIPPED_KERNEL_SIZES, load_shipped_model, shipped_model_path
from refdeblur.network_fast import predict

#: Table 1 of the paper: seconds per image side, MATLAB on an Intel i5.
PAPER_TABLE_1 = {
    17: {255: 1.1, 800: 5.2, 1024: 9.5, 2048: 53.1},
    25: {255: 1.2, 800: 14.3, 1024: 18.5, 2048: 89.1},
    33: {255: 1.6, 800: 10.7, 1024: 22.6, 2048: 91.9},
}


def network_for(kernel_size):
    """The shipped network, or a random one of the same architecture."""
    try:
        return load_shipped_model(kernel_size), "shipped"
    except ValueError:
        reference = load_shipped_model(17).architecture
        filter_size = reference.filter_sizes[0]
        scales = {17: (17,), 25: (17, 25), 33: (17, 25, 33)}[kernel_size]
        net = build_network(kernel_size, rng=np.random.default_rng(0),
                            kernel_sizes=scales,
                            filter_sizes=(filter_size,) * len(scales))
        return net.astype(np.float32), "random weights, same architecture"


def _is_shipped(kernel_size):
    try:
        shipped_model_path(kernel_size)
    except ValueError:
        return False
    return True


def natural_test_image(side, rng):
    """scikit-image's astronaut, grey, resized to ``side``², blurred by a
    sampled 17 px shake plus noise 0.01 (what the refinement meets)."""
    from scipy.signal import fftconvolve
    from skimage import data, transform

    from refdeblur import sample_kernel
    from refdeblur.image_io import rgb_to_gray
    sharp = transform.resize(rgb_to_gray(data.astronaut() / 255.0), (side + 16, side + 16),
                             order=3, anti_aliasing=True)
    blurry = fftconvolve(sharp, sample_kernel(17, rng), mode="valid")
    return np.clip(blurry + 0.01 * rng.standard_normal(blurry.shape), 0.0, 1.0)


@contextlib.contextmanager
def direct_stage_features():
    """Inference with ``stage_features(..., method="direct")`` everywhere.

    The inference path looks the kernel up on the module at every call, so
    replacing the module attribute for the duration is enough (benchmark
    only; the library has no such switch).
    """
    original = features.stage_features
    features.stage_features = functools.partial(original, method="direct")
    try:
        yield
    finally:
        features.stage_features = original


def estimation_table(sides, repeats):
    from refdeblur import DeblurWarning, estimate_kernel

    rng = np.random.default_rng(0)
    rows = []
    for kernel_size in SHIPPED_KERNEL_SIZES:
        net, origin = network_for(kernel_size)
        for side in sides:
            image = rng.random((side, side)).astype(np.float32)
            # Small images take tens of milliseconds, where one run's noise
            # is as large as the differences measured: more repeats there.
            count = repeats * 4 if side <= 255 else repeats if side < 2048 else 1
            seconds = best_time(lambda: predict(net, image), count)
            with direct_stage_features():
                direct = best_time(lambda: predict(net, image), count)
            # The default estimate (steps 1-6 with the refinement 6b, not in
            # the paper; coarse to fine from the coarsest scale for the
            # multi-scale networks, whose finer scales then do not run), on
            # the whole image as Table 1 did.
            photo = natural_test_image(side, rng)
            with warnings.catch_warnings():
                # a kernel touching its window's border is no concern here
                warnings.simplefilter("ignore", DeblurWarning)
                default = best_time(lambda: estimate_kernel(photo, kernel_size, model=net,
                                                            max_window=None), count)
            paper = PAPER_TABLE_1[kernel_size][side]
            rows.append((kernel_size, side, seconds, direct, default, paper, origin))
            print(f"  {kernel_size} px, {side}²: network {seconds:.2f} s (direct "
                  f"convolution {direct:.2f} s), default estimate {default:.2f} s",
                  flush=True)
    return rows


def twelve_megapixel_run(kernel_size):
    """Deblur a 4000 x 3000 colour photo in a child process: (seconds, peak MiB)."""
    from skimage import data, transform

    from refdeblur.image_io import write_image
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "photo.png"
        big = transform.resize(data.astronaut(), (3000, 4000), order=3)
        write_image(photo, np.round(np.clip(big, 0, 1) * 255).astype(np.uint8))
        del big
        command = [sys.executable, "-m", "refdeblur", "deblur", str(photo),
                   "--kernel-size", str(kernel_size)]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, peak_kib / 1024


def _load_average():
    """The 1, 5 and 15 minute load averages, as ``os.getloadavg`` reads them."""
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1, 5, 15 min)"
    except OSError:
        return "unavailable"


def print_table_1_grid(rows, sides):
    """Table 1's layout: per kernel, the paper, the network alone and the
    default estimate, with the ratio paper / refdeblur in each cell."""
    by_cell = {(row[0], row[1]): row for row in rows}
    print("\n## Table 1 grid (seconds; paper / refdeblur in brackets, target >= 10x)\n")
    print("| kernel | | " + " | ".join(f"{side}²" for side in sides) + " |")
    print("|---|---|" + "---|" * len(sides))
    for kernel_size in SHIPPED_KERNEL_SIZES:
        cells = [by_cell[(kernel_size, side)] for side in sides]
        print(f"| {kernel_size} px | paper (MATLAB, Intel i5) | "
              + " | ".join(f"{cell[5]:.1f}" for cell in cells) + " |")
        print(f"| | network alone, all scales | "
              + " | ".join(f"{cell[2]:.3f} ({cell[5] / cell[2]:.1f}x)" for cell in cells)
              + " |")
        print(f"| | default estimate (refined) | "
              + " | ".join(f"{cell[4]:.3f} ({cell[5] / cell[4]:.1f}x)"
                           + ("" if cell[4] <= cell[5] / 10 else ", short")
                           for cell in cells) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sides = (255, 800, 1024) if args.quick else (255, 800, 1024, 2048)
    print(f"# Kernel estimation time ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, refdeblur threads {get_num_threads()}, "
          f"BLAS on one thread inside refdeblur)\n")
    print(f"load average before: {_load_average()}\n")
    rows = estimation_table(sides, args.repeats)
    print(f"\nload average after: {_load_average()}")
    print("\n| kernel | image | network, all scales (s) | paper Table 1 (s) | "
          "paper / network | target (paper / 10) met | network, direct "
          "convolution (s) | direct / tiled FFT | default estimate (s) | "
          "paper / default | default: target met | weights |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kernel_size, side, seconds, direct, default, paper, origin in rows:
        met = "yes" if seconds <= paper / 10 else "no"
        default_met = "yes" if default <= paper / 10 else "no"
        print(f"| {kernel_size} | {side}² | {seconds:.3f} | {paper:.1f} | "
              f"{paper / seconds:.1f}x | {met} | {direct:.3f} | "
              f"{direct / seconds:.2f} | {default:.3f} | "
              f"{paper / default:.1f}x | {default_met} | {origin} |")
    print_table_1_grid(rows, sides)
    if not args.quick:
        seconds, peak = twelve_megapixel_run(25 if _is_shipped(25) else 17)
        print(f"\n4000 x 3000 colour photo, `refdeblur deblur` end to end "
              f"(read, estimate on a 1024 px window, deconvolve 3 channels, "
              f"write): {seconds:.1f} s, peak memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
