"""Model files: ``.npz`` arrays plus JSON metadata, never pickles.

Layout of a model file (a NumPy ``.npz`` archive):

* ``__metadata__``: a 0-d unicode array holding a JSON object with
  ``format`` (``"refdeblur-model"``), ``format_version``, the
  ``refdeblur_version`` that wrote it, the ``architecture``
  (:class:`refdeblur.network.Architecture` as a dict), the parameter
  ``dtype``, the list of ``parameters`` and any caller ``metadata``
  (training recipe, validation numbers, ...);
* ``param/<name>``: one array per network parameter;
* ``extra/<name>``: optional arrays a caller stores alongside (e.g. the
  optimiser state of a training checkpoint).

Files are read with ``allow_pickle=False`` and written atomically (to a
temporary file in the same folder, then renamed), so a crash never leaves a
half-written model where a good one was.
"""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ._version import __version__
from .image_io import give_default_permissions
from .network import Architecture, Network

__all__ = ["FORMAT", "FORMAT_VERSION", "save_model", "read_model_file", "load_model",
           "save_npz_atomically"]

FORMAT = "refdeblur-model"
FORMAT_VERSION = 1
_METADATA_KEY = "__metadata__"
_PARAM_PREFIX = "param/"
_EXTRA_PREFIX = "extra/"


def save_model(net, path, *, metadata=None, extra_arrays=None):
    """Write a network to an ``.npz`` model file, atomically.

    Parameters
    ----------
    net : Network
    path : str or path-like
        Destination; replaced if it exists.
    metadata : dict, optional
        JSON-serialisable information stored with the model.
    extra_arrays : dict of str to ndarray, optional
        Additional arrays (e.g. optimiser state), read back by
        :func:`read_model_file`.
    """
    path = Path(path)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "refdeblur_version": __version__,
        "architecture": net.architecture.to_dict(),
        "dtype": np.dtype(net.dtype).name,
        "parameters": sorted(net.params),
        "metadata": metadata or {},
    }
    arrays = {_METADATA_KEY: np.array(json.dumps(header, sort_keys=True))}
    for name, value in net.params.items():
        arrays[_PARAM_PREFIX + name] = np.asarray(value)
    for name, value in (extra_arrays or {}).items():
        arrays[_EXTRA_PREFIX + name] = np.asarray(value)
    save_npz_atomically(path, arrays)


def save_npz_atomically(path, arrays):
    """Write ``arrays`` to an uncompressed ``.npz`` file at ``path``, atomically.

    The arrays go to a temporary file in the same folder, flushed to disk,
    which then replaces ``path`` in one step: a reader never sees a partial
    file, and an interrupted write leaves the old file (or none).

    Parameters
    ----------
    path : pathlib.Path
    arrays : dict of str to ndarray
    """
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.",
                                         suffix=".tmp", dir=path.parent)
    try:
        give_default_permissions(temporary)
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_model_file(path):
    """Read a model file with everything stored in it.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    net : Network
    header : dict
        The JSON metadata (``header["metadata"]`` is the caller's part).
    extra_arrays : dict of str to ndarray

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable refdeblur model: not an ``.npz``
        archive, truncated, written by an incompatible format version, or
        with parameters that do not match its architecture.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise ValueError(f"model path is a folder, not a file: {path}")
    if not zipfile.is_zipfile(path):
        # Checked first: on anything but a zip (or .npy) archive np.load
        # guesses "pickled data" and suggests loading it unsafely.
        raise ValueError(f"{path} is not a readable refdeblur model file "
                         f"(not a complete .npz archive: corrupt or truncated, "
                         f"or another format)")
    try:
        # Open the file ourselves so it is closed even when np.load fails
        # half-way through a truncated archive.
        with open(path, "rb") as stream, \
                np.load(stream, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a readable refdeblur model file "
                         f"(corrupt or truncated: {error})") from None
    if _METADATA_KEY not in contents:
        raise ValueError(f"{path} is an .npz archive but not a refdeblur "
                         f"model (no {_METADATA_KEY} entry)")
    try:
        header = json.loads(str(contents.pop(_METADATA_KEY)))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: model metadata is not valid JSON "
                         f"({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a refdeblur model file")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has model format version "
                         f"{header.get('format_version')}, this refdeblur "
                         f"reads version {FORMAT_VERSION}")
    try:
        architecture = Architecture.from_dict(header["architecture"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: invalid architecture in the model "
                         f"metadata ({error})") from None
    params = {key[len(_PARAM_PREFIX):]: value for key, value in contents.items()
              if key.startswith(_PARAM_PREFIX)}
    extra = {key[len(_EXTRA_PREFIX):]: value for key, value in contents.items()
             if key.startswith(_EXTRA_PREFIX)}
    for name, value in params.items():
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"{path}: parameter {name} is not a float array")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{path}: parameter {name} holds NaN or Inf")
    try:
        net = Network(architecture, params)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return net, header, extra


def load_model(path):
    """Load a network saved by :func:`save_model`.

    :func:`refdeblur.load_model` also accepts the kernel size of a shipped
    network (:func:`refdeblur.models.load_model`).

    Parameters
    ----------
    path : str or path-like
        A model file.

    Returns
    -------
    Network
        Parameters in the type they were stored in (shipped models are
        float32; cast with :meth:`Network.astype`).

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`read_model_file`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from refdeblur import build_network, save_model
    >>> from refdeblur.model_io import load_model
    >>> net = build_network(17, rng=np.random.default_rng(0))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "net.npz"
    ...     save_model(net, path)
    ...     load_model(path).kernel_size
    17
    """
    net, _, _ = read_model_file(path)
    return net
