"""Training and batch deblurring on Dask workers against one process.

Run from the repository root (needs ``pip install -e '.[distributed]'``)::

    python benchmarks/bench_distributed.py            # about four minutes
    python benchmarks/bench_distributed.py --quick    # smoke run
    python benchmarks/bench_distributed.py --crop-sizes 256 --steps 20

What is measured
----------------
*Training*: the steps of ``refdeblur train --kernel-size 17`` (the default
configuration: 17 px filters, batches of 4, float32) on crops of 128 px
(the default) and 256 px (the shipped networks' last runs), with all three
stages trained end to end, on crops of pictures shipped inside
scikit-image, so no data set is needed. Rows, for each crop size:

* ``1 process, stream``: the default trainer, one batched forward and
  backward pass over the 4 examples (``training_step``);
* ``1 process, per-example``: per-example seeding in this process
  (``LocalExamples`` and ``per_example_step``), what ``--example-seeding
  per-example`` runs;
* ``Dask, W workers``: the same steps with the examples on a
  ``LocalCluster`` of W worker processes (``DaskExamples``), as
  ``--workers W`` runs them; the cluster's start is timed apart.

Each row runs one warm-up step, then ``--steps`` timed steps; examples per
second is ``batch x steps / seconds``. The per-example rows end with the
same weights (checked and printed).

*Per-step overhead* of Dask, measured on its own: the round trip of a step
whose tasks do no work but return a gradient-sized result (scatter the
weights to every worker, one task per example, gather the results),
median over ``--steps`` repeats, for 1 and 2 workers and for 4 and 16
tasks; and the bytes that travel (the pickled weights, one example's
gradient). From these, the *scaling estimate*: how many workers a stage of
10^6 examples needs to finish in a day, and where the overhead stops
adding workers from paying.

*Batch deblurring*: ``refdeblur deblur --kernel-size 17`` of ``--files``
256 x 256 colour crops, in this process (``deblur_files``) and on 1 and 2
workers (``deblur_files_distributed``), each after one untimed pass (model
loading, Numba, FFT plans); files per minute.

The machine this runs on may be busy: the header prints its load, and the
last line the CPU time that other processes took during the run. The
ratios between rows of one run are what the benchmark is for, and on a
busy machine even they move by tens of per cent between runs.
"""

import argparse
import functools
import os
import pickle
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import skimage
import skimage.color
import skimage.data

import refdeblur
from _bench_common import print_table  # this folder
from refdeblur import build_network
from refdeblur._engine.threads import available_cores
from refdeblur.distributed import (DaskExamples, dask_client, deblur_files_distributed,
                                   require_distributed)
from refdeblur.inference.files import collect_inputs, deblur_files, plan_outputs
from refdeblur.training import default_config, make_optimizer
from refdeblur.training.data import ExampleSource, make_batch
from refdeblur.training.schedule import Phase
from refdeblur.training.step import OutlierFilter, training_step
from refdeblur.training.trainer import LocalExamples, example_seed, per_example_step

SEED = 0
EXAMPLES_PER_DAY = 1_000_000
SECONDS_PER_DAY = 86_400.0


def benchmark_images():
    """Grey float64 pictures in [0, 1] shipped inside scikit-image."""
    images = [skimage.data.camera(), skimage.data.astronaut(), skimage.data.coffee(),
              skimage.data.chelsea(), skimage.data.brick()]
    return [skimage.color.rgb2gray(image) if image.ndim == 3 else image / 255.0
            for image in images]


class Setup:
    """The network, data and phase of the measured training steps."""

    def __init__(self, crop_size):
        self.config = default_config(17, crop_size=crop_size)
        self.phase = Phase(0, 3, tuple(f"scale1.stage{s}." for s in (1, 2, 3)))
        self.images = benchmark_images()
        self.source = ExampleSource(self.images, crop_size, 17, self.config["noise_std"])

    def fresh(self):
        """A new network, optimiser and outlier filter, the same every time."""
        config = self.config
        net = build_network(17, rng=np.random.default_rng(SEED),
                            dtype=np.dtype(config["dtype"]), **config["architecture"])
        return net, make_optimizer(config["optimizer"]), OutlierFilter(**config["outliers"])


def time_stream(setup, steps):
    """Seconds of ``steps`` steps of the default (batched) trainer."""
    net, optimizer, outliers = setup.fresh()
    rng = np.random.default_rng([SEED, 1])
    config = setup.config

    def step():
        batch = make_batch(setup.images, config["batch_size"], config["crop_size"], 17, rng,
                           noise_std=config["noise_std"])
        training_step(net, optimizer, outliers, batch.y, batch.k, setup.phase)

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - started


