"""Training throughput, where the time of a step goes, and a PyTorch reference.

Run from the repository root::

    python benchmarks/bench_training.py            # everything, under a minute
    python benchmarks/bench_training.py --quick    # smoke run: 1 timed step each
    python benchmarks/bench_training.py --all      # also the 25 and 33 px networks
    python benchmarks/bench_training.py --steps 10 --sections throughput,profile

The PyTorch comparison needs a Python with torch (not a dependency of
refdeblur); without it the PyTorch columns read "torch not installed" and
only refdeblur's one-stage times are printed. To run it::

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy scipy
    /tmp/torchvenv/bin/pip install -e .
    /tmp/torchvenv/bin/python benchmarks/bench_training.py --sections torch
    OMP_WAIT_POLICY=PASSIVE /tmp/torchvenv/bin/python benchmarks/bench_training.py \
        --sections step --torch-compile

Timings are wall-clock and meant for an otherwise idle machine: the header
prints the load average, and the last line the CPU time that other processes
used during the run (from ``/proc/stat`` minus this process's own), so that a
busy machine shows.

What is measured
----------------
The paper's training setup with a larger ADADELTA step (``refdeblur train
--filter-size 9 --dtype float32 --learning-rate 1.0``): 17 px kernels, 9 px filters, 32 filters, 32
hidden images, (2, 2, 4) feature pairs, batches of 4 crops of 128 px,
ADADELTA with learning rate 1.0. Training crops come from pictures shipped
inside scikit-image (camera, astronaut, coffee, chelsea, brick), so the
benchmark needs no data set.

1. *Data generation*: one ``make_batch`` call (random crop, flat-crop
   rejection, camera-shake kernel sampling, blur, noise), median seconds.
2. *Training throughput*: a full step exactly as ``Trainer.run`` does it,
   ``make_batch`` then ``training_step`` (forward with cache, L2 kernel loss,
   outlier filter, backward, ADADELTA update), for the 17 px network with 1,
   2 and 3 stages present, every present stage trainable (the end-to-end
   phases of ``stagewise_schedule``), in float32 and float64; with ``--all``
   also the 25 and 33 px networks with 3 stages, of which only the finest
   scale is trainable (training with ``--base-model``). Each configuration
   runs one warm-up step (Numba compilation, FFT plans), then ``--steps``
   timed steps; the table gives the median (and best) seconds per step and
   ``batch / median`` examples per second. One more row, ``float32, f32
   targets``, passes the true kernels as float32: ``make_batch`` returns
   float64 kernels, which makes the loss gradient float64 and with it the
   backward pass of the last stage's quotients, recombinations and tanh.
   A small table after it shows which method ``Conv2D(method="auto")``
   picks for the stage's convolutions, with the cost model's predictions.
3. *Profile* of the 17 px, 3-stage, float32 step (the default training precision), split into
   convolution (``Conv2D.forward``/``backward``, so the Numba kernels and the
   FFT path of ``conv2d.py`` with its own scipy.fft calls), the FFTs of the
   quotient layers (``refdeblur._engine.fft.rfft2``/``irfft2``, which conv2d.py does
   not use), the rest of the quotient layers (taper, padding, spectral
   products and divisions, crops), tanh, recombination (the 1x1 matrix
   products), data generation (``make_batch``, kernel sampling included),
   the optimiser (``Adadelta.update``) and the rest (network bookkeeping,
   gradient accumulation, loss, outlier filter). Two independent methods,
   each over ``--profile-steps`` steps after a warm-up step:

   * *timers*: the functions above are temporarily wrapped with
     ``time.perf_counter`` timers that keep a stack, so each category gets
     its *exclusive* time (a wrapped call's time minus that of the wrapped
     calls inside it, e.g. the FFTs inside the quotient layers); "rest" is
     the step's wall time minus all categories. Overhead: a few dozen timer
     calls per step.
   * *cProfile*: the same steps under ``cProfile``; each category is the
     cumulative time of its entry functions (none of which calls another,
     except the quotient layers calling ``_fft``, whose cumulative time is
     subtracted from theirs; the script checks with cProfile's caller
     records that ``_fft`` is called only from the quotient solver); "rest"
     is the profile's total minus all categories. cProfile's overhead
     falls on Python-heavy code (many small calls), so its shares of data
     generation and bookkeeping can come out somewhat larger than the
     timers'.

   Both splits sum to 100 % by construction. The top functions by own time
   follow.
4. *PyTorch comparison*: one stage written in PyTorch
   (``benchmarks/torch_stage_reference.py``: conv 'valid' with bias, tanh,
   1x1, tanh, 1x1, kernel quotient and image quotient with torch.fft,
   backward by autograd, ``torch.set_num_threads(2)``) against refdeblur's
   ``Stage.forward`` + ``Stage.backward`` on the same shapes (batch 4, crop
   128, f = 9, float32, loss ``Σ||k - k_true||²/N + <latent, g>`` so that
   both quotients are back-propagated): stage 1 (blurry image in, 2 pairs,
   no input gradient) and stage 3 (blurry and latent image in, 4 pairs,
   input gradient). First the two are checked to compute the same function
   in float64 (same weights, relative differences of outputs and all
   gradients). Times are the median and the best of ``--repeats`` calls after
   two warm-up calls, the implementations called in turn (one call each per
   round); the ratios are refdeblur / PyTorch (below 1: refdeblur faster). A
   column gives refdeblur's time with the kernel gradient in float64, as
   ``training_step`` passes it. Then stage 3 layer by layer (each layer's
   forward + backward on the stage's real intermediate values), to show
   where the difference comes from, and stage 1 the same way.

   PyTorch's OpenMP threads spin for a while after each call by default and
   then slow down refdeblur's threads run right after them; run the
   comparison with ``OMP_WAIT_POLICY=PASSIVE`` so that each
   side gets the cores while it runs.
5. *The whole training step against PyTorch* (``--sections step``): the
   shipped 17 px network's architecture (``refdeblur/models/k17.json``: 17 px
   filters, 32 filters, 32 hidden, pairs (2, 2, 4), beta_k 1) with fresh
   weights, one batch of 4 crops of 128 px from ``make_batch``, float32:
   refdeblur's ``Network.loss_and_grad`` (forward with cache through the
   three stages, the latent image handed from stage to stage, L2 loss on the
   last kernel, backward into every parameter) against the same network in
   PyTorch (``torch_stage_reference.TorchNetwork``, autograd). First the two
   are checked to compute the same function in float64 (loss, every stage's
   kernel, the latent image, every parameter gradient). Then PyTorch runs
   at every setting tried for its fastest: 1 or 2 threads
   (``torch.set_num_threads``), oneDNN on or off
   (``torch.backends.mkldnn.flags``), channels-last memory order or not,
   and with ``--torch-compile`` the feature heads (conv, tanh, 1x1, tanh,
   1x1) through ``torch.compile`` (the whole network does not compile:
   inductor fails on the backward of the quotients' complex arithmetic).
   All implementations run in the same interleaved rounds (one call each
   per round, ``--repeats`` rounds after two warm-up calls); the table
   gives median and best times and refdeblur's ratio to each, and the last
   line the ratio to the fastest PyTorch setting (by median). The
   ``OMP_WAIT_POLICY`` the process was started with is printed; run it
   with ``PASSIVE`` (see 4.).
"""

