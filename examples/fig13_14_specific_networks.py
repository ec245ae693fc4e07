"""Figs. 13-14: generic networks against networks trained for one condition.

The paper's Fig. 14 deblurs a photo with 5 % noise with the network trained
on low noise and with one trained at that noise level; Fig. 13 deblurs an
image of a category unlike the natural photos of the training set with the
generic network and with one trained on that category.

This script makes both comparisons with the 17 px networks, through
:func:`refdeblur.inference.estimate_kernel_and_size`. Top row: a crop of
scikit-image's ``astronaut`` (NASA, public domain; grey), blurred by 'valid'
convolution with a sampled camera-shake kernel (``refdeblur.sample_kernel``,
a 13, 15 or 17 px window drawn from the seed) and noise of standard
deviation 0.05, deblurred with the generic network refined (``noise="low"``,
the path a noisy photo took where no network for noise is shipped), the
generic network alone (``noise="low", refine=False``), the high-noise network
(``noise="high"``, which is not refined) and the true kernel. Bottom row: a
synthetic document page (``refdeblur.training.documents.document_images``)
blurred the same way with noise 0.01, deblurred with the generic network
(``noise="low"``, refined) and with ``content="text"``, which uses the
document network where one is shipped and the generic one otherwise: that
panel is labelled with the network actually used (``choice.condition.
network``), and the panel to its right gives the reason. Every image is
deconvolved as the benchmarks do
(:func:`refdeblur.evaluation.levin.deconvolve_for_benchmark`: hyper-Laplacian,
noise estimated from the image) and scored by its PSNR against the sharp
crop up to a shift (:func:`refdeblur.evaluation.levin.image_scores`); each
panel shows its kernel as an inset (the true kernel framed in the 17 px
window). One line per panel is printed: row, method, network, refined, PSNR.

What differs: the paper uses colour photos and real or rendered images of
its categories and larger networks; here one grey crop per row, seeded
synthetic blur and noise, and the shipped networks, whose quality depends on
how long they were trained.

Usage::

    python fig13_14_specific_networks.py [--model FILE] [--seed N] [--out DIR] [--quick]

writes ``fig13_14_specific_networks.png`` into the current directory, or into
``--out`` (a folder, or a file name ending in ``.png``). ``--model`` is a
17 px document network to use in the bottom row instead of the shipped one.
``--quick`` uses 128 px crops instead of 384 px.
"""

import sys
import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.signal import fftconvolve  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser, gray_image, save_figure  # noqa: E402

import refdeblur  # noqa: E402
from refdeblur.evaluation.levin import deconvolve_for_benchmark, image_scores  # noqa: E402
from refdeblur.inference import DeblurWarning, estimate_kernel_and_size  # noqa: E402
from refdeblur.training.documents import document_images  # noqa: E402

NAME = "fig13_14_specific_networks.png"
WINDOW = 17                      # the size of the networks compared
KERNEL_SIZES = (13, 15, 17)      # windows of the sampled blurs
PHOTO_NOISE = 0.05
DOCUMENT_NOISE = 0.01
PHOTO_CENTRE = (170, 250)        # the astronaut's face and shoulder, in the 512 px photo


def blur(sharp, kernel, noise_std, rng):
    """``(blurry, sharp)``: 'valid' blur plus noise, and the sharp pixels it covers."""
    half = kernel.shape[0] // 2
    blurry = fftconvolve(sharp, kernel, mode="valid")
    blurry = blurry + noise_std * rng.standard_normal(blurry.shape)
    return blurry, sharp[half:-half, half:-half]


