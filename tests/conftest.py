"""Shared fixtures (an explicit random generator, the optional shared data) and
the ``requires_numba`` marker."""

import os
from pathlib import Path

import numpy as np
import pytest

from refdeblur._engine import HAVE_NUMBA

# The benchmark and training data live outside the repository (research-use
# data sets that must not be copied in). Tests that need them skip cleanly.
SHARED_DATA = Path(os.environ.get(
    "REFDEBLUR_SHARED_DATA",
    Path(__file__).resolve().parents[1].parent / "shared" / "data"))


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
def shared_data():
    """Path to ``../shared/data``; skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


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
