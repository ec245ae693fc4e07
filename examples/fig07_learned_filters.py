"""Fig. 7: the learned filters of the convolution layer of every stage.

The paper's Fig. 7 (Schuler et al., "Learning to Deblur", TPAMI 2016, §4)
shows the filters of the convolution layer of each of the three stages
("iterations") of one scale of a trained network for 17 x 17 px kernels:
those of the first stage look like gradient, Gabor and Laplace filters of
various extents and orientations, those of the later stages are "much more
intricate and more difficult to interpret".

This script draws the same thing for the shipped 17 px network (or any model
file given with ``--model``): one grid of filters per stage. Stage 1 sees only
the blurry image, so each filter has one channel; stages 2 and 3 see the
blurry image and the current latent image stacked, so each of their filters
has two channels, drawn as two grids side by side (the filter on the blurry
image, then the one on the latent image, same position in both grids).

Every filter is scaled by its own largest absolute value (across both of its
channels, so the two channels of one filter stay comparable): mid-grey is 0,
white positive, black negative. Filters are shown in their stored order.

Differences from the paper: ours has 32 filters of 17 x 17 px per stage (the
paper's §6 network); the look of the filters depends entirely on how well the
shipped weights are trained. ``--quick`` only lowers the resolution of the
PNG (the script is fast anyway).

Usage::

    python fig07_learned_filters.py [--model FILE] [--scale 1] [--out DIR] [--quick]

writes ``fig07_learned_filters.png`` into the current directory, or into
``--out`` (a folder, or a file name ending in ``.png``).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser, load_network, save_figure  # noqa: E402


NAME = "fig07_learned_filters.png"


def filter_grid(weights, cols, gap=1):
    """Tile ``(n, f, f)`` filters into one image with ``gap`` px of NaN between."""
    n, f, _ = weights.shape
    rows = -(-n // cols)
    grid = np.full((rows * (f + gap) - gap, cols * (f + gap) - gap), np.nan)
    for i, w in enumerate(weights):
        r, c = divmod(i, cols)
        grid[r * (f + gap):r * (f + gap) + f, c * (f + gap):c * (f + gap) + f] = w
    return grid


def make_figure(net, scale=1, cols=8):
    """One row per stage; stages with two input channels get two grids."""
    stages = net.scales[scale - 1]
    n_cols_fig = max(stage.in_channels for stage in stages)
    cmap = plt.get_cmap("gray").with_extremes(bad="white")
    weights = [np.asarray(net.params[f"{stage.prefix}conv.weight"], np.float64)
               for stage in stages]
    n_filters, _, f, _ = weights[0].shape
    rows = -(-n_filters // cols)
    cell = 0.32  # inches per filter
    fig, axes = plt.subplots(
        len(stages), n_cols_fig, squeeze=False,
        figsize=(n_cols_fig * cols * cell + 0.6,
                 len(stages) * (rows * cell + 0.45) + 0.5))
    channel_names = ["on the blurry image", "on the latent image"]
    for s, (stage, w) in enumerate(zip(stages, weights)):
        # each filter scaled by its own max |w| over both channels
        scale_per_filter = np.abs(w).reshape(len(w), -1).max(axis=1)
        w = w / np.where(scale_per_filter > 0, scale_per_filter, 1)[:, None, None, None]
        for c in range(n_cols_fig):
            ax = axes[s, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= stage.in_channels:
                ax.set_axis_off()
                continue
            ax.imshow(filter_grid(w[:, c], cols), cmap=cmap, vmin=-1, vmax=1,
                      interpolation="nearest")
            for spine in ax.spines.values():
                spine.set_visible(False)
            title = f"stage {s + 1}"
            if stage.in_channels > 1:
                title += f", {channel_names[c]}"
            ax.set_title(title, fontsize=9)
    fig.suptitle(f"Learned {f}x{f} convolution filters, scale {scale} "
                 f"({n_filters} per stage)\neach scaled to its own max |w|: "
                 f"grey = 0, white > 0, black < 0", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def main(argv=None):
    parser = figure_parser(__doc__, NAME, seed=False,
                           quick_help="lower resolution (for tests)")
    parser.add_argument("--scale", type=int, default=1,
                        help="which scale of a multi-scale model, 1 = coarsest "
                             "(default 1)")
    args = parser.parse_args(argv)
    net = load_network(args.model)
    if not 1 <= args.scale <= len(net.scales):
        parser.error(f"--scale must be in 1..{len(net.scales)}")
    fig = make_figure(net, args.scale)
    save_figure(fig, args.out, NAME, quick=args.quick)


if __name__ == "__main__":
    main()
