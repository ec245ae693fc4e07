"""Figs. 15-16: spatially-varying camera shake, one kernel per patch.

The paper's Fig. 15 deblurs a photo whose blur changes across it (a camera
that rotates while it translates) with the network trained on uniform blur,
its kernel quotient solved per patch (Eq. 8); Fig. 16 shows the local
kernels of the direct estimate, after the projection onto the camera-motion
basis (Eq. 9) and after the sparsifying threshold (eta = 0.0314).

This script renders such a blur on scikit-image's ``camera`` (Lav Varshney,
CC0; the central 384 px, grey) with :func:`refdeblur.nonuniform.render_shake`
(a sampled path of 3-8 px translation and 2 degrees of rotation, the sharp
image warped and averaged; noise 0.01) and shows, top row, the blurry photo,
``refdeblur.deblur`` (one kernel), ``refdeblur.deblur_nonuniform`` (3 x 3
patches, its defaults) and the EFF deconvolution with the true local
kernels, each with its PSNR against the sharp photo (best shift within
5 px); bottom row, the kernel fields drawn as ``refdeblur deblur
--nonuniform`` draws them: the true local kernels, the direct estimate
(Eq. 8, refined per patch), its projection by the paper's Eq. 9 and the same
after the threshold. The local kernels of the shipped, partly trained
networks are noisier than the paper's; derivations/nonuniform.md §5 says why
the projection is not the default.

Usage::

    python fig15_16_nonuniform.py [--model FILE] [--seed N] [--out DIR] [--quick]

writes ``fig15_16_nonuniform.png`` into the current directory, or into
``--out`` (a folder, or a file name ending in ``.png``). ``--quick`` uses the
central 256 px and the 17 px network.
"""

import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser, gray_image, save_figure  # noqa: E402

import refdeblur  # noqa: E402
from refdeblur.inference import DeblurWarning  # noqa: E402
from refdeblur.inference.files import kernel_field_image  # noqa: E402
from refdeblur.metrics import psnr_up_to_shift  # noqa: E402
from refdeblur.nonuniform import (deconvolve_nonuniform, motion_basis, patch_grid,  # noqa: E402
                                  pose_grid, project_kernels, render_shake,
                                  sample_camera_trajectory, true_local_kernels)

NAME = "fig15_16_nonuniform.png"
GRID = (3, 3)


def score(image, sharp):
    return psnr_up_to_shift(np.asarray(image, dtype=np.float64), sharp, step=1.0)


def main(argv=None):
    parser = figure_parser(__doc__, NAME, quick_help="the central 256 px and the 17 px "
                                                     "network (for tests)")
    args = parser.parse_args(argv)
    model = refdeblur.load_model(args.model) if args.model else None
    side = 256 if args.quick else 384
    image = gray_image("camera")
    top = (image.shape[0] - side) // 2
    sharp = image[top:top + side, top:top + side]
    rng = np.random.default_rng(args.seed)
    path = sample_camera_trajectory(rng, min_shift_px=3, max_shift_px=8,
                                    min_rotation_deg=2, max_rotation_deg=2)
    blurry = render_shake(sharp, path) + 0.01 * rng.standard_normal(sharp.shape)
    size = "auto" if model is None and not args.quick else (17 if model is None
                                                             else model.kernel_size)
    with warnings.catch_warnings():
        # the local kernels often reach the border of their window
        warnings.simplefilter("ignore", DeblurWarning)
        uniform, _ = refdeblur.deblur(blurry, size, model=model)
        nonuniform, estimate = refdeblur.deblur_nonuniform(blurry, size, grid=GRID,
                                                           model=model)
    m = estimate.kernel_size
    truth = true_local_kernels(sharp.shape, estimate.centres, path, m)
    with_truth = deconvolve_nonuniform(blurry, truth, patch_grid(sharp.shape, GRID,
                                                                 kernel_size=m))
    basis = motion_basis(sharp.shape, estimate.centres, m, pose_grid(sharp.shape, m))
    projected, _ = project_kernels(estimate.direct_kernels, basis, eta=1.0)
    thresholded, _ = project_kernels(estimate.direct_kernels, basis, eta=0.0314)

    images = [("blurry", blurry), ("uniform: refdeblur.deblur", uniform),
              (f"non-uniform, {GRID[0]} x {GRID[1]} patches", nonuniform),
              ("EFF with the true local kernels", with_truth)]
    fields = [("true local kernels", truth), ("direct estimate (Eq. 8)",
                                              estimate.direct_kernels),
              ("after the projection (Eq. 9)", projected),
              ("after the threshold (eta = 0.0314)", thresholded)]
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.6))
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (label, picture) in zip(axes[0], images):
        ax.imshow(np.clip(picture, 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{label}\n{score(picture, sharp):.2f} dB", fontsize=9)
    for ax, (label, kernels) in zip(axes[1], fields):
        field = kernel_field_image(kernels, estimate.centres, sharp.shape, min_side=384)
        ax.imshow(field, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"{label}, {m} px", fontsize=9)
    rotation = np.degrees(np.ptp(path[:, 2]))
    fig.suptitle(f"Spatially-varying camera shake ({rotation:.1f} degrees of rotation): "
                 f"local kernels by Eq. 8 and their projection by Eq. 9", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.02, wspace=0.05,
                        hspace=0.18)
    save_figure(fig, args.out, NAME, quick=args.quick)


if __name__ == "__main__":
    main()
