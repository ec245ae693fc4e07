"""Shared fixtures: an explicit random generator and the optional shared data."""

import os
from pathlib import Path

import numpy as np
import pytest

# The benchmark and training data live outside the repository (research-use
# data sets that must not be copied in). Tests that need them skip cleanly.
SHARED_DATA = Path(os.environ.get(
    "REFDEBLUR_SHARED_DATA",
    Path(__file__).resolve().parents[1].parent / "shared" / "data"))


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
