"""``refdeblur bench levin``: the Levin et al. (CVPR 2009) blind-deblurring benchmark.

Runs the shipped kernel-estimation networks on the 32 real camera-shake
cases of Levin, Weiss, Durand and Freeman ("Understanding and evaluating
blind deconvolution algorithms", CVPR 2009) and scores them with their
protocol (:mod:`refdeblur.metrics`). Every case is deconvolved three times
with the *same* non-blind deconvolution, once per kernel:

* ``refdeblur``: the kernel estimated by the network;
* ``true_kernel``: the ground-truth kernel (upper bound; error ratio 1);
* ``no_deblurring``: a delta kernel, i.e. the blurry image only denoised
  by the deconvolution's prior (lower bound).

A fourth row, ``blurry_input``, scores the blurry image ``y`` as it is (no
processing at all), the number usually quoted as "no deblurring" in papers.

The data set is not part of the package; the command takes ``--data DIR``
(the folder holding ``index.csv``, ``x/``, ``y/`` and ``kernels/``). The
protocol choices are described in ``derivations/bench_levin.md``.
"""

import csv
import datetime
import io
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__

__all__ = ["BenchError", "add_bench_parser", "main_levin", "run_levin",
           "choose_kernel_size", "summarise", "METHODS", "OUTPUT_FILES"]

#: Rows scored for every case, in table order: key -> description.
METHODS = {
    "refdeblur": "refdeblur",            # the label gets the model name added
    "network_only": "network's kernel, not refined (refine=False)",
    "true_kernel": "true kernel",
    "no_deblurring": "no deblurring (delta kernel)",
    "blurry_input": "blurry input y (unprocessed)",
}

#: The methods whose kernel the network estimates.
ESTIMATES = ("refdeblur", "network_only")

#: Files written into the output folder.
OUTPUT_FILES = ("cases.csv", "summary.md", "summary.json", "error_ratio_cdf.png")

#: Columns of ``cases.csv`` (one row per case and method).
CSV_COLUMNS = ("case", "image", "kernel", "true_kernel_size", "method",
               "model", "model_kernel_size", "kernel_error", "psnr_db",
               "ssim", "ssd", "error_ratio", "seconds", "warnings")

#: The non-blind deconvolution used for every row (refdeblur's default).
DECONVOLUTION = {"method": "hyper_laplacian", "noise_std": None, "clip": True,
                 "dtype": "float64"}

#: Levin et al.'s scoring (crop, shift search), as in :mod:`refdeblur.metrics`.
PROTOCOL = {"crop": 15, "max_shift": 5.0, "step": 0.25, "data_range": 1.0}

KERNEL_SIZE_RULE = (
    "auto: per case, the smallest shipped network whose window is at least "
    "the true kernel size; if none is large enough, the largest shipped one")

#: Published results at error ratio <= 3 (share of the 32 cases) and mean
#: PSNR, as quoted by the issue that asked for this benchmark; they were not
#: measured here.
PUBLISHED = (
    ("Fergus et al. 2006", 0.74, 28.7),
    ("Cho & Lee 2009", 0.75, 29.0),
    ("Levin et al. 2011", 0.91, 29.2),
    ("Sun et al. 2013", 0.97, 30.7),
    ("Pan et al. 2016", 1.00, 31.2),
    ("true kernel", None, 32.2),
    ("no deblurring", 0.00, 23.0),
)

# Error-ratio thresholds reported by Levin et al. (share of cases at or below).
ER_THRESHOLDS = (2.0, 3.0)

# Right end of the cumulative error-ratio plot; the share of cases beyond it
# is what the curves lack at the right edge.
ER_PLOT_MAX = 6.0


class BenchError(ValueError):
    """A problem with the benchmark's input or output folder (one line)."""


# ---------------------------------------------------------------------------
# the data set

