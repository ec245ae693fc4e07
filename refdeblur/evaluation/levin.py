"""The Levin et al. (CVPR 2009) blind-deblurring benchmark: data, protocol, scores.

Runs the shipped kernel-estimation networks on the 32 real camera-shake
cases of Levin, Weiss, Durand and Freeman ("Understanding and evaluating
blind deconvolution algorithms", CVPR 2009) and scores them with their
protocol (:mod:`refdeblur.metrics`). Every case is deconvolved with the
*same* non-blind deconvolution, once per kernel:

* ``refdeblur``: the kernel estimated by the network;
* ``network_only``: the same network's kernel without refinement;
* ``true_kernel``: the ground-truth kernel (upper bound; error ratio 1);
* ``no_deblurring``: a delta kernel, i.e. the blurry image only denoised
  by the deconvolution's prior (lower bound).

A last row, ``blurry_input``, scores the blurry image ``y`` as it is (no
processing at all), the number usually quoted as "no deblurring" in papers.

The network (kernel window) of a case is chosen as ``refdeblur deblur``
chooses it by default, from the blurry image
(:func:`refdeblur.choose_kernel_size`, ``kernel_size="auto"``); the
``oracle`` rule (:func:`oracle_kernel_size`) picks it from the true
kernel's size instead, an upper reference that a user cannot have.

The data set is not part of the package; :func:`run_levin` takes the folder
of Levin et al.'s ``.mat`` files as the authors distribute them (see
:func:`find_cases`), converting them in memory. The protocol choices
are described in ``derivations/bench_levin.md``; the tables, the plot and the
files written are made by :mod:`refdeblur.evaluation.reporting`.
"""

import csv
import datetime
import math
import re
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.io

from .. import __version__
from ..deconvolution import deconvolve
from ..inference import DeblurWarning, estimate_kernel, estimate_kernel_and_size
from ..kernels import delta_kernel
from ..metrics import (kernel_error_up_to_shift, psnr_up_to_shift,
                       ssd_up_to_shift, ssim_up_to_shift)
from ..model_io import load_model
from ..models import (SHIPPED_KERNEL_SIZES, load_shipped_model, model_sha256,
                      shipped_model_path)
from .reporting import (OUTPUT_FILES, machine_info, provenance, report_files,
                        summary_table, write_files)

__all__ = ["BenchError", "run_levin", "oracle_kernel_size", "summarise",
           "method_labels", "find_cases", "find_mat_cases", "read_index",
           "select_cases", "load_case", "DEFAULT_OUT_DIR",
           "available_shipped_sizes", "deconvolve_for_benchmark",
           "image_scores", "METHODS", "ESTIMATES", "CSV_COLUMNS", "OUTPUT_FILES"]

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

#: Columns of ``cases.csv`` (one row per case and method).
CSV_COLUMNS = ("case", "image", "kernel", "true_kernel_size", "method",
               "model", "model_kernel_size", "kernel_size_reason",
               "kernel_error", "psnr_db", "ssim", "ssd", "error_ratio",
               "seconds", "warnings")

#: The non-blind deconvolution used for every row (refdeblur's default).
DECONVOLUTION = {"method": "hyper_laplacian", "noise_std": None, "clip": True,
                 "dtype": "float64"}

#: Levin et al.'s scoring (crop, shift search), as in :mod:`refdeblur.metrics`.
PROTOCOL = {"crop": 15, "max_shift": 5.0, "step": 0.25, "data_range": 1.0}

#: ``--kernel-size`` choices besides a size, and the rule each one states
#: in the summaries.
KERNEL_SIZE_RULES = {
    "auto": ("auto: per case, the shipped network that refdeblur.choose_kernel_size "
             "picks from the blurry image (as refdeblur deblur does by default); "
             "the network-only row uses the network of the size chosen"),
    "oracle": ("oracle: per case, the smallest shipped network whose window is "
               "at least the true kernel size, else the largest shipped one "
               "(needs the true kernel: an upper reference for auto)"),
}

# Error-ratio thresholds reported by Levin et al. (share of cases at or below).
ER_THRESHOLDS = (2.0, 3.0)

#: Levin et al.'s case files: ``im05_flit01.mat`` as the authors name them,
#: ``im01_ker01.mat`` as public copies rename them.
MAT_FILE_NAME = re.compile(r"im(\d+)_(ker|flit)(\d+)\.mat")