def time_per_example(setup, examples, steps):
    """Seconds of ``steps`` per-example steps, and the final weights."""
    net, optimizer, outliers = setup.fresh()
    batch = setup.config["batch_size"]

    def step(number):
        seeds = [example_seed(SEED, number, index) for index in range(batch)]
        per_example_step(net, optimizer, outliers, examples(net, setup.phase, seeds),
                         setup.phase)

    step(0)
    started = time.perf_counter()
    for number in range(1, steps + 1):
        step(number)
    return time.perf_counter() - started, net.params


def _gradient_sized(weights, phase):
    """What a task of the overhead measurement returns: zeros of a gradient's size."""
    return {name: np.zeros_like(value) for name, value in weights.params.items()
            if name.startswith(phase.trainable)}


def _nothing():
    return None


def _median_seconds(function, repeats):
    """Median wall time of ``function()`` over ``repeats`` calls, after one untimed."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_overhead(client, net, phase, batch, repeats):
    """Median seconds of the parts of a step's round trip, with tasks that do no work.

    ``tasks_4``, ``tasks_16``: submit that many tasks returning None and
    gather them (scheduling alone); ``scatter``: the weights to every
    worker; ``step``: a whole empty step, the weights scattered and
    ``batch`` tasks returning a gradient each.
    """
    def tasks(count):
        return lambda: client.gather([client.submit(_nothing, pure=False)
                                      for _ in range(count)])

    def step():
        weights = client.scatter(net, broadcast=True, hash=False)
        client.gather([client.submit(_gradient_sized, weights, phase, pure=False)
                       for _ in range(batch)])

    return {"tasks_4": _median_seconds(tasks(4), repeats),
            "tasks_16": _median_seconds(tasks(16), repeats),
            "scatter": _median_seconds(
                lambda: client.scatter(net, broadcast=True, hash=False), repeats),
            "step": _median_seconds(step, repeats)}


def serialisation_seconds(value, repeats):
    """Median seconds to pickle and unpickle ``value``, and its size in bytes."""
    data = pickle.dumps(value)
    return _median_seconds(lambda: pickle.loads(pickle.dumps(value)), repeats), len(data)


def write_photos(folder, count):
    """``count`` different 256 x 256 colour crops of scikit-image pictures."""
    folder.mkdir()
    pictures = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    for index in range(count):
        picture = pictures[index % len(pictures)]
        top, left = 40 * (index // len(pictures)), 30 * (index // len(pictures))
        iio.imwrite(folder / f"photo{index:02d}.png",
                    picture[top:top + 256, left:left + 256])


def time_deblurring(deblur, folder, out):
    """Seconds to deblur every file of ``folder`` (after one untimed pass)."""
    plans = plan_outputs(collect_inputs([folder]), out_dir=out)
    options = dict(kernel_size=17, model=None, method="hyper_laplacian", noise_std=None,
                   max_window=None, refine=True, overwrite=True)
    for warmup in (True, False):
        started = time.perf_counter()
        results = list(deblur(plans, **options))
        seconds = time.perf_counter() - started
        failed = [result.error for result in results if result.error]
        if failed:
            raise RuntimeError(f"deblurring failed: {failed[0]}")
    return seconds


def busy_cpu_seconds():
    """CPU seconds spent by all processes so far (``/proc/stat``), or None."""
    try:
        with open("/proc/stat", encoding="utf-8") as stream:
            fields = stream.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """CPU seconds of this process and of its children that have ended (the workers)."""
    seconds = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        seconds += usage.ru_utime + usage.ru_stime
    return seconds


def crop_sizes(text):
    """``--crop-sizes``: comma-separated sides in px."""
    return [int(part) for part in text.split(",")]


def print_header(args):
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    distributed = require_distributed()
    print("# Training and batch deblurring on Dask workers\n")
    print(f"Machine: {platform.platform()}, {os.cpu_count()} CPUs "
          f"({available_cores()} usable), load average {load}")
    print(f"Python {platform.python_version()}, numpy {np.__version__}, "
          f"dask.distributed {distributed.__version__}, refdeblur {refdeblur.__version__}")
    print(f"Setup: refdeblur train --kernel-size 17 defaults (filters 17 px, batch 4, "
          f"float32), 3 stages end to end; {args.steps} timed steps per row; "
          f"deblurring {args.files} files of 256 x 256")


def training_section(setup, args, cluster_sizes):
    """The throughput table; returns what the overhead and scaling sections use."""
    batch = setup.config["batch_size"]
    examples = batch * args.steps
    rows, weights = [], {}
    seconds = time_stream(setup, args.steps)
    rows.append(["1 process, stream (batched)", "-", f"{seconds / args.steps:.3f}",
                 f"{examples / seconds:.2f}", "-"])
    single, weights["1 process"] = time_per_example(setup, LocalExamples(setup.source),
                                                    args.steps)
    rows.append(["1 process, per-example", "-", f"{single / args.steps:.3f}",
                 f"{examples / single:.2f}", "1.00"])
    timings = {"single": single / args.steps}
    for workers in cluster_sizes:
        started = time.perf_counter()
        with dask_client(workers=workers) as client:
            start_seconds = time.perf_counter() - started
            dask_examples = DaskExamples(client, setup.source)
            seconds, weights[f"{workers} workers"] = time_per_example(setup, dask_examples,
                                                                      args.steps)
            overhead = measure_overhead(client, setup.fresh()[0], setup.phase, batch,
                                        args.steps)
        timings[workers] = {"step": seconds / args.steps, "overhead": overhead,
                            "compute": dask_examples.compute_seconds / dask_examples.steps}
        rows.append([f"Dask, {workers} worker{'s' if workers > 1 else ''}",
                     f"{start_seconds:.1f}", f"{seconds / args.steps:.3f}",
                     f"{examples / seconds:.2f}", f"{single / seconds:.2f}"])
    reference = weights["1 process"]
    same = all(all(np.array_equal(reference[name], other[name]) for name in reference)
               for other in weights.values())
    crop = setup.config["crop_size"]
    print_table(f"Training throughput, {crop} px crops",
                ["run", "cluster start s", "s / step", "examples / s", "speed-up"], rows,
                note=f"The per-example rows end with bit-identical weights after "
                     f"{args.steps + 1} steps: {'yes' if same else 'NO'} "
                     f"({', '.join(weights)}).")
    return timings


def overhead_section(setup, timings, cluster_sizes, repeats):
    """The per-step overhead table; returns the byte sizes and serialisation times."""
    batch = setup.config["batch_size"]
    net = setup.fresh()[0]
    weights_seconds, weights_bytes = serialisation_seconds(net, repeats)
    gradient_seconds, gradient_bytes = serialisation_seconds(
        _gradient_sized(net, setup.phase), repeats)
    rows = []
    for workers in cluster_sizes:
        measured = timings[workers]
        parts = measured["overhead"]
        rows.append([str(workers), f"{parts['tasks_4'] * 1e3:.1f}",
                     f"{parts['tasks_16'] * 1e3:.1f}", f"{parts['scatter'] * 1e3:.1f}",
                     f"{parts['step'] * 1e3:.1f}",
                     f"{measured['compute'] / batch * 1e3:.0f}"])
    print_table(f"Per-step overhead, {setup.config['crop_size']} px crops", [
        "workers", "4 tasks ms", "16 tasks ms", "scatter weights ms",
        "empty step ms", "example on a worker ms"], rows,
        note=f"Medians. '4 tasks', '16 tasks': submit and gather tasks that return "
             f"None (scheduling alone). 'scatter weights': the weights "
             f"({weights_bytes / 1e3:.0f} kB pickled, {weights_seconds * 1e3:.2f} ms to "
             f"pickle and unpickle) to every worker. 'empty step': a step whose "
             f"{batch} tasks only return a gradient ({gradient_bytes / 1e3:.0f} kB, "
             f"{gradient_seconds * 1e3:.2f} ms to pickle and unpickle): the per-step "
             f"overhead of serialisation and scheduling. 'example on a worker': the "
             f"wall time of one training example inside a task of the training "
             f"rows, which grows where the workers share too few cores.")
    return {"weights_bytes": weights_bytes, "gradient_bytes": gradient_bytes}


def scaling_section(setup, timings, sizes):
    """The paper calculation: workers for a stage of 10^6 examples in a day."""
    batch = setup.config["batch_size"]
    needed = EXAMPLES_PER_DAY / SECONDS_PER_DAY
    per_example = timings["single"] / batch
    one = timings[1]["overhead"]
    # the step's overhead on one worker: a fixed part and a part per task
    per_task = max(0.0, (one["tasks_16"] - one["tasks_4"]) / 12)
    fixed = max(0.0, one["step"] - per_task * batch)
    moved = sizes["weights_bytes"] + sizes["gradient_bytes"]

    def step_seconds(workers, tasks, bits_per_second):
        transfer = workers * sizes["weights_bytes"] + tasks * sizes["gradient_bytes"]
        return (fixed + per_task * tasks + transfer * 8 / bits_per_second
                + -(-tasks // workers) * per_example)

    rows = []
    for workers in (1, 2, 4, 8, 16, 32, 64, 128):
        busy = min(workers, batch)
        rows.append([str(workers), f"{batch / step_seconds(busy, batch, 1e9):.1f}"]
                    + [f"{workers / step_seconds(workers, workers, bw):.1f}"
                       for bw in (1e9, 1e10)])
    answers = []
    for bw, name in ((1e9, "1 Gbit/s"), (1e10, "10 Gbit/s")):
        enough = next((w for w in range(1, 100_000)
                       if w / step_seconds(w, w, bw) >= needed), None)
        ceiling = 1.0 / (per_task + moved * 8 / bw)
        half = (fixed + per_example) / (per_task + moved * 8 / bw)
        answers.append(f"at {name}, {enough} workers; the rate can never pass "
                       f"{ceiling:.0f} examples/s, and beyond {half:.0f} workers the "
                       f"overhead is more than half of a step")
    crop = setup.config["crop_size"]
    print_table(f"Scaling estimate, {crop} px crops",
                ["workers W", "examples / s, batch 4, 1 Gbit/s",
                 "examples / s, batch W, 1 Gbit/s", "examples / s, batch W, 10 Gbit/s"],
                rows,
                note=(f"A model of a step from the measurements above: "
                      f"{per_example * 1e3:.0f} ms per example on one process's cores "
                      f"(the per-example row), and an overhead of {fixed * 1e3:.1f} ms "
                      f"per step + {per_task * 1e3:.2f} ms per task (the empty step and "
                      f"task rows on one worker), plus the bytes that cross the client's "
                      f"link: W x {sizes['weights_bytes'] / 1e3:.0f} kB of weights out, "
                      f"one {sizes['gradient_bytes'] / 1e3:.0f} kB gradient per example "
                      f"back. A stage of 10^6 examples in a day needs {needed:.1f} "
                      f"examples/s. With batch 4 at most 4 workers are busy, and the "
                      f"rate stops at {batch / step_seconds(batch, batch, 1e9):.1f} "
                      f"examples/s. With one example per worker and step (batch W: "
                      f"the same examples, but fewer and larger steps, which changes "
                      f"the optimisation) it takes "
                      + "; ".join(answers) + "."))


def deblurring_section(args, cluster_sizes):
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "photos"
        write_photos(folder, args.files)
        rows = []
        seconds = time_deblurring(deblur_files, folder, Path(temporary) / "single")
        single = seconds
        rows.append(["1 process", f"{args.files / seconds * 60:.1f}", "1.00"])
        for workers in cluster_sizes:
            with dask_client(workers=workers) as client:
                deblur = functools.partial(deblur_files_distributed, client)
                seconds = time_deblurring(deblur, folder, Path(temporary) / f"w{workers}")
            rows.append([f"Dask, {workers} worker{'s' if workers > 1 else ''}",
                         f"{args.files / seconds * 60:.1f}", f"{single / seconds:.2f}"])
    print_table("Batch deblurring", ["run", "files / min", "speed-up"], rows,
                note="Each worker reads its input and writes its two outputs; only the "
                     "report entry comes back to the client.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per row")
    parser.add_argument("--crop-sizes", type=crop_sizes, default=[128, 256],
                        help="training crop sides, comma-separated (default 128,256)")
    parser.add_argument("--files", type=int, default=12, help="images to deblur")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 steps, 2 files")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.files, args.crop_sizes = 2, 2, [128]
    cluster_sizes = (1, 2)
    started, busy, own = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds()
    print_header(args)
    for crop_size in args.crop_sizes:
        setup = Setup(crop_size)
        timings = training_section(setup, args, cluster_sizes)
        sizes = overhead_section(setup, timings, cluster_sizes, args.steps)
        scaling_section(setup, timings, sizes)
    deblurring_section(args, cluster_sizes)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\nLoad average at the end: {load}")
    if busy is not None:
        wall = time.perf_counter() - started
        others = busy_cpu_seconds() - busy - (own_cpu_seconds() - own)
        print(f"Other processes used {others:.0f} CPU seconds of the "
              f"{wall * available_cores():.0f} the cores offered during the run "
              f"({others / (wall * available_cores()):.0%}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
