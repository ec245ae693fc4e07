"""Optimisers of the training: ADADELTA (the paper's) and Adam.

Both update a dict of parameters in place from a dict of gradients, keep
their state per parameter name (a stage added later by the stage-wise
schedule starts with fresh state), and turn that state into flat arrays
that a checkpoint stores beside the network. derivations/training.md,
"Optimiser: ADADELTA", gives the update rules and the choice of constants.
"""

import dataclasses

import numpy as np

__all__ = ["Adadelta", "Adam", "OPTIMIZERS", "make_optimizer", "optimizer_settings"]


@dataclasses.dataclass
class Adadelta:
    """ADADELTA (Zeiler 2012) with a learning-rate multiplier.

    ``E[g²] ← ρ E[g²] + (1 − ρ) g²``,
    ``Δ = −sqrt(E[Δ²] + ε) / sqrt(E[g²] + ε) · g``,
    ``E[Δ²] ← ρ E[Δ²] + (1 − ρ) Δ²``, ``θ ← θ + lr · Δ``.

    The paper's "learning rate of 0.01" is read as the multiplier ``lr``
    (as ``torch.optim.Adadelta`` does); ε is not given in the paper, Zeiler's
    ``1e-6`` is used (derivations/training.md, "Optimiser: ADADELTA").
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
    "Optimiser: ADADELTA").
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


def _check_name(name):
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of "
                         f"{sorted(OPTIMIZERS)}")


def make_optimizer(settings):
    """The optimiser a run's ``config["optimizer"]`` names.

    Parameters
    ----------
    settings : dict
        ``{"name": "adam", "learning_rate": ...}``; without ``name``,
        ADADELTA (the paper's optimiser, whose settings carry no name).

    Returns
    -------
    Adadelta or Adam
        With fresh state.
    """
    settings = dict(settings)
    name = settings.pop("name", "adadelta")
    _check_name(name)
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
        settings carry no ``name``.
    """
    _check_name(name)
    settings = {} if name == "adadelta" else {"name": name}
    for field in dataclasses.fields(OPTIMIZERS[name]):
        if field.default is not dataclasses.MISSING:
            settings[field.name] = field.default
    if learning_rate is not None:
        settings["learning_rate"] = float(learning_rate)
    return settings
