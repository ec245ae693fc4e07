"""The kernel refinement, coarse to fine, on the README's sample photo (not in the paper).

Inference step 6b (``derivations/kernel_refinement.md``, §5, A8) refines
the kernel of a multi-scale network from its coarsest scale up: the 25 px
network's coarse scale estimates a 17 px kernel on the photo shrunk by
17/25; alternations of latent image and kernel sharpen it there; the result,
resized to 25 px, starts the same refinement on the full-size photo. This
script shows each of those kernels beside the network's own finest-scale
kernel (``refine=False``, the paper's pipeline) and the true one, and the
photo deconvolved with each (the hyper-Laplacian deconvolution of step 7),
with its PSNR against the sharp photo (best integer shift within 5 px).

The photo is ``examples/blurry_astronaut.png`` as ``make_blurry_sample.py``
makes it (scikit-image's ``astronaut``, NASA, public domain; a 23 px
sampled shake; noise 0.01), in grey. ``--quick`` uses its central 160 px.
The refined kernel of the coarse scale is computed by running
:func:`refdeblur.inference.refinement.refine_coarse_to_fine` on the photo
resized to that scale with the coarse scale alone, which is the first step
of the full run for photos of up to 512 px (larger ones are refined on
their most textured 512 px window).

Usage::

    python coarse_to_fine_refinement.py [--model FILE] [--out DIR] [--quick]

writes ``coarse_to_fine_refinement.png`` into the current directory, or into
``--out`` (a folder, or a file name ending in ``.png``). ``--model`` must be
a multi-scale network (default: the shipped 25 px one).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser, save_figure  # noqa: E402
from make_blurry_sample import sample_kernel_and_image  # noqa: E402

import refdeblur  # noqa: E402
from refdeblur.deconvolution import deconvolve  # noqa: E402
from refdeblur.image_io import rgb_to_gray  # noqa: E402
from refdeblur.inference import network_kernels  # noqa: E402
from refdeblur.inference.refinement import refine_coarse_to_fine  # noqa: E402
from refdeblur.layers.resample import imresize  # noqa: E402
from refdeblur.metrics import psnr_up_to_shift  # noqa: E402
from refdeblur.models import load_shipped_model  # noqa: E402

NAME = "coarse_to_fine_refinement.png"


def scale_kernels(net, blurry):
    """The network's coarse kernel and the refined kernel after every scale."""
    sizes = net.architecture.kernel_sizes
    shapes = net.scale_shapes(blurry.shape)
    coarse = network_kernels(net.forward(blurry.astype(net.dtype), n_scales=1))[0]
    refined = []
    for j in range(len(sizes)):
        image = blurry if shapes[j] == blurry.shape else imresize(blurry, output_shape=shapes[j])
        refined.append(refine_coarse_to_fine(image, coarse, sizes[:j + 1]))
    return coarse, refined


def padded(kernel, size):
    """``kernel`` centred in a ``size`` x ``size`` frame (for side-by-side display)."""
    frame = np.zeros((size, size))
    offset = (size - kernel.shape[0]) // 2
    frame[offset:offset + kernel.shape[0], offset:offset + kernel.shape[1]] = kernel
    return frame


def main(argv=None):
    parser = figure_parser(__doc__, NAME, seed=False,
                           quick_help="the central 160 px of the photo (for tests)")
    args = parser.parse_args(argv)
    net = refdeblur.load_model(args.model) if args.model else load_shipped_model(25)
    if len(net.architecture.kernel_sizes) < 2:
        parser.error("the model has one scale: there is nothing to refine coarse to fine")
    blurry_u8, true_kernel, sharp = sample_kernel_and_image()
    blurry = rgb_to_gray(blurry_u8 / 255.0)
    sharp = rgb_to_gray(sharp)
    if args.quick:
        top = (blurry.shape[0] - 160) // 2
        blurry = blurry[top:top + 160, top:top + 160]
        sharp = sharp[top:top + 160, top:top + 160]

    size = net.kernel_size
    network_only = network_kernels(net.forward(blurry.astype(net.dtype)))[-1]
    coarse, refined = scale_kernels(net, blurry)
    sizes = net.architecture.kernel_sizes
    kernels = [(f"network, finest scale\n({size} px, refine=False)", network_only),
               (f"network, coarsest scale\n({sizes[0]} px, photo x {sizes[0]}/{size})", coarse)]
    kernels += [(f"refined at scale {j + 1}\n({m} px)", k)
                 for j, (m, k) in enumerate(zip(sizes, refined))]
    kernels.append((f"true kernel\n({true_kernel.shape[0]} px)", true_kernel))

    def restored(kernel):
        image = deconvolve(blurry, kernel, noise_std=None)
        return image, psnr_up_to_shift(image, sharp, data_range=1.0, crop=15,
                                       max_shift=5.0, step=1.0)

    images = [("blurry", blurry, psnr_up_to_shift(blurry, sharp, data_range=1.0, crop=15,
                                                  max_shift=5.0, step=1.0))]
    for label, kernel in (("network kernel", network_only),
                          ("coarse to fine", refined[-1]),
                          ("true kernel", true_kernel)):
        image, score = restored(kernel)
        images.append((f"deconvolved, {label}", image, score))

    columns = max(len(kernels), len(images))
    fig, axes = plt.subplots(2, columns, figsize=(2.3 * columns, 5.2))
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (label, kernel) in zip(axes[0], kernels):
        # A scale's kernel spans the same part of the scene as the finest
        # one (its pixels are larger), so each fills its panel; only the
        # true kernel, smaller than the window, is framed to the window.
        shown = padded(kernel, size) if kernel.shape[0] < size and kernel is true_kernel else kernel
        ax.imshow(shown / shown.max(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=8)
    for ax, (label, image, score) in zip(axes[1], images):
        ax.imshow(np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{label}\n{score:.2f} dB", fontsize=8)
    fig.suptitle(f"Kernel refinement coarse to fine ({size} px network; step 6b, not "
                 f"in the paper)", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.86, bottom=0.02, wspace=0.05,
                        hspace=0.3)
    save_figure(fig, args.out, NAME, quick=args.quick)


if __name__ == "__main__":
    main()
