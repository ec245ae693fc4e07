"""Reports of the Levin et al. 2009 benchmark: tables, plot, provenance, files.

:func:`refdeblur.evaluation.levin.run_levin` scores the cases; this module
turns its result into the files of the output folder (:data:`OUTPUT_FILES`),
records where the run came from (git commit, machine) and writes the files
so that a reader never sees a partial one.
"""

import csv
import io
import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .. import __version__
from ..image_io import give_default_permissions

__all__ = ["OUTPUT_FILES", "PUBLISHED", "report_files", "summary_table",
           "summary_markdown", "cdf_figure", "csv_bytes", "provenance",
           "machine_info", "write_files"]

#: Files written into the output folder.
OUTPUT_FILES = ("cases.csv", "summary.md", "summary.json", "error_ratio_cdf.png")

#: Published results on this data set, not measured here: method, share of
#: the 32 cases at error ratio <= 3 (None where not applicable), mean PSNR in
#: dB. Each comes from its authors' own pipeline (derivations/bench_levin.md,
#: Published numbers).
PUBLISHED = (
    ("Fergus et al. 2006", 0.74, 28.7),
    ("Cho & Lee 2009", 0.75, 29.0),
    ("Levin et al. 2011", 0.91, 29.2),
    ("Sun et al. 2013", 0.97, 30.7),
    ("Pan et al. 2016", 1.00, 31.2),
    ("true kernel", None, 32.2),
    ("no deblurring", 0.00, 23.0),
)

# Right end of the cumulative error-ratio plot; the share of cases beyond it
# is what the curves lack at the right edge.
ER_PLOT_MAX = 6.0

# Line style of each method in the cumulative error-ratio plot.
CDF_STYLES = {"refdeblur": dict(color="C0", lw=2.2),
              "network_only": dict(color="C1", lw=1.6),
              "true_kernel": dict(color="black", ls="--", lw=1.4),
              "no_deblurring": dict(color="C3", ls=":", lw=1.6),
              "blurry_input": dict(color="0.6", ls="-.", lw=1.2)}


# ---------------------------------------------------------------------------
# Markdown tables

def _percent(share):
    return f"{100 * share:.0f}%"


def _markdown_table(header, body):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines)


def summary_table(methods, labels):
    """The Markdown table of the per-method summary.

    Parameters
    ----------
    methods : dict
        ``{method: summary}`` as :func:`refdeblur.evaluation.levin.summarise`
        returns it.
    labels : dict
        ``{method: display label}``.

    Returns
    -------
    str
        One line per method: cases, mean PSNR and SSIM, shares of error
        ratio <= 2 and <= 3, mean error ratio, mean kernel error, seconds per
        case and the number of cases with a warning.
    """
    body = []
    for method, s in methods.items():
        body.append([labels[method], s["n_cases"], f"{s['mean_psnr_db']:.2f}",
                     f"{s['mean_ssim']:.3f}", _percent(s["share_er_le_2"]),
                     _percent(s["share_er_le_3"]), f"{s['mean_error_ratio']:.2f}",
                     f"{s['mean_kernel_error']:.4f}", f"{s['mean_seconds']:.2f}",
                     s["n_warnings"]])
    return _markdown_table(
        ["method", "cases", "mean PSNR (dB)", "mean SSIM", "ER ≤ 2", "ER ≤ 3",
         "mean ER", "mean kernel error", "s / case", "warnings"], body)


def _size_table(by_size, rows):
    body = []
    for size, per_method in by_size.items():
        estimate = per_method["refdeblur"]
        windows = sorted({row["model_kernel_size"] for row in rows
                          if row["true_kernel_size"] == size
                          and row["method"] == "refdeblur"})
        body.append([size, estimate["n_cases"], ", ".join(map(str, windows)),
                     f"{estimate['mean_psnr_db']:.2f}",
                     f"{per_method['true_kernel']['mean_psnr_db']:.2f}",
                     f"{per_method['no_deblurring']['mean_psnr_db']:.2f}",
                     _percent(estimate["share_er_le_2"]),
                     _percent(estimate["share_er_le_3"]),
                     f"{estimate['mean_error_ratio']:.2f}",
                     f"{estimate['mean_kernel_error']:.4f}"])
    return _markdown_table(
        ["true kernel size", "cases", "network window", "PSNR refdeblur",
         "PSNR true kernel", "PSNR no deblurring", "ER ≤ 2", "ER ≤ 3", "mean ER",
         "mean kernel error"], body)


