"""The training loop: checkpoints, exact resume, graceful stop; :func:`train`.

Paper §3.3: the L2 kernel loss, ADADELTA with learning rate 0.01 and decay
0.95, stage-wise pre-training (one stage, then a second one with the first
frozen for a while, then end to end, then the third the same way), and
examples whose error is above 10 times the current average are not
back-propagated. derivations/training.md states what the paper leaves open
and the choices made.

A run lives in a folder (:mod:`refdeblur.training.config`). Resuming
restores the exact state, so ``N`` steps, an interruption and a resume give
bit-identical weights to an uninterrupted run of ``N`` steps
(derivations/training.md, "Reproducibility and resume").

With per-example seeding (``config["example_seeding"] == "per_example"``)
every example of a step is made and differentiated on its own
(:func:`example_result`), by :class:`LocalExamples` in this process or by
the workers of a cluster (:mod:`refdeblur.distributed`), and the step sums
the gradients in example order (:func:`per_example_step`); the weights are
the same bits wherever the examples were computed (derivations/training.md,
"Data-parallel training").

A run with ``config["init_model"]`` starts from that trained network
instead of random weights, and trains every stage it runs from step 0
(:func:`fine_tuning_phases`, derivations/fine_tuning.md).
"""

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from .._engine.threads import one_blas_thread
from ..model_io import read_model_file, save_model
from ..network import Network, build_network
from .config import (CHECKPOINT_FILE, CONFIG_FILE, LOG_FILE, example_seeding,
                     read_config, read_init_model, stage_loss_weight, teacher_forcing,
                     write_config)
from .data import load_run_data, run_content
from .log import read_log
from .optim import make_optimizer
from .schedule import Phase, phase_at, stagewise_schedule
from .step import OutlierFilter, kernel_errors, training_step
from .teacher_forcing import forced_kernels

__all__ = ["Trainer", "TrainingResult", "train", "ExampleResult", "example_seed",
           "example_result", "per_example_step", "LocalExamples", "fine_tuning_phases",
           "init_network"]


def fine_tuning_phases(architecture):
    """The schedule of a run that starts from a trained network: one phase.

    From step 0 the network runs the stages it runs at inference (all, or
    ``inference_stages`` of the finest scale for a network exported with
    fewer) and updates all of them, and every coarser scale: the parent is
    complete, so there is nothing to grow stage by stage, and a stage the
    parent does not run (untrained) stays out.

    Parameters
    ----------
    architecture : refdeblur.network.Architecture

    Returns
    -------
    list of Phase

    Examples
    --------
    >>> from refdeblur.network import Architecture
    >>> from refdeblur.training.trainer import fine_tuning_phases
    >>> fine_tuning_phases(Architecture(kernel_sizes=(17, 25), inference_stages=2))
    [Phase(first_step=0, n_stages=2, trainable=('scale2.stage1.', 'scale2.stage2.', 'scale1.'))]
    """
    n_scales = len(architecture.kernel_sizes)
    n_stages = architecture.inference_stages or architecture.n_stages
    trainable = tuple(f"scale{n_scales}.stage{s}." for s in range(1, n_stages + 1))
    trainable += tuple(f"scale{j}." for j in range(1, n_scales))
    return [Phase(0, n_stages, trainable)]


