"""From a training run to a compact model file and its recipe."""

import dataclasses
from pathlib import Path

import numpy as np

from ..image_io import write_json
from ..model_io import read_model_file, save_model
from ..network import Network
from .config import CHECKPOINT_FILE, CONFIG_FILE, LOG_FILE, read_config, training_command
from .log import read_log, validation_curve

__all__ = ["export_model", "export_run", "recipe_path"]


def export_model(checkpoint_path, out_path, *, dtype=np.float32, metadata=None,
                 n_stages=None):
    """Write the network of a training checkpoint as a compact model file.

    Drops the optimiser state and casts the parameters to ``dtype``
    (float32 halves the file; inference runs in float32 anyway); with
    ``n_stages``, keeps only the first stages of every scale. The
    checkpoint's training state (configuration, step, elapsed time) is kept
    in the metadata under ``"training"``, next to the caller's ``metadata``.

    Parameters
    ----------
    checkpoint_path : path-like
        A run's ``checkpoint.npz``.
    out_path : path-like
        The model file to write.
    dtype : numpy dtype, optional
    metadata : dict, optional
        JSON-serialisable; stored beside ``"training"``.
    n_stages : int, optional
        Stages to keep (default all).

    Returns
    -------
    Network
        The exported network.
    """
    net, header, _ = read_model_file(checkpoint_path)
    state = header["metadata"].get("training_state", {})
    record = {"training": {key: state[key] for key in ("step", "elapsed_seconds", "config")
                           if key in state}}
    record.update(metadata or {})
    if n_stages is not None and n_stages != net.architecture.n_stages:
        if len(net.architecture.kernel_sizes) == 1:
            net = net.truncated(n_stages)
        else:
            # the coarse scales were trained with all their stages: keep
            # them, and run only the first stages of the finest scale
            net = Network(dataclasses.replace(net.architecture,
                                              inference_stages=n_stages),
                          net.params)
        record["training"]["exported_stages"] = n_stages
    exported = net.astype(dtype)
    save_model(exported, out_path, metadata=record)
    return exported


def recipe_path(out_path):
    """The recipe that :func:`export_run` writes beside ``out_path``."""
    return Path(out_path).with_suffix(".json")


def export_run(run_dir, out_path, *, n_stages=None):
    """Export a run's network (:func:`export_model`) and write its recipe.

    The recipe (:func:`recipe_path`, JSON) holds the equivalent training
    command, the steps, the training time, the validation curve and the
    run's configuration, and, for a run that started from a trained
    network, that ``parent_model`` (as named, and the SHA-256 of its file).
    Existing files are replaced.

    Parameters
    ----------
    run_dir : path-like
        A run folder with ``checkpoint.npz`` and ``config.json``.
    out_path : path-like
        The model file to write (float32).
    n_stages : int, optional
        Stages to keep (default all).

    Returns
    -------
    net : Network
        The exported network.
    recipe : dict
        The recipe as written.

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` holds no run.
    """
    run_dir, out_path = Path(run_dir), Path(out_path)
    checkpoint = run_dir / CHECKPOINT_FILE
    if not checkpoint.is_file() or not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"no training run in {run_dir} (need {CHECKPOINT_FILE} "
                                f"and {CONFIG_FILE})")
    config = read_config(run_dir)
    log = run_dir / LOG_FILE
    net = export_model(checkpoint, out_path, n_stages=n_stages)
    _, header, _ = read_model_file(out_path)
    training = header["metadata"]["training"]
    # A run still training logs ahead of its last checkpoint: the recipe
    # describes the checkpoint.
    curve = [[step, error] for step, error
             in validation_curve(read_log(log) if log.is_file() else [])
             if step <= training["step"]]
    recipe = {
        "model": out_path.name,
        "kernel_size": net.kernel_size,
        "architecture": net.architecture.to_dict(),
        "command": training_command(config).replace("STEPS", str(training["step"])),
        "steps": training["step"],
        "training_seconds": round(training["elapsed_seconds"], 1),
        "final_validation_kernel_error": curve[-1][1] if curve else None,
        "validation_curve": curve,
        "config": config,
    }
    if config.get("init_model"):
        recipe["parent_model"] = {"model": config["init_model"],
                                  "sha256": config.get("init_model_sha256")}
    if config.get("note"):
        # A run continued by hand with changed settings says so in its
        # config; the command above then only describes its last part.
        recipe["note"] = config["note"]
    write_json(recipe_path(out_path), recipe)
    return net, recipe
