"""Compare a port's arrays with a golden trace and find the first divergence.

A port writes the arrays it computes into an ``.npz`` file under the names
of a trace (derivations/porting.md, "Names"); any subset will do, e.g. the
forward pass only. :func:`compare_traces` compares every array of the port
that the trace knows, in network order, and names the first one that
differs: the layer whose output (or gradient) first goes wrong.
"""

import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .trace import METADATA_KEY, canonical_name, read_trace

__all__ = ["ArrayComparison", "PortComparison", "compare_traces", "format_comparison",
           "read_port_arrays", "layer_of"]

#: The name parts that end a layer's name (derivations/porting.md, "Names").
_ROLES = ("in", "out", "step", "grad_out", "grad_in", "grad_param")


class ArrayComparison(NamedTuple):
    """One array of the port compared with the trace.

    ``max_abs`` is ``max |theirs - ours|``; ``max_rel`` is ``max_abs``
    divided by ``max |ours|`` (the array's scale, so that entries near zero
    do not inflate it). Both are NaN when the shapes differ or the port's
    array is not real numbers.
    """

    name: str            # the name in the port's file
    canonical: str       # the name the trace stores the array under
    shape_ours: tuple
    shape_theirs: tuple
    max_abs: float
    max_rel: float
    agree: bool
    note: str            # why it differs, where not by value; else ""


class PortComparison(NamedTuple):
    """Everything :func:`compare_traces` found."""

    rows: list           # ArrayComparison per compared name, in network order
    missing: list        # trace names absent from the port's file (not failures)
    unknown: list        # port names the trace does not know
    rtol: float
    atol: float

    @property
    def first_divergent(self):
        """The first differing :class:`ArrayComparison` in network order, or None."""
        return next((row for row in self.rows if not row.agree), None)

    @property
    def ok(self):
        """At least one array compared, and every compared array agrees."""
        return bool(self.rows) and self.first_divergent is None


def layer_of(name):
    """The layer part of a trace name.

    ``"scale1/stage2/kernel_quotient/out"`` -> ``"scale1/stage2/kernel_quotient"``;
    names outside layers (``"loss/value"``, ``"params/..."``) are returned whole.

    Parameters
    ----------
    name : str

    Returns
    -------
    str
    """
    parts = name.split("/")
    for index, part in enumerate(parts):
        if part in _ROLES and index > 0:
            return "/".join(parts[:index])
    return name