def init_network(config):
    """The network a run with ``config["init_model"]`` starts from, in its dtype.

    Parameters
    ----------
    config : dict
        With ``init_model``, ``kernel_size``, ``architecture``, ``dtype``
        and optionally ``init_model_sha256``.

    Returns
    -------
    refdeblur.network.Network
        A copy of the parent's parameters, cast to ``config["dtype"]``.

    Raises
    ------
    FileNotFoundError
        If the model is not found.
    ValueError
        If it is not a refdeblur model, its file is not the one the
        configuration recorded (SHA-256), or its architecture is not the
        configuration's.
    """
    parent, sha256 = read_init_model(config["init_model"])
    recorded = config.get("init_model_sha256")
    if recorded and recorded != sha256:
        raise ValueError(f"init model {config['init_model']} is not the file this "
                         f"run's configuration records (SHA-256 {recorded[:12]}..., "
                         f"found {sha256[:12]}...)")
    requested = dict(config.get("architecture", {}))
    if requested.get("kernel_prior") and not parent.architecture.kernel_prior:
        # adds no parameters: the parent's weights start the network with it
        # (derivations/fine_tuning.md, "Adding a prior kernel")
        parent = Network(dataclasses.replace(parent.architecture, kernel_prior=True),
                         parent.params)
    architecture = parent.architecture.to_dict()
    differing = sorted(key for key, value in requested.items()
                       if architecture.get(key) != value)
    if parent.kernel_size != int(config["kernel_size"]) or differing:
        raise ValueError(f"init model {config['init_model']} ({parent.kernel_size} px) "
                         f"does not have the run's architecture ({config['kernel_size']} "
                         f"px; differing: {', '.join(differing) or 'kernel size'})")
    return parent.astype(np.dtype(config.get("dtype", "float64")))


# ---------------------------------------------------------------------------
# Per-example seeding: one example's gradient, and the step that sums them
# ---------------------------------------------------------------------------

def example_seed(run_seed, step, index):
    """The seed of example ``index`` of step ``step`` (per-example seeding).

    ``step`` counts from 0 (the step that takes the run from ``step`` to
    ``step + 1`` steps done); the 2 keeps these generators apart from the
    initial weights' (``[seed]``) and the stream's (``[seed, 1]``).

    Examples
    --------
    >>> from refdeblur.training.trainer import example_seed
    >>> example_seed(3, 10, 1)
    [3, 2, 10, 1]
    """
    return [int(run_seed), 2, int(step), int(index)]


class ExampleResult(NamedTuple):
    """What :func:`example_result` computes for one example.

    Attributes
    ----------
    loss : numpy.floating
        The squared kernel error ``||k - k_true||^2``, in the network's
        precision.
    grads : dict of str to ndarray
        Its gradient with respect to the parameters ``phase.trainable``
        names (the gradient of the unweighted loss).
    seconds : float
        Time spent making the example and its gradient.
    """

    loss: np.floating
    grads: dict
    seconds: float


def example_result(source, net, phase, seed):
    """Make one training example and compute its loss and gradient.

    Parameters
    ----------
    source : callable
        ``source(rng) -> (blurry (c, c), kernel (m, m))``, e.g.
        :class:`refdeblur.training.data.ExampleSource`.
    net : refdeblur.network.Network
        Not modified.
    phase : Phase
        Stages run and parameters differentiated.
    seed : list of int
        :func:`example_seed`; the example's generator is
        ``numpy.random.default_rng(seed)``.

    Returns
    -------
    ExampleResult
    """
    started = time.perf_counter()
    # one BLAS thread: see training_step
    with one_blas_thread():
        blurry, true_kernel = source(np.random.default_rng(seed))
        output, cache = net.forward_with_cache(blurry[None], n_stages=phase.n_stages)
        kernel = output.kernel
        residual = kernel - np.asarray(true_kernel[None], dtype=kernel.dtype)
        loss = np.sum(residual ** 2)
        grads, _ = net.backward((2.0 * residual).astype(residual.dtype), cache,
                                trainable=phase.trainable)
    trainable = {name: grads[name] for name in net.params
                 if name.startswith(phase.trainable)}
    return ExampleResult(loss, trainable, time.perf_counter() - started)


