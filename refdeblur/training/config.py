"""The configuration of a training run and the layout of its folder.

A run folder holds ``config.json`` (:func:`default_config`, written once when
the run starts), ``checkpoint.npz`` (a model file that
:func:`refdeblur.load_model` reads, with the optimiser and random-generator
state stored alongside) and ``log.jsonl`` (:mod:`refdeblur.training.log`).
Paths inside the configuration (``images``, ``base_model``) are used as
written, relative to the working directory of the process that trains.
"""

import json
from pathlib import Path

from ..network import DEFAULT_SCALES

__all__ = ["CONFIG_FILE", "CHECKPOINT_FILE", "LOG_FILE", "default_config",
           "architecture_options", "read_config", "write_config", "training_command"]

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
LOG_FILE = "log.jsonl"


def default_config(kernel_size, **overrides):
    """The training configuration with its defaults; stored in ``config.json``.

    Parameters
    ----------
    kernel_size : int
        Side of the kernel the network estimates.
    **overrides
        Values replacing the defaults; an unknown key is an error.

    Returns
    -------
    dict
        JSON-serialisable. ``images`` (the folder of training images,
        searched recursively) must be set before :func:`refdeblur.training.train`
        can use it; ``validation_images`` of its images are held out
        (:func:`refdeblur.training.data.validation_split`).

    Raises
    ------
    ValueError
        For an unknown option.
    """
    config = {
        "kernel_size": int(kernel_size),
        "seed": 0,
        "batch_size": 4,
        "crop_size": 128,
        "noise_std": 0.01,
        "architecture": {},
        # float32 halves the step time (SIMD tanh, FFTs and convolutions on
        # half the bytes); the gradient checks run in float64.
        "dtype": "float32",
        "optimizer": {"learning_rate": 0.01, "decay": 0.95, "eps": 1e-6},
        "outliers": {"factor": 10.0, "decay": 0.999, "warmup": 500},
        "stage_steps": 3000,
        "frozen_steps": 100,
        "train_coarse_at_end": False,
        "base_model": None,
        "validate_every": 200,
        "log_every": 10,
        "n_validation": 64,
        "validation_seed": 12345,
        "images": None,
        "validation_images": 60,
    }
    for key, value in overrides.items():
        if key not in config:
            raise ValueError(f"unknown training option {key!r}")
        config[key] = value
    return config


def architecture_options(kernel_size, *, filter_size=None, n_filters=None,
                         zero_mean_filters=False, beta_k=None):
    """``config["architecture"]``: the options that differ from the defaults.

    Parameters
    ----------
    kernel_size : int
        17, 25 and 33 have 1, 2 and 3 scales, any other size one.
    filter_size : int, optional
        Side of the convolution filters at every scale (default: the
        kernel size of each scale).
    n_filters : int, optional
    zero_mean_filters : bool, optional
    beta_k : float, optional
        See :class:`refdeblur.network.Architecture`.

    Returns
    -------
    dict
        Keyword arguments of :func:`refdeblur.build_network`.
    """
    architecture = {}
    if filter_size is not None:
        n_scales = len(DEFAULT_SCALES.get(kernel_size, (kernel_size,)))
        architecture["filter_sizes"] = [filter_size] * n_scales
    if n_filters is not None:
        architecture["n_filters"] = n_filters
    if zero_mean_filters:
        architecture["zero_mean_filters"] = True
    if beta_k is not None:
        architecture["beta_k"] = beta_k
    return architecture


def read_config(run_dir):
    """The configuration stored in ``run_dir/config.json``."""
    return json.loads((Path(run_dir) / CONFIG_FILE).read_text())


def write_config(run_dir, config):
    """Store ``config`` as ``run_dir/config.json``."""
    (Path(run_dir) / CONFIG_FILE).write_text(json.dumps(config, indent=2))


def training_command(config):
    """The ``refdeblur train`` command line that reproduces a run's config.

    Parameters
    ----------
    config : dict
        As stored in ``config.json``.

    Returns
    -------
    str
        With the placeholders ``RUN_DIR`` and ``STEPS``.
    """
    arch = config.get("architecture", {})
    parts = ["refdeblur", "train", "--kernel-size", str(config["kernel_size"]),
             "--images", config["images"], "--out", "RUN_DIR",
             "--steps", "STEPS", "--seed", str(config["seed"]),
             "--batch-size", str(config["batch_size"]),
             "--crop-size", str(config["crop_size"]),
             "--noise-std", str(config["noise_std"]),
             "--stage-steps", str(config["stage_steps"]),
             "--frozen-steps", str(config["frozen_steps"]),
             "--optimizer", config["optimizer"].get("name", "adadelta"),
             "--learning-rate", str(config["optimizer"]["learning_rate"]),
             "--dtype", config.get("dtype", "float64"),
             "--validation-images", str(config["validation_images"]),
             "--validate-every", str(config["validate_every"])]
    if arch.get("filter_sizes"):
        parts += ["--filter-size", str(arch["filter_sizes"][-1])]
    if arch.get("n_filters"):
        parts += ["--n-filters", str(arch["n_filters"])]
    if arch.get("zero_mean_filters"):
        parts += ["--zero-mean-filters"]
    if arch.get("beta_k") is not None:
        parts += ["--beta-k", repr(arch["beta_k"])]
    if config.get("base_model"):
        parts += ["--base-model", config["base_model"]]
    return " ".join(parts)
