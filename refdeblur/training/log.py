"""A run's ``log.jsonl``: reading it and drawing its loss curves.

Every line is one JSON object: ``step``, ``loss`` (mean over the batch),
``skipped`` (outliers), ``n_stages``, ``elapsed`` (seconds of training) and,
at validation steps, ``validation`` (mean squared kernel error of the
validation set).
"""

import json

import numpy as np

__all__ = ["read_log", "validation_curve", "plot_training"]


def read_log(path):
    """Records of a JSON-lines training log, skipping a torn last line.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    list of dict
    """
    records = []
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # the process was killed while writing this line
    return records


def validation_curve(records):
    """``[[step, validation error], ...]`` of the records that hold one."""
    return [[r["step"], r["validation"]] for r in records if "validation" in r]


def plot_training(log_path, out_path):
    """Draw training loss (smoothed) and validation error against the step.

    Parameters
    ----------
    log_path : path-like
        ``log.jsonl`` of a run.
    out_path : path-like
        PNG to write.
    """
    # imported here: matplotlib is heavy and only this function draws
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    steps = np.array([r["step"] for r in records if "loss" in r])
    losses = np.array([r["loss"] for r in records if "loss" in r])
    curve = validation_curve(records)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    if len(losses):
        ax.plot(steps, losses, color="0.75", lw=0.6, label="training loss (batch)")
        window = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color="C0", label=f"training loss ({window}-point mean)")
    if curve:
        val_steps, val = zip(*curve)
        ax.plot(val_steps, val, "o-", color="C3", ms=3, label="validation kernel error")
    stage_changes = [(r["step"], r["n_stages"]) for a, r in zip(records, records[1:])
                     if a.get("n_stages") != r.get("n_stages")]
    for step, n in stage_changes:
        ax.axvline(step, color="0.5", ls=":", lw=0.8)
        ax.text(step, ax.get_ylim()[1], f" {n} stages", va="top", fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("squared kernel error ‖k − k_true‖²")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)