# The authors number their four images 5 to 8; case names number them 1 to 4.
AUTHORS_IMAGE_OFFSET = 4

# The variables of a case file: sharp image, blurry image, correlation kernel.
MAT_VARIABLES = ("x", "y", "f")

#: Output folder when none is given: a new folder in the current directory.
DEFAULT_OUT_DIR = Path("levin-results")

# Columns of a converted folder's index.csv that the benchmark reads.
INDEX_COLUMNS = {"file", "image", "kernel", "mat"}


class BenchError(ValueError):
    """A problem with the benchmark's input or output folder (one line)."""


# ---------------------------------------------------------------------------
# the data set

def find_cases(data_dir):
    """Cases of a Levin et al. 2009 data folder, in either layout.

    Two layouts are read, and give the same arrays:

    * the data as the authors distribute them (``LevinEtalCVPR09Data``): one
      folder of ``.mat`` files with the variables ``x``, ``y`` and ``f``
      (see :func:`find_mat_cases`);
    * a converted folder whose ``index.csv`` names each case's ``.mat`` file
      (see :func:`read_index`); a folder with ``index.csv`` is read so.

    Parameters
    ----------
    data_dir : path-like
        The data folder.

    Returns
    -------
    list of dict
        ``{file, image, kernel, mat_file}`` per case: the case name (such as
        ``'im01_ker01'``), its image and kernel numbers and its ``.mat``
        file relative to ``data_dir``.

    Raises
    ------
    BenchError
        The folder is missing or holds neither layout.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BenchError(f"Levin data folder not found: {data_dir}")
    if (data_dir / "index.csv").is_file():
        return read_index(data_dir)
    cases = find_mat_cases(data_dir)
    if not cases:
        nested = sorted({path.parent for path in data_dir.glob("*/*.mat")
                         if MAT_FILE_NAME.fullmatch(path.name)})
        hint = f"; they are in {nested[0]}, pass that folder" if nested else ""
        raise BenchError(f"{data_dir} holds no Levin et al. 2009 data: expected "
                         f"its files im0?_ker0?.mat or im0?_flit0?.mat{hint}")
    return cases


def find_mat_cases(data_dir):
    """Cases of a folder of Levin et al.'s ``.mat`` files.

    The authors name their files ``im05_flit01.mat`` to ``im08_flit08.mat``
    (images 5 to 8, kernels 1 to 8); public copies rename them
    ``im01_ker01.mat`` to ``im04_ker08.mat``. Both are read, and a case is
    always named in the second form: ``im0{i+4}_flit0{j}`` is case
    ``im0{i}_ker0{j}``. Other files (such as ``sizeL.mat``) are ignored.

    Parameters
    ----------
    data_dir : path-like
        The folder holding the ``.mat`` files (not its subfolders).

    Returns
    -------
    list of dict
        ``{file, image, kernel, mat_file}`` per case (see
        :func:`find_cases`), ordered by image then kernel; empty if the
        folder holds no such file.

    Raises
    ------
    BenchError
        Two files are the same case, or an authors' file name numbers its
        image below 5.
    """
    cases = {}
    for path in sorted(Path(data_dir).glob("*.mat")):
        match = MAT_FILE_NAME.fullmatch(path.name)
        if match is None:
            continue
        number, naming, kernel = int(match[1]), match[2], int(match[3])
        image = number - AUTHORS_IMAGE_OFFSET if naming == "flit" else number
        if image < 1:
            raise BenchError(f"{path}: the authors' files number their images "
                             f"from {AUTHORS_IMAGE_OFFSET + 1} (im05_flit01.mat)")
        name = f"im{image:02d}_ker{kernel:02d}"
        if name in cases:
            raise BenchError(f"{data_dir}: {cases[name]['mat_file']} and "
                             f"{path.name} are both case {name}; keep one of them")
        cases[name] = {"file": name, "image": image, "kernel": kernel,
                       "mat_file": path.name}
    return sorted(cases.values(), key=lambda case: (case["image"], case["kernel"]))


def read_index(data_dir):
    """Cases of a converted data folder, from its ``index.csv``.

    A converted folder keeps the authors' ``.mat`` files beside 16-bit PNG
    copies of ``x`` and ``y``; its ``index.csv`` names each case's ``.mat``
    file (column ``mat``), which is what the benchmark reads: the rounding
    to 16 bits is small, but the kernel refinement turns it into a
    different estimate (derivations/bench_levin.md, "Data").

    Parameters
    ----------
    data_dir : path-like
        A converted data folder.

    Returns
    -------
    list of dict
        ``{file, image, kernel, mat_file}`` per case (see
        :func:`find_cases`), in file order.

    Raises
    ------
    BenchError
        The folder or its ``index.csv`` is missing, unreadable, lacks a
        column or lists no case.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BenchError(f"Levin data folder not found: {data_dir}")
    index = data_dir / "index.csv"
    if not index.is_file():
        raise BenchError(f"{data_dir} is not a converted Levin et al. 2009 data "
                         f"folder (no index.csv)")
    try:
        with open(index, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            missing = INDEX_COLUMNS - set(reader.fieldnames or ())
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BenchError(f"cannot read {index}: {error}") from None
    if missing:
        raise BenchError(f"{index} lacks the column(s) {', '.join(sorted(missing))}")
    if not rows:
        raise BenchError(f"{index} lists no cases")
    try:
        return [{"file": row["file"], "image": int(row["image"]),
                 "kernel": int(row["kernel"]), "mat_file": row["mat"]}
                for row in rows]
    except ValueError as error:
        raise BenchError(f"{index}: {error}") from None


def select_cases(rows, names):
    """The cases of :func:`find_cases` named in ``names``.

    Parameters
    ----------
    rows : list of dict
        All cases, as :func:`find_cases` returns them.
    names : sequence of str or None
        Case names such as ``'im01_ker01'`` (for the authors' files, their
        names without ``.mat``, such as ``'im05_flit01'``, are accepted
        too); ``None`` selects every case.

    Returns
    -------
    list of dict
        All rows in their order for ``None``, else the named rows in the
        given order (each once).

    Raises
    ------
    BenchError
        A name is not a case of the folder.
    """
    if names is None:
        return rows
    by_name = {row["file"]: row for row in rows}
    for row in rows:
        by_name.setdefault(Path(row["mat_file"]).stem, row)
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise BenchError(f"unknown case(s) {', '.join(unknown)}; names look "
                         f"like {rows[0]['file']}")
    chosen = [by_name[name] for name in names]
    return list({row["file"]: row for row in chosen}.values())


def _read_mat_case(path, name):
    """``y``, ``x`` and ``f`` of one of Levin et al.'s ``.mat`` files."""
    if not path.is_file():
        raise BenchError(f"case {name}: missing file {path}")
    try:
        contents = scipy.io.loadmat(path, variable_names=MAT_VARIABLES)
    except (OSError, ValueError, NotImplementedError) as error:
        raise BenchError(f"case {name}: cannot read {path} ({error})") from None
    missing = [variable for variable in MAT_VARIABLES if variable not in contents]
    if missing:
        raise BenchError(f"case {name}: {path} lacks the variable(s) "
                         f"{', '.join(missing)} (expected x, y and f)")
    arrays = []
    for variable in ("y", "x", "f"):
        array = contents[variable]
        if not np.issubdtype(array.dtype, np.floating):
            raise BenchError(f"case {name}: {variable} in {path} must be floats "
                             f"in [0, 1], got {array.dtype}")
        # MATLAB stores arrays column-major; C order as for every other
        # image, so that no sum's order of terms depends on the file format.
        arrays.append(np.ascontiguousarray(array, dtype=np.float64))
    blurry, sharp, correlation_kernel = arrays
    # y = filter2(f, x) is a correlation with f: the convolution kernel is
    # f rotated by 180 degrees (derivations/bench_levin.md, "Data").
    return blurry, sharp, np.ascontiguousarray(correlation_kernel[::-1, ::-1])


def load_case(data_dir, row):
    """Images and true kernel of one case, from its ``.mat`` file.

    Parameters
    ----------
    data_dir : path-like
        The Levin et al. 2009 data folder.
    row : dict
        The case, as :func:`find_cases` returns it.

    Returns
    -------
    blurry, sharp : ndarray
        ``y`` and ``x`` as stored, grey float64 images of one shape.
    true_kernel : ndarray
        The true kernel in the convolution convention (``f`` rotated by 180
        degrees), float64, square with an odd side, normalised to sum 1.

    Raises
    ------
    BenchError
        A file is missing or unreadable, or the arrays have the wrong shape.
    """
    blurry, sharp, kernel = _read_mat_case(Path(data_dir) / row["mat_file"], row["file"])
    if blurry.ndim != 2 or blurry.shape != sharp.shape:
        raise BenchError(f"case {row['file']}: y {blurry.shape} and x "
                         f"{sharp.shape} must be grey images of one size")
    if (kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]
            or kernel.shape[0] % 2 == 0 or not kernel.sum() > 0):
        raise BenchError(f"case {row['file']}: the true kernel must be square "
                         f"with an odd side and a positive sum, got shape "
                         f"{kernel.shape}")
    return blurry, sharp, kernel / kernel.sum()