import argparse
import contextlib
import cProfile
import dataclasses
import functools
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numba
import numpy as np
import scipy
import skimage
import skimage.color
import skimage.data

import refdeblur
from _bench_common import print_table  # this folder
from refdeblur import build_network
from refdeblur._engine import conv_backends
from refdeblur._engine import fft as _fft
from refdeblur._engine.threads import get_num_threads
from refdeblur.layers.conv2d import Conv2D
from refdeblur.layers.image_quotient import ImageQuotient
from refdeblur.layers.kernel_quotient import KernelQuotient
from refdeblur.layers.recombine import Recombine
from refdeblur.layers.tanh import Tanh
from refdeblur.network import DEFAULT_SCALES, Architecture
from refdeblur.training.data import make_batch
from refdeblur.training.optim import Adadelta
from refdeblur.training.schedule import phase_at, stagewise_schedule
from refdeblur.training.step import OutlierFilter, training_step

# The measured training setup (refdeblur train --filter-size 9 --dtype float32
# --learning-rate 1.0, default_config otherwise).
FILTER_SIZE = 9
N_FILTERS = 32
N_HIDDEN = 32
N_PAIRS = (2, 2, 4)
BATCH = 4
CROP = 128
NOISE_STD = 0.01
LEARNING_RATE = 1.0
STAGE_STEPS = 1000      # only used to pick a phase of the schedule
FROZEN_STEPS = 100
SEED = 0
WARMUP_STEPS = 1


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def benchmark_images():
    """Grey float64 pictures in [0, 1] shipped inside scikit-image."""
    images = [skimage.data.camera(), skimage.data.astronaut(), skimage.data.coffee(),
              skimage.data.chelsea(), skimage.data.brick()]
    grey = []
    for image in images:
        if image.ndim == 3:
            grey.append(skimage.color.rgb2gray(image).astype(np.float64))
        else:
            grey.append(image.astype(np.float64) / 255.0)
    return grey


def make_net(kernel_size, dtype):
    n_scales = len(DEFAULT_SCALES[kernel_size])
    return build_network(kernel_size, rng=np.random.default_rng(SEED), dtype=dtype,
                         filter_sizes=(FILTER_SIZE,) * n_scales, n_filters=N_FILTERS,
                         n_hidden=N_HIDDEN, n_pairs=N_PAIRS)


def training_phase(net, n_stages):
    """The end-to-end phase of the schedule with ``n_stages`` stages present.

    Every present stage of the finest scale is trainable; coarser scales are
    frozen (as with ``--base-model``).
    """
    n_scales = len(net.architecture.kernel_sizes)
    phases = stagewise_schedule(STAGE_STEPS, FROZEN_STEPS, net.architecture.n_stages,
                                f"scale{n_scales}.")
    phase = phase_at(phases, (n_stages - 1) * STAGE_STEPS + FROZEN_STEPS)
    assert phase.n_stages == n_stages
    return phase


def describe_trainable(phase):
    scale = phase.trainable[0].split(".")[0]
    stages = ",".join(p.split(".")[1].replace("stage", "") for p in phase.trainable)
    return f"{scale} stages {stages}"


def thread_settings():
    settings = [f"refdeblur threads {get_num_threads()} (thread pool, FFT workers, "
                f"numba kernels; BLAS on one thread inside them)"]
    try:
        settings.append(f"numba layer {numba.threading_layer()}")
    except ValueError:  # no parallel function has run yet
        pass
    return ", ".join(settings)


def print_header():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print("# Training benchmark\n")
    print(f"Machine: {platform.platform()}, {cpu}, {os.cpu_count()} CPUs "
          f"({usable} usable), load average {load}")
    print(f"Python {platform.python_version()}, numpy {np.__version__}, scipy "
          f"{scipy.__version__}, numba {numba.__version__}, scikit-image "
          f"{skimage.__version__}, refdeblur {refdeblur.__version__}")
    print(f"Threads: {thread_settings()}")
    print(f"Setup: kernel 17 px, filters {FILTER_SIZE} px, {N_FILTERS} filters, "
          f"{N_HIDDEN} hidden, pairs {N_PAIRS}, batch {BATCH}, crop {CROP}, "
          f"ADADELTA lr {LEARNING_RATE}")


