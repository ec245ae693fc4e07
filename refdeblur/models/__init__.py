"""The trained networks shipped inside the package.

Each kernel size has one model file ``k<size>.npz`` in this folder (a normal
refdeblur model file, see :mod:`refdeblur.model_io`) and a recipe
``k<size>.json`` with the exact training commands, steps, wall time and
validation numbers. ``README.md`` summarises them.
"""

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from .. import model_io

__all__ = ["SHIPPED_KERNEL_SIZES", "shipped_model_path", "load_shipped_model",
           "load_model", "model_sha256"]

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
    return model_io.load_model(path).astype(np.dtype(dtype_name))


def load_shipped_model(kernel_size, *, dtype=np.float32):
    """The shipped network for ``kernel_size``, cast to ``dtype``.

    Loaded once per process and cached; treat the returned network as
    read-only (copy it with ``Network.astype`` before training it).
    """
    return _load(shipped_model_path(kernel_size), np.dtype(dtype).name)


def load_model(model):
    """Load a model file, or a shipped network by its kernel size.

    This is :func:`refdeblur.load_model`.

    Parameters
    ----------
    model : str, path-like or int
        A model file (:func:`refdeblur.model_io.load_model`), or the kernel
        size of a shipped network: ``17``, ``25``, ``33`` (or ``"k17"``,
        ...) when no file of that name exists.

    Returns
    -------
    Network
        Parameters in the type they were stored in (shipped models are
        float32; cast with :meth:`Network.astype`). Unlike
        :func:`load_shipped_model`, every call reads the file and returns a
        network of its own.

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`refdeblur.model_io.read_model_file`.

    Examples
    --------
    >>> from refdeblur.models import load_model
    >>> load_model(17).kernel_size
    17
    """
    if not isinstance(model, os.PathLike) and not Path(str(model)).exists():
        name = str(model).lower().removeprefix("k")
        if name in {str(size) for size in SHIPPED_KERNEL_SIZES}:
            model = shipped_model_path(int(name))
    return model_io.load_model(model)


def model_sha256(path):
    """SHA-256 hex digest of a model file (recorded in deblurring reports)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