# ---------------------------------------------------------------------------
# models

def available_shipped_sizes():
    """Kernel sizes whose shipped network is installed, ascending.

    Returns
    -------
    list of int
        The subset of :data:`refdeblur.models.SHIPPED_KERNEL_SIZES` whose
        model file is present.
    """
    available = []
    for size in SHIPPED_KERNEL_SIZES:
        try:
            shipped_model_path(size)
        except ValueError:
            continue
        available.append(size)
    return available


def oracle_kernel_size(true_size, available):
    """Kernel window for a case under the ``oracle`` rule.

    The rule needs the true kernel, which a user of
    :func:`refdeblur.deblur` does not have; it is the benchmark's reference
    for the choice from the image (``kernel_size="auto"``,
    :func:`refdeblur.choose_kernel_size`).

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
    >>> oracle_kernel_size(19, [17, 25, 33]), oracle_kernel_size(27, [17])
    (25, 17)
    """
    if not available:
        raise BenchError("no shipped model is installed; pass --model FILE")
    large_enough = [size for size in sorted(available) if size >= true_size]
    return large_enough[0] if large_enough else max(available)


class _Models:
    """The networks of one run and how each case's kernel window is chosen.

    The window comes from the blurry image (``'auto'``), from the true
    kernel's size (``'oracle'``), or is one size for every case (a shipped
    size, or a model file's); networks are loaded at most once, and every
    one that estimated a kernel is listed by :meth:`used`.
    """

    def __init__(self, kernel_size="auto", model_path=None):
        self._networks = {}
        self._files = {}
        self.available = available_shipped_sizes()
        if model_path is not None:
            self._use_model_file(Path(model_path), kernel_size)
        elif kernel_size in KERNEL_SIZE_RULES:
            self._use_rule(kernel_size)
        else:
            self._use_shipped_size(kernel_size)

    def _use_rule(self, rule):
        if not self.available:
            raise BenchError("no shipped model is installed; pass --model FILE")
        missing = [size for size in SHIPPED_KERNEL_SIZES if size not in self.available]
        if rule == "auto" and missing:
            # the choice from the image measures with the largest network
            # and may pick any of them
            raise BenchError(f"--kernel-size auto needs every shipped network; "
                             f"missing: {', '.join(map(str, missing))} px (choose "
                             f"oracle or an installed size)")
        self.mode, self.rule, self._fixed = rule, KERNEL_SIZE_RULES[rule], None

    def _use_shipped_size(self, kernel_size):
        try:
            size = int(kernel_size)
        except (TypeError, ValueError):
            size = None
        if size is None or size not in self.available:
            raise BenchError(f"no shipped model for --kernel-size {kernel_size} in "
                             f"this installation (available: "
                             f"{', '.join(map(str, self.available)) or 'none'})")
        self.mode, self._fixed = "fixed", size
        self.rule = f"fixed: the shipped {size} px network for every case"

    def _use_model_file(self, model_path, kernel_size):
        if kernel_size == "oracle":
            raise BenchError("--kernel-size oracle chooses among the shipped "
                             "networks; it cannot be combined with --model")
        try:
            network = load_model(model_path).astype(np.float32)
        except (OSError, ValueError, KeyError) as error:
            raise BenchError(f"cannot use model {model_path}: {error}") from None
        if kernel_size != "auto" and int(kernel_size) != network.kernel_size:
            raise BenchError(f"model {model_path} estimates "
                             f"{network.kernel_size} px kernels, but "
                             f"--kernel-size {kernel_size} was given")
        self._networks[network.kernel_size] = network
        self._model_file = (model_path, model_sha256(model_path))
        self.mode, self._fixed = "model", network.kernel_size
        self.rule = f"fixed: the model file {model_path.name} for every case"

    def load_all(self):
        """Load every network the run may use, so that no case times a load."""
        for size in ([self._fixed] if self._fixed is not None else self.available):
            self.network(size)

    def network(self, size):
        """The network of ``size`` (shipped ones loaded on first use)."""
        if size not in self._networks:
            self._networks[size] = load_shipped_model(size)
        return self._networks[size]

    def _record(self, size):
        """Note the file of the network of ``size`` as used."""
        if size not in self._files:
            path = (self._model_file[0] if self.mode == "model"
                    else shipped_model_path(size))
            digest = (self._model_file[1] if self.mode == "model"
                      else model_sha256(path))
            self._files[size] = (path, digest)

    def estimate(self, blurry, true_size):
        """The refined kernel of a case, its window and why.

        Parameters
        ----------
        blurry : ndarray
            The case's blurry image.
        true_size : int
            Side of its true kernel (read by the ``oracle`` rule only).

        Returns
        -------
        kernel : ndarray
        size : int
            The kernel window used.
        reason : str
            Why that window.
        messages : list of str
            The estimate's DeblurWarning messages.
        """
        if self.mode == "auto":
            # Exactly what refdeblur deblur does by default: the library
            # chooses the network from the image and estimates with it.
            (kernel, choice), messages = _recording_deblur_warnings(
                estimate_kernel_and_size, blurry)
            for size in (choice.probe_size, choice.kernel_size):
                if size is not None:
                    self._record(size)
            return kernel, choice.kernel_size, choice.reason, messages
        size, reason = self._window(true_size)
        kernel, messages = _recording_deblur_warnings(
            estimate_kernel, blurry, size, model=self.network(size))
        self._record(size)
        return kernel, size, reason, messages

    def _window(self, true_size):
        """Window and reason of a case under a rule that is not ``auto``."""
        if self.mode == "oracle":
            size = oracle_kernel_size(true_size, self.available)
            holds = "the smallest" if size >= true_size else "no window holds it; the largest"
            return size, (f"oracle: the true kernel spans {true_size} px; {holds} "
                          f"shipped window, {size} px")
        if self.mode == "model":
            return self._fixed, "the model file's kernel size"
        return self._fixed, f"--kernel-size {self._fixed}"

    def file_name(self, size):
        return self._files[size][0].name

    def used(self):
        """``[{file, path, kernel_size, sha256}]`` of every network used."""
        return [{"file": path.name, "path": str(path), "kernel_size": size,
                 "sha256": digest}
                for size, (path, digest) in sorted(self._files.items())]