def machine_busy_seconds():
    """CPU seconds spent by all processes so far (``/proc/stat``), or None."""
    try:
        with open("/proc/stat", encoding="utf-8") as stream:
            fields = stream.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_steps(net, phase, images, rng, n_steps, *, cast_targets=False, data=make_batch):
    """``n_steps`` training steps as ``Trainer.run`` does them; per-step times."""
    optimizer = Adadelta(learning_rate=LEARNING_RATE, decay=0.95, eps=1e-6)
    outliers = OutlierFilter()
    kernel_size = net.kernel_size
    data_times, train_times = [], []
    for _ in range(n_steps):
        start = time.perf_counter()
        batch = data(images, BATCH, CROP, kernel_size, rng, noise_std=NOISE_STD)
        middle = time.perf_counter()
        kernels = batch.k.astype(net.dtype) if cast_targets else batch.k
        training_step(net, optimizer, outliers, batch.y, kernels, phase)
        end = time.perf_counter()
        data_times.append(middle - start)
        train_times.append(end - middle)
    return np.array(data_times), np.array(train_times)


# ---------------------------------------------------------------------------
# 1. data generation
# ---------------------------------------------------------------------------

def bench_data(images, kernel_sizes, steps):
    rng = np.random.default_rng([SEED, 2])
    rows = []
    for kernel_size in kernel_sizes:
        make_batch(images, BATCH, CROP, kernel_size, rng, noise_std=NOISE_STD)  # warm-up
        times = []
        for _ in range(max(steps, 3)):
            start = time.perf_counter()
            make_batch(images, BATCH, CROP, kernel_size, rng, noise_std=NOISE_STD)
            times.append(time.perf_counter() - start)
        median = float(np.median(times))
        rows.append([f"{kernel_size} px", f"{BATCH} x {CROP}²", f"{median * 1e3:.1f}",
                     f"{min(times) * 1e3:.1f}", f"{BATCH / median:.0f}"])
    print_table("Data generation (make_batch: crop, flat-crop rejection, kernel "
                "sampling, blur, noise)",
                ["kernel", "batch", "median ms", "best ms", "examples/s"], rows)


# ---------------------------------------------------------------------------
# 2. throughput
# ---------------------------------------------------------------------------

def bench_throughput(images, configs, steps):
    rows = []
    for kernel_size, n_stages, dtype, cast_targets in configs:
        net = make_net(kernel_size, dtype)
        phase = training_phase(net, n_stages)
        rng = np.random.default_rng([SEED, 1])
        run_steps(net, phase, images, rng, WARMUP_STEPS, cast_targets=cast_targets)
        data_times, train_times = run_steps(net, phase, images, rng, steps,
                                            cast_targets=cast_targets)
        totals = data_times + train_times
        median = float(np.median(totals))
        label = np.dtype(dtype).name + (", f32 targets" if cast_targets else "")
        rows.append([f"{kernel_size} px", str(n_stages), describe_trainable(phase), label,
                     f"{median:.3f}", f"{totals.min():.3f}",
                     f"{np.median(data_times):.3f}", f"{np.median(train_times):.3f}",
                     f"{BATCH / median:.2f}"])
    print_table(f"Training throughput (batch {BATCH}, crop {CROP}, median of {steps} "
                f"steps after {WARMUP_STEPS} warm-up)",
                ["network", "stages", "trainable", "dtype", "s/step", "best s/step",
                 "data s", "fwd+bwd+update s", "examples/s"], rows,
                note="s/step = data + fwd+bwd+update (medians of each column taken "
                     "separately, so they need not add up exactly). f32 targets: "
                     "true kernels passed as float32 instead of make_batch's float64 "
                     "(see the module docstring).")


def conv_methods(dtypes):
    """What Conv2D(method='auto') picks for the convolutions of a 17 px stage."""
    rows = []
    size = CROP
    for dtype in dtypes:
        for in_channels, pass_name, label in (
                (1, "forward", "stage 1 forward"),
                (1, "weight_gradient", "stage 1 backward (no dx)"),
                (2, "forward", "stages 2-3 forward"),
                (2, "backward", "stages 2-3 backward")):
            shape = (BATCH, in_channels, size, size)
            seconds = conv_backends.predicted_seconds(pass_name, shape, N_FILTERS,
                                                      FILTER_SIZE, dtype)
            method = conv_backends.choose_method(pass_name, shape, N_FILTERS, FILTER_SIZE, dtype)
            rows.append([np.dtype(dtype).name, label, f"{seconds['direct'] * 1e3:.1f}",
                         f"{seconds['fft'] * 1e3:.1f}", method])
    print_table(f"Conv2D method chosen by 'auto' (f={FILTER_SIZE}, {N_FILTERS} filters, "
                f"{BATCH} x {CROP}²; cost model of _engine/conv_backends.py)",
                ["dtype", "pass", "predicted direct ms", "predicted fft ms", "chosen"],
                rows)


# ---------------------------------------------------------------------------
# 3. profile
# ---------------------------------------------------------------------------

CATEGORIES = ["convolution", "quotient FFTs", "quotient layers, other", "tanh",
              "recombination", "data generation", "optimiser", "rest"]


def _patch_targets():
    """(owner, attribute, category) of the functions that delimit the categories."""
    return [(Conv2D, "forward", "convolution"), (Conv2D, "backward", "convolution"),
            (_fft, "rfft2", "quotient FFTs"), (_fft, "irfft2", "quotient FFTs"),
            (KernelQuotient, "forward", "quotient layers, other"),
            (KernelQuotient, "backward", "quotient layers, other"),
            (ImageQuotient, "forward", "quotient layers, other"),
            (ImageQuotient, "backward", "quotient layers, other"),
            (Tanh, "forward", "tanh"), (Tanh, "backward", "tanh"),
            (Recombine, "forward", "recombination"), (Recombine, "backward", "recombination"),
            (Adadelta, "update", "optimiser")]