def read_port_arrays(path):
    """The arrays of a port's ``.npz`` file, read without pickles.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    dict of str to ndarray

    Raises
    ------
    FileNotFoundError, ValueError
        If the file is missing or not a readable ``.npz`` archive.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    if path.is_dir() or not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a readable .npz archive")
    try:
        with open(path, "rb") as stream, np.load(stream, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a readable .npz archive ({error})") from None


def _compare(name, canonical, ours, theirs, rtol, atol):
    """One :class:`ArrayComparison`; agreement is ``max_abs <= atol + rtol * max|ours|``."""
    theirs = np.asarray(theirs)
    nan = float("nan")
    if theirs.dtype.kind not in "biuf":
        return ArrayComparison(name, canonical, ours.shape, theirs.shape, nan, nan,
                               False, f"not an array of real numbers ({theirs.dtype})")
    if theirs.shape != ours.shape:
        note = f"shape {theirs.shape}, the trace has {ours.shape}"
        if theirs.size == ours.size and np.squeeze(theirs).shape == np.squeeze(ours).shape:
            note += " (the trace keeps a batch axis of length 1)"
        return ArrayComparison(name, canonical, ours.shape, theirs.shape, nan, nan,
                               False, note)
    if ours.size == 0:
        return ArrayComparison(name, canonical, ours.shape, theirs.shape, 0.0, 0.0, True, "")
    difference = np.abs(theirs.astype(np.float64) - ours)
    max_abs = float(np.max(difference))
    scale = float(np.max(np.abs(ours)))
    if scale > 0:
        max_rel = max_abs / scale
    else:
        max_rel = 0.0 if max_abs == 0 else float("inf")
    # NaN anywhere makes max_abs NaN, and NaN <= x is False: a difference.
    agree = bool(max_abs <= atol + rtol * scale)
    note = "" if np.isfinite(max_abs) else "not finite"
    return ArrayComparison(name, canonical, ours.shape, theirs.shape, max_abs, max_rel,
                           agree, note)


def compare_traces(ours, theirs, *, rtol=1e-8, atol=0.0):
    """Compare a port's arrays with a trace, name by name in network order.

    Parameters
    ----------
    ours : dict or str or path-like
        A trace (:func:`refdeblur.porting.trace.make_trace`,
        :func:`~refdeblur.porting.trace.read_trace`) or its file.
    theirs : dict or str or path-like
        The port's arrays (name -> array) or its ``.npz`` file. Names may
        be any names of the trace, aliases included; an entry
        ``__metadata__`` is ignored, so a trace compares with a trace.
    rtol, atol : float, optional
        An array agrees when ``max |theirs - ours| <= atol + rtol *
        max |ours|`` (relative to the array's largest entry, not entry by
        entry). The default suits a float64 port; a float32 port needs
        about ``rtol=1e-4``.

    Returns
    -------
    PortComparison
        Its ``first_divergent`` names the first array, in network order,
        that differs; ``ok`` is True when at least one array was compared
        and all agree. Trace names missing from ``theirs`` are listed in
        ``missing`` and are not failures.

    Examples
    --------
    >>> from refdeblur.porting import compare_traces, make_trace
    >>> trace = make_trace(17, size=(50, 50))
    >>> theirs = {"output/kernel": trace["output/kernel"] * (1 + 1e-12)}
    >>> result = compare_traces(trace, theirs)
    >>> result.ok, len(result.rows)
    (True, 1)
    """
    if not (np.isfinite(rtol) and rtol >= 0 and np.isfinite(atol) and atol >= 0):
        raise ValueError(f"rtol and atol must be finite and >= 0, got {rtol} and {atol}")
    if not isinstance(ours, dict):
        ours = read_trace(ours)
    elif METADATA_KEY not in ours:
        raise ValueError("ours is not a trace (no __metadata__ entry)")
    if not isinstance(theirs, dict):
        theirs = read_port_arrays(theirs)
    names = ours[METADATA_KEY]["names"]
    known = set(names)
    rows, missing = [], []
    for name in names:
        if name not in theirs:
            missing.append(name)
            continue
        canonical = canonical_name(ours, name)
        rows.append(_compare(name, canonical, ours[canonical], theirs[name], rtol, atol))
    unknown = sorted(name for name in theirs if name not in known and name != METADATA_KEY)
    return PortComparison(rows, missing, unknown, float(rtol), float(atol))


def _number(value):
    return "-" if np.isnan(value) else f"{value:.2e}"


def _direction(name):
    parts = name.split("/")
    if any(part.startswith("grad") for part in parts):
        return "gradient"
    return "forward"


def format_comparison(result):
    """The comparison as a table plus a summary, for the terminal.

    Parameters
    ----------
    result : PortComparison

    Returns
    -------
    str
    """
    width = max([len("name")] + [len(row.name) for row in result.rows])
    lines = [f"{'#':>4}  {'name':<{width}}  {'shape':<18} {'max abs':>9} "
             f"{'max rel':>9}  status"]
    for index, row in enumerate(result.rows, start=1):
        shape = "x".join(map(str, row.shape_theirs)) or "scalar"
        status = "ok" if row.agree else "DIFFERS" + (f": {row.note}" if row.note else "")
        lines.append(f"{index:>4}  {row.name:<{width}}  {shape:<18} "
                     f"{_number(row.max_abs):>9} {_number(row.max_rel):>9}  {status}")
    differ = sum(not row.agree for row in result.rows)
    lines.append("")
    lines.append(f"{len(result.rows)} arrays compared (agree when max abs <= "
                 f"{result.atol:g} + {result.rtol:g} * max |trace|), {differ} differ; "
                 f"{len(result.missing)} trace arrays not in the port's file")
    first = result.first_divergent
    if first is not None:
        lines.append(f"first divergence: {first.name} ({_direction(first.name)}, layer "
                     f"{layer_of(first.name)}): max abs {_number(first.max_abs)}, "
                     f"max rel {_number(first.max_rel)}"
                     + (f"; {first.note}" if first.note else ""))
    elif not result.rows:
        lines.append("no array of the port's file has a trace name "
                     "(derivations/porting.md lists them)")
    else:
        lines.append("all compared arrays agree")
    if result.unknown:
        lines.append(f"names unknown to the trace ({len(result.unknown)}): "
                     + ", ".join(result.unknown))
    return "\n".join(lines)
