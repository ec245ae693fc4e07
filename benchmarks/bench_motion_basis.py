"""Which projection onto the camera-motion basis recovers the local kernels.

Run from the repository root::

    python benchmarks/bench_motion_basis.py > benchmarks/results/bench_motion_basis.txt
    python benchmarks/bench_motion_basis.py --quick        # one small configuration
    python benchmarks/bench_motion_basis.py --config 512 25 4 1.5 0.5   # one of your own

Kernels of known camera paths (5 per configuration, from
:func:`refdeblur.nonuniform.render.sample_camera_trajectory`, translation
extent ``m // 3`` px, the rotation given) are projected with
:func:`refdeblur.nonuniform.motion_basis.project_kernels`, adjoint (Eq. 9)
and non-negative least squares, each with eta = 1 and 0.0314. The error is
the mean over patches of ``||k_est - k_true|| / ||k_true||``. Three kinds of
kernels: "on the pose grid", the path's poses rounded to the nearest pose of
the grid (kernels exactly in the range of the basis); "continuous", the true
kernels of the path (:func:`~refdeblur.nonuniform.render.true_local_kernels`);
"+ 3 % noise", those plus Gaussian noise of 3 % of each kernel's peak,
clipped at 0 and renormalised. derivations/motion_basis.md §5 discusses
the output. The full run (three configurations) takes about 20 minutes on
2 loaded cores.
"""

import argparse
import time

import numpy as np

from refdeblur.nonuniform.motion_basis import motion_basis, pose_grid, project_kernels
from refdeblur.nonuniform.render import sample_camera_trajectory, true_local_kernels

#: side, kernel size, patches per row, rotation (deg), translation step (px)
CONFIGURATIONS = ((512, 25, 4, 1.5, 1.0), (512, 25, 4, 1.5, 0.5), (1024, 33, 6, 1.0, 1.0))
QUICK = ((256, 17, 3, 1.5, 1.0),)
METHODS = (("adjoint", 1.0), ("adjoint", 0.0314), ("nnls", 1.0), ("nnls", 0.0314))


def error(estimate, truth):
    """Mean over patches of ``||k_est - k_true|| / ||k_true||``."""
    d = np.linalg.norm((estimate - truth).reshape(len(truth), -1), axis=1)
    return float(np.mean(d / np.linalg.norm(truth.reshape(len(truth), -1), axis=1)))


def on_grid(path, poses, basis, size, step):
    """The path's poses snapped to the grid, equal weights: kernels in the basis."""
    scale = np.array([1 / step, 1 / step, 1 / np.diff(np.unique(poses[:, 2]))[0]])
    time_points = np.linspace(0, 1, 400)
    dense = np.column_stack([np.interp(time_points, np.linspace(0, 1, len(path)), p)
                             for p in path.T])
    index = {tuple(k): i for i, k in enumerate(np.round(poses * scale).astype(int))}
    mu = np.zeros(len(poses))
    for key in np.round(dense * scale).astype(int):
        mu[index[tuple(key)]] += 1
    kernels = np.stack([(b @ mu).reshape(size, size) for b in basis])
    return kernels / kernels.sum(axis=(1, 2), keepdims=True)


def configuration(side, size, grid, rotation, step, paths, rng):
    """One table: the mean errors and projection times over ``paths`` paths."""
    shape = (side, side)
    c = (np.arange(grid) + 0.5) * side / grid
    centres = np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)
    poses = pose_grid(shape, size, translation_step_px=step)
    basis = motion_basis(shape, centres, size, poses)
    table, seconds = {}, {"adjoint": [], "nnls": []}
    for _ in range(paths):
        path = sample_camera_trajectory(rng, max_shift_px=size // 3,
                                        min_rotation_deg=rotation, max_rotation_deg=rotation)
        true = true_local_kernels(shape, centres, path, size)
        noisy = np.maximum(true + 0.03 * true.max(axis=(1, 2), keepdims=True)
                           * rng.standard_normal(true.shape), 0)
        noisy /= noisy.sum(axis=(1, 2), keepdims=True)
        snapped = on_grid(path, poses, basis, size, step)
        for label, direct, target in (("on the pose grid", snapped, snapped),
                                      ("continuous", true, true),
                                      ("continuous + 3 % noise", noisy, true)):
            row = table.setdefault(label, {})
            row.setdefault("input", []).append(error(direct, target))
            for method, eta in METHODS:
                start = time.perf_counter()
                estimate, _ = project_kernels(direct, basis, eta=eta, method=method)
                seconds[method].append(time.perf_counter() - start)
                row.setdefault((method, eta), []).append(error(estimate, target))
    print(f"\n## {side}², m = {size}, {grid} x {grid} patches, rotation {rotation}°, "
          f"{len(poses):,} poses (translation step {step} px), {paths} paths\n")
    print("| kernels | input | " + " | ".join(f"{m} η = {e}" for m, e in METHODS) + " |")
    print("|---" * (2 + len(METHODS)) + "|")
    for label, row in table.items():
        print(f"| {label} | {np.mean(row['input']):.3f} | "
              + " | ".join(f"{np.mean(row[key]):.3f}" for key in METHODS) + " |")
    print(f"\nTime per projection: adjoint {np.mean(seconds['adjoint']):.2f} s, "
          f"nnls {np.mean(seconds['nnls']):.1f} s "
          f"({min(seconds['nnls']):.1f}-{max(seconds['nnls']):.1f} s).", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one small configuration (256², m = 17, 3 x 3, 2 paths)")
    parser.add_argument("--config", nargs=5, type=float, action="append",
                        metavar=("SIDE", "M", "GRID", "ROTATION", "STEP"),
                        help="a configuration of your own (repeatable)")
    args = parser.parse_args(argv)
    if args.config:
        configurations = [(int(a), int(b), int(c), d, e) for a, b, c, d, e in args.config]
    else:
        configurations = QUICK if args.quick else CONFIGURATIONS
    paths = 2 if args.quick else 5
    print("# Projection onto the camera-motion basis: mean relative l2 error of the "
          "local kernels")
    for config in configurations:
        configuration(*config, paths, np.random.default_rng(0))


if __name__ == "__main__":
    main()
