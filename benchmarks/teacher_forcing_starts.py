"""How good the starts of teacher forcing are, per strength power.

For 300 camera-shake kernels sampled at the given size, prints the kernel
error ||k_start - k||^2 of the perturbed starts that ``refdeblur train
--teacher-forcing P --teacher-forcing-power Q`` hands on, for several Q,
beside the error of the best fixed kernel (the mean kernel) of the same
kernels: a later stage learns to keep a start only where many starts are
better than what it can do alone (derivations/training.md, "Teacher
forcing").

    python benchmarks/teacher_forcing_starts.py [--kernel-size 17] [--powers 1 2 3 4]
"""

import argparse

import numpy as np

from refdeblur.camera_shake import sample_kernel
from refdeblur.training.teacher_forcing import perturb_kernel


def start_errors(kernels, power, *, seed):
    """Error of a perturbed start of every kernel (the next one as "other")."""
    rng = np.random.default_rng([seed, 1])
    n = len(kernels)
    return np.array([np.sum((perturb_kernel(kernels[i], rng, other=kernels[(i + 1) % n],
                                            strength_power=power) - kernels[i]) ** 2)
                     for i in range(n)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-size", type=int, default=17)
    parser.add_argument("--kernels", type=int, default=300)
    parser.add_argument("--powers", type=float, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    kernels = np.stack([sample_kernel(args.kernel_size, rng) for _ in range(args.kernels)])
    fixed = np.sum((kernels - kernels.mean(axis=0)) ** 2, axis=(1, 2))
    half = 0.5 * fixed.mean()
    print(f"{args.kernels} kernels of {args.kernel_size} px (seed {args.seed}); best fixed "
          f"kernel: mean error {fixed.mean():.4f}\n")
    print(f"| strength power | mean start error | median | share below {half:.4f} "
          f"(half the best fixed kernel's) |")
    print("|---|---|---|---|")
    for power in args.powers:
        errors = start_errors(kernels, power, seed=args.seed)
        print(f"| {power:g} | {errors.mean():.4f} | {np.median(errors):.4f} | "
              f"{100 * np.mean(errors < half):.0f} % |")


if __name__ == "__main__":
    main()
