"""Training: ADADELTA, the stage-wise schedule, outliers, checkpoints, resume.

Paper §3.3: the L2 kernel loss, ADADELTA with learning rate 0.01 and decay
0.95, stage-wise pre-training (one stage, then a second one with the first
frozen for a while, then end to end, then the third the same way), and
examples whose error is above 10 times the current average are not
back-propagated. Method-spec §5 fills in what the paper leaves open; the
choices are listed in derivations/training.md.

A run is a folder holding ``checkpoint.npz`` (a model file that
:func:`refdeblur.load_model` reads, with the optimiser and random-generator
state stored alongside), ``log.jsonl`` (one JSON object per logged step or
validation) and ``config.json``. Resuming restores the exact state, so
``N`` steps, an interruption and a resume give bit-identical weights to an
uninterrupted run of ``N`` steps.
"""

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from .model_io import read_model_file, save_model
from .network import Network, build_network
from .training_plot import read_log


@dataclasses.dataclass
class Adadelta:
    """ADADELTA (Zeiler 2012) with a learning-rate multiplier.

    ``E[g²] ← ρ E[g²] + (1 − ρ) g²``,
    ``Δ = −sqrt(E[Δ²] + ε) / sqrt(E[g²] + ε) · g``,
    ``E[Δ²] ← ρ E[Δ²] + (1 − ρ) Δ²``, ``θ ← θ + lr · Δ``.

    The paper's "learning rate of 0.01" is read as the multiplier ``lr``
    (as ``torch.optim.Adadelta`` does); ε is not given in the paper, Zeiler's
    ``1e-6`` is used (method-spec §5).
    """

    learning_rate: float = 0.01
    decay: float = 0.95
    eps: float = 1e-6
    mean_square_grad: dict = dataclasses.field(default_factory=dict)
    mean_square_step: dict = dataclasses.field(default_factory=dict)

    def update(self, params, grads, names):
        """Update ``params[name]`` in place for every name in ``names``."""
        rho = self.decay
        for name in names:
            grad = grads[name]
            if name not in self.mean_square_grad:
                self.mean_square_grad[name] = np.zeros_like(grad)
                self.mean_square_step[name] = np.zeros_like(grad)
            msg = self.mean_square_grad[name]
            mss = self.mean_square_step[name]
            msg *= rho
            msg += (1.0 - rho) * grad * grad
            step = -np.sqrt(mss + self.eps) / np.sqrt(msg + self.eps) * grad
            mss *= rho
            mss += (1.0 - rho) * step * step
            params[name] += self.learning_rate * step

    def state_arrays(self):
        """The accumulators as a flat dict of arrays (for checkpoints)."""
        arrays = {}
        for name, value in self.mean_square_grad.items():
            arrays[f"adadelta/msg/{name}"] = value
            arrays[f"adadelta/mss/{name}"] = self.mean_square_step[name]
        return arrays

    def load_state_arrays(self, arrays):
        """Inverse of :meth:`state_arrays`."""
        self.mean_square_grad = {k[len("adadelta/msg/"):]: v.copy()
                                 for k, v in arrays.items()
                                 if k.startswith("adadelta/msg/")}
        self.mean_square_step = {k[len("adadelta/mss/"):]: v.copy()
                                 for k, v in arrays.items()
                                 if k.startswith("adadelta/mss/")}


@dataclasses.dataclass
class Adam:
    """Adam (Kingma & Ba 2015), the optimiser of the shipped models.

    ``m ← β₁ m + (1 − β₁) g``, ``v ← β₂ v + (1 − β₂) g²``,
    ``θ ← θ − lr · m̂ / (sqrt(v̂) + ε)`` with the bias corrections
    ``m̂ = m / (1 − β₁ᵗ)``, ``v̂ = v / (1 − β₂ᵗ)``.

    Not the paper's choice (it used ADADELTA, :class:`Adadelta`): with the
    10⁴ steps a 2-core machine affords instead of the paper's 10⁶, ADADELTA's
    steps stay too small, and Adam reaches in hundreds of steps what
    ADADELTA reaches in thousands (measured in derivations/training.md,
    "Optimiser").
    """

    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    first_moment: dict = dataclasses.field(default_factory=dict)
    second_moment: dict = dataclasses.field(default_factory=dict)
    steps: dict = dataclasses.field(default_factory=dict)

    def update(self, params, grads, names):
        """Update ``params[name]`` in place for every name in ``names``."""
        for name in names:
            grad = grads[name]
            if name not in self.first_moment:
                self.first_moment[name] = np.zeros_like(grad)
                self.second_moment[name] = np.zeros_like(grad)
                self.steps[name] = 0
            # per parameter, because the stage-wise schedule starts
            # updating a stage long after the first one
            self.steps[name] += 1
            t = self.steps[name]
            m = self.first_moment[name]
            v = self.second_moment[name]
            m *= self.beta1
            m += (1.0 - self.beta1) * grad
            v *= self.beta2
            v += (1.0 - self.beta2) * grad * grad
            step_size = self.learning_rate / (1.0 - self.beta1 ** t)
            root = np.sqrt(v / (1.0 - self.beta2 ** t)) + self.eps
            params[name] -= (step_size * m / root).astype(params[name].dtype,
                                                           copy=False)

    def state_arrays(self):
        """The moments and step counts as a flat dict of arrays."""
        arrays = {}
        for name, value in self.first_moment.items():
            arrays[f"adam/m/{name}"] = value
            arrays[f"adam/v/{name}"] = self.second_moment[name]
            arrays[f"adam/t/{name}"] = np.array(self.steps[name], dtype=np.int64)
        return arrays

    def load_state_arrays(self, arrays):
        """Inverse of :meth:`state_arrays`."""
        def strip(prefix):
            return {k[len(prefix):]: v for k, v in arrays.items()
                    if k.startswith(prefix)}
        self.first_moment = {k: v.copy() for k, v in strip("adam/m/").items()}
        self.second_moment = {k: v.copy() for k, v in strip("adam/v/").items()}
        self.steps = {k: int(v) for k, v in strip("adam/t/").items()}