def _published_table():
    body = [[name, "—" if share is None else _percent(share), f"{psnr:.1f}"]
            for name, share, psnr in PUBLISHED]
    return _markdown_table(["method (published, not measured here)", "ER ≤ 3",
                            "mean PSNR (dB)"], body)


def _case_table(rows, labels):
    body = []
    for row in rows:
        if row["method"] != "refdeblur":
            continue
        others = {r["method"]: r for r in rows if r["case"] == row["case"]}
        body.append([row["case"], row["true_kernel_size"], row["model_kernel_size"],
                     f"{row['psnr_db']:.2f}", f"{others['true_kernel']['psnr_db']:.2f}",
                     f"{others['no_deblurring']['psnr_db']:.2f}",
                     f"{row['ssim']:.3f}", f"{row['error_ratio']:.2f}",
                     (f"{others['network_only']['error_ratio']:.2f}"
                      if "network_only" in others else "—"),
                     f"{row['kernel_error']:.4f}", f"{row['seconds']:.2f}",
                     "yes" if row["warnings"] else ""])
    return _markdown_table(
        ["case", "true size", "window", f"PSNR {labels['refdeblur']}",
         "PSNR true kernel", "PSNR no deblurring", "SSIM", "ER", "ER network only",
         "kernel error", "s", "warning"], body)


def summary_markdown(result):
    """The text of ``summary.md``.

    Parameters
    ----------
    result : dict
        The result of :func:`refdeblur.evaluation.levin.run_levin` (``info``,
        ``methods``, ``by_kernel_size``, ``rows``, ``labels``).

    Returns
    -------
    str
        Provenance and settings, the summary, the breakdown by true kernel
        size, the published results, the per-case table and a link to the
        plot.
    """
    info, methods, rows, labels = (result["info"], result["methods"],
                                   result["rows"], result["labels"])
    protocol = info["protocol"]
    models = "\n".join(f"  - `{m['file']}` ({m['kernel_size']} px), sha256 "
                       f"`{m['sha256']}`" for m in info["models"])
    machine = info["machine"]
    commit = info["commit"] + (" (with uncommitted changes to refdeblur/)"
                               if info["git_dirty"] else "")
    return f"""# Levin et al. 2009 benchmark

- commit: `{commit}`
- refdeblur version: {info['refdeblur_version']}
- date: {info['date']}
- machine: {machine['platform']}, {machine['cpu_count']} CPUs, Python {machine['python']}, NumPy {machine['numpy']}
- command: `{info['command_line']}`
- data: {info['data_dir']} ({methods['refdeblur']['n_cases']} cases)
- models:
{models}
- kernel size: {info['kernel_size_rule']}
- non-blind deconvolution (every row): `deconvolve(y, k, method="hyper_laplacian", noise_std=None, clip=True)` in float64, noise estimated from y (identical for all rows of a case)
- scoring: crop {protocol['crop']} px, sub-pixel shifts in ±{protocol['max_shift']:g} px (step {protocol['step']}), bilinear; error ratio ER = SSD(result) / SSD(true-kernel result), each SSD at its best shift
- bounds: "true kernel" (ER = 1 by definition) and "no deblurring" (the same deconvolution with a delta kernel, i.e. y denoised); "blurry input y" scores y itself
- wall time: {info['wall_seconds']:.1f} s (per-case times exclude one warm-up of the JIT-compiled code)

## Summary

{summary_table(methods, labels)}

## By true kernel size ({labels['refdeblur']})

{_size_table(result['by_kernel_size'], rows)}

## Published results for reference

Published, not measured here (each method's own pipeline, scored with
Levin et al.'s protocol).

{_published_table()}

## Per case

{_case_table(rows, labels)}

![cumulative error ratio](error_ratio_cdf.png)
"""


# ---------------------------------------------------------------------------
# the plot