# ---------------------------------------------------------------------------
# scoring one case

def deconvolve_for_benchmark(blurry, kernel):
    """The one non-blind deconvolution of every row (see :data:`DECONVOLUTION`).

    Parameters
    ----------
    blurry : ndarray
        The blurry grey image ``y``, float64.
    kernel : ndarray
        The blur kernel (convolution convention, sum 1).

    Returns
    -------
    ndarray
        The deconvolved image, clipped to [0, 1].
    """
    return deconvolve(blurry, kernel, method=DECONVOLUTION["method"],
                      noise_std=DECONVOLUTION["noise_std"],
                      clip=DECONVOLUTION["clip"])


def image_scores(image, sharp):
    """PSNR, SSIM and SSD of an image against the truth, each up to shift.

    Parameters
    ----------
    image, sharp : ndarray
        The image to score and the case's sharp image ``x``.

    Returns
    -------
    dict
        ``psnr_db``, ``ssim`` and ``ssd`` with the settings of
        :data:`PROTOCOL`, each at its own best shift.
    """
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


def _recording_deblur_warnings(function, *args, **kwargs):
    """``function(*args, **kwargs)`` and the messages of its DeblurWarnings.

    Only refdeblur's own warnings (e.g. a blur wider than the window) are
    expected; they are recorded in the row. Anything else is passed on to
    the caller's filters.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeblurWarning)
        result = function(*args, **kwargs)
    messages = []
    for warning in caught:
        if issubclass(warning.category, DeblurWarning):
            messages.append(str(warning.message))
        else:
            warnings.warn_explicit(warning.message, warning.category,
                                   warning.filename, warning.lineno)
    return result, messages


def _estimate_without_refinement(blurry, size, network):
    # The same network without the refinement that follows the paper's
    # estimate, so that the summary shows what each part contributes.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        return estimate_kernel(blurry, size, model=network, refine=False)


def _case_results(blurry, true_kernel, models):
    """Kernel, image and seconds of every method for one case, the window
    used and why, and the estimate's warning messages."""
    kernels, images, seconds = {}, {}, {}
    started = time.perf_counter()
    # With auto, the timing includes choosing the window, as a user pays it.
    kernels["refdeblur"], size, reason, messages = models.estimate(
        blurry, true_kernel.shape[0])
    images["refdeblur"] = deconvolve_for_benchmark(blurry, kernels["refdeblur"])
    seconds["refdeblur"] = time.perf_counter() - started
    started = time.perf_counter()
    kernels["network_only"] = _estimate_without_refinement(blurry, size,
                                                           models.network(size))
    images["network_only"] = deconvolve_for_benchmark(blurry, kernels["network_only"])
    seconds["network_only"] = time.perf_counter() - started

    # The delta kernel has the true kernel's size so that this bound does
    # not depend on the model (the size only sets the padding).
    kernels["true_kernel"] = true_kernel
    kernels["no_deblurring"] = delta_kernel(true_kernel.shape[0])
    for method in ("true_kernel", "no_deblurring"):
        started = time.perf_counter()
        images[method] = deconvolve_for_benchmark(blurry, kernels[method])
        seconds[method] = time.perf_counter() - started
    kernels["blurry_input"] = kernels["no_deblurring"]   # y as it is: the identity blur
    images["blurry_input"] = blurry
    seconds["blurry_input"] = 0.0
    return kernels, images, seconds, size, reason, messages


