"""Fig. 19: kernel error against the size of the observed image.

The paper's Fig. 19 (Schuler et al., "Learning to Deblur", TPAMI 2016,
§6.5) plots, for three blur kernels, the mean squared error of the kernel
the network predicts from differently sized crops of a blurry image (cf.
its Fig. 18), averaged over the 52 largest images of a benchmark: the error
"decreases monotonously" with the crop size, i.e. the network makes use of
more data and does not get confused by uninformative regions.

This script repeats the experiment for the shipped 17 px network (or
``--model FILE``). ``--kernels`` camera-shake kernels (default 3) are
sampled with :func:`refdeblur.sample_kernel`; each blurs four
public-domain photos of ``skimage.data`` -- ``camera`` (Lav Varshney, CC0),
``astronaut`` (NASA, public domain), ``coffee`` (Rachel Michetti, CC0) and
``rocket`` (SpaceX, public domain), converted to grey -- by 'valid'
convolution, plus Gaussian noise of standard deviation 0.01. From every
blurry image, square crops of side 64, 96, 128, 192, 256 and 384 px around
one random centre (nested, as in the paper's Fig. 18) go through
:meth:`Network.forward`, and the estimated kernel is compared with the true
one by :func:`refdeblur.metrics.kernel_error_up_to_shift` (sum of squared
differences of the kernels normalised to sum 1, minimised over integer
shifts). Coloured lines: the network's final kernel, mean over the photos per
kernel, shaded band: their minimum to maximum; thick black line: the mean
over all kernels and photos; grey dotted lines: the same mean for the
kernels after the earlier stages. Reference levels (means over the
kernels): dashed, a delta kernel (assume no blur); dotted, a uniform
17 x 17 kernel (an estimate without information). Both axes are
logarithmic. Thumbnails of the kernels are on the right.

Differences from the paper: 4 photos of scikit-image instead of 52 images of
the Sun et al. benchmark; the error is an l2 distance up to shift rather than
the paper's (unspecified) MSE, so only the trend and the comparison with the
delta kernel carry over; no competing method. The crop sizes start at 64 px
because the 17 px network needs at least 50 px. ``--quick`` runs one kernel
on one photo for sizes 64 and 96.

Usage::

    python fig19_error_vs_image_size.py [--model FILE] [--seed 0] [--kernels 3]
        [--out DIR] [--quick]

writes ``fig19_error_vs_image_size.png`` into the current directory, or into
``--out`` (a folder, or a file name ending in ``.png``).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from scipy.signal import fftconvolve  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser, gray_image, load_network, save_figure  # noqa: E402

from refdeblur.kernels import delta_kernel  # noqa: E402
from refdeblur import sample_kernel  # noqa: E402
from refdeblur.metrics import kernel_error_up_to_shift  # noqa: E402

NAME = "fig19_error_vs_image_size.png"
#: Public-domain / CC0 photos of skimage.data at least 400 px on each side.
IMAGES = ("camera", "astronaut", "coffee", "rocket")
SIZES = (64, 96, 128, 192, 256, 384)
NOISE_STD = 0.01


def nested_crops(image, sizes, rng):
    """Square crops of every size around one random centre."""
    height, width = image.shape
    big = max(sizes)
    top = int(rng.integers(0, height - big + 1))
    left = int(rng.integers(0, width - big + 1))
    cy, cx = top + big // 2, left + big // 2
    return [image[cy - s // 2:cy - s // 2 + s, cx - s // 2:cx - s // 2 + s]
            for s in sizes]


def run_experiment(net, n_kernels, image_names, sizes, seed, log=print):
    """Kernel errors of every stage, and the kernels.

    Returns
    -------
    errors : ndarray of shape (stages, kernels, images, sizes)
        Error of the kernel after each stage of the finest scale; the last
        one is the network's estimate.
    kernels : list of ndarray
    failures : int
        Final estimates with no positive mass, scored as a delta kernel.
    """
    rng = np.random.default_rng(seed)
    m = net.kernel_size
    n_stages = net.architecture.n_stages
    kernels = [sample_kernel(m, rng) for _ in range(n_kernels)]
    photos = [gray_image(name) for name in image_names]
    errors = np.zeros((n_stages, n_kernels, len(photos), len(sizes)))
    failures = 0
    for a, kernel in enumerate(kernels):
        for b, (name, photo) in enumerate(zip(image_names, photos)):
            blurry = fftconvolve(photo, kernel, mode="valid")
            blurry += NOISE_STD * rng.standard_normal(blurry.shape)
            for c, crop in enumerate(nested_crops(blurry, sizes, rng)):
                output = net.forward(crop)
                for s, estimate in enumerate(output.stage_kernels[-1]):
                    estimate = np.asarray(estimate, np.float64)
                    if not (np.all(np.isfinite(estimate)) and estimate.sum() > 0):
                        estimate = delta_kernel(m)
                        failures += s == n_stages - 1
                    errors[s, a, b, c] = kernel_error_up_to_shift(estimate, kernel)
            log(f"kernel {a + 1}/{n_kernels}, {name}: "
                + " ".join(f"{s}px {e:.4f}" for s, e in zip(sizes, errors[-1, a, b])))
    return errors, kernels, failures


def make_figure(errors, kernels, sizes, image_names, failures, kernel_size):
    n_kernels = len(kernels)
    n_stages = errors.shape[0]
    fig = plt.figure(figsize=(7.8, 4.8))
    grid = fig.add_gridspec(max(n_kernels, 3), 2, width_ratios=(6, 1),
                            wspace=0.08, hspace=0.25)
    ax = fig.add_subplot(grid[:, 0])
    sizes = np.asarray(sizes)
    final = errors[-1]
    for a, kernel in enumerate(kernels):
        colour = f"C{a}"
        per_image = final[a]
        ax.plot(sizes, per_image.mean(axis=0), "o-", color=colour, lw=1.5,
                ms=4, label=f"kernel {a + 1}")
        if per_image.shape[0] > 1:
            ax.fill_between(sizes, per_image.min(axis=0), per_image.max(axis=0),
                            color=colour, alpha=0.15, lw=0)
        thumb = fig.add_subplot(grid[a, 1])
        thumb.imshow(kernel / kernel.max(), cmap="gray", vmin=0, vmax=1,
                     interpolation="nearest")
        thumb.set_xticks([])
        thumb.set_yticks([])
        for spine in thumb.spines.values():
            spine.set_color(colour)
            spine.set_linewidth(2)
        thumb.set_title(f"kernel {a + 1}", fontsize=8, color=colour)
    ax.plot(sizes, final.mean(axis=(0, 1)), "s-", color="k", lw=2.5, ms=5,
            label="mean of all")
    for s in range(n_stages - 1):
        ax.plot(sizes, errors[s].mean(axis=(0, 1)), "v^<>"[s % 4] + ":",
                color="0.45", lw=1.2, ms=4,
                label=f"mean of all, after stage {s + 1}")
    delta = np.mean([kernel_error_up_to_shift(delta_kernel(kernel_size), k)
                     for k in kernels])
    flat = np.mean([kernel_error_up_to_shift(np.ones((kernel_size,) * 2), k)
                    for k in kernels])
    ax.axhline(delta, color="k", ls="--", lw=1, label="delta kernel (no blur)")
    ax.axhline(flat, color="k", ls=(0, (1, 3)), lw=1,
               label="uniform kernel (no information)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("side of the observed blurry image (px)")
    ax.set_ylabel("kernel error up to shift (SSD)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    note = f"; {failures} empty estimates scored as delta" if failures else ""
    ax.set_title(f"{kernel_size} px network (final stage {n_stages}), "
                 f"{len(image_names)} photo{'s' if len(image_names) != 1 else ''}"
                 f" per kernel, band: min to max{note}", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.11)
    return fig


def main(argv=None):
    parser = figure_parser(__doc__, NAME,
                           seed_help="random seed of kernels, noise and crops (default 0)",
                           quick_help="one kernel, one photo, two sizes (for tests)")
    parser.add_argument("--kernels", type=int, default=None,
                        help="number of sampled kernels (default 3; 1 with --quick)")
    args = parser.parse_args(argv)
    net = load_network(args.model)
    n_kernels = args.kernels or (1 if args.quick else 3)
    image_names = IMAGES[:1] if args.quick else IMAGES
    sizes = tuple(s for s in (SIZES[:2] if args.quick else SIZES)
                  if s >= net.min_image_size())
    if not sizes:
        parser.error(f"the network needs at least {net.min_image_size()} px")
    errors, kernels, failures = run_experiment(net, n_kernels, image_names,
                                               sizes, args.seed)
    fig = make_figure(errors, kernels, sizes, image_names, failures,
                      net.kernel_size)
    save_figure(fig, args.out, NAME, quick=args.quick)


if __name__ == "__main__":
    main()
