"""Learning curves of the committed training runs, against the best fixed kernel.

Run from the repository root::

    python benchmarks/learning_curves.py --out benchmarks/results/learning_curves

For every run in ``benchmarks/training_runs/`` (a folder with ``config.json``
and ``log.jsonl``) this reads the validation records of its log and rebuilds
the run's own validation set (``refdeblur.training.load_run_data``: the same
64 pairs the trainer scores), to put next to each validation error the
error of the best fixed kernel on those pairs: always answering the mean of
their true kernels, which no estimator that ignores the image can beat.
The ratio validation / best fixed kernel is the number the targets are
stated in (0.5 for the 17 px network).

It prints one table row per run: steps, hours of training (the log's
``elapsed``: wall time of one thread on the shared 2-core machine, so
roughly one core's CPU time; for a pyramid level, also with the levels
below it), the best and the latest ratio, and the trend of the ratio over
the last half of the run's steps, fitted as a straight line in log10(step).
Where that trend falls, it extrapolates the steps and hours to the target
ratio; where it is flat or rising, it says so. The extrapolation is a
straight line through noisy points: an order of magnitude, not a promise.
With ``--out`` it also writes ``table.md`` and ``curves.png`` (ratio against
hours, one curve per run) there.

Needs the training images of the runs' configurations
(``../shared/data/train`` by default; ``--images`` overrides the folder).
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from refdeblur.training.data import load_run_data

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "training_runs"
TARGETS = {17: 0.5, 25: 0.6, 33: 0.6}   # issue targets: ratio to the best fixed kernel
FLAT_SLOPE = 0.01    # a fall of less than 0.01 per decade of steps is within the noise
FAR_STEPS = 1e8      # extrapolating further than this says nothing


def read_validation(log_path):
    """``(steps, errors, hours, stages)`` of a log's validation records."""
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    kept = [r for r in records if "validation" in r]
    return (np.array([r["step"] for r in kept], dtype=float),
            np.array([r["validation"] for r in kept]),
            np.array([r.get("elapsed", math.nan) for r in kept]) / 3600.0,
            np.array([r.get("n_stages", 0) for r in kept]))


def fixed_kernel_error(config, cache):
    """Mean ``||mean kernel - k||²`` over a run's own validation pairs."""
    key = (config.get("images"), config.get("content"), json.dumps(config.get("documents")),
           config.get("validation_images"), config.get("validation_fraction"),
           config.get("validation_folder"), config["kernel_size"], config["crop_size"],
           config["noise_std"], config["n_validation"], config["validation_seed"])
    if key not in cache:
        _, kernels = load_run_data(config).validation
        mean = kernels.mean(axis=0)
        cache[key] = float(np.mean(np.sum((kernels - mean) ** 2, axis=(1, 2))))
    return cache[key]


def base_hours(config, hours_of, runs=RUNS):
    """Hours spent on the pyramid levels below a run (0 where none is known).

    A base model exported here keeps its recipe beside it (``NAME.json``,
    written by ``refdeblur export-model``): its training time is that of
    the export, whatever its run did afterwards, plus the levels below it.
    Otherwise the base is named after a run folder here, whose hours
    (``hours_of``, its levels below included) are used.
    """
    base = config.get("base_model")
    if not base:
        return 0.0
    recipe = Path(runs) / f"{Path(base).stem}.json"
    if recipe.is_file():
        exported = json.loads(recipe.read_text())
        return (exported["training_seconds"] / 3600
                + base_hours(exported["config"], hours_of, runs))
    return hours_of.get(Path(base).stem, 0.0)


def trend(steps, ratios):
    """Slope of the ratio per decade of steps over the last half of the run."""
    recent = steps >= steps[-1] / 2
    if recent.sum() < 4:
        return math.nan, math.nan
    slope, intercept = np.polyfit(np.log10(steps[recent]), ratios[recent], 1)
    return slope, intercept


def summarise(name, config, steps, errors, hours, fixed, own_base_hours):
    """One table row and the curve of a run."""
    ratios = errors / fixed
    last = float(np.mean(ratios[-4:]))
    target = TARGETS.get(config["kernel_size"], 0.5)
    slope, intercept = trend(steps, ratios)
    if not math.isfinite(slope):
        projection = "too few points"
    elif slope >= -FLAT_SLOPE:
        projection = "flat or rising: not at this rate"
    elif (target - intercept) / slope > math.log10(FAR_STEPS):
        projection = f"beyond {FAR_STEPS:.0e} steps"
    else:
        target_step = 10 ** ((target - intercept) / slope)
        step_hours = hours[-1] / steps[-1] if steps[-1] else math.nan
        projection = (f"~{target_step:.1e} steps, ~{target_step * step_hours:,.0f} h"
                      if math.isfinite(step_hours) else f"~{target_step:.1e} steps")
    scales = ",".join(str(m) for m in config["architecture"].get("kernel_sizes", [])) or "paper"
    row = [name, scales, f"{int(steps[-1]):,}", f"{hours[-1]:.1f}",
           f"{hours[-1] + own_base_hours:.1f}", f"{fixed:.4f}", f"{ratios.min():.3f}",
           f"{last:.3f}", f"{slope:+.3f}" if math.isfinite(slope) else "–",
           f"{target}", projection]
    return row, ratios


HEADER = ["run", "scales", "steps", "hours", "hours with levels below", "best fixed kernel",
          "best ratio", "latest ratio (mean of last 4)", "trend per decade of steps",
          "target", "to the target at the trend"]


def markdown(rows):
    """The table as Markdown."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot(curves, path):
    """Ratio against hours, one curve per run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axis = plt.subplots(figsize=(8, 5))
    for name, (hours, ratios) in curves.items():
        axis.plot(hours, ratios, label=name, lw=1)
    axis.axhline(1.0, color="k", lw=0.8, ls="--", label="best fixed kernel")
    axis.axhline(0.5, color="g", lw=0.8, ls=":", label="17 px target")
    axis.set_xlabel("hours of training (one thread, shared 2-core machine; this level only)")
    axis.set_ylabel("validation error / best fixed kernel")
    axis.set_ylim(0.4, 1.3)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="*", help="run folders' names (default: all)")
    parser.add_argument("--images", help="training image folder (default: each config's)")
    parser.add_argument("--out", type=Path, help="folder for table.md and curves.png")
    args = parser.parse_args(argv)

    folders = sorted(p for p in RUNS.iterdir()
                     if (p / "config.json").is_file() and (p / "log.jsonl").is_file())
    if args.runs:
        folders = [p for p in folders if p.name in args.runs]
    cache, rows, curves, hours_of = {}, [], {}, {}
    # Levels below first, so a pyramid level can add its base's hours.
    for folder in sorted(folders, key=lambda p: json.loads(
            (p / "config.json").read_text())["architecture"].get("kernel_sizes", [0])[-1:]):
        config = json.loads((folder / "config.json").read_text())
        if args.images:
            config["images"] = args.images
        elif config.get("images") and not Path(config["images"]).is_absolute():
            config["images"] = str(ROOT / config["images"])   # runs on documents have none
        steps, errors, hours, _ = read_validation(folder / "log.jsonl")
        if len(steps) == 0:
            continue
        fixed = fixed_kernel_error(config, cache)
        below = base_hours(config, hours_of)
        hours_of[folder.name] = float(hours[-1]) + below
        row, ratios = summarise(folder.name, config, steps, errors, hours, fixed, below)
        rows.append(row)
        curves[folder.name] = (hours, ratios)
        print(" | ".join(row), flush=True)
    table = markdown(rows)
    print("\n" + table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table.md").write_text(table)
        plot(curves, args.out / "curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