def _read_index(data_dir):
    """Cases of ``index.csv`` as dicts, after checking the folder's layout."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BenchError(f"Levin data folder not found: {data_dir}")
    index = data_dir / "index.csv"
    if not index.is_file():
        raise BenchError(f"{data_dir} is not the Levin et al. 2009 data folder "
                         f"(no index.csv)")
    needed = {"file", "image", "kernel", "kernel_size", "x_png", "y_png",
              "kernel_conv_npy"}
    try:
        with open(index, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            missing = needed - set(reader.fieldnames or ())
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BenchError(f"cannot read {index}: {error}") from None
    if missing:
        raise BenchError(f"{index} lacks the column(s) {', '.join(sorted(missing))}")
    if not rows:
        raise BenchError(f"{index} lists no cases")
    return rows


def _select_cases(rows, names):
    """The rows named in ``names`` (all rows for ``None``), in index order
    for ``None`` and in the given order otherwise."""
    if names is None:
        return rows
    by_name = {row["file"]: row for row in rows}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise BenchError(f"unknown case(s) {', '.join(unknown)}; names look "
                         f"like {rows[0]['file']} (see index.csv)")
    return [by_name[name] for name in dict.fromkeys(names)]


def _load_case(data_dir, row):
    """``(y, x, true_kernel)`` of one case, float64, checked."""
    from .image_io import read_image

    data_dir = Path(data_dir)
    paths = {key: data_dir / row[key] for key in ("y_png", "x_png", "kernel_conv_npy")}
    for path in paths.values():
        if not path.is_file():
            raise BenchError(f"case {row['file']}: missing file {path}")
    try:
        blurry = read_image(paths["y_png"])
        sharp = read_image(paths["x_png"])
        kernel = np.load(paths["kernel_conv_npy"], allow_pickle=False)
    except (OSError, ValueError, TypeError) as error:
        raise BenchError(f"case {row['file']}: cannot read its files ({error})") from None
    if blurry.ndim != 2 or blurry.shape != sharp.shape:
        raise BenchError(f"case {row['file']}: y {blurry.shape} and x "
                         f"{sharp.shape} must be grey images of one size")
    kernel = np.asarray(kernel, dtype=np.float64)
    if (kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]
            or kernel.shape[0] % 2 == 0 or not kernel.sum() > 0):
        raise BenchError(f"case {row['file']}: the true kernel must be square "
                         f"with an odd side and a positive sum, got shape "
                         f"{kernel.shape}")
    return blurry, sharp, kernel / kernel.sum()


# ---------------------------------------------------------------------------
# models

def _available_shipped_sizes():
    from .models import SHIPPED_KERNEL_SIZES, shipped_model_path

    available = []
    for size in SHIPPED_KERNEL_SIZES:
        try:
            shipped_model_path(size)
        except ValueError:
            continue
        available.append(size)
    return available


def choose_kernel_size(true_size, available):
    """Kernel window for a case under the ``auto`` rule.

    Parameters
    ----------
    true_size : int
        Side of the case's true kernel.
    available : sequence of int
        Kernel sizes with a network at hand.

    Returns
    -------
    int
        The smallest available size ``>= true_size``; if there is none, the
        largest available size (the blur then overflows the window).

    Examples
    --------
    >>> choose_kernel_size(19, [17, 25, 33]), choose_kernel_size(27, [17])
    (25, 17)
    """
    if not available:
        raise BenchError("no shipped model is installed; pass --model FILE")
    large_enough = [size for size in sorted(available) if size >= true_size]
    return large_enough[0] if large_enough else max(available)


class _Models:
    """The networks of one run: a fixed model file, a fixed shipped size, or
    the ``auto`` choice per case; loads each at most once."""

    def __init__(self, kernel_size="auto", model_path=None):
        from .model_io import load_model
        from .models import model_sha256

        self._networks = {}
        self._files = {}
        if model_path is not None:
            model_path = Path(model_path)
            try:
                network = load_model(model_path).astype(np.float32)
            except (OSError, ValueError, KeyError) as error:
                raise BenchError(f"cannot use model {model_path}: {error}") from None
            if kernel_size != "auto" and int(kernel_size) != network.kernel_size:
                raise BenchError(f"model {model_path} estimates "
                                 f"{network.kernel_size} px kernels, but "
                                 f"--kernel-size {kernel_size} was given")
            self._networks[network.kernel_size] = network
            self._files[network.kernel_size] = (model_path, model_sha256(model_path))
            self.rule = f"fixed: the model file {model_path.name} for every case"
            self._fixed = network.kernel_size
            return
        self.available = _available_shipped_sizes()
        if kernel_size == "auto":
            if not self.available:
                raise BenchError("no shipped model is installed; pass --model FILE")
            self.rule = KERNEL_SIZE_RULE
            self._fixed = None
        else:
            size = int(kernel_size)
            if size not in self.available:
                raise BenchError(f"no shipped model for --kernel-size {size} in "
                                 f"this installation (available: "
                                 f"{', '.join(map(str, self.available)) or 'none'})")
            self.rule = f"fixed: the shipped {size} px network for every case"
            self._fixed = size

    def size_for(self, true_size):
        """Kernel window used for a case whose true kernel has ``true_size``."""
        if self._fixed is not None:
            return self._fixed
        return choose_kernel_size(true_size, self.available)

    def network(self, size):
        """The network of ``size`` (shipped ones loaded on first use)."""
        from .models import load_shipped_model, model_sha256, shipped_model_path

        if size not in self._networks:
            path = shipped_model_path(size)
            self._networks[size] = load_shipped_model(size)
            self._files[size] = (path, model_sha256(path))
        return self._networks[size]

    def file_name(self, size):
        return self._files[size][0].name

    def used(self):
        """``[{file, path, kernel_size, sha256}]`` of every network used."""
        return [{"file": path.name, "path": str(path), "kernel_size": size,
                 "sha256": digest}
                for size, (path, digest) in sorted(self._files.items())]


# ---------------------------------------------------------------------------
# scoring one case

def _deconvolve(blurry, kernel):
    """The one non-blind deconvolution of every row (see DECONVOLUTION)."""
    from .deconvolution import deconvolve

    return deconvolve(blurry, kernel, method=DECONVOLUTION["method"],
                      noise_std=DECONVOLUTION["noise_std"],
                      clip=DECONVOLUTION["clip"])


def _image_scores(image, sharp):
    """PSNR, SSIM and SSD of ``image`` against the truth, each up to shift."""
    from .metrics import psnr_up_to_shift, ssd_up_to_shift, ssim_up_to_shift

    shift_options = {key: PROTOCOL[key] for key in ("crop", "max_shift", "step")}
    return {
        "psnr_db": psnr_up_to_shift(image, sharp, data_range=PROTOCOL["data_range"],
                                    **shift_options),
        "ssim": ssim_up_to_shift(image, sharp, data_range=PROTOCOL["data_range"],
                                 **shift_options),
        "ssd": ssd_up_to_shift(image, sharp, **shift_options),
    }


def _ratio(ssd, ssd_true_kernel):
    # Levin's error ratio (derivations/metrics.md, M6), from SSDs computed
    # once per row rather than re-aligning the true-kernel result every time
    # as metrics.error_ratio would; the zero cases follow error_ratio.
    if ssd_true_kernel == 0.0:
        return 1.0 if ssd == 0.0 else math.inf
    return ssd / ssd_true_kernel


def _score_case(row, blurry, sharp, true_kernel, models):
    """The four rows (dicts with CSV_COLUMNS) of one case."""
    from .inference import DeblurWarning, delta_kernel, estimate_kernel
    from .metrics import kernel_error_up_to_shift

    true_size = true_kernel.shape[0]
    size = models.size_for(true_size)
    network = models.network(size)
    common = {"case": row["file"], "image": int(row["image"]),
              "kernel": int(row["kernel"]), "true_kernel_size": true_size}

    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        # Only refdeblur's own warnings (e.g. a blur wider than the window)
        # are expected; they are recorded in the row. Anything else is left
        # to the caller's filters.
        warnings.simplefilter("always", DeblurWarning)
        estimated_kernel = estimate_kernel(blurry, size, model=network)
    estimate_image = _deconvolve(blurry, estimated_kernel)
    estimate_seconds = time.perf_counter() - started
    # The same network without the refinement of step 6b (not in the
    # paper), so that the summary shows what each part contributes.
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        network_kernel = estimate_kernel(blurry, size, model=network, refine=False)
    network_image = _deconvolve(blurry, network_kernel)
    network_seconds = time.perf_counter() - started
    messages = []
    for warning in caught:
        if issubclass(warning.category, DeblurWarning):
            messages.append(str(warning.message))
        else:
            warnings.warn_explicit(warning.message, warning.category,
                                   warning.filename, warning.lineno)

    # The delta kernel has the true kernel's size so that this bound does
    # not depend on the model (the size only sets the padding).
    delta = delta_kernel(true_size)
    images = {"refdeblur": estimate_image, "network_only": network_image}
    seconds = {"refdeblur": estimate_seconds, "network_only": network_seconds}
    for method, kernel in (("true_kernel", true_kernel), ("no_deblurring", delta)):
        started = time.perf_counter()
        images[method] = _deconvolve(blurry, kernel)
        seconds[method] = time.perf_counter() - started
    images["blurry_input"] = blurry
    seconds["blurry_input"] = 0.0

    delta_error = kernel_error_up_to_shift(delta, true_kernel)
    kernel_errors = {
        "refdeblur": kernel_error_up_to_shift(estimated_kernel, true_kernel),
        "network_only": kernel_error_up_to_shift(network_kernel, true_kernel),
        "true_kernel": 0.0,
        "no_deblurring": delta_error,
        "blurry_input": delta_error,    # y as it is: the identity blur
    }
    scores = {method: _image_scores(images[method], sharp) for method in METHODS}
    ssd_true_kernel = scores["true_kernel"]["ssd"]
    rows = []
    for method in METHODS:
        rows.append({
            **common, "method": method,
            "model": models.file_name(size) if method in ESTIMATES else "",
            "model_kernel_size": size if method in ESTIMATES else "",
            "kernel_error": kernel_errors[method],
            **scores[method],
            "error_ratio": _ratio(scores[method]["ssd"], ssd_true_kernel),
            "seconds": seconds[method],
            "warnings": "; ".join(messages) if method == "refdeblur" else "",
        })
    return rows, estimated_kernel


def _warm_up(blurry, true_kernel, models):
    """Compile Numba code and load the first network outside the timings."""
    from .inference import DeblurWarning, estimate_kernel

    size = models.size_for(true_kernel.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        estimate_kernel(blurry, size, model=models.network(size))
    _deconvolve(blurry, true_kernel)


# ---------------------------------------------------------------------------
# summaries

def _method_summary(rows):
    """Means and error-ratio shares of one method's rows."""
    ratios = np.array([row["error_ratio"] for row in rows], dtype=np.float64)
    summary = {
        "n_cases": len(rows),
        "mean_psnr_db": float(np.mean([row["psnr_db"] for row in rows])),
        "mean_ssim": float(np.mean([row["ssim"] for row in rows])),
        "mean_error_ratio": float(np.mean(ratios)),
        "median_error_ratio": float(np.median(ratios)),
        "mean_kernel_error": float(np.mean([row["kernel_error"] for row in rows])),
        "mean_seconds": float(np.mean([row["seconds"] for row in rows])),
        "n_warnings": sum(1 for row in rows if row["warnings"]),
    }
    for threshold in ER_THRESHOLDS:
        summary[f"share_er_le_{threshold:g}"] = float(np.mean(ratios <= threshold))
    return summary


