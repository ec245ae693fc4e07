"""Continue every committed training run in the background, committing as it goes.

Run from the repository root::

    nohup python benchmarks/training_runs/continue_training.py &

For each run folder here (``k17_ft_c256``, ``k25_f17_c256``, ...), this
copies its state (checkpoint with optimiser and data-generator state,
``config.json``, log) and the base models its configuration names into the
git-ignored working folder ``runs/``, where the configurations expect them,
and resumes it with ``refdeblur train --resume`` at the lowest priority
(``nice -n 19``), one thread per run. Every ``--commit-minutes`` (default
60) and when it stops (Ctrl-C, SIGTERM, or all runs reaching ``--steps``),
it copies each run's newest checkpoint, its configuration and a compact
log (every validation line and every 100th step, up to the checkpoint's
step) back here and commits exactly those files with git, so that the
next working period resumes where this one stopped. ``--no-commit`` only
copies.

The runs share the machine's cores with whatever else runs; at the lowest
priority they take only what is idle. A resumed run continues bit for bit
as if it had never stopped (derivations/training.md, "Reproducibility and
resume").
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LOG_EVERY = 100     # steps between kept log lines, besides validation lines


def run_folders():
    """The committed runs: folders here holding a checkpoint and a config."""
    return sorted(p for p in HERE.iterdir()
                  if (p / "checkpoint.npz").is_file() and (p / "config.json").is_file())


def checkpoint_step(path):
    """Training step recorded in a checkpoint's metadata."""
    with np.load(path, allow_pickle=False) as archive:
        metadata = json.loads(str(archive["__metadata__"]))
    return metadata["metadata"]["training_state"]["step"]


def compact_log(source, step):
    """The log lines up to ``step``: every validation and every 100th step."""
    kept = []
    for line in source.read_text().splitlines():
        record = json.loads(line)
        if record["step"] <= step and ("validation" in record
                                       or record["step"] % LOG_EVERY == 0):
            kept.append(line)
    return "\n".join(kept) + "\n"


def resume_command(config, target, steps):
    """The ``refdeblur train --resume`` command of a run, at the lowest priority.

    A resumed run takes every option from its config.json; the image
    folder is passed where it has one (a run on synthetic documents,
    ``--content text``, has none).
    """
    images = ["--images", str(config["images"])] if config.get("images") else []
    return ["nice", "-n", "19", sys.executable, "-m", "refdeblur", "train", *images,
            "--out", str(target), "--steps", str(steps), "--resume"]


def prepare(run, work):
    """Copy a committed run, and the files its configuration names, into ``work``."""
    config = json.loads((run / "config.json").read_text())
    target = work / run.name
    if (target / "checkpoint.npz").is_file() and (
            checkpoint_step(target / "checkpoint.npz")
            >= checkpoint_step(run / "checkpoint.npz")):
        return config, target           # the working copy is already ahead
    target.mkdir(parents=True, exist_ok=True)
    for name in ("checkpoint.npz", "config.json", "log.jsonl"):
        shutil.copy2(run / name, target / name)
    for key in ("base_model", "init_model"):
        named = config.get(key)
        # e.g. "runs/base17f17_for25.npz", kept here; a shipped name such
        # as "k17" needs no copy
        if named and (HERE / Path(named).name).is_file():
            destination = ROOT / named
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(HERE / Path(named).name, destination)
    return config, target


def collect(run, target):
    """Copy the working copy's newest state back into the committed run."""
    step = checkpoint_step(target / "checkpoint.npz")
    shutil.copy2(target / "checkpoint.npz", run / "checkpoint.npz")
    shutil.copy2(target / "config.json", run / "config.json")
    (run / "log.jsonl").write_text(compact_log(target / "log.jsonl", step))
    validations = [json.loads(line)["validation"] for line in
                   (run / "log.jsonl").read_text().splitlines() if '"validation"' in line]
    return step, (validations[-1] if validations else None)


def commit(runs, targets, *, do_commit):
    summary = []
    for run, target in zip(runs, targets):
        step, validation = collect(run, target)
        summary.append(f"{run.name} step {step:,}"
                       + (f" (validation {validation:.4f})" if validation else ""))
    message = "training_runs: " + "; ".join(summary)
    print(message, flush=True)
    if do_commit:
        paths = [str(p.relative_to(ROOT)) for run in runs
                 for p in (run / "checkpoint.npz", run / "config.json", run / "log.jsonl")]
        # A failed commit (say, another git command holding the index) is
        # retried at the next interval; the runs go on either way.
        added = subprocess.run(["git", "add", "--", *paths], cwd=ROOT)
        if added.returncode == 0:
            subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], cwd=ROOT)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=None, metavar="NAME[:STEPS]",
                        help="run names, each optionally with the total steps at "
                             "which it stops, e.g. pyr17_s9:6000 (default: every "
                             "run folder here, up to --steps)")
    parser.add_argument("--steps", type=int, default=1_000_000,
                        help="total steps at which each run stops (default: %(default)s)")
    parser.add_argument("--commit-minutes", type=float, default=60.0,
                        help="minutes between commits (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs",
                        help="git-ignored working folder (default: runs/)")
    parser.add_argument("--no-commit", action="store_true",
                        help="copy the state back but do not commit it")
    args = parser.parse_args(argv)

    until = {}
    for item in args.runs or ():
        name, _, steps = item.partition(":")
        until[name] = int(steps) if steps else args.steps
    runs = [p for p in run_folders() if args.runs is None or p.name in until]
    if not runs:
        parser.error("no run folders to continue")
    one_thread = {**os.environ, "REFDEBLUR_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                  "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    targets, children = [], []
    for run in runs:
        config, target = prepare(run, args.work)
        targets.append(target)
        command = resume_command(config, target, until.get(run.name, args.steps))
        log = open(args.work / f"{run.name}.out", "a")
        children.append(subprocess.Popen(command, cwd=ROOT, env=one_thread,
                                         stdout=log, stderr=subprocess.STDOUT))
        print(f"{run.name}: resumed, output in {log.name}", flush=True)

    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.append(True))
    last = time.monotonic()
    while not stopping and any(child.poll() is None for child in children):
        time.sleep(5)
        if time.monotonic() - last >= 60 * args.commit_minutes:
            commit(runs, targets, do_commit=not args.no_commit)
            last = time.monotonic()
    for child in children:              # each run checkpoints when told to stop
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        child.wait()
    commit(runs, targets, do_commit=not args.no_commit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