class ExclusiveTimers:
    """Wraps functions with timers; each category gets its exclusive time."""

    def __init__(self):
        self.totals = defaultdict(float)
        self._stack = []

    def wrap(self, category, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            self._stack.append(0.0)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                inner = self._stack.pop()
                self.totals[category] += elapsed - inner
                if self._stack:
                    self._stack[-1] += elapsed
        return timed

    @contextlib.contextmanager
    def installed(self):
        originals = []
        try:
            for owner, name, category in _patch_targets():
                original = owner.__dict__[name]
                originals.append((owner, name, original))
                setattr(owner, name, self.wrap(category, original))
            yield self
        finally:
            for owner, name, original in reversed(originals):
                setattr(owner, name, original)


def _code_key(function):
    code = function.__code__
    return (code.co_filename, code.co_firstlineno, code.co_name)


def cprofile_split(stats):
    """Seconds per category from cProfile's stats dict (see the docstring)."""
    def cumulative(*functions):
        return sum(stats.get(_code_key(f), (0, 0, 0, 0.0, {}))[3] for f in functions)

    total = sum(entry[2] for entry in stats.values())
    fft_functions = (_fft.rfft2, _fft.irfft2)
    for function in fft_functions:
        callers = stats.get(_code_key(function), (0, 0, 0, 0.0, {}))[4]
        outside = [c for c in callers if not c[0].endswith(os.path.join("layers", "_quotient.py"))]
        if outside:
            print(f"warning: {function.__name__} also called from {outside}; its time "
                  f"there is counted under the quotient layers", file=sys.stderr)
    ffts = cumulative(*fft_functions)
    split = {
        "convolution": cumulative(Conv2D.forward, Conv2D.backward),
        "quotient FFTs": ffts,
        "quotient layers, other": cumulative(KernelQuotient.forward, KernelQuotient.backward,
                                             ImageQuotient.forward, ImageQuotient.backward)
                                  - ffts,
        "tanh": cumulative(Tanh.forward, Tanh.backward),
        "recombination": cumulative(Recombine.forward, Recombine.backward),
        "data generation": cumulative(make_batch),
        "optimiser": cumulative(Adadelta.update),
    }
    split["rest"] = total - sum(split.values())
    return split, total


def bench_profile(images, steps, top):
    kernel_size, n_stages, dtype = 17, 3, np.float32
    net = make_net(kernel_size, dtype)
    phase = training_phase(net, n_stages)
    rng = np.random.default_rng([SEED, 3])
    run_steps(net, phase, images, rng, WARMUP_STEPS)

    timers = ExclusiveTimers()
    timed_data = timers.wrap("data generation", make_batch)
    with timers.installed():
        start = time.perf_counter()
        run_steps(net, phase, images, rng, steps, data=timed_data)
        timer_total = time.perf_counter() - start
    timer_split = {c: timers.totals.get(c, 0.0) for c in CATEGORIES[:-1]}
    timer_split["rest"] = timer_total - sum(timer_split.values())

    profiler = cProfile.Profile()
    profiler.enable()
    run_steps(net, phase, images, rng, steps)
    profiler.disable()
    stats = pstats.Stats(profiler)
    profile_split, profile_total = cprofile_split(stats.stats)

    rows = []
    for category in CATEGORIES:
        rows.append([category, f"{timer_split[category] / steps:.3f}",
                     f"{100 * timer_split[category] / timer_total:.1f}%",
                     f"{profile_split[category] / steps:.3f}",
                     f"{100 * profile_split[category] / profile_total:.1f}%"])
    rows.append(["total", f"{timer_total / steps:.3f}", "100.0%",
                 f"{profile_total / steps:.3f}", "100.0%"])
    print_table(f"Where a step goes: 17 px, 3 stages, float32, batch {BATCH}, crop {CROP} "
                f"({steps} steps per method)",
                ["part", "timers s/step", "timers share", "cProfile s/step",
                 "cProfile share"], rows,
                note="convolution: Conv2D forward + backward (Numba kernels and "
                     "conv2d.py's FFT path). quotient FFTs: refdeblur._engine.fft rfft2/irfft2 "
                     "of Eq. 4 and 5. rest: network bookkeeping, gradient sums, loss, "
                     "outlier filter, np.concatenate of the feature gradients.")

    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in entries:
        where = (f"{Path(filename).name}:{line}({name})" if line else name)
        rows.append([where, str(calls // steps if calls >= steps else calls),
                     f"{own / steps * 1e3:.1f}", f"{100 * own / profile_total:.1f}%",
                     f"{cumulative / steps * 1e3:.1f}"])
    print_table(f"cProfile: top {top} functions by own time (per step)",
                ["function", "calls/step", "own ms", "own share", "cumulative ms"], rows)


# ---------------------------------------------------------------------------
# 4. PyTorch
# ---------------------------------------------------------------------------

def _import_torch_reference():
    try:
        import torch
    except ImportError:
        return None, None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import torch_stage_reference
    finally:
        sys.path.pop(0)
    return torch, torch_stage_reference


def _stage_problem(net, stage_index, images, dtype):
    """Inputs of stage ``stage_index`` (0-based) of the 17 px network's scale."""
    stage = net.scales[0][stage_index]
    batch = make_batch(images, BATCH, CROP, 17, np.random.default_rng([SEED, 4]),
                       noise_std=NOISE_STD)
    blurry = batch.y.astype(dtype)
    if stage.in_channels == 1:
        stage_input = blurry[:, None]
    else:
        # a plausible latent image: the sharp crop plus a little noise
        latent = batch.x + 0.01 * np.random.default_rng([SEED, 5]).standard_normal(batch.x.shape)
        stage_input = np.stack([blurry, latent.astype(dtype)], axis=1)
    true_kernel = batch.k.astype(dtype)
    dlatent = (1e-3 * np.random.default_rng([SEED, 6]).standard_normal(
        blurry.shape)).astype(dtype)
    return stage, np.ascontiguousarray(stage_input), blurry, true_kernel, dlatent


def _refdeblur_forward_backward(stage, params, stage_input, blurry, true_kernel, dlatent,
                                gradient_dtype=None):
    kernel, latent, cache = stage.forward(stage_input, blurry, params)
    dkernel = 2.0 * (kernel - true_kernel) / kernel.shape[0]
    if gradient_dtype is not None:
        dkernel = dkernel.astype(gradient_dtype)
    dinput, dblurry, grads = stage.backward(dkernel, dlatent, cache,
                                            input_grad=stage.in_channels > 1)
    return kernel, latent, dinput, grads


def _relative_difference(reference, other):
    reference = np.asarray(reference, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    scale = max(np.max(np.abs(reference)), 1e-300)
    return float(np.max(np.abs(reference - other)) / scale)


def torch_agreement(torch, reference, images):
    """Largest relative difference of outputs and gradients, float64."""
    net = make_net(17, np.float64)
    rows = []
    for stage_index in (0, 2):
        stage, stage_input, blurry, true_kernel, dlatent = _stage_problem(
            net, stage_index, images, np.float64)
        kernel, latent, dinput, grads = _refdeblur_forward_backward(
            stage, net.params, stage_input, blurry, true_kernel, dlatent)
        module = reference.TorchStage(stage.in_channels, 17, FILTER_SIZE, stage.n_pairs,
                                      n_filters=N_FILTERS, n_hidden=N_HIDDEN)
        module = module.to(torch.float64).load_refdeblur_params(net.params, stage.prefix)
        t_input = torch.from_numpy(stage_input).requires_grad_(stage.in_channels > 1)
        t_kernel, t_latent = reference.forward_backward(
            module, t_input, torch.from_numpy(blurry), torch.from_numpy(true_kernel),
            torch.from_numpy(dlatent))
        p = stage.prefix
        pairs = {
            "kernel": (kernel, t_kernel.detach()),
            "latent": (latent, t_latent.detach()),
            "d conv.weight": (grads[p + "conv.weight"], module.conv.weight.grad),
            "d conv.bias": (grads[p + "conv.bias"], module.conv.bias.grad),
            "d recombine1": (grads[p + "recombine1.weight"],
                             module.recombine1.weight.grad[:, :, 0, 0]),
            "d recombine2": (grads[p + "recombine2.weight"],
                             module.recombine2.weight.grad[:, :, 0, 0]),
            "d log_beta": (grads[p + "image_quotient.log_beta"], module.log_beta.grad),
        }
        if dinput is not None:
            pairs["d input"] = (dinput, t_input.grad)
        for name, (ours, theirs) in pairs.items():
            rows.append([f"stage {stage_index + 1}", name,
                         f"{_relative_difference(ours, theirs.numpy()):.1e}"])
    print_table("PyTorch reference vs refdeblur: same function? (float64, same weights; "
                "max |difference| / max |refdeblur|)",
                ["stage", "quantity", "relative difference"], rows)


def bench_torch(images, repeats):
    torch, reference = _import_torch_reference()
    if torch is None:
        print("\nPyTorch: torch not installed (the PyTorch columns are skipped; see "
              "the module docstring for how to run them)")
    else:
        torch.set_num_threads(2)
        print(f"\nPyTorch {torch.__version__}, torch.get_num_threads() = "
              f"{torch.get_num_threads()}, MKL {torch.backends.mkl.is_available()}, "
              f"oneDNN {torch.backends.mkldnn.is_available()}")
        torch_agreement(torch, reference, images)

    dtype = np.float32
    net = make_net(17, dtype)
    rows = []
    for stage_index in (0, 2):
        stage, stage_input, blurry, true_kernel, dlatent = _stage_problem(
            net, stage_index, images, dtype)
        label = (f"stage {stage_index + 1} (C_in={stage.in_channels}, "
                 f"{stage.n_pairs} pairs{', dx' if stage.in_channels > 1 else ''})")

        def ours(gradient_dtype=None):
            _refdeblur_forward_backward(stage, net.params, stage_input, blurry,
                                        true_kernel, dlatent, gradient_dtype)

        functions = [ours, lambda: ours(np.float64)]
        if torch is not None:
            module = reference.TorchStage(stage.in_channels, 17, FILTER_SIZE,
                                          stage.n_pairs, n_filters=N_FILTERS,
                                          n_hidden=N_HIDDEN)
            module = module.to(torch.float32).load_refdeblur_params(net.params,
                                                                    stage.prefix)
            t_input = torch.from_numpy(stage_input).requires_grad_(stage.in_channels > 1)
            t_args = (module, t_input, torch.from_numpy(blurry),
                      torch.from_numpy(true_kernel), torch.from_numpy(dlatent))
            functions.append(lambda: reference.forward_backward(*t_args))
        times = _interleaved_times(functions, repeats)
        (ours_median, ours_best), (ours64_median, _) = times[0], times[1]
        row = [label, f"{ours_median * 1e3:.1f}", f"{ours_best * 1e3:.1f}",
               f"{ours64_median * 1e3:.1f}"]
        if torch is None:
            row += ["torch not installed", "-", "-", "-"]
        else:
            torch_median, torch_best = times[2]
            row += [f"{torch_median * 1e3:.1f}", f"{torch_best * 1e3:.1f}",
                    f"{ours_median / torch_median:.2f}", f"{ours_best / torch_best:.2f}"]
        rows.append(row)
    print_table(f"One stage forward + backward: refdeblur vs PyTorch (float32, batch "
                f"{BATCH}, crop {CROP}, f={FILTER_SIZE}; median of {repeats})",
                ["stage", "refdeblur ms", "refdeblur best ms",
                 "refdeblur, f64 dkernel ms", "PyTorch ms", "PyTorch best ms",
                 "ratio of medians", "ratio of bests"], rows,
                note="refdeblur, f64 dkernel: the kernel-loss gradient handed to the "
                     "stage as float64 (training_step casts the true kernels to the "
                     "network's dtype, so training passes float32: this column is "
                     "what that cast saves). The implementations run in turn, one call each per round, "
                     "so that a slow spell of the machine hits all of them. Ratios: "
                     "refdeblur (float32 gradient) / PyTorch; below 1, refdeblur is "
                     "faster.")
    if torch is not None:
        for stage_index in (0, 2):
            torch_layers(torch, reference, net, stage_index, images, repeats)


def torch_layers(torch, reference, net, stage_index, images, repeats):
    """Forward + backward of each layer of one stage, refdeblur and PyTorch."""
    dtype = np.float32
    stage, stage_input, blurry, true_kernel, dlatent = _stage_problem(
        net, stage_index, images, dtype)
    params = net.params
    rng = np.random.default_rng([SEED, 7])
    conv_params = stage._params_of(params, "conv")
    rec1_params = stage._params_of(params, "recombine1")
    rec2_params = stage._params_of(params, "recombine2")
    iq_params = stage._params_of(params, "image_quotient")
    # the stage's real intermediate values
    z1, _ = stage.conv.forward(stage_input, conv_params)
    t1 = np.tanh(z1)
    r1, _ = stage.recombine1.forward(t1, rec1_params)
    t2 = np.tanh(r1)
    features, _ = stage.recombine2.forward(t2, rec2_params)
    n = stage.n_pairs
    kernel, _ = stage.kernel_quotient.forward(features[:, :n], features[:, n:])

    def gradient(like):
        return (1e-3 * rng.standard_normal(like.shape)).astype(dtype)

    module = reference.TorchStage(stage.in_channels, 17, FILTER_SIZE, n,
                                  n_filters=N_FILTERS, n_hidden=N_HIDDEN)
    module = module.to(torch.float32).load_refdeblur_params(params, stage.prefix)
    input_grad = stage.in_channels > 1

    def ours_conv(g=gradient(z1)):
        _, cache = stage.conv.forward(stage_input, conv_params)
        stage.conv.backward(g, cache, input_grad=input_grad)

    def ours_tanh(g=gradient(z1)):
        out, cache = stage.tanh1.forward(z1)
        stage.tanh1.backward(g, cache)

    def ours_rec1(g=gradient(r1)):
        _, cache = stage.recombine1.forward(t1, rec1_params)
        stage.recombine1.backward(g, cache)

    def ours_rec2(g=gradient(features)):
        _, cache = stage.recombine2.forward(t2, rec2_params)
        stage.recombine2.backward(g, cache)

    def ours_kq(g=gradient(kernel)):
        _, cache = stage.kernel_quotient.forward(features[:, :n], features[:, n:])
        stage.kernel_quotient.backward(g, cache)

    def ours_iq():
        _, cache = stage.image_quotient.forward(kernel, blurry, iq_params)
        stage.image_quotient.backward(dlatent, cache)

    def torch_piece(function, arrays, gradient_array, grads):
        leaves = [torch.from_numpy(a).requires_grad_(g) for a, g in zip(arrays, grads)]
        upstream = torch.from_numpy(gradient_array)

        def run():
            for leaf in leaves:
                leaf.grad = None
            for param in module.parameters():
                param.grad = None
            function(*leaves).backward(upstream)
        return run

    def kq(f):
        return module.kernel_quotient(f[:, :n], f[:, n:])

    pieces = [
        (f"conv {stage.in_channels}->{N_FILTERS}, {FILTER_SIZE}x{FILTER_SIZE}"
         + (" (with dx)" if input_grad else " (no dx)"),
         ours_conv, torch_piece(module.conv, [stage_input], gradient(z1), [input_grad])),
        ("tanh (one of two)", ours_tanh,
         torch_piece(torch.tanh, [z1], gradient(z1), [True])),
        (f"1x1 {N_FILTERS}->{N_HIDDEN}", ours_rec1,
         torch_piece(module.recombine1, [t1], gradient(r1), [True])),
        (f"1x1 {N_HIDDEN}->{2 * n}", ours_rec2,
         torch_piece(module.recombine2, [t2], gradient(features), [True])),
        (f"kernel quotient ({n} pairs)", ours_kq,
         torch_piece(kq, [features], gradient(kernel), [True])),
        ("image quotient (with dy)", ours_iq,
         torch_piece(module.image_quotient, [kernel, blurry], dlatent, [True, True])),
    ]
    rows = []
    totals = [0.0, 0.0]
    for label, ours, theirs in pieces:
        (ours_median, _), (theirs_median, _) = _interleaved_times([ours, theirs], repeats)
        count = 2 if label.startswith("tanh") else 1
        totals[0] += count * ours_median
        totals[1] += count * theirs_median
        rows.append([label, f"{ours_median * 1e3:.1f}", f"{theirs_median * 1e3:.1f}",
                     f"{ours_median / theirs_median:.2f}"])
    rows.append(["sum (tanh counted twice)", f"{totals[0] * 1e3:.1f}",
                 f"{totals[1] * 1e3:.1f}", f"{totals[0] / totals[1]:.2f}"])
    print_table(f"Stage {stage_index + 1} layer by layer, forward + backward (float32, "
                f"median of {repeats})",
                ["layer", "refdeblur ms", "PyTorch ms", "ratio"], rows,
                note="Each layer on the stage's real intermediate values with a random "
                     "upstream gradient; PyTorch by autograd on leaf tensors.")


# ---------------------------------------------------------------------------
# 5. the whole training step against PyTorch
# ---------------------------------------------------------------------------

MODEL_ARCHITECTURE = Path(__file__).resolve().parent.parent / "refdeblur" / "models" / "k17.json"


def shipped_architecture():
    """The architecture of the shipped 17 px network (refdeblur/models/k17.json)."""
    with open(MODEL_ARCHITECTURE, encoding="utf-8") as stream:
        return Architecture.from_dict(json.load(stream)["architecture"])


def _step_problem(images, dtype):
    """A training batch of the shipped network's size: blurry crops, true kernels."""
    batch = make_batch(images, BATCH, CROP, 17, np.random.default_rng([SEED, 8]),
                       noise_std=NOISE_STD)
    return (np.ascontiguousarray(batch.y, dtype=dtype),
            np.ascontiguousarray(batch.k, dtype=dtype))


def _shipped_network(dtype):
    arch = shipped_architecture()
    return build_network(arch.kernel_size, rng=np.random.default_rng(SEED), dtype=dtype,
                         **{k: v for k, v in dataclasses.asdict(arch).items()
                            if k != "kernel_sizes"})


def step_agreement(torch, reference, images):
    """The whole step in float64: loss, kernels, latent image and every gradient."""
    net = _shipped_network(np.float64)
    blurry, true_kernel = _step_problem(images, np.float64)
    output, cache = net.forward_with_cache(blurry)
    residual = output.kernel - true_kernel
    loss = float(np.sum(residual ** 2)) / len(blurry)
    grads, _ = net.backward(2.0 * residual / len(blurry), cache)
    module = reference.TorchNetwork(net.architecture).to(torch.float64)
    module.load_refdeblur_params(net.params)
    t_loss, t_kernels, t_latent = reference.network_loss_and_grad(
        module, torch.from_numpy(blurry), torch.from_numpy(true_kernel))
    rows = [["loss", f"{abs(loss - float(t_loss.detach())) / abs(loss):.1e}"]]
    for s, t_kernel in enumerate(t_kernels):
        rows.append([f"stage {s + 1} kernel", f"{_relative_difference(output.stage_kernels[0][s], t_kernel.detach().numpy()):.1e}"])
    rows.append(["last latent image",
                 f"{_relative_difference(output.latent, t_latent.detach().numpy()):.1e}"])
    worst = 0.0
    for s, stage in enumerate(module.stages):
        prefix = f"scale1.stage{s + 1}."
        pairs = [("conv.weight", stage.conv.weight), ("conv.bias", stage.conv.bias),
                 ("recombine1.weight", stage.recombine1.weight),
                 ("recombine2.weight", stage.recombine2.weight),
                 ("image_quotient.log_beta", stage.log_beta)]
        for name, param in pairs:
            ours = grads[prefix + name]
            # the last stage's latent image is not in the loss: autograd leaves None
            theirs = (np.zeros_like(ours) if param.grad is None
                      else param.grad.numpy().reshape(ours.shape))
            if not np.any(ours) and not np.any(theirs):
                difference = "both 0"
            else:
                value = _relative_difference(ours, theirs)
                worst = max(worst, value)
                difference = f"{value:.1e}"
            rows.append([f"d {prefix}{name}", difference])
    print_table("Whole step, PyTorch reference vs refdeblur: same function? (float64, "
                "same weights and batch; max |difference| / max |refdeblur|)",
                ["quantity", "relative difference"], rows,
                note=f"Largest over the gradients: {worst:.1e}.")


def _torch_variants(torch, reference, net, blurry, true_kernel, compile_too):
    """(label, callable) of the PyTorch step at each setting tried."""
    t_blurry, t_kernel = torch.from_numpy(blurry), torch.from_numpy(true_kernel)
    # torch.backends.mkldnn.flags warns about a GPU feature on every call
    warnings.filterwarnings("ignore", message="TF32 acceleration")
    variants = []
    for channels_last in (False, True):
        module = reference.TorchNetwork(net.architecture, channels_last=channels_last)
        module = module.to(torch.float32).load_refdeblur_params(net.params)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        for threads in (1, 2):
            for mkldnn in (True, False):
                label = (f"PyTorch, {threads} thread{'s' if threads > 1 else ''}"
                         f"{', channels-last' if channels_last else ''}"
                         f"{'' if mkldnn else ', oneDNN off'}")

                def step(module=module, threads=threads, mkldnn=mkldnn):
                    torch.set_num_threads(threads)
                    with torch.backends.mkldnn.flags(enabled=mkldnn):
                        reference.network_loss_and_grad(module, t_blurry, t_kernel)
                variants.append((label, step))
    if compile_too:
        compiled = reference.TorchNetwork(net.architecture).to(torch.float32)
        compiled.load_refdeblur_params(net.params)
        for stage in compiled.stages:
            stage.compile_features()
        for threads in (1, 2):
            def step(threads=threads):
                torch.set_num_threads(threads)
                reference.network_loss_and_grad(compiled, t_blurry, t_kernel)
            variants.append((f"PyTorch, {threads} thread{'s' if threads > 1 else ''}, "
                             f"features torch.compile'd", step))
    return variants


def omp_policies(repeats):
    """PyTorch's step alone, in a fresh process per OMP_WAIT_POLICY and thread count."""
    script = Path(__file__).resolve().parent / "torch_stage_reference.py"
    rows = []
    for policy in (None, "PASSIVE", "ACTIVE"):
        environment = dict(os.environ)
        environment.pop("OMP_WAIT_POLICY", None)
        if policy is not None:
            environment["OMP_WAIT_POLICY"] = policy
        for threads in (1, 2):
            result = subprocess.run(
                [sys.executable, str(script), "--network", "--threads", str(threads),
                 "--repeats", str(repeats)], env=environment, capture_output=True,
                text=True, check=True)
            line = result.stdout.strip().splitlines()[-1]
            median, best = (float(part.split()[-2]) for part in line.split(":")[1].split(","))
            rows.append([policy or "(unset)", str(threads), f"{median:.0f}", f"{best:.0f}"])
    print_table(f"PyTorch's step alone per OMP_WAIT_POLICY (a fresh process each, median "
                f"and best of {repeats}, one after the other: not interleaved)",
                ["OMP_WAIT_POLICY", "threads", "median ms", "best ms"], rows,
                note="python benchmarks/torch_stage_reference.py --network --threads N; "
                     "the table above compares refdeblur with PyTorch in one process, "
                     "whose policy is printed above it.")


def bench_step(images, repeats, compile_too=False):
    """refdeblur's ``loss_and_grad`` against the same step in PyTorch."""
    torch, reference = _import_torch_reference()
    arch = shipped_architecture()
    print(f"\nWhole training step of the shipped 17 px network ({MODEL_ARCHITECTURE.name}: "
          f"filters {arch.filter_sizes[0]} px, {arch.n_filters} filters, {arch.n_hidden} "
          f"hidden, pairs {arch.n_pairs}, beta_k {arch.beta_k}), batch {BATCH} x {CROP}², "
          f"float32; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    if torch is not None:
        print(f"PyTorch {torch.__version__}, MKL {torch.backends.mkl.is_available()}, "
              f"oneDNN {torch.backends.mkldnn.is_available()}")
        step_agreement(torch, reference, images)
    net = _shipped_network(np.float32)
    blurry, true_kernel = _step_problem(images, np.float32)
    functions = [("refdeblur Network.loss_and_grad",
                  lambda: net.loss_and_grad(blurry, true_kernel))]
    if torch is not None:
        functions += _torch_variants(torch, reference, net, blurry, true_kernel,
                                     compile_too)
    times = _interleaved_times([f for _, f in functions], repeats)
    ours_median, ours_best = times[0]
    fastest = min(range(1, len(times)), key=lambda i: times[i][0]) if torch else None
    rows = []
    for index, ((label, _), (median, best)) in enumerate(zip(functions, times)):
        ratio = "-" if index == 0 else f"{ours_median / median:.2f}"
        rows.append([label + (" (fastest)" if index == fastest else ""),
                     f"{median * 1e3:.0f}", f"{best * 1e3:.0f}", ratio,
                     "-" if index == 0 else f"{ours_best / best:.2f}"])
    print_table(f"Whole step, forward + backward (median and best of {repeats} "
                f"interleaved rounds)",
                ["implementation", "median ms", "best ms", "refdeblur / this (medians)",
                 "refdeblur / this (bests)"], rows,
                note="One call of each implementation per round, in turn, after two "
                     "warm-up calls each, so that a slow spell of the machine hits all "
                     "of them. PyTorch: autograd through the same network "
                     "(torch_stage_reference.TorchNetwork), the thread count set "
                     "before each call, oneDNN switched by torch.backends.mkldnn.flags. "
                     "Below 1: refdeblur faster.")
    if torch is None:
        print("PyTorch: torch not installed (see the module docstring)")
    else:
        label, (median, best) = functions[fastest][0], times[fastest]
        print(f"\nrefdeblur / fastest PyTorch ({label}): {ours_median / median:.2f} "
              f"(medians), {ours_best / best:.2f} (bests)")
        omp_policies(max(3, repeats // 3))


def _interleaved_times(functions, repeats, warmup=2):
    """(median, best) seconds of each function, called in turn ``repeats`` times."""
    for function in functions:
        for _ in range(warmup):
            function()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for function, record in zip(functions, times):
            start = time.perf_counter()
            function()
            record.append(time.perf_counter() - start)
    return [(float(np.median(t)), float(np.min(t))) for t in times]


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

SECTIONS = ("data", "throughput", "profile", "torch", "step")


def main(argv=None):
    global FILTER_SIZE, CROP
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one timed step per configuration, float32 only")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per configuration (default 5, quick 1)")
    parser.add_argument("--profile-steps", type=int, default=None,
                        help="steps per profiling method (default 3, quick 1)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repeats of the one-stage timings (default 15, quick 2)")
    parser.add_argument("--all", action="store_true",
                        help="also the 25 and 33 px networks (3 stages, finest scale "
                             "trainable)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--filter-size", type=int, default=FILTER_SIZE,
                        help=f"filter side (default {FILTER_SIZE}; the networks "
                             f"shipped use 17)")
    parser.add_argument("--crop", type=int, default=CROP,
                        help=f"crop side (default {CROP}; the 25 and 33 px "
                             f"networks trained on 256)")
    parser.add_argument("--torch-compile", action="store_true",
                        help="the step section also times torch.compile'd PyTorch "
                             "(needs a C++ compiler; compiling takes minutes)")
    args = parser.parse_args(argv)
    FILTER_SIZE, CROP = args.filter_size, args.crop
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    steps = args.steps or (1 if args.quick else 5)
    profile_steps = args.profile_steps or (1 if args.quick else 3)
    repeats = args.repeats or (2 if args.quick else 15)
    if min(steps, profile_steps, repeats) < 1:
        parser.error("--steps, --profile-steps and --repeats must be >= 1")

    started = time.perf_counter()
    busy_start, own_start = machine_busy_seconds(), own_cpu_seconds()
    print_header()
    images = benchmark_images()
    dtypes = (np.float32,) if args.quick else (np.float32, np.float64)
    if "data" in sections:
        bench_data(images, (17, 25, 33) if args.all else (17,), steps)
    if "throughput" in sections:
        configs = [(17, n, dtype, False) for dtype in dtypes for n in (1, 2, 3)]
        configs.append((17, 3, np.float32, True))
        if args.all:
            configs += [(kernel_size, 3, dtype, False) for dtype in dtypes
                        for kernel_size in (25, 33)]
        bench_throughput(images, configs, steps)
        conv_methods(dtypes)
    if "profile" in sections:
        bench_profile(images, profile_steps, top=12)
    if "torch" in sections:
        bench_torch(images, repeats)
    if "step" in sections:
        bench_step(images, repeats, compile_too=args.torch_compile)
    print(f"\nThreads after the run: {thread_settings()}")
    wall = time.perf_counter() - started
    print(f"Benchmark wall time: {wall:.0f} s")
    busy_end = machine_busy_seconds()
    if busy_start is not None and busy_end is not None:
        others = max(0.0, (busy_end - busy_start) - (own_cpu_seconds() - own_start))
        print(f"CPU time of other processes during the run: {others:.1f} s of "
              f"{wall * (os.cpu_count() or 1):.0f} core-seconds "
              f"({100 * others / (wall * (os.cpu_count() or 1)):.0f}% of the machine; "
              f"the timings are trustworthy only if this is small)")


if __name__ == "__main__":
    main()
