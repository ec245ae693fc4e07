"""Fig. 2: the intermediate images of the first stage for one blurry image.

The paper's Fig. 2 (Schuler et al., "Learning to Deblur", TPAMI 2016, §3.2
and §4) shows, for one blurry input, the images a stage computes on its way
to the kernel: the outputs of the convolution layer, the same after the tanh
nonlinearity, the hidden images after the first linear recombination and the
second tanh, and finally the sharp-like and blurry-like feature images
x̃_i and ỹ_i from which the quotient layer (Eq. 4) estimates the kernel. The
paper notes that the tanh and recombination layers "seem to emphasize strong
edges".

This script draws the same for the first stage of the shipped 17 px network
(or ``--model FILE``). The input is a random 256 x 256 crop of scikit-image's
``camera`` photo (Lav Varshney, CC0: "No copyright restrictions",
``skimage.data.camera``), blurred by 'valid' convolution with a camera-shake
kernel from :func:`refdeblur.sample_kernel` plus Gaussian noise of standard
deviation 0.01 (:func:`refdeblur.training.data.make_pair`, the training
recipe). The network runs with :meth:`Network.forward_with_cache`; the
pre-activation images, which the caches do not keep, are recomputed from
the cached layer inputs. The top row shows the blurry input, the sharp crop,
the true kernel and the kernels after stage 1 and after the last stage, with
their squared error up to shift (:func:`refdeblur.metrics.kernel_error_up_to_shift`).

Scaling: convolution outputs, recombination outputs and feature images are
each shown on a symmetric grey scale at their own largest absolute value
(grey = 0); the tanh outputs on the fixed range [-1, 1], so saturation is
visible as pure black and white. All images after the convolution are
'valid' correlations, 16 px smaller than the input.

Differences from the paper: its Fig. 2 comes from a small single-stage
network (8 filters, 8 hidden images, 2 + 2 feature images); ours is the
three-stage §6 network with 32 filters and 32 hidden images, of which the
first ``--channels`` (default 8) are shown, and stage 1 has 2 + 2 feature
images as in the paper. What the images look like depends on how well the
shipped weights are trained. ``--quick`` uses a 96 px crop.

Usage::

    python fig02_stage_outputs.py [--model FILE] [--seed 1] [--channels 8] [--out DIR] [--quick]

writes ``fig02_stage_outputs.png`` into the current directory, or into
``--out`` (a folder, or a file name ending in ``.png``).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage import data  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser, first_stage_images, load_network, save_figure  # noqa: E402

from refdeblur.metrics import kernel_error_up_to_shift  # noqa: E402
from refdeblur.training.data import make_pair  # noqa: E402

NAME = "fig02_stage_outputs.png"


def _show(ax, image, symmetric=True, fixed=None, title=None):
    image = np.asarray(image, dtype=np.float64)
    if fixed is not None:
        vmin, vmax = fixed
    elif symmetric:
        vmax = float(np.abs(image).max()) or 1.0
        vmin = -vmax
    else:
        vmin, vmax = float(image.min()), float(image.max())
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def make_figure(net, crop, seed, n_channels):
    rng = np.random.default_rng(seed)
    image = data.camera().astype(np.float64) / 255.0
    m = net.kernel_size
    blurry, true_kernel, sharp = make_pair(image, crop, m, rng)
    images, output = first_stage_images(net, blurry)
    n_channels = min(n_channels, images["conv"].shape[0])
    n_pairs = images["sharp"].shape[0]
    cols = max(n_channels, 2 * n_pairs, 5)

    fig, axes = plt.subplots(6, cols, figsize=(1.25 * cols, 1.25 * 6 + 0.9),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()

    def used(ax):
        ax.set_axis_on()
        for spine in ax.spines.values():
            spine.set_visible(False)
        return ax

    k1 = output.stage_kernels[0][0]
    kf = output.kernel
    e1 = kernel_error_up_to_shift(k1, true_kernel)
    ef = kernel_error_up_to_shift(kf, true_kernel)
    _show(used(axes[0, 0]), blurry, symmetric=False, fixed=(0, 1),
          title=f"blurry input {crop} px")
    _show(used(axes[0, 1]), sharp, symmetric=False, fixed=(0, 1),
          title="sharp (not seen)")
    for ax, kernel, title in ((axes[0, 2], true_kernel, "true kernel"),
                              (axes[0, 3], k1, f"after stage 1\nerr {e1:.4f}"),
                              (axes[0, 4], kf, f"final (stage {net.architecture.n_stages})"
                                               f"\nerr {ef:.4f}")):
        kernel = np.asarray(kernel, dtype=np.float64)
        _show(used(ax), kernel, symmetric=False, fixed=(0, kernel.max() or 1),
              title=title)

    rows = [("conv", "conv", None), ("tanh1", "tanh", (-1, 1)),
            ("recombine1", "recomb.", None), ("tanh2", "tanh", (-1, 1))]
    for r, (key, label, fixed) in enumerate(rows, start=1):
        for c in range(n_channels):
            _show(used(axes[r, c]), images[key][c], fixed=fixed,
                  title=f"{label} {c + 1}")
    for i in range(n_pairs):
        _show(used(axes[5, i]), images["sharp"][i], title=f"x̃{i + 1} (sharp-like)")
        _show(used(axes[5, n_pairs + i]), images["blurry"][i],
              title=f"ỹ{i + 1} (blurry-like)")

    row_titles = ["input, kernels", "1. convolution", "2. tanh",
                  "3. recombination", "4. tanh (hidden)", "5. recombination\n(features)"]
    for r, text in enumerate(row_titles):
        axes[r, 0].set_ylabel(text, fontsize=8)
    fig.suptitle(f"Stage 1 of the {m} px network on a blurred crop of "
                 f"'camera' (first {n_channels} of "
                 f"{images['conv'].shape[0]} channels)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97), h_pad=0.4, w_pad=0.2)
    return fig


def main(argv=None):
    parser = figure_parser(__doc__, NAME,
                           seed_help="random seed of the crop, kernel and noise (default 1)",
                           quick_help="small crop, low resolution (for tests)")
    parser.add_argument("--channels", type=int, default=8,
                        help="convolution and hidden channels to show (default 8)")
    parser.add_argument("--crop", type=int, default=None,
                        help="side of the blurry crop (default 256; 96 with --quick)")
    args = parser.parse_args(argv)
    net = load_network(args.model)
    crop = args.crop or (96 if args.quick else 256)
    if crop < net.min_image_size():
        parser.error(f"--crop must be at least {net.min_image_size()} px")
    fig = make_figure(net, crop, args.seed, args.channels)
    save_figure(fig, args.out, NAME, quick=args.quick)


if __name__ == "__main__":
    main()
