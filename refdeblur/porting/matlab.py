"""A network's architecture and weights as a MATLAB ``.mat`` file.

:func:`export_mat` writes a MATLAB v5 ``.mat`` file (readable by MATLAB and
GNU Octave, ``load('net.mat')``) holding flat variables only: numbers,
strings and double arrays, no structs or cells, so that any MATLAB-language
implementation can read it without knowing scipy's conventions. The
variables, their shapes and the conventions a port must follow are listed in
derivations/matlab_path.md, "The exported file"; ``tests/octave/`` holds a
forward pass written in the MATLAB language that reads this file and
reproduces :meth:`refdeblur.network.Network.forward`.
"""

import json
from pathlib import Path

import numpy as np
import scipy.io

from .._version import __version__
from ..models import load_model
from ..network import Network

__all__ = ["MAT_FORMAT", "MAT_FORMAT_VERSION", "matlab_name", "matlab_variables",
           "export_mat"]

#: Value of the ``format`` variable of an exported file.
MAT_FORMAT = "refdeblur-matlab"
#: Value of its ``format_version`` variable.
MAT_FORMAT_VERSION = 1


def matlab_name(parameter):
    """The MATLAB variable name of a network parameter.

    Parameters
    ----------
    parameter : str
        A key of :attr:`refdeblur.network.Network.params`, e.g.
        ``"scale1.stage2.conv.weight"``.

    Returns
    -------
    str
        The name with every ``.`` replaced by ``_``
        (``"scale1_stage2_conv_weight"``): a valid MATLAB identifier of at
        most 63 characters.

    Examples
    --------
    >>> from refdeblur.porting.matlab import matlab_name
    >>> matlab_name("scale2.stage1.image_quotient.log_beta")
    'scale2_stage1_image_quotient_log_beta'
    """
    name = parameter.replace(".", "_")
    if not name.isidentifier() or len(name) > 63:
        raise ValueError(f"{parameter!r} does not map to a MATLAB variable name")
    return name


def _row(values):
    return np.asarray(values, dtype=np.float64).reshape(1, -1)


def _architecture_variables(net):
    """The architecture, resolved to the numbers the forward pass uses."""
    arch = net.architecture
    first_stages = [stages[0] for stages in net.scales]
    kernel_quotients = [stage.kernel_quotient for stage in first_stages]
    return {
        "format": MAT_FORMAT,
        "format_version": float(MAT_FORMAT_VERSION),
        "refdeblur_version": __version__,
        "architecture_json": json.dumps(arch.to_dict(), sort_keys=True),
        "source_dtype": np.dtype(net.dtype).name,
        "kernel_sizes": _row(arch.kernel_sizes),
        "n_stages": float(arch.n_stages),
        # None means all: a port should not have to know that.
        "inference_stages": float(arch.inference_stages or arch.n_stages),
        "n_pairs": _row(arch.n_pairs),
        "n_filters": float(arch.n_filters),
        "n_hidden": float(arch.n_hidden),
        "filter_sizes": _row(arch.filter_sizes),
        "conv_bias": float(arch.conv_bias),
        "recombine_bias": float(arch.recombine_bias),
        "taper_widths": _row([layer.taper_width for layer in kernel_quotients]),
        "beta_k": float(arch.beta_k),
        "beta_k_mode": arch.beta_k_mode,
        "normalize_kernel": float(arch.normalize_kernel),
        "kernel_eps": float(kernel_quotients[0].eps),
        "pad_to_fast_size": float(kernel_quotients[0].pad_to_fast_size),
        "image_pads": _row([stage.image_quotient.pad for stage in first_stages]),
        "resample_kernel": arch.resample_kernel,
    }


def matlab_variables(net):
    """Every variable :func:`export_mat` writes, as a dict.

    Parameters
    ----------
    net : Network

    Returns
    -------
    dict of str to str, float or ndarray
        The architecture (numbers as float, lists as ``1 x n`` rows, choices
        as strings) and every parameter under :func:`matlab_name`, in
        float64 (exact for float32 models), with its axes in refdeblur's
        order: ``conv_weight`` is ``C_out x C_in x f x f``, a bias or other
        vector a column, ``log_beta`` a scalar.
    """
    if net.architecture.kernel_prior:
        # The port has no prior in its kernel quotient (derivations/matlab_path.md).
        raise ValueError("networks with kernel_prior have no MATLAB/Octave port")
    variables = _architecture_variables(net)
    for name, value in sorted(net.params.items()):
        array = np.asarray(value, dtype=np.float64)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        variables[matlab_name(name)] = array
    return variables


def export_mat(model_or_path, path):
    """Write a network's architecture and weights to a MATLAB v5 ``.mat`` file.

    Parameters
    ----------
    model_or_path : Network, str, path-like or int
        A network, a model file, or the kernel size of a shipped network
        (anything :func:`refdeblur.load_model` accepts).
    path : str or path-like
        Destination; replaced if it exists.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import scipy.io
    >>> from refdeblur.porting.matlab import export_mat
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     written = export_mat(17, pathlib.Path(folder) / "k17.mat")
    ...     contents = scipy.io.loadmat(written)
    >>> contents["kernel_sizes"], contents["scale1_stage1_conv_weight"].shape
    (array([[17.]]), (32, 1, 17, 17))
    """
    net = (model_or_path if isinstance(model_or_path, Network)
           else load_model(model_or_path))
    path = Path(path)
    scipy.io.savemat(path, matlab_variables(net), format="5",
                     do_compression=False, oned_as="column")
    return path