OPTIMIZERS = {"adadelta": Adadelta, "adam": Adam}


def make_optimizer(settings):
    """The optimiser a run's ``config["optimizer"]`` names.

    ``{"name": "adam", "learning_rate": ...}``; without ``name`` (runs made
    before Adam existed) ADADELTA.
    """
    settings = dict(settings)
    name = settings.pop("name", "adadelta")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of "
                         f"{sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](**settings)


def optimizer_settings(name="adadelta", learning_rate=None):
    """``config["optimizer"]`` of a new run: the optimiser's defaults.

    Parameters
    ----------
    name : {"adadelta", "adam"}
    learning_rate : float, optional
        Overrides the optimiser's default step (ADADELTA 0.01, Adam 1e-3).

    Returns
    -------
    dict
        JSON-compatible; :func:`make_optimizer` reads it back. ADADELTA's
        settings carry no ``name``, like those of runs made before Adam.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of "
                         f"{sorted(OPTIMIZERS)}")
    settings = {} if name == "adadelta" else {"name": name}
    for field in dataclasses.fields(OPTIMIZERS[name]):
        if field.default is not dataclasses.MISSING:
            settings[field.name] = field.default
    if learning_rate is not None:
        settings["learning_rate"] = float(learning_rate)
    return settings


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of training: which stages run and which are updated."""

    first_step: int       # global step at which the phase starts
    n_stages: int         # stages run at the finest scale
    trainable: tuple      # name prefixes of the parameters that are updated


def stagewise_schedule(stage_steps, frozen_steps, n_stages, scale_prefix, *,
                       train_coarse_at_end=False, coarse_prefixes=()):
    """The paper's stage-wise pre-training schedule.

    The paper trains one stage for about a million steps, then adds the next
    stage and updates only it for 1,000 steps, then trains end to end until
    the next stage is added (§3.3). Here stage ``s`` is added at global step
    ``(s - 1) * stage_steps``; for its first ``frozen_steps`` steps only the
    new stage is updated; the last stage then trains end to end for as long
    as the run goes on. The schedule depends on nothing but the
    configuration, so stopping a run early and resuming it changes nothing.

    Parameters
    ----------
    stage_steps : int
        Steps between the addition of two stages.
    frozen_steps : int
        Steps during which only a newly added stage is updated.
    n_stages : int
    scale_prefix : str
        Parameter-name prefix of the scale being trained, e.g. ``"scale1."``.
    train_coarse_at_end : bool, optional
        Once the last stage trains end to end, also update the coarser
        scales (end-to-end fine-tuning of a multi-scale network).
    coarse_prefixes : tuple of str, optional
        Their name prefixes.

    Returns
    -------
    list of Phase
    """
    phases = []
    for stage in range(1, n_stages + 1):
        start = (stage - 1) * int(stage_steps)
        end_to_end = tuple(f"{scale_prefix}stage{s}." for s in range(1, stage + 1))
        if stage == 1:
            phases.append(Phase(start, 1, end_to_end))
            continue
        phases.append(Phase(start, stage, (f"{scale_prefix}stage{stage}.",)))
        phases.append(Phase(start + int(frozen_steps), stage, end_to_end))
    if train_coarse_at_end and coarse_prefixes:
        last = phases[-1]
        phases[-1] = Phase(last.first_step, last.n_stages,
                           last.trainable + tuple(coarse_prefixes))
    return phases


def phase_at(phases, step):
    """The phase that global step ``step`` belongs to."""
    current = phases[0]
    for phase in phases:
        if phase.first_step <= step:
            current = phase
    return current