def cdf_figure(rows, labels, title, thresholds):
    """Levin et al.'s cumulative histogram: share of cases with ER <= x.

    Parameters
    ----------
    rows : list of dict
        Per-case rows (``method`` and ``error_ratio`` are read).
    labels : dict
        ``{method: display label}``, in plotting order.
    title : str
        Title of the plot.
    thresholds : sequence of float
        Error ratios marked by vertical lines, with each curve's share at
        or below them in its legend.

    Returns
    -------
    bytes
        The plot as a PNG file.
    """
    # matplotlib is imported here, where the plot is drawn, so that importing
    # the benchmark does not load it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    grid = np.linspace(1.0, ER_PLOT_MAX, 1001)
    for method, label in labels.items():
        ratios = np.array([r["error_ratio"] for r in rows if r["method"] == method])
        if ratios.size == 0:
            continue
        share = (ratios[None, :] <= grid[:, None]).mean(axis=1) * 100
        shares = ", ".join(f"≤{threshold:g} {np.mean(ratios <= threshold) * 100:.0f}%"
                           for threshold in thresholds)
        axes.step(grid, share, where="post", label=f"{label}: {shares}",
                  **CDF_STYLES[method])
    for threshold in thresholds:
        axes.axvline(threshold, color="0.5", lw=0.8, ls=(0, (4, 3)))
    axes.set_xlim(1.0, ER_PLOT_MAX)
    axes.set_ylim(-2, 102)
    axes.set_xlabel("error ratio (SSD / SSD with the true kernel)")
    axes.set_ylabel("cases with error ratio ≤ x (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# CSV and JSON

def csv_bytes(rows, columns):
    """The rows as UTF-8 CSV, floats written with every digit.

    Parameters
    ----------
    rows : list of dict
        The rows, with the keys ``columns``.
    columns : sequence of str
        Column order of the header.

    Returns
    -------
    bytes
    """
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # repr keeps every digit, so the CSV reproduces the summary exactly
        writer.writerow({key: repr(value) if isinstance(value, float) else value
                         for key, value in row.items()})
    return stream.getvalue().encode("utf-8")


def _json_safe(value):
    """Non-finite floats become None (JSON has no inf/NaN)."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _summary_json(result):
    summary = {
        **result["info"],
        "labels": result["labels"],
        "methods": result["methods"],
        "by_kernel_size": {str(size): value
                           for size, value in result["by_kernel_size"].items()},
        "published_not_measured_here": [
            {"method": name, "share_er_le_3": share, "mean_psnr_db": psnr}
            for name, share, psnr in PUBLISHED],
        "estimated_kernels": {name: np.round(kernel, 8).tolist()
                              for name, kernel in result["kernels"].items()},
    }
    return json.dumps(_json_safe(summary), indent=1, allow_nan=False)


def report_files(result, *, columns, thresholds):
    """Contents of every file of :data:`OUTPUT_FILES`.

    Parameters
    ----------
    result : dict
        The result of :func:`refdeblur.evaluation.levin.run_levin`.
    columns : sequence of str
        Columns of ``cases.csv``.
    thresholds : sequence of float
        Error-ratio thresholds marked in the plot.

    Returns
    -------
    dict
        ``{file name: bytes}`` in the order of :data:`OUTPUT_FILES`.
    """
    info, rows = result["info"], result["rows"]
    n_cases = len({row["case"] for row in rows})
    title = (f"Levin et al. 2009, {n_cases} cases; refdeblur "
             f"{__version__} @ {info['commit'][:10]}"
             f"{'+dirty' if info['git_dirty'] else ''}")
    return {
        "cases.csv": csv_bytes(rows, columns),
        "summary.md": summary_markdown(result).encode("utf-8"),
        "summary.json": _summary_json(result).encode("utf-8"),
        "error_ratio_cdf.png": cdf_figure(rows, result["labels"], title, thresholds),
    }


# ---------------------------------------------------------------------------
# provenance

# The package's root folder: its git status decides whether a run is "dirty".
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _git(*args):
    """Output of a git command run in the package's folder, or None."""
    try:
        done = subprocess.run(["git", *args], cwd=PACKAGE_ROOT,
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance():
    """The git state of the package's source.

    Returns
    -------
    commit : str
        The checked-out commit, or ``'unknown'`` outside a git checkout.
    dirty : bool
        Whether files under ``refdeblur/`` differ from the commit.
    """
    commit = _git("rev-parse", "HEAD") or "unknown"
    # Only the package's own files count: results written into benchmarks/
    # must not make the next run look like it ran on changed code.
    dirty = bool(_git("status", "--porcelain", "--", ".")) if commit != "unknown" else False
    return commit, dirty


def machine_info():
    """Platform, processor, CPU count and Python and NumPy versions."""
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__}


# ---------------------------------------------------------------------------
# output files

def _write_atomically(path, data):
    """Write bytes to ``path`` through a temporary file and a rename, so a
    reader never sees a partial file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        give_default_permissions(temporary)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_files(out_dir, files):
    """Write ``{name: bytes}`` into ``out_dir`` (created if missing).

    Each file is written through a temporary file and a rename, so a reader
    never sees a partial file.

    Raises
    ------
    OSError
        The folder or a file cannot be written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        _write_atomically(out_dir / name, data)