def _score_case(row, blurry, sharp, true_kernel, models):
    """The rows (dicts with CSV_COLUMNS) of one case and its estimated kernel."""
    true_size = true_kernel.shape[0]
    kernels, images, seconds, size, reason, messages = _case_results(
        blurry, true_kernel, models)

    delta_error = kernel_error_up_to_shift(kernels["no_deblurring"], true_kernel)
    kernel_errors = {
        "refdeblur": kernel_error_up_to_shift(kernels["refdeblur"], true_kernel),
        "network_only": kernel_error_up_to_shift(kernels["network_only"], true_kernel),
        "true_kernel": 0.0,
        "no_deblurring": delta_error,
        "blurry_input": delta_error,
    }
    scores = {method: image_scores(images[method], sharp) for method in METHODS}
    ssd_true_kernel = scores["true_kernel"]["ssd"]
    common = {"case": row["file"], "image": int(row["image"]),
              "kernel": int(row["kernel"]), "true_kernel_size": true_size}
    rows = [{
        **common, "method": method,
        "model": models.file_name(size) if method in ESTIMATES else "",
        "model_kernel_size": size if method in ESTIMATES else "",
        "kernel_size_reason": reason if method in ESTIMATES else "",
        "kernel_error": kernel_errors[method],
        **scores[method],
        "error_ratio": _ratio(scores[method]["ssd"], ssd_true_kernel),
        "seconds": seconds[method],
        "warnings": "; ".join(messages) if method == "refdeblur" else "",
    } for method in METHODS]
    return rows, kernels["refdeblur"]


