"""refdeblur's network written in PyTorch, one stage or a whole scale: the speed reference.

:class:`TorchNetwork` chains :class:`TorchStage` s as refdeblur's
``Network`` does for a one-scale architecture (the shipped 17 px network),
and :func:`network_loss_and_grad` is its ``loss_and_grad``;
``bench_training.py --sections step`` times the two whole training steps.

``benchmarks/bench_training.py`` times this module's :class:`TorchStage`
(forward and autograd backward, float32, ``torch.set_num_threads(2)``)
against refdeblur's ``Stage.forward`` + ``Stage.backward`` on the same
shapes. PyTorch is not a dependency of refdeblur: install it in a separate
environment to run the comparison, e.g.::

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy scipy
    /tmp/torchvenv/bin/pip install -e .
    /tmp/torchvenv/bin/python benchmarks/bench_training.py --sections torch

Run this file directly (``python benchmarks/torch_stage_reference.py``,
``--network`` for the whole 17 px network's step) for the PyTorch timing
alone; ``bench_training.py --sections step`` runs it so under each
``OMP_WAIT_POLICY``.

What is mirrored (so that FLOP counts and FFT sizes match refdeblur's
``Stage``, ``refdeblur/network.py``):

* ``conv2d`` 'valid' with bias (cross-correlation, as ``Conv2D``), tanh,
  1x1 convolution without bias (``Recombine``), tanh, 1x1 convolution to
  ``2 n`` channels, split into the sharp-like ``x̃_i`` (first ``n``) and
  blurry-like ``ỹ_i`` (last ``n``);
* kernel quotient (Eq. 4, ``layers/kernel_quotient.py``): flat-top Barthann
  taper of ramp ``m`` on the ``(H - f + 1)²`` features, zero padding at the
  end to the next 5-smooth length (``next_fast_len(real=True)``), real 2-D
  FFTs, ``K = Σ conj(X̃_i) Ỹ_i / (Σ |X̃_i|² + β_k)``, inverse FFT, the
  centred ``m x m`` crop of the circular grid (MATLAB ``otf2psf``), relu,
  division by ``sum + 1e-8``;
* image quotient (Eq. 5, ``layers/image_quotient.py``): replicate padding of
  the blurry image by at least ``m`` px per side up to a 5-smooth size (split
  ``total // 2`` before, the rest after), Barthann taper of ramp ``m`` on the
  padded grid, the kernel placed on the grid with its centre at the origin
  (``psf2otf``), ``X = conj(K) Y / (|K|² + β_x)`` with the learned
  ``β_x = exp(log_beta)``, inverse FFT, crop back to ``H x W``.

With the same weights (:meth:`TorchStage.load_refdeblur_params`) the two
compute the same function; ``bench_training.py`` checks this in float64.
What differs: PyTorch pads inside ``rfft2(s=...)`` instead of materialising
the padded array, its backward is autograd's (it keeps the intermediate
tensors autograd needs, where refdeblur keeps hand-picked caches and
evaluates the derived backward formulas), its convolutions are oneDNN/ATen
direct kernels (no FFT path) and its FFTs are ATen's (MKL or pocketfft),
against refdeblur's Numba kernels, FFT convolution path and scipy's
pocketfft. In ``bench_training.py``'s stage timing PyTorch does not compute
the gradient with respect to the blurry image (it does not require one),
while refdeblur's ``ImageQuotient.backward`` always does (one more inverse
FFT of the padded grid and the replicate-padding adjoint); its layer-by-layer
table makes both compute it. Float32 results agree to rounding only.
"""

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TorchStage", "TorchNetwork", "fast_length", "barthann_taper",
           "forward_backward", "network_loss_and_grad", "time_forward_backward",
           "time_network"]


def fast_length(n):
    """Smallest 2-3-5-smooth integer ``>= n`` (scipy's ``next_fast_len(real=True)``)."""
    n = int(n)
    best = None
    power5 = 1
    while power5 < 2 * n:
        power35 = power5
        while power35 < 2 * n:
            candidate = power35
            while candidate < n:
                candidate *= 2
            if best is None or candidate < best:
                best = candidate
            power35 *= 3
        power5 *= 5
    return best


def _barthann_ramp(width):
    """First ``width`` points of a ``2 width + 1``-point Barthann window."""
    t = np.arange(width) / (2.0 * width) if width else np.zeros(0)
    return 0.62 - 0.48 * np.abs(t - 0.5) + 0.38 * np.cos(2.0 * np.pi * (t - 0.5))


