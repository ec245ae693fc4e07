"""Evidence that the shipped networks learned: kernel error on held-out pairs.

Run ``python benchmarks/bench_learning.py --images TRAIN_IMAGES``.
For each shipped network it builds pairs from the images that training held
out for validation (the same split as ``refdeblur train``: every k-th image
of the sorted list, 60 images), blurred with freshly sampled kernels (a seed
different from the training run's validation seed) plus noise 0.01, and
prints the mean squared kernel error ``||k - k_true||^2`` of

* the trained network (the shipped weights),
* the untrained network: the same architecture at its initialisation,
* a delta kernel (no deblurring),
* fixed gradient features: the same architecture with its filters fixed to
  horizontal and vertical differences of the blurry and latent images and
  identity recombinations, i.e. the classical alternation of Eq. 4 and Eq. 5
  on linear gradient features (the paper's Fig. 5 comparison), with the
  trained network's beta_x,
* two reference points that no estimator can use, computed from the true
  kernels: the best single fixed kernel (the mean of the true kernels) and
  the best isotropic Gaussian blob. An estimator that does not look at the
  image cannot beat the first,
* and one that uses the true sharp image: the kernel quotient (Eq. 4) with
  the sharp image's gradients as x̃ and the blurry image's as ỹ, i.e. perfect
  features; its error is set by the noise alone.

Also prints the error of every stage of the trained network.
"""

import argparse
from pathlib import Path

import numpy as np

from refdeblur.image_io import find_images
from refdeblur.kernels import delta_kernel
from refdeblur.layers.kernel_quotient import KernelQuotient
from refdeblur.models import shipped_model_path
from refdeblur.model_io import read_model_file
from refdeblur.network import Network, build_network
from refdeblur.training.data import load_gray_images, validation_set, validation_split
from refdeblur.training.step import kernel_errors


def fixed_gradient_network(trained):
    """The trained network's architecture with fixed linear gradient features."""
    arch = trained.architecture
    net = build_network(arch.kernel_size, rng=np.random.default_rng(0),
                        **arch.to_dict())
    params = {name: np.zeros_like(value, dtype=np.float64)
              for name, value in net.params.items()}
    small = 0.01        # keeps both tanh layers in their linear range
    for j, stages in enumerate(net.scales):
        for s, stage in enumerate(stages):
            prefix = stage.prefix
            weight = params[f"{prefix}conv.weight"]
            centre = weight.shape[-1] // 2
            for channel in range(stage.in_channels):
                horizontal, vertical = 2 * channel, 2 * channel + 1
                weight[horizontal, channel, centre, centre] = -small
                weight[horizontal, channel, centre, centre + 1] = small
                weight[vertical, channel, centre, centre] = -small
                weight[vertical, channel, centre + 1, centre] = small
            recombine1 = params[f"{prefix}recombine1.weight"]
            recombine1[:4, :4] = np.eye(4)[:recombine1.shape[0], :4]
            recombine2 = params[f"{prefix}recombine2.weight"]
            sharp_source = 2 if stage.in_channels == 2 else 0
            for pair in range(stage.n_pairs):
                direction = pair % 2
                recombine2[pair, sharp_source + direction] = 1 / small
                recombine2[stage.n_pairs + pair, direction] = 1 / small
            name = f"{prefix}image_quotient.log_beta"
            params[name] = np.asarray(trained.params[name], dtype=np.float64)
    return Network(arch, params)


def best_gaussian_error(kernels):
    from scipy.ndimage import gaussian_filter
    size = kernels.shape[-1]
    best = np.inf
    for sigma in np.linspace(0.5, size / 4, 40):
        blob = gaussian_filter(delta_kernel(size), sigma)
        blob /= blob.sum()
        best = min(best, float(np.mean(((kernels - blob) ** 2).sum(axis=(1, 2)))))
    return best


