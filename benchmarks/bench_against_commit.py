"""Speed of the working tree against an earlier commit, interleaved in one process.

Run ``python benchmarks/bench_against_commit.py --rev REV`` from the
repository root. It extracts the package as it was at ``REV`` (``git
archive``) into a temporary folder under the name ``refdeblur_before``,
imports both versions into this process, and times the same calls on the
same inputs alternately, before then now, ``--repeats`` times each: the
network's float32 forward pass on the whole image, the default estimate
(``estimate_kernel(image, size, max_window=None)``, with the refinement),
a training step (forward with cache and backward of the 3-stage 17 px
network on a batch of 4 x 128² in float32) and ``deblur`` of a 512² image.
It prints the best time of each side and their ratio; a ratio above 1
means the working tree is slower. Interleaving makes a busy machine slow
both sides alike.

The earlier version is imported first, so that a version which limits
OpenBLAS to one thread at import does so before NumPy loads; the current
package limits BLAS inside its own calls. Both then run with BLAS on one
thread, as each would alone.
"""

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def extract(rev, folder):
    """The package at ``rev``, unpacked as ``folder/refdeblur_before``."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "refdeblur"],
                             cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (Path(folder) / "refdeblur").rename(Path(folder) / "refdeblur_before")


def best_pair(run_before, run_now, repeats):
    """Best times of two callables, timed alternately after one warm-up each."""
    run_before()
    run_now()
    before, now = [], []
    for _ in range(repeats):
        for run, times in ((run_before, before), (run_now, now)):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return min(before), min(now)


def forward_pass(package):
    """The float32 network forward pass of ``package``, whichever API it has."""
    try:
        return importlib.import_module(f"{package.__name__}.network_fast").predict
    except ImportError:             # before network_fast, Network.forward was the fast path
        return lambda net, image: net.forward(image)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs of each side (default: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        extract(args.rev, folder)
        sys.path.insert(0, folder)
        before = importlib.import_module("refdeblur_before")
        import numpy as np
        from skimage import color, data, transform

        import refdeblur as now
        load_before = importlib.import_module("refdeblur_before.models").load_shipped_model
        load_now = importlib.import_module("refdeblur.models").load_shipped_model
        predict_before, predict_now = forward_pass(before), forward_pass(now)
        warnings.simplefilter("ignore")
        photo = color.rgb2gray(data.astronaut())
        rows = []

        def measure(name, run_before, run_now, repeats=args.repeats):
            a, b = best_pair(run_before, run_now, repeats)
            rows.append(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
            print(rows[-1], flush=True)

        revision = subprocess.run(["git", "rev-parse", "--short", args.rev], cwd=ROOT,
                                  check=True, capture_output=True, text=True).stdout.strip()
        print(f"| measurement (best of {args.repeats}, interleaved) | {revision} (s) "
              f"| working tree (s) | ratio |\n|---|---|---|---|")
        for size in (17, 25, 33):
            net_before, net_now = load_before(size), load_now(size)
            for side in (255, 800, 1024):
                image = transform.resize(photo, (side, side), anti_aliasing=True)
                x = image.astype(np.float32)
                measure(f"network, {size} px, {side}²",
                        lambda: predict_before(net_before, x), lambda: predict_now(net_now, x))
            for side in (255, 800):
                image = transform.resize(photo, (side, side), anti_aliasing=True)
                measure(f"default estimate, {size} px, {side}²",
                        lambda: before.estimate_kernel(image, size, max_window=None),
                        lambda: now.estimate_kernel(image, size, max_window=None),
                        max(2, args.repeats // 2))
        batch = np.random.default_rng(0).random((4, 128, 128)).astype(np.float32)

        def training_step(net):
            output, cache = net.forward_with_cache(batch)
            net.backward(np.ones_like(output.kernel), cache)

        net_before = load_before(17).astype(np.float32)
        net_now = load_now(17).astype(np.float32)
        measure("training step, 17 px, 3 stages, 4 x 128² float32",
                lambda: training_step(net_before), lambda: training_step(net_now))
        image = transform.resize(photo, (512, 512), anti_aliasing=True)
        measure("deblur, 25 px, 512²", lambda: before.deblur(image, 25),
                lambda: now.deblur(image, 25), max(2, args.repeats // 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
