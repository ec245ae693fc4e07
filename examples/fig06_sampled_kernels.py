"""Fig. 6: camera-shake blur kernels sampled from a Gaussian process.

Draws a grid of random kernels from :func:`refdeblur.camera_shake.sample_kernel`
for the two kernel sizes of the paper's figure, 33 px (left) and 17 px
(right), like Schuler et al., "Learning to Deblur", TPAMI 2016, §3.3, Fig. 6
("Examples of blurs sampled from a Gaussian process"). Every kernel is shown
on its own pixel grid, scaled to its maximum, white on black.

Usage::

    python fig06_sampled_kernels.py [--seed 0] [--rows 4] [--cols 4] [--out DIR] [--quick]

writes ``fig06_sampled_kernels.png`` into the current directory, or into
``--out`` (a folder, or a file name ending in ``.png``). ``--quick`` draws
2 x 2 kernels per size at a lower resolution.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser, save_figure  # noqa: E402

from refdeblur.camera_shake import sample_kernels  # noqa: E402

NAME = "fig06_sampled_kernels.png"
SIZES = (33, 17)  # left, right, as in the paper's figure


def make_figure(seed, rows, cols):
    """Return the matplotlib figure with one grid of kernels per size."""
    rng = np.random.default_rng(seed)
    gap = 0.35  # width of the blank column between the two grids, in cells
    fig, axes = plt.subplots(
        rows, 2 * cols + 1, figsize=((2 * cols + gap) * 1.1, rows * 1.1 + 0.7),
        gridspec_kw=dict(width_ratios=[1] * cols + [gap] + [1] * cols,
                         wspace=0.06, hspace=0.06),
        squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01,
                        top=1 - 0.6 / (rows * 1.1 + 0.7))
    for ax in axes[:, cols]:
        ax.set_axis_off()
    for g, size in enumerate(SIZES):
        kernels = sample_kernels(rows * cols, size, rng)
        block = axes[:, g * (cols + 1):g * (cols + 1) + cols]
        for ax, k in zip(block.flat, kernels):
            ax.imshow(k / k.max(), cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        left = block[0, 0].get_position().x0
        right = block[0, -1].get_position().x1
        top = block[0, 0].get_position().y1
        fig.text((left + right) / 2, top + 0.01, f"{size} px", ha="center",
                 va="bottom", fontsize=10)
    fig.suptitle(f"Blur kernels sampled from a GP (Matérn ν = 3/2), seed {seed}",
                 fontsize=10, y=0.995)
    return fig


def main(argv=None):
    parser = figure_parser(__doc__, NAME, model=False,
                           quick_help="2 x 2 kernels per size, low resolution (for tests)")
    parser.add_argument("--rows", type=int, default=None,
                        help="kernel rows per size (default 4; 2 with --quick)")
    parser.add_argument("--cols", type=int, default=None,
                        help="kernel columns per size (default 4; 2 with --quick)")
    args = parser.parse_args(argv)
    default = 2 if args.quick else 4
    fig = make_figure(args.seed, args.rows or default, args.cols or default)
    save_figure(fig, args.out, NAME, quick=args.quick)


if __name__ == "__main__":
    main()
