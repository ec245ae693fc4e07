"""Where a stage's feature time goes: the two fused methods against their bounds.

Run ``python benchmarks/bench_stage_features.py [--repeats 3]``. For one
stage of the shipped architecture (32 filters of 17 x 17 on 1 or 2 input
channels, 32 hidden units, 4 features, float32) and square images of 255 to
2048 px it prints, side by side in one run:

* **direct**: :func:`refdeblur._engine.features.stage_features` with
  ``method="direct"``: per output row im2col, one sgemm, tanh, the 1 x 1
  layers; rows shared out over the cores;
* **sgemm bound**: the direct method's matrix products alone, on
  pre-built patches (one ``(W, C f²) @ (C f², 32)`` product per output row,
  the rows split over two threads): no im2col, no tanh, no 1 x 1 layers;
* **whole-image FFT**: :func:`refdeblur._engine.conv_backends.fft_correlate`, the
  32 convolution outputs alone by FFT of the whole image (pocketfft,
  float32, every core), before any tanh or 1 x 1 layer;
* **tiled FFT**: ``method="fft"``, overlap-save over cache-sized tiles with
  the same head fused in (what inference runs from 200 x 200 px outputs);
* **tiled FFT, no head**: the same with the tanh and 1 x 1 layers cut out
  (a head of zero filters is not possible, so: the tiles' FFTs and spectral
  products only), which shows how the tiled method's time splits.

The tiled FFT does about a tenth of the direct method's arithmetic for
17 x 17 filters; the whole-image FFT does as little but streams 32 image-sized
spectra through memory (derivations/inference.md, "Speed").
"""

import argparse
from concurrent.futures import ThreadPoolExecutor

from _bench_common import best_time  # this folder
import numpy as np

import scipy.fft

from refdeblur._engine.conv_backends import fft_correlate
from refdeblur._engine.features import fft_tile_size, spectral_sum, stage_features
from refdeblur._engine.threads import one_blas_thread


def sgemm_bound(patches_row, weight, n_rows, pool):
    """``n_rows`` products ``patches_row @ weight``, split over the pool's threads.

    BLAS on one thread, as inside the fused kernel: two multithreaded BLAS
    calls at once would oversubscribe the cores.
    """
    def half(count):
        for _ in range(count):
            patches_row @ weight
    counts = [n_rows // 2, n_rows - n_rows // 2]
    with one_blas_thread():
        for future in [pool.submit(half, count) for count in counts]:
            future.result()


def tiled_fft_without_head(x, conv, pool):
    """The tiled method's FFTs and spectral sums alone, tiles over two threads."""
    _, _, height, width = x.shape
    f = conv.shape[-1]
    out_h, out_w = height - f + 1, width - f + 1
    side = fft_tile_size(out_h, out_w, f, channels=x.shape[1], workers=2)
    valid = side - f + 1
    spectra = np.conjugate(scipy.fft.rfft2(conv.transpose(1, 0, 2, 3), s=(side, side),
                                           workers=2)).astype(np.complex64)
    corners = [(r, c) for r in range(0, out_h, valid) for c in range(0, out_w, valid)]

    def half(part):
        products = np.empty((conv.shape[0], side, side // 2 + 1), np.complex64)
        for r, c in corners[part::2]:
            tile = scipy.fft.rfft2(x[0, :, r:r + side, c:c + side], s=(side, side), workers=1)
            spectral_sum(spectra, tile, products)
            scipy.fft.irfft2(products, s=(side, side), workers=1)
    for future in [pool.submit(half, part) for part in (0, 1)]:
        future.result()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sides", type=int, nargs="+", default=[255, 800, 1024, 2048])
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    pool = ThreadPoolExecutor(2)
    print("| image | input channels | direct (s) | sgemm bound (s) | direct / bound "
          "| whole-image FFT, conv only (s) | tiled FFT (s) | tiled FFT, no head (s) "
          "| direct / tiled FFT |")
    print("|---|---|---|---|---|---|---|---|---|")
    for side in args.sides:
        for channels in (1, 2):
            x = rng.random((1, channels, side, side)).astype(np.float32)
            conv = (0.05 * rng.standard_normal((32, channels, 17, 17))).astype(np.float32)
            w1 = (0.2 * rng.standard_normal((32, 32))).astype(np.float32)
            w2 = (0.2 * rng.standard_normal((4, 32))).astype(np.float32)
            out = side - 16
            repeats = args.repeats if side < 2048 else 1
            direct = best_time(lambda: stage_features(x, conv, w1, w2, method="direct"),
                               repeats)
            tiled = best_time(lambda: stage_features(x, conv, w1, w2, method="fft"), repeats)
            no_head = best_time(lambda: tiled_fft_without_head(x, conv, pool), repeats)
            patches = rng.random((out, channels * 289)).astype(np.float32)
            weight = np.ascontiguousarray(conv.reshape(32, -1).T)
            bound = best_time(lambda: sgemm_bound(patches, weight, out, pool), repeats)
            fft = best_time(lambda: fft_correlate(x, conv), repeats)
            print(f"| {side}² | {channels} | {direct:.3f} | {bound:.3f} | "
                  f"{direct / bound:.2f} | {fft:.3f} | {tiled:.3f} | {no_head:.3f} | "
                  f"{direct / tiled:.2f} |", flush=True)


if __name__ == "__main__":
    main()