def _warm_up(blurry, true_kernel, models):
    """Compile Numba code and load the networks outside the timings."""
    models.load_all()
    models.estimate(blurry, true_kernel.shape[0])
    deconvolve_for_benchmark(blurry, true_kernel)


def _score_cases(loaded, models, progress):
    """Rows of every case and ``{case: estimated kernel}``."""
    # tqdm is imported here, where a progress bar is drawn, so that importing
    # the benchmark does not load it.
    from tqdm import tqdm

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
    return rows, kernels


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


def method_labels(rows, kernel_size_mode=None):
    """Display label of every method, naming the networks the rows used.

    Parameters
    ----------
    rows : list of dict
        Per-case rows with the columns of :data:`CSV_COLUMNS`.
    kernel_size_mode : {'auto', 'oracle', 'fixed', 'model'}, optional
        How the windows were chosen; the per-case rules (``'auto'``,
        ``'oracle'``) are named in the label.

    Returns
    -------
    dict
        ``{method: label}`` in the order of :data:`METHODS`, e.g.
        ``'refdeblur (auto: k17, k25)'`` for ``refdeblur``.
    """
    models = ", ".join(Path(model).stem for model in sorted(
        {row["model"] for row in rows if row["method"] == "refdeblur"}))
    if kernel_size_mode in KERNEL_SIZE_RULES:
        models = f"{kernel_size_mode}: {models}"
    estimate = f"refdeblur ({models})"
    labels = dict(METHODS)
    labels["refdeblur"] = estimate
    labels["network_only"] = (estimate.replace("refdeblur", "network only", 1)
                              + ", kernel not refined")
    return labels


