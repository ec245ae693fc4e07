"""Why the network's forward pass is not faster: the stage features against their bounds.

Run ``python benchmarks/bench_stage_features.py [--repeats 3]``. For one
stage of the shipped architecture (32 filters of 17 x 17 on 1 or 2 input
channels, 32 hidden units, 4 features, float32) and square images of 255 to
2048 px it prints, side by side in one run:

* **fused**: what inference runs (:func:`refdeblur._features_numba.
  stage_features`: per output row im2col, one sgemm, tanh, the 1 x 1
  layers; rows shared out over the cores);
* **sgemm bound**: the convolution's matrix products alone, on
  pre-built patches (one ``(W, C f²) @ (C f², 32)`` product per output row,
  the rows split over two threads): no im2col, no tanh, no 1 x 1 layers;
* **FFT convolution**: :func:`refdeblur.layers.conv2d.fft_correlate`, the
  32 convolution outputs alone by FFT (pocketfft, float32, every core),
  before any tanh or 1 x 1 layer.

The fused kernel within a small factor of the sgemm bound and no faster
FFT path mean that the time is the 17 x 17 filters' multiply-adds
(derivations/inference.md, "Speed").
"""

import argparse
from concurrent.futures import ThreadPoolExecutor

import refdeblur  # noqa: F401  (first: it limits OpenBLAS to one thread before NumPy loads)
from _bench_common import best_time  # noqa: E402  (this folder)
import numpy as np

from refdeblur._features_numba import stage_features
from refdeblur.layers.conv2d import fft_correlate


def sgemm_bound(patches_row, weight, n_rows, pool):
    """``n_rows`` products ``patches_row @ weight``, split over the pool's threads."""
    def half(count):
        for _ in range(count):
            patches_row @ weight
    counts = [n_rows // 2, n_rows - n_rows // 2]
    for future in [pool.submit(half, count) for count in counts]:
        future.result()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sides", type=int, nargs="+", default=[255, 800, 1024, 2048])
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    pool = ThreadPoolExecutor(2)
    print("| image | input channels | fused (s) | sgemm bound (s) | fused / bound "
          "| FFT convolution only (s) | FFT / fused |")
    print("|---|---|---|---|---|---|---|")
    for side in args.sides:
        for channels in (1, 2):
            x = rng.random((1, channels, side, side)).astype(np.float32)
            conv = (0.05 * rng.standard_normal((32, channels, 17, 17))).astype(np.float32)
            w1 = (0.2 * rng.standard_normal((32, 32))).astype(np.float32)
            w2 = (0.2 * rng.standard_normal((4, 32))).astype(np.float32)
            out = side - 16
            repeats = args.repeats if side < 2048 else 1
            fused = best_time(lambda: stage_features(x, conv, w1, w2), repeats)
            patches = rng.random((out, channels * 289)).astype(np.float32)
            weight = np.ascontiguousarray(conv.reshape(32, -1).T)
            bound = best_time(lambda: sgemm_bound(patches, weight, out, pool), repeats)
            fft = best_time(lambda: fft_correlate(x, conv), repeats)
            print(f"| {side}² | {channels} | {fused:.3f} | {bound:.3f} | "
                  f"{fused / bound:.2f} | {fft:.3f} | {fft / fused:.2f} |", flush=True)


if __name__ == "__main__":
    main()
