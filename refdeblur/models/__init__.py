"""The trained networks shipped inside the package.

Each kernel size has one model file ``k<size>.npz`` in this folder (a normal
refdeblur model file, see :mod:`refdeblur.model_io`) and a recipe
``k<size>.json`` with the exact training commands, steps, wall time and
validation numbers. ``README.md`` summarises them.
"""

import functools
import hashlib
from pathlib import Path

import numpy as np

__all__ = ["SHIPPED_KERNEL_SIZES", "shipped_model_path", "load_shipped_model",
           "model_sha256"]

#: Kernel sizes with a shipped network (1, 2 and 3 scales).
SHIPPED_KERNEL_SIZES = (17, 25, 33)

_FOLDER = Path(__file__).resolve().parent


def shipped_model_path(kernel_size):
    """Path of the shipped model file for ``kernel_size``.

    Raises
    ------
    ValueError
        If no network is shipped for that size, or its file is missing from
        this installation.
    """
    try:
        size = int(kernel_size)
    except (TypeError, ValueError):
        size = None
    if size not in SHIPPED_KERNEL_SIZES or size != kernel_size:
        raise ValueError(f"no shipped model for kernel size {kernel_size!r}; "
                         f"choose one of {', '.join(map(str, SHIPPED_KERNEL_SIZES))}")
    path = _FOLDER / f"k{size}.npz"
    if not path.is_file():
        raise ValueError(f"the shipped model for kernel size {size} is missing "
                         f"from this installation ({path})")
    return path


@functools.lru_cache(maxsize=8)
def _load(path, dtype_name):
    from ..model_io import load_model
    return load_model(path).astype(np.dtype(dtype_name))


def load_shipped_model(kernel_size, *, dtype=np.float32):
    """The shipped network for ``kernel_size``, cast to ``dtype``.

    Loaded once per process and cached; treat the returned network as
    read-only (copy it with ``Network.astype`` before training it).
    """
    return _load(shipped_model_path(kernel_size), np.dtype(dtype).name)


def model_sha256(path):
    """SHA-256 hex digest of a model file (recorded in deblurring reports)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