def summarise(rows):
    """Per-method summary and breakdown by true kernel size.

    Parameters
    ----------
    rows : list of dict
        Per-case rows with the columns of :data:`CSV_COLUMNS`.

    Returns
    -------
    methods : dict
        ``{method: summary}`` with ``n_cases``, ``mean_psnr_db``,
        ``mean_ssim``, ``share_er_le_2``, ``share_er_le_3``,
        ``mean_error_ratio``, ``median_error_ratio``, ``mean_kernel_error``,
        ``mean_seconds`` and ``n_warnings`` (cases with a warning).
    by_kernel_size : dict
        ``{true kernel size: {method: summary}}``, sizes ascending.
    """
    methods = {method: _method_summary([r for r in rows if r["method"] == method])
               for method in METHODS if any(r["method"] == method for r in rows)}
    sizes = sorted({row["true_kernel_size"] for row in rows})
    by_size = {}
    for size in sizes:
        of_size = [row for row in rows if row["true_kernel_size"] == size]
        by_size[size] = {method: _method_summary([r for r in of_size
                                                  if r["method"] == method])
                         for method in methods}
    return methods, by_size


def _refdeblur_label(rows):
    models = sorted({row["model"] for row in rows if row["method"] == "refdeblur"})
    return f"refdeblur ({', '.join(Path(m).stem for m in models)})"