def sharp_gradient_quotient(blurry, sharp, kernel_size):
    """The kernel quotient (Eq. 4, beta_k = 1e-4) with ideal features.

    x̃ = the true sharp crop's horizontal and vertical differences, ỹ = the
    blurry crop's: what a network whose features were perfect "sharp-like"
    images would reach, limited only by the noise.
    """
    def differences(images):
        return np.stack([np.diff(images, axis=-1)[..., :-1, :],
                         np.diff(images, axis=-2)[..., :, :-1]], axis=1)
    kernels, _ = KernelQuotient(kernel_size).forward(differences(sharp),
                                                     differences(blurry))
    return kernels


def evaluate(kernel_size, images, n_pairs, crop, seed, model_path=None):
    if model_path is None:
        model_path = shipped_model_path(kernel_size)
    trained, header, _ = read_model_file(model_path)
    trained = trained.astype(np.float64)
    metadata = header["metadata"]
    config = (metadata.get("training", {}).get("config")
              or metadata.get("training_state", {}).get("config", {}))
    untrained = build_network(kernel_size, rng=np.random.default_rng(config.get("seed", 0)),
                              **trained.architecture.to_dict())
    pairs = validation_set(images, n_pairs, crop, kernel_size, seed=seed,
                           noise_std=0.01)
    truth = pairs.k
    rows = []
    for label, net in (("trained", trained),
                       ("untrained (initialisation)", untrained),
                       ("fixed gradient features", fixed_gradient_network(trained))):
        errors = kernel_errors(net, pairs.y, truth)
        rows.append((label, float(np.mean(errors)), float(np.median(errors))))
    delta = ((truth - delta_kernel(kernel_size)) ** 2).sum(axis=(1, 2))
    rows.append(("delta kernel", float(delta.mean()), float(np.median(delta))))
    mean_kernel = truth.mean(axis=0)
    oracle = ((truth - mean_kernel) ** 2).sum(axis=(1, 2))
    rows.append(("oracle: best fixed kernel (mean of the truths)",
                 float(oracle.mean()), float(np.median(oracle))))
    rows.append(("oracle: best isotropic Gaussian", best_gaussian_error(truth), np.nan))
    sharp_gradients = sharp_gradient_quotient(pairs.y, pairs.x, kernel_size)
    errors = ((sharp_gradients - truth) ** 2).sum(axis=(1, 2))
    rows.append(("oracle: Eq. 4 on the true sharp image's gradients",
                 float(errors.mean()), float(np.median(errors))))
    stage_rows = []
    # stages a file does not use at inference (export-model --stages) are
    # untrained: leave them out
    used = trained.architecture.inference_stages or trained.architecture.n_stages
    for s in range(1, used + 1):
        errors = kernel_errors(trained, pairs.y, truth, n_stages=s)
        stage_rows.append((s, float(np.mean(errors))))
    return rows, stage_rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--kernel-sizes", type=int, nargs="+", default=[17, 25, 33])
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="model file (e.g. a run's checkpoint.npz) to evaluate "
                             "instead of the shipped network of its kernel size; "
                             "repeatable")
    args = parser.parse_args(argv)
    _, held_out = validation_split(find_images(args.images), 60)
    chosen = {}
    for path in args.model:
        net, _, _ = read_model_file(path)
        chosen[net.kernel_size] = path
    for kernel_size in args.kernel_sizes:
        model_path = chosen.get(kernel_size)
        if model_path is None:
            try:
                model_path = shipped_model_path(kernel_size)
            except ValueError as error:
                print(f"\n{kernel_size} px: {error}")
                continue
        images = load_gray_images(held_out, min_size=args.crop + kernel_size - 1)
        rows, stage_rows = evaluate(kernel_size, images, args.pairs, args.crop,
                                    args.seed, model_path)
        print(f"\n## {kernel_size} px network ({model_path}): {args.pairs} "
              f"held-out pairs, crop {args.crop}, noise 0.01\n")
        print("| estimator | mean kernel error | median |")
        print("|---|---|---|")
        for label, mean, median in rows:
            print(f"| {label} | {mean:.4f} | {median:.4f} |")
        print("\n| stages run | mean kernel error |")
        print("|---|---|")
        for s, mean in stage_rows:
            print(f"| {s} | {mean:.4f} |")


if __name__ == "__main__":
    main()
