"""The trained networks shipped inside the package.

Each kernel size has one generic model file ``k<size>.npz`` in this folder
(a normal refdeblur model file, see :mod:`refdeblur.model_io`) and a recipe
``k<size>.json`` with the exact training commands, steps, wall time and
validation numbers. Networks fine-tuned for a condition of the photo (the
paper's §6.1) are ``k<size>_<condition>.npz`` with their recipe beside
them, for the sizes :data:`SHIPPED_CONDITIONS` lists. ``README.md``
summarises them.
"""

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from .. import model_io

__all__ = ["SHIPPED_KERNEL_SIZES", "SHIPPED_CONDITIONS", "shipped_model_path",
           "has_shipped_model", "load_shipped_model", "load_model", "model_sha256"]

#: Kernel sizes with a shipped network (1, 2 and 3 scales).
SHIPPED_KERNEL_SIZES = (17, 25, 33)

#: Conditions with a fine-tuned network, and the kernel sizes it is shipped
#: for: ``"high_noise"``, the generic network fine-tuned with noise of
#: standard deviation 0.05 instead of 0.01 (``k17_high_noise.json``,
#: ``k25_high_noise.json``); ``"text"``, fine-tuned on synthetic document
#: pages (``k17_text.json``, ``k25_text.json``).
SHIPPED_CONDITIONS = {"high_noise": (17, 25), "text": (17, 25)}

_FOLDER = Path(__file__).resolve().parent


def _file_stem(size, condition):
    return f"k{size}" if condition is None else f"k{size}_{condition}"


def has_shipped_model(kernel_size, condition=None):
    """Whether a network is shipped for ``kernel_size`` (and ``condition``)."""
    if condition is None:
        return kernel_size in SHIPPED_KERNEL_SIZES
    return kernel_size in SHIPPED_CONDITIONS.get(condition, ())


def shipped_model_path(kernel_size, condition=None):
    """Path of the shipped model file for ``kernel_size``.

    Parameters
    ----------
    kernel_size : int
        17, 25 or 33.
    condition : str, optional
        A key of :data:`SHIPPED_CONDITIONS` for the fine-tuned network;
        None (default) for the generic one.

    Raises
    ------
    ValueError
        If no network is shipped for that size (and condition), or its file
        is missing from this installation.
    """
    try:
        size = int(kernel_size)
    except (TypeError, ValueError):
        size = None
    if size not in SHIPPED_KERNEL_SIZES or size != kernel_size:
        raise ValueError(f"no shipped model for kernel size {kernel_size!r}; "
                         f"choose one of {', '.join(map(str, SHIPPED_KERNEL_SIZES))}")
    if condition is not None and not has_shipped_model(size, condition):
        raise ValueError(f"no {condition!r} network is shipped for kernel size {size}")
    path = _FOLDER / f"{_file_stem(size, condition)}.npz"
    if not path.is_file():
        raise ValueError(f"the shipped model for kernel size {size} is missing "
                         f"from this installation ({path})")
    return path


@functools.lru_cache(maxsize=8)
def _load(path, dtype_name):
    return model_io.load_model(path).astype(np.dtype(dtype_name))


def load_shipped_model(kernel_size, *, dtype=np.float32, condition=None):
    """The shipped network for ``kernel_size`` (and ``condition``), cast to ``dtype``.

    Loaded once per process and cached; treat the returned network as
    read-only (copy it with ``Network.astype`` before training it).
    """
    return _load(shipped_model_path(kernel_size, condition), np.dtype(dtype).name)


def load_model(model):
    """Load a model file, or a shipped network by its kernel size.

    This is :func:`refdeblur.load_model`.

    Parameters
    ----------
    model : str, path-like or int
        A model file (:func:`refdeblur.model_io.load_model`), or the kernel
        size of a shipped network: ``17``, ``25``, ``33`` (or ``"k17"``,
        ...), or the name of a fine-tuned one (``"k17_high_noise"``), when
        no file of that name exists.

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
        name = str(model).lower()
        names = {_file_stem(size, None): (size, None) for size in SHIPPED_KERNEL_SIZES}
        names.update({str(size): (size, None) for size in SHIPPED_KERNEL_SIZES})
        names.update({_file_stem(size, condition): (size, condition)
                      for condition, sizes in SHIPPED_CONDITIONS.items() for size in sizes})
        if name in names:
            model = shipped_model_path(*names[name])
    return model_io.load_model(model)


def model_sha256(path):
    """SHA-256 hex digest of a model file (recorded in deblurring reports)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
