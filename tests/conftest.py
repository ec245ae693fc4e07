"""Shared fixtures (an explicit random generator, the data sets outside the
repository) and the ``requires_numba`` marker."""

import os
from pathlib import Path

import numpy as np
import pytest

from refdeblur._engine import HAVE_NUMBA

# The benchmark and training data live outside the repository (research-use
# data sets that must not be copied in); two environment variables point at
# them, and tests that need them skip, naming the variable.
_BESIDE_THE_REPOSITORY = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Levin et al. 2009's data: the folder of its ``im0?_ker0?.mat`` files
#: (``im0?_flit0?.mat`` as the authors name them), or a converted folder
#: whose ``original_mat/`` holds them.
LEVIN_DATA = Path(os.environ.get("REFDEBLUR_LEVIN_DATA",
                                 _BESIDE_THE_REPOSITORY / "levin2009"))

#: A folder of natural images for training pairs.
TRAIN_DATA = Path(os.environ.get("REFDEBLUR_TRAIN_DATA",
                                 _BESIDE_THE_REPOSITORY / "train"))

def _holds_levin_files(folder):
    return any(folder.glob("im*_ker*.mat")) or any(folder.glob("im*_flit*.mat"))


def pytest_runtest_setup(item):
    """Skip tests marked ``requires_numba`` where the kernels are not compiled.

    The marker is for tests about the speed of numba kernels, or too slow
    with the kernels run as plain Python; tests of what a kernel computes
    run everywhere (without numba, or with ``NUMBA_DISABLE_JIT=1``, the
    same loops run as Python).
    """
    if item.get_closest_marker("requires_numba") and not HAVE_NUMBA:
        pytest.skip("needs compiled numba kernels (numba missing or NUMBA_DISABLE_JIT=1)")


@pytest.fixture
def rng():
    """A fresh generator with a fixed seed (drawn once at random)."""
    return np.random.default_rng(20261125)


@pytest.fixture
def levin_data():
    """The folder of Levin et al.'s ``.mat`` files (``REFDEBLUR_LEVIN_DATA``).

    A converted folder is accepted too: its ``original_mat/`` is returned.
    Skips the test where neither is found.
    """
    for folder in (LEVIN_DATA, LEVIN_DATA / "original_mat"):
        if folder.is_dir() and _holds_levin_files(folder):
            return folder
    pytest.skip(f"Levin et al. 2009 data not found at {LEVIN_DATA}: set "
                f"REFDEBLUR_LEVIN_DATA to the folder of im0?_ker0?.mat files")


@pytest.fixture
def levin_converted_data():
    """A converted Levin folder (``index.csv``, ``x/``, ``y/``, ``kernels/``,
    ``original_mat/``) at ``REFDEBLUR_LEVIN_DATA``; skips the test elsewhere."""
    if not (LEVIN_DATA / "index.csv").is_file():
        pytest.skip(f"no converted Levin et al. 2009 folder (with index.csv) at "
                    f"{LEVIN_DATA}: set REFDEBLUR_LEVIN_DATA to one; the benchmark "
                    f"itself needs only the folder of im0?_ker0?.mat files")
    return LEVIN_DATA


@pytest.fixture
def train_data():
    """The training images' folder (``REFDEBLUR_TRAIN_DATA``); skips the
    test where it is absent."""
    if not TRAIN_DATA.is_dir():
        pytest.skip(f"training images not found at {TRAIN_DATA}: set "
                    f"REFDEBLUR_TRAIN_DATA to a folder of natural images")
    return TRAIN_DATA


# -- optional record of every gradient check (benchmarks/gradcheck_report.py)
_GRADCHECK_REPORT = os.environ.get("REFDEBLUR_GRADCHECK_REPORT")
_RECORDED = []

if _GRADCHECK_REPORT:
    import json
    import sys

    from refdeblur import gradcheck as _gradcheck

    @pytest.fixture(autouse=True)
    def _record_gradchecks(request, monkeypatch):
        """Record the errors the gradient and adjoint checks return.

        ``check_vjp`` and ``adjoint_mismatch`` are recorded always;
        ``relative_error`` only when a test calls it directly inside a test
        whose name says it checks a gradient (other tests use it to compare
        float32 with float64, which is not a gradient error).
        """
        test = request.node.nodeid
        is_gradient_test = any(word in request.node.name
                               for word in ("grad", "vjp", "numerical"))

        def wrap(name, kind, only_direct=False):
            original = getattr(_gradcheck, name)

            def recorder(*args, **kwargs):
                value = original(*args, **kwargs)
                caller = sys._getframe(1).f_globals.get("__name__", "")
                if only_direct and not (is_gradient_test and "test_" in caller):
                    return value
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if v == v:       # skip NaN (inputs not differentiated)
                        _RECORDED.append({"test": test, "kind": kind,
                                          "value": float(v)})
                return value
            monkeypatch.setattr(_gradcheck, name, recorder)

        wrap("check_vjp", "gradient")
        wrap("adjoint_mismatch", "adjoint")
        wrap("relative_error", "gradient", only_direct=True)
        yield

    def pytest_sessionfinish(session):
        with open(_GRADCHECK_REPORT, "w", encoding="utf-8") as stream:
            json.dump(_RECORDED, stream)