def per_example_step(net, optimizer, outliers, results, phase):
    """One optimiser step from the per-example results of a batch.

    The loss is the mean squared kernel error over the examples the outlier
    rule keeps, as in :func:`refdeblur.training.step.training_step`; its
    gradient is the sum of the kept examples' gradients, added in example
    order, divided by their number.

    Parameters
    ----------
    net : refdeblur.network.Network
        Updated in place.
    optimizer : Adadelta or Adam
    outliers : OutlierFilter
        Its running average is updated, example after example.
    results : list of ExampleResult
        The batch's examples, in example order.
    phase : Phase

    Returns
    -------
    losses : ndarray, shape (N,)
        Per-example squared kernel errors before the step.
    keep : ndarray, shape (N,)
        1 for the examples whose gradient counts, 0 for the outliers.
    """
    losses = np.array([result.loss for result in results], dtype=net.dtype)
    keep = outliers.mask(losses)
    kept = [result.grads for result, weight in zip(results, keep) if weight]
    if kept:
        names = [name for name in net.params if name.startswith(phase.trainable)]
        grads = {name: kept[0][name].copy() for name in names}
        for example in kept[1:]:
            for name in names:
                grads[name] += example[name]
        for name in names:
            grads[name] /= len(kept)
        optimizer.update(net.params, grads, names)
    return losses, keep


class LocalExamples:
    """Computes the examples of a step one after the other, in this process.

    Parameters
    ----------
    source : callable
        ``source(rng) -> (blurry, kernel)``
        (:class:`refdeblur.training.data.ExampleSource`).
    """

    def __init__(self, source):
        self.source = source

    def __call__(self, net, phase, seeds):
        """The :class:`ExampleResult` of every seed, in the order given."""
        return [example_result(self.source, net, phase, seed) for seed in seeds]