def barthann_taper(shape, ramp):
    """Separable flat-top Barthann window (refdeblur ``taper_window``), float64."""
    profiles = []
    for length in shape:
        profile = np.ones(length)
        rising = _barthann_ramp(ramp)
        profile[:ramp] = rising
        profile[length - ramp:] = rising[::-1]
        profiles.append(profile)
    return np.outer(*profiles)


def _centred_indices(size, grid):
    """Grid positions of the entries of a centred kernel side (``psf2otf``)."""
    return torch.from_numpy((np.arange(size) - size // 2) % grid)


class TorchStage(torch.nn.Module):
    """conv -> tanh -> 1x1 -> tanh -> 1x1 -> kernel quotient -> image quotient.

    Parameters
    ----------
    in_channels : int
        1 (blurry image) or 2 (blurry and latent image).
    kernel_size, filter_size, n_pairs : int
    n_filters, n_hidden : int, optional
    taper_width, image_pad : int, optional
        Ramp of the kernel quotient's taper and minimum padding of the image
        quotient; both default to ``kernel_size`` as in refdeblur.
    beta_k, initial_beta_x, eps : float, optional
    """

    def __init__(self, in_channels, kernel_size, filter_size, n_pairs, *,
                 n_filters=32, n_hidden=32, taper_width=None, image_pad=None,
                 beta_k=1e-4, initial_beta_x=1e-2, eps=1e-8):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.n_pairs = int(n_pairs)
        self.taper_width = self.kernel_size if taper_width is None else int(taper_width)
        self.image_pad = self.kernel_size if image_pad is None else int(image_pad)
        self.beta_k = float(beta_k)
        self.eps = float(eps)
        self.conv = torch.nn.Conv2d(in_channels, n_filters, filter_size, bias=True)
        self.recombine1 = torch.nn.Conv2d(n_filters, n_hidden, 1, bias=False)
        self.recombine2 = torch.nn.Conv2d(n_hidden, 2 * n_pairs, 1, bias=False)
        self.log_beta = torch.nn.Parameter(torch.tensor(math.log(initial_beta_x)))
        self._constants = {}
        self.feature_head = self.features

    def load_refdeblur_params(self, params, prefix):
        """Copy a refdeblur stage's weights (``params`` keyed ``prefix + ...``)."""
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(
                np.asarray(params[prefix + "conv.weight"])))
            self.conv.bias.copy_(torch.from_numpy(
                np.asarray(params[prefix + "conv.bias"])))
            for name in ("recombine1", "recombine2"):
                weight = np.asarray(params[f"{prefix}{name}.weight"])
                getattr(self, name).weight.copy_(
                    torch.from_numpy(weight)[:, :, None, None])
            self.log_beta.copy_(torch.tensor(
                float(params[prefix + "image_quotient.log_beta"]),
                dtype=self.log_beta.dtype))
        return self

    # -- constants (windows, index vectors), cached per shape and dtype -------

    def _window(self, shape, ramp, dtype):
        key = ("window", tuple(shape), ramp, dtype)
        if key not in self._constants:
            self._constants[key] = torch.from_numpy(
                barthann_taper(shape, ramp)).to(dtype)
        return self._constants[key]

    def _indices(self, grid):
        key = ("indices", tuple(grid))
        if key not in self._constants:
            self._constants[key] = tuple(_centred_indices(self.kernel_size, g)
                                         for g in grid)
        return self._constants[key]

    # -- the stage ----------------------------------------------------------

    def forward(self, stage_input, blurry):
        """``stage_input`` (N, C_in, H, W), ``blurry`` (N, H, W) -> kernel, latent."""
        features = self.feature_head(stage_input)
        x_sharp = features[:, :self.n_pairs]
        y_blurry = features[:, self.n_pairs:]
        kernel = self.kernel_quotient(x_sharp, y_blurry)
        latent = self.image_quotient(kernel, blurry)
        return kernel, latent

    def features(self, stage_input):
        """conv -> tanh -> 1x1 -> tanh -> 1x1: the ``2 n`` feature maps."""
        z = torch.tanh(self.conv(stage_input))
        z = torch.tanh(self.recombine1(z))
        return self.recombine2(z)

    def compile_features(self):
        """Run :meth:`features` through ``torch.compile`` from now on.

        Only the feature head: inductor fails on the backward of the
        quotients' complex arithmetic (PyTorch 2.13), which stays eager.
        """
        self.feature_head = torch.compile(self.features)
        return self

    def kernel_quotient(self, x_sharp, y_blurry):
        """Eq. 4 on (N, n, H, W) feature stacks -> (N, m, m)."""
        height, width = x_sharp.shape[-2:]
        window = self._window((height, width), self.taper_width, x_sharp.dtype)
        grid = (fast_length(height), fast_length(width))
        a = torch.fft.rfft2(x_sharp * window, s=grid)   # zero padding at the end
        b = torch.fft.rfft2(y_blurry * window, s=grid)
        denominator = (a.real ** 2 + a.imag ** 2).sum(dim=1) + self.beta_k
        numerator = (torch.conj(a) * b).sum(dim=1)
        full = torch.fft.irfft2(numerator / denominator, s=grid)
        rows, cols = self._indices(grid)
        cropped = full.index_select(-2, rows).index_select(-1, cols)
        positive = torch.relu(cropped)
        return positive / (positive.sum(dim=(-2, -1), keepdim=True) + self.eps)

    def image_quotient(self, kernel, blurry):
        """Eq. 5: deconvolve (N, H, W) ``blurry`` with (N, m, m) ``kernel``."""
        height, width = blurry.shape[-2:]
        pads = []
        for length in (height, width):
            total = fast_length(length + 2 * self.image_pad) - length
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        padded = F.pad(blurry[:, None], (left, right, top, bottom),
                       mode="replicate")[:, 0]
        grid = padded.shape[-2:]
        b = padded * self._window(grid, self.image_pad, blurry.dtype)
        m = self.kernel_size
        placed = F.pad(kernel, (0, grid[1] - m, 0, grid[0] - m))
        placed = torch.roll(placed, shifts=(-(m // 2), -(m // 2)), dims=(-2, -1))
        a = torch.fft.rfft2(placed)
        bb = torch.fft.rfft2(b)
        beta = torch.exp(self.log_beta)
        solution = torch.fft.irfft2(torch.conj(a) * bb
                                    / (a.real ** 2 + a.imag ** 2 + beta), s=grid)
        return solution[:, top:top + height, left:left + width]


class TorchNetwork(torch.nn.Module):
    """A one-scale refdeblur network: its stages chained by the latent image.

    Stage 1 sees the blurry image, every later stage the blurry image
    stacked with the previous stage's latent image (refdeblur's
    ``stage_input``, derivations/network.md (N12)); the network's kernel is
    the last stage's. The same function as refdeblur's
    ``Network.forward_with_cache`` for an architecture with one scale.

    Parameters
    ----------
    architecture : refdeblur.network.Architecture
        One scale, ``beta_k_mode="constant"``, no recombination bias.
    channels_last : bool, optional
        Hand the convolutions their input in channels-last memory order
        (call ``.to(memory_format=torch.channels_last)`` on the module too).
    """

    def __init__(self, architecture, *, channels_last=False):
        super().__init__()
        self.channels_last = bool(channels_last)
        arch = architecture
        if len(arch.kernel_sizes) != 1 or arch.beta_k_mode != "constant" \
                or arch.recombine_bias or not arch.conv_bias or not arch.normalize_kernel:
            raise ValueError("TorchNetwork mirrors one-scale networks with constant "
                             "beta_k, a convolution bias, no recombination bias and "
                             "normalised kernels")
        kernel_size = arch.kernel_sizes[0]
        self.stages = torch.nn.ModuleList(
            TorchStage(1 if s == 0 else 2, kernel_size, arch.filter_sizes[0],
                       arch.n_pairs[s], n_filters=arch.n_filters, n_hidden=arch.n_hidden,
                       taper_width=arch.taper_widths[0], beta_k=arch.beta_k,
                       initial_beta_x=arch.initial_beta_x)
            for s in range(arch.n_stages))

    def load_refdeblur_params(self, params):
        """Copy a refdeblur network's weights (``params`` keyed ``scale1.stage{s}...``)."""
        for s, stage in enumerate(self.stages):
            stage.load_refdeblur_params(params, f"scale1.stage{s + 1}.")
        return self

    def forward(self, blurry):
        """``blurry`` (N, H, W) -> (kernels of every stage, last latent image)."""
        kernels = []
        stage_input = blurry[:, None]
        for stage in self.stages:
            if self.channels_last:
                stage_input = stage_input.contiguous(memory_format=torch.channels_last)
            kernel, latent = stage(stage_input, blurry)
            kernels.append(kernel)
            stage_input = torch.stack([blurry, latent], dim=1)
        return kernels, latent


def network_loss_and_grad(network, blurry, true_kernel):
    """refdeblur's ``Network.loss_and_grad`` in PyTorch: L2 loss on the last kernel.

    ``loss = Σ_n ||k_n - k_true_n||² / N``, back-propagated by autograd
    through all stages (the latent images included) into every parameter;
    the blurry image needs no gradient. Leaves the gradients in ``.grad``;
    returns ``(loss, kernels, latent)``.
    """
    for param in network.parameters():
        param.grad = None
    kernels, latent = network(blurry)
    loss = ((kernels[-1] - true_kernel) ** 2).sum() / blurry.shape[0]
    loss.backward()
    return loss, kernels, latent


def forward_backward(stage, stage_input, blurry, true_kernel, dlatent):
    """Forward, the loss ``Σ||k - k_true||²/N + <latent, dlatent>``, backward.

    The same gradients reach the stage as in refdeblur's
    ``Stage.backward(2 (k - k_true) / N, dlatent, ...)``. Leaves the
    gradients in ``.grad``; returns ``(kernel, latent)``.
    """
    for param in stage.parameters():
        param.grad = None
    if stage_input.grad is not None:
        stage_input.grad = None
    kernel, latent = stage(stage_input, blurry)
    loss = ((kernel - true_kernel) ** 2).sum() / kernel.shape[0] \
        + (latent * dlatent).sum()
    loss.backward()
    return kernel, latent


def time_forward_backward(stage, stage_input, blurry, true_kernel, dlatent,
                          repeats=10, warmup=2):
    """Median and best seconds of :func:`forward_backward` after ``warmup`` calls."""
    for _ in range(warmup):
        forward_backward(stage, stage_input, blurry, true_kernel, dlatent)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward_backward(stage, stage_input, blurry, true_kernel, dlatent)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def make_problem(in_channels, kernel_size=17, filter_size=9, n_pairs=4, batch=4,
                 crop=128, dtype=torch.float32, seed=0):
    """A stage with random weights and random inputs of the benchmark's shapes."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    stage = TorchStage(in_channels, kernel_size, filter_size, n_pairs).to(dtype)
    stage_input = torch.from_numpy(
        rng.random((batch, in_channels, crop, crop))).to(dtype)
    stage_input.requires_grad_(in_channels > 1)
    blurry = stage_input.detach()[:, 0].clone()
    true_kernel = torch.from_numpy(rng.random((batch, kernel_size, kernel_size))).to(dtype)
    true_kernel /= true_kernel.sum(dim=(-2, -1), keepdim=True)
    dlatent = torch.from_numpy(1e-3 * rng.standard_normal((batch, crop, crop))).to(dtype)
    return stage, stage_input, blurry, true_kernel, dlatent


def time_network(threads, repeats=10, seed=0):
    """Median and best seconds of the shipped 17 px network's step, PyTorch alone.

    The architecture of ``refdeblur/models/k17.json`` with random weights, a
    random batch of 4 crops of 128 px, float32, ``threads`` threads.
    """
    import json
    from pathlib import Path

    from refdeblur.network import Architecture

    path = Path(__file__).resolve().parent.parent / "refdeblur" / "models" / "k17.json"
    with open(path, encoding="utf-8") as stream:
        architecture = Architecture.from_dict(json.load(stream)["architecture"])
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    network = TorchNetwork(architecture).to(torch.float32)
    rng = np.random.default_rng(seed)
    blurry = torch.from_numpy(rng.random((4, 128, 128)).astype(np.float32))
    true_kernel = torch.from_numpy(rng.random((4, 17, 17)).astype(np.float32))
    true_kernel /= true_kernel.sum(dim=(-2, -1), keepdim=True)
    for _ in range(2):
        network_loss_and_grad(network, blurry, true_kernel)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        network_loss_and_grad(network, blurry, true_kernel)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", action="store_true",
                        help="time the whole 17 px network's step instead of one stage")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    if args.network:
        median, best = time_network(args.threads, args.repeats)
        print(f"network step: median {median * 1e3:.1f} ms, best {best * 1e3:.1f} ms")
        return
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for in_channels, n_pairs in ((1, 2), (2, 4)):
        problem = make_problem(in_channels, n_pairs=n_pairs)
        median, best = time_forward_backward(*problem, repeats=args.repeats)
        print(f"stage C_in={in_channels}, {n_pairs} pairs, batch 4, crop 128, "
              f"f=9, float32: forward+backward median {median * 1e3:.1f} ms, "
              f"best {best * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
