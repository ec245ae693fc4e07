"""One stage of refdeblur's network written in PyTorch: the speed reference.

``benchmarks/bench_training.py`` times this module's :class:`TorchStage`
(forward and autograd backward, float32, ``torch.set_num_threads(2)``)
against refdeblur's ``Stage.forward`` + ``Stage.backward`` on the same
shapes. PyTorch is not a dependency of refdeblur: install it in a separate
environment to run the comparison, e.g.::

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy scipy
    /tmp/torchvenv/bin/pip install -e .
    /tmp/torchvenv/bin/python benchmarks/bench_training.py --sections torch

Run this file directly (``python benchmarks/torch_stage_reference.py``) for
the PyTorch timing alone.

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

__all__ = ["TorchStage", "fast_length", "barthann_taper", "forward_backward",
           "time_forward_backward"]


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
        z = torch.tanh(self.conv(stage_input))
        z = torch.tanh(self.recombine1(z))
        features = self.recombine2(z)
        x_sharp = features[:, :self.n_pairs]
        y_blurry = features[:, self.n_pairs:]
        kernel = self.kernel_quotient(x_sharp, y_blurry)
        latent = self.image_quotient(kernel, blurry)
        return kernel, latent

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


def main():
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for in_channels, n_pairs in ((1, 2), (2, 4)):
        problem = make_problem(in_channels, n_pairs=n_pairs)
        median, best = time_forward_backward(*problem)
        print(f"stage C_in={in_channels}, {n_pairs} pairs, batch 4, crop 128, "
              f"f=9, float32: forward+backward median {median * 1e3:.1f} ms, "
              f"best {best * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