# ---------------------------------------------------------------------------
# the run

def _check_out_dir(out_dir, overwrite):
    if out_dir.exists() and not out_dir.is_dir():
        raise BenchError(f"output path {out_dir} is not a folder")
    existing = [name for name in OUTPUT_FILES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise BenchError(f"{out_dir} already holds {', '.join(existing)}; pass "
                         f"--overwrite to replace them or choose another --out")


def _run_info(data_dir, models, commit, dirty, command_line):
    """Provenance and settings of a run, as written into the summaries."""
    return {
        "benchmark": "Levin et al. 2009 (32 cases: 4 images x 8 kernels)",
        "commit": commit, "git_dirty": dirty,
        "refdeblur_version": __version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "command_line": command_line if command_line is not None else shlex.join(sys.argv),
        "data_dir": str(Path(data_dir).resolve()),
        "models": models.used(),
        "kernel_size_mode": models.mode,
        "kernel_size_rule": models.rule,
        "deconvolution": DECONVOLUTION,
        "protocol": PROTOCOL,
    }


def run_levin(data_dir, out_dir=None, *, kernel_size="auto", model_path=None,
              cases=None, overwrite=False, command_line=None, progress=True):
    """Run and score the Levin et al. 2009 benchmark; write the results.

    Parameters
    ----------
    data_dir : path-like
        Folder of the data set: Levin et al.'s ``.mat`` files as
        distributed, or a converted folder (see :func:`find_cases`).
    out_dir : path-like, optional
        Output folder (created if missing). Default: ``levin-results`` in
        the current folder (:data:`DEFAULT_OUT_DIR`).
    kernel_size : {'auto', 'oracle', 17, 25, 33}, optional
        ``'auto'`` (default): per case the network that
        :func:`refdeblur.choose_kernel_size` picks from the blurry image,
        as ``refdeblur deblur`` does; the ``network_only`` row uses the
        network of that size. ``'oracle'``: the smallest shipped network
        at least as large as the true kernel, else the largest one (see
        :func:`oracle_kernel_size`); it needs the true kernel and gives the
        upper reference for ``'auto'``. A number: that shipped network for
        every case.
    model_path : path-like, optional
        A model file to use for every case instead of the shipped networks
        (with ``kernel_size='auto'``, or the model's size).
    cases : sequence of str, optional
        Case names such as ``'im01_ker01'`` (see :func:`select_cases`);
        default every case of the folder.
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
        :func:`summarise`), ``labels`` (see :func:`method_labels`),
        ``info`` (provenance), ``summary_table`` (Markdown) and ``kernels``
        (``{case: estimated kernel}``).

    Raises
    ------
    BenchError
        Missing or malformed data folder, unknown case, unusable model or
        kernel size, or result files in ``out_dir`` without ``overwrite``.
    """
    started = time.perf_counter()
    selected = select_cases(find_cases(data_dir), cases)
    models = _Models(kernel_size, model_path)
    commit, dirty = provenance()
    out_dir = Path(out_dir) if out_dir is not None else DEFAULT_OUT_DIR
    _check_out_dir(out_dir, overwrite)

    # Read every case first, so a broken data folder fails before the work.
    loaded = [(row, *load_case(data_dir, row)) for row in selected]
    rows, kernels = _score_cases(loaded, models, progress)
    methods, by_size = summarise(rows)
    labels = method_labels(rows, models.mode)
    info = _run_info(data_dir, models, commit, dirty, command_line)
    info["wall_seconds"] = time.perf_counter() - started
    result = {"out_dir": out_dir, "rows": rows, "methods": methods,
              "by_kernel_size": by_size, "labels": labels, "info": info,
              "summary_table": summary_table(methods, labels), "kernels": kernels}
    files = report_files(result, columns=CSV_COLUMNS, thresholds=ER_THRESHOLDS)
    try:
        write_files(out_dir, files)
    except OSError as error:
        raise BenchError(f"cannot write the results to {out_dir}: "
                         f"{error.strerror or error}") from None
    return result
