"""The non-blind EFF deconvolution: its preconditioners and its cost.

Run from the repository root::

    python benchmarks/bench_eff.py > benchmarks/results/bench_eff.txt

Part 1: six cases (camera, astronaut and coffee in grey, two 192 x 320 crops
each; 2 x 2 patches, four different 21 px kernels, EFF 'valid' blur, noise
0.01, true kernels and noise level given): mean PSNR and CPU seconds per case
of the uniform deconvolution with the mean kernel and of
``deconvolve_nonuniform`` with each preconditioner and iteration limit.
Part 2: time and peak NumPy memory (tracemalloc) at 1024 x 1024 grey, 4 x 4
patches, 25 px kernels. derivations/eff.md §5 discusses the output.
"""
import time
import tracemalloc

import numpy as np
import skimage.color
import skimage.data
import skimage.transform

from refdeblur.camera_shake import sample_kernels
from refdeblur.deconvolution import deconvolve
from refdeblur.nonuniform.deconvolution import deconvolve_nonuniform
from refdeblur.nonuniform.eff import EffOperator, eff_blur, patch_grid


def psnr(a, b):
    return 10 * np.log10(1 / np.mean((a - b) ** 2))


def case(sharp, grid, kernels, rng, sigma=0.01):
    """EFF blur of ``sharp`` on the embedded grid ('valid'), noise; the truth."""
    q = grid.margin
    y = EffOperator(grid.embedded((q, q), sharp.shape), kernels).forward(sharp)
    return y[q:-q, q:-q] + sigma * rng.standard_normal(grid.shape), kernels, sharp[q:-q, q:-q]


def measured(function):
    """Result, CPU seconds, wall seconds, peak of traced (NumPy) memory in MiB."""
    tracemalloc.start()
    cpu, wall = time.process_time(), time.perf_counter()
    out = function()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return out, cpu, wall, peak


rng = np.random.default_rng(17)
photos = [skimage.data.camera() / 255.0,
          skimage.color.rgb2gray(skimage.data.astronaut()),
          skimage.color.rgb2gray(skimage.data.coffee())]
grid = patch_grid((192, 320), (2, 2), kernel_size=21)
cases = [case(photo[r:r + 212, 100:440], grid, sample_kernels(4, 21, rng), rng)
         for photo in photos for r in (20, 180)]
print("6 cases, 192 x 320, 2 x 2 patches, 21-px kernels, sigma = 0.01: mean PSNR, CPU s")
print(f"  blurry {np.mean([psnr(y, x) for y, _, x in cases]):.2f} dB")
scores = [psnr(deconvolve(y, k.mean(axis=0), noise_std=0.01), x) for y, k, x in cases]
print(f"  uniform, mean kernel {np.mean(scores):.2f} dB")
for preconditioner, iterations in [("patch", 5), ("patch", 10), ("patch", 20),
                                   ("mean", 5), ("mean", 10), ("mean", 20),
                                   (None, 10), (None, 20)]:
    scores, cpu = [], time.process_time()
    for y, k, x in cases:
        scores.append(psnr(deconvolve_nonuniform(y, k, grid, noise_std=0.01,
                                                 preconditioner=preconditioner,
                                                 cg_iterations=iterations), x))
    print(f"  EFF, preconditioner {preconditioner}, cg_iterations {iterations}: "
          f"{np.mean(scores):.2f} dB, {(time.process_time() - cpu) / len(cases):.2f} s")

grid = patch_grid((1024, 1024), (4, 4), kernel_size=25)
sharp = skimage.transform.resize(photos[0], (1048, 1048))
y, k, x = case(sharp, grid, sample_kernels(16, 25, rng), rng)
print("1024 x 1024 grey, 4 x 4 patches, 25-px kernels (after one warm-up call each)")
runs = {"eff_blur": lambda: eff_blur(x, k, grid),
        "deconvolve_nonuniform": lambda: deconvolve_nonuniform(y, k, grid, noise_std=0.01),
        "deconvolve_nonuniform float32": lambda: deconvolve_nonuniform(
            y.astype(np.float32), k, grid, noise_std=0.01),
        "deconvolve (uniform, mean kernel)": lambda: deconvolve(y, k.mean(axis=0),
                                                                noise_std=0.01)}
for name, run in runs.items():
    run()
    out, cpu, wall, peak = measured(run)
    quality = "" if name == "eff_blur" else f", {psnr(out, x):.2f} dB"
    print(f"  {name}: CPU {cpu:.1f} s, wall {wall:.1f} s, peak NumPy memory "
          f"{peak:.0f} MiB{quality}")