@dataclasses.dataclass
class OutlierFilter:
    """Skip examples whose loss is above ``factor`` times the running average.

    Paper §3.3: "we don't back-propagate examples with an error above 10
    times the current average error". The average is an exponential moving
    average of the per-example loss (decay 0.999), updated with every example
    (method-spec O8); during the first ``warmup`` examples nothing is skipped.
    """

    factor: float = 10.0
    decay: float = 0.999
    warmup: int = 500
    average: float = 0.0
    seen: int = 0

    def mask(self, losses):
        """Return a 0/1 weight per example and update the running average."""
        keep = np.ones(len(losses))
        for index, loss in enumerate(losses):
            if self.seen >= self.warmup and loss > self.factor * self.average:
                keep[index] = 0.0
            if self.seen == 0:
                self.average = float(loss)
            else:
                self.average = (self.decay * self.average
                                + (1.0 - self.decay) * float(loss))
            self.seen += 1
        return keep


def kernel_errors(net, images, true_kernels, *, n_stages=None, batch_size=8):
    """Per-example squared kernel error ``||k - k_true||^2``."""
    errors = []
    for start in range(0, len(images), batch_size):
        output = net.forward(images[start:start + batch_size], n_stages=n_stages)
        residual = output.kernel - true_kernels[start:start + batch_size]
        errors.append(np.sum(residual ** 2, axis=(1, 2)))
    return np.concatenate(errors)


def training_step(net, optimizer, outliers, blurry, true_kernels, phase):
    """One ADADELTA step on a mini-batch; returns per-example losses and the mask."""
    output, cache = net.forward_with_cache(blurry, n_stages=phase.n_stages)
    # in the network's precision: float64 targets would turn the backward
    # pass of a float32 network into float64 up to the first convolution
    residual = output.kernel - np.asarray(true_kernels, dtype=output.kernel.dtype)
    losses = np.sum(residual ** 2, axis=(1, 2))
    keep = outliers.mask(losses)
    if keep.sum() > 0:
        weights = keep[:, None, None] / keep.sum()
        grads, _ = net.backward((2.0 * residual * weights).astype(residual.dtype),
                                cache, trainable=phase.trainable)
        names = [name for name in net.params
                 if name.startswith(phase.trainable)]
        optimizer.update(net.params, grads, names)
    return losses, keep


class Trainer:
    """Runs, checkpoints and resumes a training run in a folder.

    Parameters
    ----------
    run_dir : path-like
    config : dict
        JSON-serialisable; see :func:`default_config`.
    batch_source : callable
        ``batch_source(rng, batch_size) -> (blurry (N, c, c), kernels (N, m, m))``;
        must draw all randomness from ``rng``.
    validation : tuple of ndarray
        Fixed ``(blurry, kernels)`` for periodic validation.
    """

    def __init__(self, run_dir, config, batch_source, validation):
        self.run_dir = Path(run_dir)
        self.config = config
        self.batch_source = batch_source
        self.validation = validation
        self.checkpoint_path = self.run_dir / "checkpoint.npz"
        self.log_path = self.run_dir / "log.jsonl"
        self.stop_requested = False

    # -- state ---------------------------------------------------------------
    def initialise(self):
        """Fresh network, optimiser, generator and outlier filter."""
        config = self.config
        seed = config["seed"]
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
        with open(self.log_path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")

    def validate(self, phase):
        blurry, kernels = self.validation
        errors = kernel_errors(self.net, blurry, kernels, n_stages=phase.n_stages)
        return float(np.mean(errors))

    # -- the loop --------------------------------------------------------------
    def run(self, total_steps, *, progress=None, checkpoint_seconds=300.0):
        """Train up to ``total_steps`` (global), checkpointing on the way.

        Returns the last validation error.
        """
        config = self.config
        phases = self.phases()
        last_checkpoint = time.monotonic()
        validation_error = math.nan
        running_loss = None
        while self.step < total_steps and not self.stop_requested:
            phase = phase_at(phases, self.step)
            started = time.monotonic()
            blurry, kernels = self.batch_source(self.rng, config["batch_size"])
            losses, keep = training_step(self.net, self.optimizer, self.outliers,
                                         blurry, kernels, phase)
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

    def phases(self):
        """The stage-wise schedule of this run (:func:`stagewise_schedule`)."""
        config = self.config
        n_scales = len(self.net.architecture.kernel_sizes)
        return stagewise_schedule(
            config["stage_steps"], config["frozen_steps"],
            self.net.architecture.n_stages, f"scale{n_scales}.",
            train_coarse_at_end=config["train_coarse_at_end"],
            coarse_prefixes=tuple(f"scale{j}." for j in range(1, n_scales)))


def default_config(kernel_size, **overrides):
    """The training configuration with its defaults; stored in ``config.json``."""
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
    }
    for key, value in overrides.items():
        if key not in config:
            raise ValueError(f"unknown training option {key!r}")
        config[key] = value
    return config


def export_model(checkpoint_path, out_path, *, dtype=np.float32, metadata=None,
                 n_stages=None):
    """Write the network of a training checkpoint as a compact model file.

    Drops the optimiser state and casts the parameters to ``dtype``
    (float32 halves the file; inference runs in float32 anyway); with
    ``n_stages``, keeps only the first stages of every scale. The
    checkpoint's training state (configuration, step, elapsed time) is kept
    in the metadata under ``"training"``, next to the caller's ``metadata``.

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
