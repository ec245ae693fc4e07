"""ADADELTA against Adam: how fast each fits one fixed mini-batch.

Run ``python benchmarks/bench_optimizers.py --images TRAIN_IMAGES``.

Both optimisers start from the same freshly initialised network (stage 1 of
the 17 px network, the shipped models' architecture) and train on the same
fixed mini-batch of blurry crops, so the loss curve shows how quickly each
one can move the weights, free of the noise of fresh batches. The paper's
ADADELTA (ρ = 0.95, ε = 1e-6) is run with its multiplier η at the paper's
0.01 and at 0.3 (derivations/training.md, "Optimiser: ADADELTA"); Adam with
the usual β₁ = 0.9, β₂ = 0.999, ε = 1e-8. The table gives the mean squared kernel
error on the batch against the step, beside the error of the batch's mean
kernel (the best a network that ignores the image can do).

How well a run generalises is a separate question, answered by the
validation curves of ``refdeblur train`` (derivations/training.md).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from _bench_common import print_table
from refdeblur.image_io import find_images
from refdeblur.network import build_network
from refdeblur.training.data import load_gray_images, make_batch
from refdeblur.training.optim import Adadelta, Adam
from refdeblur.training.schedule import Phase
from refdeblur.training.step import OutlierFilter, training_step


def fit_fixed_batch(optimizer, blurry, kernels, steps, report_every, *,
                    filter_size, beta_k, seed):
    """Mean kernel error on the batch at every ``report_every`` steps."""
    net = build_network(kernels.shape[-1], rng=np.random.default_rng(seed),
                        dtype=np.float32, filter_sizes=(filter_size,),
                        beta_k=beta_k)
    keep_all = OutlierFilter(warmup=10 ** 12)
    phase = Phase(0, 1, ("scale1.stage1.",))
    curve = {}
    started = time.perf_counter()
    for step in range(steps + 1):
        if step % report_every == 0:
            output = net.forward(blurry, n_stages=1)
            curve[step] = float(np.mean(np.sum((output.kernel - kernels) ** 2,
                                               axis=(1, 2))))
        if step < steps:
            training_step(net, optimizer, keep_all, blurry, kernels, phase)
    return curve, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--report-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--filter-size", type=int, default=9)
    parser.add_argument("--beta-k", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    paths = find_images(args.images)[:40]
    images = load_gray_images(paths, min_size=args.crop_size + 16)
    batch = make_batch(images, args.batch_size, args.crop_size, 17,
                       np.random.default_rng(args.seed))
    blurry = batch.y.astype(np.float32)
    kernels = batch.k.astype(np.float32)
    mean_kernel_error = float(np.mean(np.sum((kernels - kernels.mean(0)) ** 2,
                                             axis=(1, 2))))
    runs = {
        "ADADELTA η=0.01": Adadelta(learning_rate=0.01),
        "ADADELTA η=0.3": Adadelta(learning_rate=0.3),
        "Adam lr=1e-3": Adam(learning_rate=1e-3),
        "Adam lr=3e-3": Adam(learning_rate=3e-3),
    }
    curves, seconds = {}, {}
    for name, optimizer in runs.items():
        curves[name], seconds[name] = fit_fixed_batch(
            optimizer, blurry, kernels, args.steps, args.report_every,
            filter_size=args.filter_size, beta_k=args.beta_k, seed=0)
    steps = sorted(next(iter(curves.values())))
    rows = [[str(step)] + [f"{curves[name][step]:.4f}" for name in runs]
            for step in steps]
    rows.append(["seconds"] + [f"{seconds[name]:.0f}" for name in runs])
    print_table(
        f"Kernel error on one fixed batch of {args.batch_size} crops "
        f"({args.crop_size} px, filter {args.filter_size}, β_k {args.beta_k})",
        ["step"] + list(runs), rows,
        note=f"The batch's mean kernel scores {mean_kernel_error:.4f}.")


if __name__ == "__main__":
    main()