class Trainer:
    """Runs, checkpoints and resumes a training run in a folder.

    Parameters
    ----------
    run_dir : path-like
    config : dict
        JSON-serialisable; see :func:`refdeblur.training.default_config`.
    batch_source : callable
        ``batch_source(rng, batch_size) -> (blurry (N, c, c), kernels (N, m, m))``;
        must draw all randomness from ``rng``. Used with the stream of
        examples (the default ``example_seeding``).
    validation : tuple of ndarray
        Fixed ``(blurry, kernels)`` for periodic validation.
    examples : callable, optional
        ``examples(net, phase, seeds)`` returns the :class:`ExampleResult`
        of every seed, in order (:class:`LocalExamples`, or the workers of
        :class:`refdeblur.distributed.DaskExamples`); required with
        per-example seeding.
    """

    def __init__(self, run_dir, config, batch_source, validation, *, examples=None):
        self.run_dir = Path(run_dir)
        self.config = config
        self.batch_source = batch_source
        self.validation = validation
        self.per_example = example_seeding(config) == "per_example"
        if self.per_example and (teacher_forcing(config)[0] > 0
                                 or stage_loss_weight(config) > 0):
            raise ValueError("teacher forcing and a loss on every stage need the "
                             "stream of examples (example_seeding 'stream')")
        if self.per_example and examples is None:
            raise ValueError("per-example seeding needs the examples' computation "
                             "(examples=LocalExamples(source))")
        self.examples = examples
        self.checkpoint_path = self.run_dir / CHECKPOINT_FILE
        self.log_path = self.run_dir / LOG_FILE
        self.stop_requested = False

    # -- state ---------------------------------------------------------------
    def initialise(self):
        """Fresh network, optimiser, generator and outlier filter."""
        config = self.config
        seed = config["seed"]
        if config.get("init_model"):
            net = init_network(config)
        else:
            net = build_network(config["kernel_size"], rng=np.random.default_rng(seed),
                                dtype=np.dtype(config.get("dtype", "float64")),
                                **config["architecture"])
        if config.get("base_model"):
            base, _, _ = read_model_file(config["base_model"])
            for name, value in base.params.items():
                if name not in net.params or net.params[name].shape != value.shape:
                    raise ValueError(f"base model parameter {name} does not fit "
                                     f"the network being trained")
                net.params[name] = value.astype(net.dtype).copy()
        self.net = net
        self.optimizer = make_optimizer(config["optimizer"])
        self.rng = np.random.default_rng([seed, 1])   # data stream, separate from init
        self.outliers = OutlierFilter(**config["outliers"])
        self.step = 0
        self.elapsed = 0.0

    def save_checkpoint(self):
        """Write the complete state atomically."""
        state = {
            "step": self.step,
            "elapsed_seconds": self.elapsed,
            "rng_state": self.rng.bit_generator.state,
            "outliers": dataclasses.asdict(self.outliers),
            "config": self.config,
        }
        save_model(self.net, self.checkpoint_path,
                   metadata={"training_state": state},
                   extra_arrays=self.optimizer.state_arrays())

    def load_checkpoint(self):
        """Restore the state written by :meth:`save_checkpoint`."""
        net, header, extra = read_model_file(self.checkpoint_path)
        state = header["metadata"]["training_state"]
        self.net = net
        self.optimizer = make_optimizer(self.config["optimizer"])
        self.optimizer.load_state_arrays(extra)
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng_state"]
        self.outliers = OutlierFilter(**state["outliers"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed_seconds"])
        self._discard_work_after_checkpoint()

    def _discard_work_after_checkpoint(self):
        """Forget what a killed process did after its last checkpoint.

        Those steps will be recomputed identically, so their log records are
        dropped (they would otherwise appear twice), and so is a temporary
        file of a checkpoint that was being written when the process died.
        """
        for leftover in self.run_dir.glob(f".{self.checkpoint_path.name}.*.tmp"):
            leftover.unlink()
        if self.log_path.exists():
            kept = [json.dumps(record) for record in read_log(self.log_path)
                    if record.get("step", 0) <= self.step]
            temporary = self.log_path.with_name(f".{self.log_path.name}.tmp")
            temporary.write_text("".join(line + "\n" for line in kept),
                                 encoding="utf-8")
            os.replace(temporary, self.log_path)

    # -- logging ---------------------------------------------------------------
    def log(self, record):
        """Append one record to ``log.jsonl``."""
        with open(self.log_path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")

    def logged_validation(self):
        """The last validation error in ``log.jsonl`` (None if there is none)."""
        if not self.log_path.exists():
            return None
        errors = [record["validation"] for record in read_log(self.log_path)
                  if "validation" in record and record.get("step", 0) <= self.step]
        return errors[-1] if errors else None

    def validate(self, phase):
        """Mean squared kernel error of the validation set."""
        blurry, kernels = self.validation
        errors = kernel_errors(self.net, blurry, kernels, n_stages=phase.n_stages)
        return float(np.mean(errors))

    # -- the loop --------------------------------------------------------------
    def run(self, total_steps, *, progress=None, checkpoint_seconds=300.0,
            stop_signals=()):
        """Train up to ``total_steps`` (global), checkpointing on the way.

        Parameters
        ----------
        total_steps : int
            Global step at which the run stops.
        progress : callable, optional
            Called after every step as ``progress(step, running_loss,
            validation_error)``.
        checkpoint_seconds : float, optional
            Wall time between two checkpoints; one is also written at the end.
        stop_signals : tuple of signal.Signals, optional
            Signals that end the run gracefully (the current step finishes,
            a checkpoint is written) while it lasts; handled only in the
            main thread, where Python delivers signals.

        Returns
        -------
        float
            The last validation error (NaN if none was computed).
        """
        # one BLAS thread for the batches and the validation too (see training_step)
        with self._stopping_on(stop_signals), one_blas_thread():
            return self._run(total_steps, progress, checkpoint_seconds)

    @contextlib.contextmanager
    def _stopping_on(self, signals):
        if not signals or threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum, frame):
            self.stop_requested = True

        previous = {number: signal.signal(number, request_stop) for number in signals}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, signal.SIG_DFL if handler is None else handler)

    def _run(self, total_steps, progress, checkpoint_seconds):
        config = self.config
        phases = self.phases()
        last_checkpoint = time.monotonic()
        validation_error = math.nan
        running_loss = None
        while self.step < total_steps and not self.stop_requested:
            phase = phase_at(phases, self.step)
            started = time.monotonic()
            losses, keep = self.take_step(phase)
            self.step += 1
            self.elapsed += time.monotonic() - started
            batch_loss = float(np.mean(losses))
            running_loss = (batch_loss if running_loss is None
                            else 0.98 * running_loss + 0.02 * batch_loss)
            record = {"step": self.step, "loss": batch_loss,
                      "skipped": int(len(keep) - keep.sum()),
                      "n_stages": phase.n_stages, "elapsed": round(self.elapsed, 3)}
            if (self.step % config["validate_every"] == 0
                    or self.step == total_steps):
                validation_error = self.validate(phase)
                record["validation"] = validation_error
            if self.step % config["log_every"] == 0 or "validation" in record:
                self.log(record)
            if progress is not None:
                progress(self.step, running_loss, validation_error)
            if time.monotonic() - last_checkpoint >= checkpoint_seconds:
                self.save_checkpoint()
                last_checkpoint = time.monotonic()
        self.save_checkpoint()
        return validation_error

    def take_step(self, phase):
        """One optimiser step at ``self.step``; returns ``(losses, keep)``."""
        batch_size = self.config["batch_size"]
        if self.per_example:
            seeds = [example_seed(self.config["seed"], self.step, index)
                     for index in range(batch_size)]
            results = self.examples(self.net, phase, seeds)
            return per_example_step(self.net, self.optimizer, self.outliers, results,
                                    phase)
        blurry, kernels = self.batch_source(self.rng, batch_size)
        forcing = teacher_forcing(self.config)
        forced = None
        if forcing.probability > 0 and (forcing.until_step is None
                                        or self.step < forcing.until_step):
            arch = self.net.architecture
            forced = forced_kernels(self.rng, kernels, phase.n_stages, forcing.probability,
                                    scale_sizes=arch.kernel_sizes,
                                    scale_stages=[arch.n_stages] * len(arch.kernel_sizes),
                                    strength_power=forcing.strength_power)
        return training_step(self.net, self.optimizer, self.outliers, blurry, kernels,
                             phase, forced=forced,
                             stage_loss_weight=stage_loss_weight(self.config))

    def phases(self):
        """The stage-wise schedule of this run (:func:`stagewise_schedule`).

        A run from a trained network has one phase instead
        (:func:`fine_tuning_phases`).
        """
        config = self.config
        if config.get("init_model"):
            return fine_tuning_phases(self.net.architecture)
        n_scales = len(self.net.architecture.kernel_sizes)
        return stagewise_schedule(
            config["stage_steps"], config["frozen_steps"],
            self.net.architecture.n_stages, f"scale{n_scales}.",
            train_coarse_at_end=config["train_coarse_at_end"],
            coarse_prefixes=tuple(f"scale{j}." for j in range(1, n_scales)))


class TrainingResult(NamedTuple):
    """What :func:`train` returns.

    Attributes
    ----------
    step : int
        The global step reached.
    validation_error : float
        The last validation error of this call (NaN if none was computed).
    stopped : bool
        True if a signal ended the run before ``steps``.
    checkpoint : pathlib.Path
        The run's checkpoint.
    """

    step: int
    validation_error: float
    stopped: bool
    checkpoint: Path


def train(config=None, *, out_dir, steps, resume=False, progress=False,
          checkpoint_seconds=300.0, examples=None):
    """Train a network, or continue a run, in the folder ``out_dir``.

    A new run writes ``config.json`` and a first checkpoint once its data
    are loaded and its network built. SIGINT and SIGTERM (in the main
    thread) end the run gracefully with a checkpoint; ``resume=True`` then
    continues it exactly.

    Parameters
    ----------
    config : dict or None
        The configuration of a new run
        (:func:`refdeblur.training.default_config`, with ``images`` set);
        None when resuming, which uses the run's ``config.json``.
    out_dir : path-like
        The run folder.
    steps : int
        Global step up to which to train (a resumed run continues to this
        total).
    resume : bool, optional
        Continue from the checkpoint in ``out_dir``.
    progress : bool or callable, optional
        True draws a progress bar on stderr, after a line saying how the
        images were split into training and validation; it shows the last
        validation error once there is one (after a resume, the log's). A
        callable is called after every step as ``progress(step,
        running_loss, validation_error)``, the error NaN before the first
        validation of this call.
    checkpoint_seconds : float, optional
        Wall time between two checkpoints.
    examples : callable, optional
        With per-example seeding, ``examples(source)`` returns what computes
        a step's examples from the run's
        :class:`~refdeblur.training.data.ExampleSource` (see
        :class:`Trainer`); default :class:`LocalExamples`, in this process.
        Not allowed for a run that draws its examples from one stream.

    Returns
    -------
    TrainingResult

    Raises
    ------
    ValueError
        For a bad argument or configuration, or too few usable images.
    FileNotFoundError
        If ``resume`` finds no run in ``out_dir``.
    FileExistsError
        If a new run would overwrite one in ``out_dir``.
    """
    run_dir = Path(out_dir)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if resume:
        if config is not None:
            raise ValueError("a resumed run uses its own config.json; pass config=None")
        if not (run_dir / CHECKPOINT_FILE).is_file() or not (run_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"nothing to resume in {run_dir} (no "
                                    f"{CHECKPOINT_FILE} and {CONFIG_FILE})")
        config = read_config(run_dir)
    else:
        if config is None:
            raise ValueError("a new run needs a config (see default_config)")
        if config.get("images") is None and run_content(config) == "natural":
            raise ValueError("the config names no image folder (config['images'])")
        if config.get("init_model") and config.get("base_model"):
            raise ValueError("a run starts from an init model or builds on a base "
                             "model, not both")
        if (run_dir / CHECKPOINT_FILE).exists():
            raise FileExistsError(f"{run_dir} already holds a run; resume it or "
                                  f"choose another folder")
    per_example = example_seeding(config) == "per_example"
    if examples is not None and not per_example:
        raise ValueError("this run draws its examples from one stream; computing them "
                         "elsewhere needs per-example seeding (example_seeding "
                         "'per_example', set when the run starts)")
    # One BLAS thread throughout: the validation kernels (a Cholesky factor)
    # and every step then round the same whatever the machine.
    with one_blas_thread():
        data = load_run_data(config)
        computation = None
        if per_example:
            computation = (examples or LocalExamples)(data.example_source)
        trainer = Trainer(run_dir, config, data.batch_source, data.validation,
                          examples=computation)
        if resume:
            trainer.load_checkpoint()
        else:
            trainer.initialise()
            run_dir.mkdir(parents=True, exist_ok=True)
            write_config(run_dir, config)
            trainer.save_checkpoint()
        last_validation = None
        if progress is True:
            print(data.split, file=sys.stderr)
            last_validation = trainer.logged_validation()
        with _progress_callback(progress, steps, trainer.step,
                                last_validation) as callback:
            error = trainer.run(steps, progress=callback,
                                checkpoint_seconds=checkpoint_seconds,
                                stop_signals=(signal.SIGTERM, signal.SIGINT))
    return TrainingResult(trainer.step, error, trainer.stop_requested,
                          trainer.checkpoint_path)


@contextlib.contextmanager
def _progress_callback(progress, total, initial, last_validation=None):
    """The ``progress`` argument of :func:`train` as a callback (or None).

    The bar shows ``val=`` only once a validation error is known:
    ``last_validation`` (from the log of a resumed run) until this call
    computes one.
    """
    if callable(progress) or not progress:
        yield progress or None
        return
    shown = {"val": last_validation}
    bar = tqdm(total=total, initial=min(initial, total), unit="step",
               dynamic_ncols=True, file=sys.stderr,
               postfix=None if last_validation is None else {"val": f"{last_validation:.3g}"})

    def update(step, loss, validation_error):
        if not math.isnan(validation_error):
            shown["val"] = validation_error
        postfix = {"loss": f"{loss:.3g}"}
        if shown["val"] is not None:
            postfix["val"] = f"{shown['val']:.3g}"
        bar.set_postfix(postfix, refresh=False)
        bar.update(step - bar.n)

    try:
        yield update
    finally:
        bar.close()