def _labels(rows):
    labels = dict(METHODS)
    labels["refdeblur"] = _refdeblur_label(rows)
    labels["network_only"] = (_refdeblur_label(rows).replace("refdeblur", "network only", 1)
                              + ", kernel not refined")
    return labels


def _percent(share):
    return f"{100 * share:.0f}%"


def _markdown_table(header, body):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines)


def _summary_table(methods, labels):
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


def _summary_markdown(info, methods, by_size, rows):
    labels = _labels(rows)
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
- scoring: crop {PROTOCOL['crop']} px, sub-pixel shifts in ±{PROTOCOL['max_shift']:g} px (step {PROTOCOL['step']}), bilinear; error ratio ER = SSD(result) / SSD(true-kernel result), each SSD at its best shift
- bounds: "true kernel" (ER = 1 by definition) and "no deblurring" (the same deconvolution with a delta kernel, i.e. y denoised); "blurry input y" scores y itself
- wall time: {info['wall_seconds']:.1f} s (per-case times exclude one warm-up of the JIT-compiled code)

## Summary

{_summary_table(methods, labels)}

## By true kernel size ({labels['refdeblur']})

{_size_table(by_size, rows)}

## Published results for reference

Published, not measured here (numbers as quoted by the issue; each method's
own pipeline, scored with Levin et al.'s protocol).

{_published_table()}

## Per case

{_case_table(rows, labels)}

![cumulative error ratio](error_ratio_cdf.png)
"""


def _cdf_figure(rows, title):
    """Levin et al.'s cumulative histogram: share of cases with ER <= x."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = _labels(rows)
    styles = {"refdeblur": dict(color="C0", lw=2.2),
              "network_only": dict(color="C1", lw=1.6),
              "true_kernel": dict(color="black", ls="--", lw=1.4),
              "no_deblurring": dict(color="C3", ls=":", lw=1.6),
              "blurry_input": dict(color="0.6", ls="-.", lw=1.2)}
    figure = Figure(figsize=(6.4, 4.4), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    grid = np.linspace(1.0, ER_PLOT_MAX, 1001)
    for method in METHODS:
        ratios = np.array([r["error_ratio"] for r in rows if r["method"] == method])
        if ratios.size == 0:
            continue
        share = (ratios[None, :] <= grid[:, None]).mean(axis=1) * 100
        le2, le3 = (np.mean(ratios <= t) * 100 for t in ER_THRESHOLDS)
        axes.step(grid, share, where="post",
                  label=f"{labels[method]}: ≤2 {le2:.0f}%, ≤3 {le3:.0f}%",
                  **styles[method])
    for threshold in ER_THRESHOLDS:
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
# provenance and output

def _git(*args):
    """Output of a git command run in the package's folder, or None."""
    try:
        done = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _provenance():
    """Commit (or "unknown"), dirtiness of the package source, checkout root."""
    commit = _git("rev-parse", "HEAD") or "unknown"
    # Only the package's own files count: results written into benchmarks/
    # must not make the next run look like it ran on changed code.
    dirty = bool(_git("status", "--porcelain", "--", ".")) if commit != "unknown" else False
    root = _git("rev-parse", "--show-toplevel") if commit != "unknown" else None
    return commit, dirty, Path(root) if root else None


def _default_out_dir(commit, dirty, root):
    """``benchmarks/results/levin-<commit>`` of the checkout when run inside
    it, else ``./levin-results``."""
    cwd = Path.cwd().resolve()
    if root is not None and (cwd == root.resolve() or root.resolve() in cwd.parents):
        name = f"levin-{commit[:7]}" + ("-dirty" if dirty else "")
        return root / "benchmarks" / "results" / name
    return Path("levin-results")


def _check_out_dir(out_dir, overwrite):
    if out_dir.exists() and not out_dir.is_dir():
        raise BenchError(f"output path {out_dir} is not a folder")
    existing = [name for name in OUTPUT_FILES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise BenchError(f"{out_dir} already holds {', '.join(existing)}; pass "
                         f"--overwrite to replace them or choose another --out")


def _write_atomically(path, data):
    """Write bytes to ``path`` through a temporary file and a rename, so a
    reader never sees a partial file."""
    from .image_io import _give_default_permissions

    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        _give_default_permissions(temporary)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _csv_bytes(rows):
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, lineterminator="\n")
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


# ---------------------------------------------------------------------------
# the run

def run_levin(data_dir, out_dir=None, *, kernel_size="auto", model_path=None,
              cases=None, overwrite=False, command_line=None, progress=True):
    """Run and score the Levin et al. 2009 benchmark; write the results.

    Parameters
    ----------
    data_dir : path-like
        Folder of the data set (``index.csv``, ``x/``, ``y/``, ``kernels/``).
    out_dir : path-like, optional
        Output folder (created if missing). Default:
        ``benchmarks/results/levin-<short commit>[-dirty]`` of the git
        checkout when the current folder is inside it, else
        ``./levin-results``.
    kernel_size : {'auto', 17, 25, 33}, optional
        ``'auto'``: per case the smallest shipped network at least as large
        as the true kernel, else the largest one (see
        :func:`choose_kernel_size`); a number: that shipped network for all.
    model_path : path-like, optional
        A model file to use for every case instead of the shipped networks.
    cases : sequence of str, optional
        Case names such as ``'im01_ker01'``; default all 32.
    overwrite : bool, optional
        Replace result files already in ``out_dir``.
    command_line : str, optional
        Recorded in the summary (default: ``sys.argv``).
    progress : bool, optional
        Show a progress bar on stderr.

    Returns
    -------
    result : dict
        ``out_dir`` (Path), ``rows`` (per-case rows, the content of
        ``cases.csv``), ``methods`` and ``by_kernel_size`` (see
        :func:`summarise`), ``info`` (provenance), ``summary_table``
        (Markdown) and ``kernels`` (``{case: estimated kernel}``).

    Raises
    ------
    BenchError
        Missing or malformed data folder, unknown case, unusable model or
        kernel size, or result files in ``out_dir`` without ``overwrite``.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    index_rows = _select_cases(_read_index(data_dir), cases)
    models = _Models(kernel_size, model_path)
    commit, dirty, root = _provenance()
    out_dir = Path(out_dir) if out_dir is not None else _default_out_dir(commit, dirty, root)
    _check_out_dir(out_dir, overwrite)

    # Read every case first, so a broken data folder fails before the work.
    loaded = [(row, *_load_case(data_dir, row)) for row in index_rows]
    _warm_up(loaded[0][1], loaded[0][3], models)

    rows, kernels = [], {}
    bar = tqdm(loaded, unit="case", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    for row, blurry, sharp, true_kernel in bar:
        bar.set_postfix_str(row["file"])
        case_rows, kernels[row["file"]] = _score_case(row, blurry, sharp,
                                                      true_kernel, models)
        rows.extend(case_rows)
    bar.close()
    methods, by_size = summarise(rows)

    info = {
        "benchmark": "Levin et al. 2009 (32 cases: 4 images x 8 kernels)",
        "commit": commit, "git_dirty": dirty,
        "refdeblur_version": __version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__},
        "command_line": command_line if command_line is not None else shlex.join(sys.argv),
        "data_dir": str(Path(data_dir).resolve()),
        "models": models.used(),
        "kernel_size_rule": models.rule,
        "deconvolution": DECONVOLUTION,
        "protocol": PROTOCOL,
        "wall_seconds": time.perf_counter() - started,
    }
    table = _summary_table(methods, _labels(rows))
    summary_json = {
        **info,
        "labels": _labels(rows),
        "methods": methods,
        "by_kernel_size": {str(size): value for size, value in by_size.items()},
        "published_not_measured_here": [
            {"method": name, "share_er_le_3": share, "mean_psnr_db": psnr}
            for name, share, psnr in PUBLISHED],
        "estimated_kernels": {name: np.round(kernel, 8).tolist()
                              for name, kernel in kernels.items()},
    }
    title = (f"Levin et al. 2009, {len(loaded)} cases; refdeblur "
             f"{__version__} @ {commit[:10]}{'+dirty' if dirty else ''}")
    outputs = {
        "cases.csv": _csv_bytes(rows),
        "summary.md": _summary_markdown(info, methods, by_size, rows).encode("utf-8"),
        "summary.json": json.dumps(_json_safe(summary_json), indent=1,
                                   allow_nan=False).encode("utf-8"),
        "error_ratio_cdf.png": _cdf_figure(rows, title),
    }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in outputs.items():
            _write_atomically(out_dir / name, data)
    except OSError as error:
        raise BenchError(f"cannot write the results to {out_dir}: "
                         f"{error.strerror or error}") from None
    return {"out_dir": out_dir, "rows": rows, "methods": methods,
            "by_kernel_size": by_size, "info": info, "summary_table": table,
            "kernels": kernels}


# ---------------------------------------------------------------------------
# command line

BENCH_EXAMPLES = """\
examples:
  refdeblur bench levin --data ~/data/levin2009
  refdeblur bench levin --data ~/data/levin2009 --kernel-size 25 --out results/
  refdeblur bench levin --data ~/data/levin2009 --cases im01_ker01,im02_ker05
"""


def _kernel_size_argument(text):
    if text == "auto":
        return text
    if text in ("17", "25", "33"):
        return int(text)
    import argparse
    raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose auto, 17, 25 or 33)")


def _add_levin_arguments(parser):
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="the Levin et al. 2009 data folder (with index.csv, "
                             "x/, y/, kernels/)")
    parser.add_argument("--out", type=Path, metavar="OUT_DIR",
                        help="output folder (default benchmarks/results/"
                             "levin-<commit> inside the git checkout, else "
                             "./levin-results)")
    parser.add_argument("--kernel-size", type=_kernel_size_argument, default="auto",
                        metavar="{auto,17,25,33}",
                        help="network window: auto (default) = per case the "
                             "smallest shipped size >= the true kernel size, "
                             "else the largest shipped; or one size for all")
    parser.add_argument("--model", type=Path, metavar="FILE",
                        help="model file to use for every case instead of the "
                             "shipped networks")
    parser.add_argument("--cases", metavar="NAMES",
                        help="comma-separated case names (e.g. "
                             "im01_ker01,im02_ker05); default all 32")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace result files already in the output folder")


def _run_from_args(args, command_line):
    cases = None
    if args.cases is not None:
        cases = [name.strip() for name in args.cases.split(",") if name.strip()]
        if not cases:
            raise BenchError("--cases is empty")
    result = run_levin(args.data, args.out, kernel_size=args.kernel_size,
                       model_path=args.model, cases=cases, overwrite=args.overwrite,
                       command_line=command_line, progress=True)
    print(result["summary_table"])
    print(f"\nresults in {result['out_dir']} "
          f"({result['info']['wall_seconds']:.1f} s)")
    return 0


def add_bench_parser(subparsers, user_error):
    """Register ``refdeblur bench levin``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``refdeblur`` command's subparsers.
    user_error : type
        The CLI's one-line error type; :class:`BenchError` is re-raised as it.
    """
    import argparse

    bench = subparsers.add_parser(
        "bench", help="run a benchmark",
        description="Benchmarks of the shipped networks on public data sets.")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
    levin = benchmarks.add_parser(
        "levin", help="Levin et al. 2009: 32 real camera-shake cases",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=BENCH_EXAMPLES,
        description="Estimate the kernel of the 32 cases of Levin et al. "
                    "(CVPR 2009), deconvolve with it, with the true kernel and "
                    "with a delta kernel, and score with Levin's protocol "
                    "(PSNR, SSIM, error ratio up to shift). Writes cases.csv, "
                    "summary.md, summary.json and error_ratio_cdf.png.")
    _add_levin_arguments(levin)

    def handler(args):
        try:
            return _run_from_args(args, shlex.join(["refdeblur", *sys.argv[1:]]))
        except BenchError as error:
            raise user_error(str(error)) from None

    levin.set_defaults(handler=handler)


def main_levin(argv=None):
    """``refdeblur bench levin`` as a function; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``bench levin`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 after a one-line error on stderr.
    """
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="refdeblur bench levin",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=BENCH_EXAMPLES)
    _add_levin_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _run_from_args(args, shlex.join(["refdeblur", "bench", "levin", *argv]))
    except BenchError as error:
        print(f"refdeblur: error: {error}", file=sys.stderr)
        return 2
