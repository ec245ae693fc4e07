"""Fig. 11: the input the network likes best, by activation maximisation.

The paper's Fig. 11 (Schuler et al., "Learning to Deblur", TPAMI 2016, §4)
shows "optimal inputs" of a trained single-stage network for 17 x 17 px
kernels, found by optimising the input image instead of the weights: start
from a random 64 x 64 image, then repeatedly blur it with a kernel, add
noise, compute the error of the kernel the network predicts and update the
image by gradient descent. The results show strong edges of all
orientations around mostly flat areas -- the structures that blind
deblurring methods find most informative.

This script does the same with the shipped 17 px network (or ``--model
FILE``), in float64. For each of ``--examples`` target kernels (default 3,
sampled with :func:`refdeblur.sample_kernel`) it optimises a sharp image
``x`` of side 64 + 16 px, which 'valid' convolution with the target kernel
turns into a 64 x 64 blurry image ``y``; every iteration adds fresh Gaussian
noise (standard deviation 0.01) to ``y``, runs the network with
:meth:`Network.forward_with_cache`, back-propagates the squared kernel error
``||k_est - k||^2`` to the blurry image with :meth:`Network.backward`
(``input_grad=True``), then through the blur to ``x`` (a 'full' correlation
with the kernel), and takes an Adam step (learning rate 0.05), clipping
``x`` to [0, 1]. The start is a flat grey image plus a little noise. By
default only the first stage is used (``--stages 1``), like the paper's
single-stage network; ``--stages 3`` optimises the error of the whole
network's kernel.

Each row shows the start, the optimised ``x``, its blurred noisy version
``y``, the target kernel and the kernel the network estimates from a fresh
noisy blur of the optimised ``x`` (with its error up to shift,
:func:`refdeblur.metrics.kernel_error_up_to_shift`). The right panel shows
the loss of every iteration (thin) and its running mean over 10 iterations
(thick); it is noisy because the noise is drawn anew each time.

Differences from the paper: one fixed target kernel per example (the paper
says only "a sampled kernel"); 200 Adam iterations rather than "until
convergence"; what the images look like depends entirely on how well the
shipped weights are trained. ``--quick`` runs 2 examples of 4 iterations
on a 56 px image.

Usage::

    python fig11_activation_maximisation.py [--model FILE] [--seed 0] [--examples 3]
        [--iterations 200] [--stages 1] [--out DIR] [--quick]

writes ``fig11_activation_maximisation.png`` into the current directory, or
into ``--out`` (a folder, or a file name ending in ``.png``).
"""

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.signal import fftconvolve  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser, load_network, save_figure  # noqa: E402

from refdeblur import sample_kernel  # noqa: E402
from refdeblur.metrics import kernel_error_up_to_shift  # noqa: E402

NAME = "fig11_activation_maximisation.png"
NOISE_STD = 0.01
LEARNING_RATE = 0.05


def blur(x, kernel):
    """'Valid' convolution, the forward model of the training data."""
    return fftconvolve(x, kernel, mode="valid")


def blur_adjoint(dy, kernel):
    """Gradient of :func:`blur` with respect to ``x``: 'full' correlation."""
    return fftconvolve(dy, kernel[::-1, ::-1], mode="full")


def loss_and_input_grad(net, x, kernel, n_stages, rng):
    """Kernel error for one noisy blur of ``x`` and its gradient in ``x``."""
    y = blur(x, kernel) + NOISE_STD * rng.standard_normal(
        (x.shape[0] - kernel.shape[0] + 1, x.shape[1] - kernel.shape[1] + 1))
    output, cache = net.forward_with_cache(y, n_stages=n_stages)
    residual = output.kernel - kernel
    _, dy = net.backward(2.0 * residual, cache, input_grad=True)
    return float(np.sum(residual ** 2)), blur_adjoint(dy, kernel)


def maximise(net, kernel, side, iterations, n_stages, rng, lr=LEARNING_RATE):
    """Adam on the sharp image; returns ``(start, x, losses)``."""
    m = kernel.shape[0]
    start = np.clip(0.5 + 0.05 * rng.standard_normal((side + m - 1,) * 2), 0, 1)
    x = start.copy()
    first, second = np.zeros_like(x), np.zeros_like(x)
    beta1, beta2 = 0.9, 0.999
    losses = []
    for t in range(1, iterations + 1):
        loss, grad = loss_and_input_grad(net, x, kernel, n_stages, rng)
        losses.append(loss)
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * grad ** 2
        step = (first / (1 - beta1 ** t)) / (np.sqrt(second / (1 - beta2 ** t)) + 1e-12)
        x = np.clip(x - lr * step, 0.0, 1.0)
    return start, x, np.array(losses)