def photo_crop(side, margin):
    """A ``side + 2 margin`` px square of grey ``astronaut`` around :data:`PHOTO_CENTRE`."""
    image = gray_image("astronaut")
    full = side + 2 * margin
    top, left = (int(np.clip(c - full // 2, 0, n - full))
                 for c, n in zip(PHOTO_CENTRE, image.shape))
    return image[top:top + full, left:left + full]


def framed(kernel, size=WINDOW):
    """``kernel`` centred in a ``size`` x ``size`` frame."""
    frame = np.zeros((size, size))
    offset = (size - kernel.shape[0]) // 2
    frame[offset:offset + kernel.shape[0], offset:offset + kernel.shape[1]] = kernel
    return frame


def estimate(blurry, **options):
    """The 17 px kernel and its :class:`PhotoCondition` for these options."""
    with warnings.catch_warnings():
        # a blur near the border of its window is expected and shown
        warnings.simplefilter("ignore", DeblurWarning)
        kernel, choice = estimate_kernel_and_size(blurry, WINDOW, **options)
    return kernel, choice.condition


def panel(label, network, refined, image, sharp, kernel=None):
    """One panel: what it shows, its PSNR, and the kernel it was deconvolved with."""
    return dict(label=label, network=network, refined=refined, image=image,
                psnr=image_scores(image, sharp)["psnr_db"], kernel=kernel)


def estimated_panels(blurry, sharp, methods):
    """A panel per ``(label, options)``: estimate, deconvolve, score."""
    panels = []
    for label, options in methods:
        kernel, condition = estimate(blurry, **options)
        panels.append(panel(label, condition.network, condition.refined,
                            deconvolve_for_benchmark(blurry, kernel), sharp, kernel))
    return panels, condition


def row_panels(blurry, sharp, true_kernel, methods):
    """Blurry input, one panel per method, the true kernel; and the last condition."""
    panels, condition = estimated_panels(blurry, sharp, methods)
    first = panel("blurry input", "-", "-", blurry, sharp)
    last = panel(f"true kernel ({true_kernel.shape[0]} px window)", "-", "-",
                 deconvolve_for_benchmark(blurry, true_kernel), sharp, framed(true_kernel))
    return [first, *panels, last], condition


def draw(ax, item):
    """Show one panel's image, title and kernel inset on ``ax``."""
    ax.imshow(np.clip(item["image"], 0, 1), cmap="gray", vmin=0, vmax=1)
    network = "" if item["network"] == "-" else f"\n{item['network']}"
    ax.set_title(f"{item['label']}{network}\n{item['psnr']:.2f} dB", fontsize=8)
    if item["kernel"] is not None:
        inset = ax.inset_axes([0.0, 0.0, 0.3, 0.3])
        kernel = item["kernel"]
        inset.imshow(kernel / kernel.max(), cmap="gray", vmin=0, vmax=1,
                     interpolation="nearest")
        inset.set_xticks([])
        inset.set_yticks([])
        for spine in inset.spines.values():
            spine.set_edgecolor("yellow")


def main(argv=None):
    parser = figure_parser(__doc__, NAME, model=False,
                           quick_help="128 px crops instead of 384 px (for tests)")
    parser.add_argument("--model", type=Path, default=None,
                        help="17 px document network for the bottom row (default: "
                             "content='text', the shipped one where there is one)")
    args = parser.parse_args(argv)
    try:
        text_model = refdeblur.load_model(args.model) if args.model else None
    except (OSError, ValueError) as error:
        parser.error(str(error))
    if text_model is not None and text_model.kernel_size != WINDOW:
        parser.error(f"--model must be a {WINDOW} px network, "
                     f"not {text_model.kernel_size} px")
    side = 128 if args.quick else 384
    photo_rng, document_rng = (np.random.default_rng(s) for s in
                               np.random.SeedSequence(args.seed).spawn(2))

    photo_kernel = refdeblur.sample_kernel(int(photo_rng.choice(KERNEL_SIZES)), photo_rng)
    margin = photo_kernel.shape[0] // 2
    photo, photo_sharp = blur(photo_crop(side, margin), photo_kernel, PHOTO_NOISE, photo_rng)
    photo_row, _ = row_panels(photo, photo_sharp, photo_kernel, [
        ("generic network, refined", dict(noise="low")),
        ("generic network alone", dict(noise="low", refine=False)),
        ("high-noise network", dict(noise="high"))])

    document_kernel = refdeblur.sample_kernel(int(document_rng.choice(KERNEL_SIZES)),
                                              document_rng)
    full = side + document_kernel.shape[0] - 1
    page = document_images(1, (full, full), document_rng)[0]
    document, document_sharp = blur(page, document_kernel, DOCUMENT_NOISE, document_rng)
    document_row, text_condition = row_panels(document, document_sharp, document_kernel, [
        ("generic network, refined", dict(noise="low")),
        ("content='text'", dict(noise="low", content="text", model=text_model))])

    fig, axes = plt.subplots(2, 5, figsize=(12.5, 6.4))
    for ax in axes.ravel():
        ax.set_axis_off()
    for row, (name, items) in enumerate((("noisy photo", photo_row),
                                         ("document", document_row))):
        for ax, item in zip(axes[row], items):
            draw(ax, item)
            psnr = f"{item['psnr']:.2f} dB"
            print(f"{name:11s} | {item['label']:30s} | {item['network']:18s} | "
                  f"refined={item['refined']!s:5s} | {psnr}")
    axes[1, -1].text(0.0, 0.5, "content='text':\n" + textwrap.fill(text_condition.reason, 28),
                     fontsize=8, va="center", transform=axes[1, -1].transAxes)
    fig.suptitle(f"Generic and condition-specific {WINDOW} px networks: a photo with "
                 f"noise {PHOTO_NOISE} (top, cf. Fig. 14) and a document page with noise "
                 f"{DOCUMENT_NOISE} (bottom, cf. Fig. 13); insets: the kernels", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.86, bottom=0.02, wspace=0.05,
                        hspace=0.32)
    save_figure(fig, args.out, NAME, quick=args.quick)


if __name__ == "__main__":
    main()
