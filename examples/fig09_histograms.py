"""Fig. 9: distribution of the intensities inside the first stage.

The paper's Fig. 9 (Schuler et al., "Learning to Deblur", TPAMI 2016, §4)
shows histograms of the values of the feature images at successive steps of
the first stage, averaged over 200 blurry images: (1) after the convolution
layer, a sparse (peaked, heavy-tailed) distribution; (2) after the first
tanh, "dominated by extreme values" (the tanh saturates and creates sharp
edges, Fig. 10); (3) the final sharp-like and blurry-like feature images
after the second nonlinearity and recombination, sparse again "but
containing the emphasized edges".

This script computes the same histograms for the first stage of the shipped
17 px network (or ``--model FILE``): five panels, for the convolution
output, the first tanh, the first recombination, the second tanh (hidden
images) and the feature images x̃_i and ỹ_i (drawn separately). The inputs
are ``--crops`` random 128 x 128 crops (default 32) from five public-domain
photos of ``skimage.data`` -- ``camera`` (Lav Varshney, CC0), ``astronaut``
(NASA, public domain), ``coffee`` (Rachel Michetti, CC0), ``chelsea``
(Stefan van der Walt, CC0) and ``rocket`` (SpaceX, public domain), colour
ones converted to grey -- each blurred by 'valid' convolution with its own
camera-shake kernel from :func:`refdeblur.sample_kernel` plus Gaussian noise
of standard deviation 0.01 (:func:`refdeblur.training.data.make_pair`,
which also rejects flat crops as in training). Every panel pools all
channels of all crops (a fixed random subset of pixels per crop) and shows a
density on a logarithmic axis; the legend gives the excess kurtosis
(0 for a Gaussian; large for a sparse, heavy-tailed distribution; negative
for a distribution piled up at its extremes).

Differences from the paper: 32 crops of 5 photos instead of 200 images;
32 filters and 32 hidden images per stage; we add the two intermediate
panels (recombination 1, tanh 2). What the histograms look like depends on
how well the shipped weights are trained. ``--quick`` uses 2 crops of
64 px.

Usage::

    python fig09_histograms.py [--model FILE] [--seed 0] [--crops 32] [--out DIR] [--quick]

writes ``fig09_histograms.png`` into the current directory, or into
``--out`` (a folder, or a file name ending in ``.png``).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser, first_stage_images, gray_image, load_network, save_figure  # noqa: E402

from refdeblur.training.data import make_pair  # noqa: E402

NAME = "fig09_histograms.png"
#: Public-domain / CC0 photos of skimage.data (see the module docstring).
IMAGES = ("camera", "astronaut", "coffee", "chelsea", "rocket")
#: Values kept per crop and layer for the histograms.
SAMPLES_PER_CROP = 40_000

STEPS = (("conv", "1. after the convolution"),
         ("tanh1", "2. after tanh 1"),
         ("recombine1", "3. after recombination 1"),
         ("tanh2", "4. after tanh 2 (hidden)"),
         ("features", "5. feature images x̃, ỹ"))


def collect(net, n_crops, crop, seed):
    """Pooled samples of every step over ``n_crops`` blurry crops."""
    rng = np.random.default_rng(seed)
    images = [gray_image(name) for name in IMAGES]
    pooled = {key: [] for key, _ in STEPS if key != "features"}
    pooled["sharp"], pooled["blurry"] = [], []

    def keep(values):
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size > SAMPLES_PER_CROP:
            values = values[rng.choice(values.size, SAMPLES_PER_CROP,
                                       replace=False)]
        return values

    for i in range(n_crops):
        image = images[i % len(images)]
        blurry, _, _ = make_pair(image, crop, net.kernel_size, rng)
        steps, _ = first_stage_images(net, blurry)
        for key, _ in STEPS:
            if key == "features":
                pooled["sharp"].append(keep(steps["sharp"]))
                pooled["blurry"].append(keep(steps["blurry"]))
            else:
                pooled[key].append(keep(steps[key]))
    return {key: np.concatenate(values) for key, values in pooled.items()}


def excess_kurtosis(values):
    centred = values - values.mean()
    var = np.mean(centred ** 2)
    return float(np.mean(centred ** 4) / var ** 2 - 3) if var > 0 else 0.0


def make_figure(pooled, n_crops, crop, kernel_size):
    fig, axes = plt.subplots(1, len(STEPS), figsize=(3.0 * len(STEPS), 3.1))
    for ax, (key, title) in zip(axes, STEPS):
        series = ([("x̃ (sharp-like)", pooled["sharp"], "C0"),
                   ("ỹ (blurry-like)", pooled["blurry"], "C3")]
                  if key == "features" else [(None, pooled[key], "k")])
        lo = min(float(v.min()) for _, v, _ in series)
        hi = max(float(v.max()) for _, v, _ in series)
        if key.startswith("tanh"):
            lo, hi = -1.0, 1.0
        bins = np.linspace(lo, hi, 81) if hi > lo else 81
        for label, values, colour in series:
            kurt = excess_kurtosis(values)
            text = f"kurtosis {kurt:.1f}" if label is None else f"{label}, kurt. {kurt:.1f}"
            ax.hist(values, bins=bins, density=True, histtype="step",
                    color=colour, label=text)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("value", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper center", frameon=False)
        ax.set_ylim(top=ax.get_ylim()[1] * 8)  # room for the legend
    axes[0].set_ylabel("density (log)", fontsize=8)
    fig.suptitle(f"Stage 1 of the {kernel_size} px network: distribution of "
                 f"the values at each step, pooled over all channels of "
                 f"{n_crops} blurry {crop} px crops", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def main(argv=None):
    parser = figure_parser(__doc__, NAME,
                           seed_help="random seed of crops, kernels and noise (default 0)",
                           quick_help="few small crops, low resolution (for tests)")
    parser.add_argument("--crops", type=int, default=None,
                        help="number of blurry crops (default 32; 2 with --quick)")
    parser.add_argument("--crop", type=int, default=None,
                        help="side of the crops (default 128; 64 with --quick)")
    args = parser.parse_args(argv)
    net = load_network(args.model)
    n_crops = args.crops or (2 if args.quick else 32)
    crop = args.crop or (64 if args.quick else 128)
    if crop < net.min_image_size():
        parser.error(f"--crop must be at least {net.min_image_size()} px")
    pooled = collect(net, n_crops, crop, args.seed)
    fig = make_figure(pooled, n_crops, crop, net.kernel_size)
    save_figure(fig, args.out, NAME, quick=args.quick)


if __name__ == "__main__":
    main()