def running_mean(values, width):
    width = max(1, min(width, len(values) // 10))
    kernel = np.ones(width) / width
    return np.convolve(values, kernel, mode="valid"), width


def make_figure(results, n_stages, side, kernel_size):
    n = len(results)
    height = 2.1 * n + 1.1
    fig = plt.figure(figsize=(11.5, height))
    grid = fig.add_gridspec(n, 6, width_ratios=(1, 1, 1, 0.8, 0.8, 2.6),
                            wspace=0.15, hspace=0.35)
    for row, res in enumerate(results):
        panels = [(res["start"], "start", (0, 1)),
                  (res["x"], "optimised input x", (0, 1)),
                  (res["y"], "blurred + noise", (0, 1)),
                  (res["kernel"], "target kernel", None),
                  (res["estimate"], f"estimate\nerr {res['error']:.4f}", None)]
        for col, (image, title, limits) in enumerate(panels):
            ax = fig.add_subplot(grid[row, col])
            vmin, vmax = limits if limits else (0, float(image.max()) or 1.0)
            ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=8)
            if col == 0:
                ax.set_ylabel(f"example {row + 1}", fontsize=8)
    ax = fig.add_subplot(grid[:, 5])
    for row, res in enumerate(results):
        losses = res["losses"]
        steps = np.arange(1, len(losses) + 1)
        ax.plot(steps, losses, color=f"C{row}", lw=0.6, alpha=0.4)
        smooth, width = running_mean(losses, 10)
        ax.plot(steps[width - 1:], smooth, color=f"C{row}", lw=2,
                label=f"example {row + 1}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("kernel error ||k_est - k||²")
    ax.yaxis.set_label_position("right")
    ax.yaxis.tick_right()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("loss (thin: each step, thick: running mean)", fontsize=8)
    which = "stage 1" if n_stages == 1 else f"stages 1-{n_stages}"
    fig.suptitle(f"Activation maximisation of the {kernel_size} px network "
                 f"({which}): inputs that minimise the kernel error, "
                 f"{side} px blurry images", fontsize=10)
    fig.subplots_adjust(left=0.04, right=0.93, top=1 - 0.55 / height,
                        bottom=0.5 / height)
    return fig


def run(net, n_examples, side, iterations, n_stages, seed, log=print):
    rng = np.random.default_rng(seed)
    results = []
    for i in range(n_examples):
        kernel = sample_kernel(net.kernel_size, rng)
        began = time.perf_counter()
        start, x, losses = maximise(net, kernel, side, iterations, n_stages, rng)
        y = blur(x, kernel) + NOISE_STD * rng.standard_normal((side, side))
        estimate = np.asarray(net.forward(y, n_stages=n_stages)
                              .stage_kernels[-1][-1], np.float64)
        error = (kernel_error_up_to_shift(estimate, kernel)
                 if estimate.sum() > 0 else float("nan"))
        log(f"example {i + 1}: loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
            f"final error {error:.4f} ({time.perf_counter() - began:.1f} s)")
        results.append(dict(start=start, x=x, y=np.clip(y, 0, 1), kernel=kernel,
                            estimate=estimate, error=error, losses=losses))
    return results


def main(argv=None):
    parser = figure_parser(__doc__, NAME,
                           seed_help="random seed of kernels, start and noise (default 0)",
                           quick_help="2 examples, 4 iterations (for tests)")
    parser.add_argument("--examples", type=int, default=None,
                        help="number of target kernels (default 3; 2 with --quick)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="Adam iterations per example (default 200; 4 with --quick)")
    parser.add_argument("--stages", type=int, default=1,
                        help="stages of the finest scale to run (default 1, as "
                             "in the paper)")
    parser.add_argument("--size", type=int, default=None,
                        help="side of the blurry image (default 64; 56 with --quick)")
    args = parser.parse_args(argv)
    net = load_network(args.model).astype(np.float64)
    if not 1 <= args.stages <= net.architecture.n_stages:
        parser.error(f"--stages must be in 1..{net.architecture.n_stages}")
    side = args.size or (56 if args.quick else 64)
    if side < net.min_image_size():
        parser.error(f"--size must be at least {net.min_image_size()} px")
    n_examples = args.examples or (2 if args.quick else 3)
    iterations = args.iterations or (4 if args.quick else 200)
    results = run(net, n_examples, side, iterations, args.stages, args.seed)
    fig = make_figure(results, args.stages, side, net.kernel_size)
    save_figure(fig, args.out, NAME, quick=args.quick)


if __name__ == "__main__":
    main()
