"""The configuration of a training run and the layout of its folder.

A run folder holds ``config.json`` (:func:`default_config`, written once when
the run starts), ``checkpoint.npz`` (a model file that
:func:`refdeblur.load_model` reads, with the optimiser and random-generator
state stored alongside) and ``log.jsonl`` (:mod:`refdeblur.training.log`).
Paths inside the configuration (``images``, ``base_model``,
``init_model``, ``validation_folder``) are used as written, relative to the
working directory of the process that trains.

:data:`RECIPES` names the configurations of the shipped networks;
:func:`recipe_config` reads one from the network's recipe file.
:func:`fine_tuning_config` is the configuration of a run that starts from
a trained network (derivations/fine_tuning.md).
"""

import json
from pathlib import Path
from typing import NamedTuple

from ..model_io import read_model_file
from ..models import model_sha256, shipped_model_path
from ..network import DEFAULT_SCALES
from .optim import optimizer_settings

__all__ = ["CONFIG_FILE", "CHECKPOINT_FILE", "LOG_FILE", "RECIPES", "EXAMPLE_SEEDINGS",
           "FINE_TUNING_LEARNING_RATE", "SHIPPED_INIT_NAMES",
           "default_config", "example_seeding", "TeacherForcing", "teacher_forcing", "stage_loss_weight",
           "recipe_config", "recipe_steps",
           "architecture_options", "read_config", "write_config", "training_command",
           "resolve_init_model", "read_init_model", "fine_tuning_config"]

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
LOG_FILE = "log.jsonl"

#: How a run draws its training examples (``config["example_seeding"]``):
#: ``"stream"``, one generator whose state the checkpoint stores, the batch
#: drawn from it example after example (a configuration without the key);
#: ``"per_example"``, example ``i`` of step ``s`` from a generator of its own,
#: ``numpy.random.default_rng([seed, 2, s, i])``, so that examples can be
#: made anywhere, in any order (derivations/training.md, "Data-parallel
#: training").
EXAMPLE_SEEDINGS = ("stream", "per_example")

#: Adam's step size of a run that starts from a trained network: a tenth of
#: the 1e-3 that trains a network from random weights, so that the first
#: steps, with fresh moment estimates, do not undo what the parent learned
#: (derivations/fine_tuning.md, "Learning rate").
FINE_TUNING_LEARNING_RATE = 1e-4

#: The names ``--init`` accepts for the shipped networks.
SHIPPED_INIT_NAMES = ("k17", "k25", "k33")

#: The shipped networks whose configuration :func:`recipe_config` gives,
#: with what that configuration trains and the base network it starts from
#: (the file the shipped run used, in ``benchmarks/training_runs/``).
RECIPES = {
    "k17": ("the last of the shipped 17 px network's three phases: 6,355 steps "
            "fine-tuning all three stages on 128 px crops, Adam 1e-4, from the "
            "second phase's network (init k17_ft_c256.npz: 13,407 steps on 128 px "
            "crops, Adam 1e-3 then 3e-4, then 2,059 steps on 256 px crops, Adam 3e-4); "
            "run from the repository root, where the recipe finds its init model"),
    "k25": ("a 25 px scale (17 x 17 filters, Adam 1e-3, 256 px crops, a stage "
            "every 2,000 steps) on a frozen 17 px network (base base17f17_for25.npz); "
            "15,561 steps, all three stages"),
    "k33": ("a 33 px scale (17 x 17 filters, Adam 1e-3, 256 px crops, a stage "
            "every 3,000 steps) on a frozen 25 px network (base "
            "base25f17c256_for33.npz); 6,277 steps, exported with --stages 2"),
}


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
        can use it. Validation uses the images of ``validation_folder`` if
        set, else ``validation_fraction`` of the training images if set,
        else ``validation_images`` of them
        (:func:`refdeblur.training.data.validation_split`); a configuration
        without the two newer keys means they are None.
        ``example_seeding`` (:data:`EXAMPLE_SEEDINGS`) is recorded only when
        ``"per_example"``, so that a configuration without it means
        ``"stream"``, as for every run made before it existed.
        ``init_model`` (and its ``init_model_sha256``) names the trained
        network a run starts from (:func:`fine_tuning_config`);
        ``content`` is ``"natural"`` (the images of ``images``) or
        ``"text"`` (synthetic document pages, ``documents``,
        :data:`refdeblur.training.data.DOCUMENT_DEFAULTS`). A configuration
        without these keys means None, None, ``"natural"`` and None.
        ``noise_std`` is a level or a range ``[low, high]``
        (:func:`refdeblur.training.data.check_noise_std`).

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
        "validation_fraction": None,
        "validation_folder": None,
        "init_model": None,
        "init_model_sha256": None,
        "content": "natural",
        "documents": None,
    }
    seeding = overrides.pop("example_seeding", "stream")
    forcing = overrides.pop("teacher_forcing", None)
    stage_weight = overrides.pop("stage_loss_weight", 0.0)
    for key, value in overrides.items():
        if key not in config:
            raise ValueError(f"unknown training option {key!r}")
        config[key] = value
    if example_seeding({"example_seeding": seeding}) == "per_example":
        config["example_seeding"] = seeding
    if forcing is not None and teacher_forcing({"teacher_forcing": forcing})[0] > 0:
        if example_seeding(config) != "stream":
            raise ValueError("teacher forcing needs the stream of examples "
                             "(example_seeding 'stream')")
        config["teacher_forcing"] = dict(forcing)
    if stage_loss_weight({"stage_loss_weight": stage_weight}) > 0:
        if example_seeding(config) != "stream":
            raise ValueError("a loss on every stage needs the stream of examples "
                             "(example_seeding 'stream')")
        config["stage_loss_weight"] = float(stage_weight)
    return config


def stage_loss_weight(config):
    """Weight of the earlier stages' kernel losses in a run's loss.

    ``config["stage_loss_weight"]`` ``w``: the loss is the final kernel's
    plus ``w`` times that of every earlier stage of the finest scale
    (derivations/training.md, "A loss on every stage"). A configuration
    without the key (every run made before it existed) means 0, the
    paper's loss on the final kernel only.

    Parameters
    ----------
    config : dict

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For a negative or non-finite weight.

    Examples
    --------
    >>> from refdeblur.training.config import stage_loss_weight
    >>> stage_loss_weight({}), stage_loss_weight({"stage_loss_weight": 0.5})
    (0.0, 0.5)
    """
    weight = float(config.get("stage_loss_weight", 0.0))
    if not 0.0 <= weight < float("inf"):
        raise ValueError(f"stage_loss_weight must be >= 0, got {weight}")
    return weight


class TeacherForcing(NamedTuple):
    """A run's teacher forcing (:func:`teacher_forcing`)."""

    #: Fraction of the examples of a step that are forced.
    probability: float
    #: The step at which it stops; None: never.
    until_step: int
    #: Errors are drawn at strength ``u ** strength_power``, ``u`` uniform
    #: on [0, 1]: the larger, the more starts are nearly right.
    strength_power: float


def teacher_forcing(config):
    """A run's teacher forcing: probability, last step and error strength.

    ``config["teacher_forcing"]`` is ``{"probability": p, "until_step":
    s, "strength_power": q}``: up to step ``s`` (for ever when None) a
    fraction ``p`` of the examples of every step feeds a later stage a
    latent image deconvolved with a perturbed true kernel, its errors at
    strength ``u ** q`` (:mod:`refdeblur.training.teacher_forcing`,
    derivations/training.md, "Teacher forcing"). A configuration without
    the key (every run made before it existed) means no forcing; without
    ``until_step`` or ``strength_power``, None and 1.

    Parameters
    ----------
    config : dict

    Returns
    -------
    TeacherForcing

    Raises
    ------
    ValueError
        For a probability outside [0, 1], a negative step, a power not
        positive or an unknown key.

    Examples
    --------
    >>> from refdeblur.training.config import teacher_forcing
    >>> tuple(teacher_forcing({}))
    (0.0, None, 1.0)
    >>> teacher_forcing({"teacher_forcing": {"probability": 0.5}}).probability
    0.5
    """
    value = dict(config.get("teacher_forcing") or {})
    unknown = set(value) - {"probability", "until_step", "strength_power"}
    if unknown:
        raise ValueError(f"unknown teacher_forcing keys: {sorted(unknown)}")
    probability = float(value.get("probability", 0.0))
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"teacher forcing probability must be in [0, 1], "
                         f"got {probability}")
    until = value.get("until_step")
    if until is not None:
        until = int(until)
        if until < 0:
            raise ValueError(f"teacher forcing until_step must be >= 0, got {until}")
    power = float(value.get("strength_power", 1.0))
    if not 0.0 < power < float("inf"):
        raise ValueError(f"teacher forcing strength_power must be > 0, got {power}")
    return TeacherForcing(probability, until, power)


def example_seeding(config):
    """How a run draws its examples, one of :data:`EXAMPLE_SEEDINGS`.

    Parameters
    ----------
    config : dict
        A run's configuration; without ``example_seeding`` it is
        ``"stream"``.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For a value not in :data:`EXAMPLE_SEEDINGS`.

    Examples
    --------
    >>> from refdeblur.training.config import example_seeding
    >>> example_seeding({}), example_seeding({"example_seeding": "per_example"})
    ('stream', 'per_example')
    """
    value = config.get("example_seeding", "stream")
    if value not in EXAMPLE_SEEDINGS:
        raise ValueError(f"example_seeding must be one of "
                         f"{', '.join(EXAMPLE_SEEDINGS)}, got {value!r}")
    return value


def _recipe_file(name):
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return shipped_model_path(int(name[1:])).with_suffix(".json")


def recipe_config(name, **overrides):
    """The configuration that trained a shipped network (:data:`RECIPES`).

    Read from the network's recipe file (``refdeblur/models/k17.json``,
    ...), so it is the shipped configuration itself, completed with the
    defaults of the keys added since (which reproduce what the run did).

    Parameters
    ----------
    name : {"k17", "k25", "k33"}
    **overrides
        Values replacing the recipe's, as in :func:`default_config`; the
        recipe's ``images`` and ``base_model`` are the paths of the machine
        that trained it, to be replaced.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        For an unknown recipe or option.
    """
    shipped = json.loads(_recipe_file(name).read_text())["config"]
    config = default_config(shipped["kernel_size"])
    # "note" records how the shipped run went; it is not a setting.
    config.update({key: value for key, value in shipped.items() if key != "note"})
    for key, value in overrides.items():
        if key not in config:
            raise ValueError(f"unknown training option {key!r}")
        config[key] = value
    return config


def recipe_steps(name):
    """The steps of the shipped run that :func:`recipe_config` ``(name)`` describes."""
    return int(json.loads(_recipe_file(name).read_text())["steps"])


def resolve_init_model(init_model):
    """The model file that ``init_model`` names.

    Parameters
    ----------
    init_model : str or path-like
        A model file, or the name of a shipped network
        (:data:`SHIPPED_INIT_NAMES`) when no file of that name exists.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If it is neither an existing file nor a shipped name.
    """
    path = Path(init_model)
    if not path.exists() and str(init_model) in SHIPPED_INIT_NAMES:
        return shipped_model_path(int(str(init_model)[1:]))
    if not path.exists():
        raise FileNotFoundError(f"init model not found: {init_model} (a model file, "
                                f"or one of {', '.join(SHIPPED_INIT_NAMES)})")
    return path


def read_init_model(init_model):
    """The network ``init_model`` names, and the SHA-256 of its file.

    Parameters
    ----------
    init_model : str or path-like
        See :func:`resolve_init_model`.

    Returns
    -------
    net : refdeblur.network.Network
        As stored (shipped networks are float32).
    sha256 : str

    Raises
    ------
    FileNotFoundError
        If there is no such file or shipped network.
    ValueError
        If the file is not a readable refdeblur model.
    """
    path = resolve_init_model(init_model)
    net, _, _ = read_model_file(path)
    return net, model_sha256(path)


def fine_tuning_config(init_model, **overrides):
    """The configuration of a run that starts from a trained network.

    The run takes the network's kernel size and architecture (recorded in
    full), trains every stage it runs and every coarser scale from step 0
    (no stage-wise schedule: ``stage_steps`` and ``frozen_steps`` are not
    used), with fresh optimiser state, Adam at
    :data:`FINE_TUNING_LEARNING_RATE`, and a data stream from the run's own
    ``seed`` (derivations/fine_tuning.md).

    Parameters
    ----------
    init_model : str or path-like
        A model file or a shipped name (:func:`resolve_init_model`);
        recorded as given, with the SHA-256 of its file.
    **overrides
        Values replacing these defaults, as in :func:`default_config`.

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`read_init_model`; ValueError for an unknown option.

    Examples
    --------
    >>> from refdeblur.training.config import fine_tuning_config
    >>> config = fine_tuning_config("k17")
    >>> config["kernel_size"], config["init_model"], config["optimizer"]["learning_rate"]
    (17, 'k17', 0.0001)
    """
    net, sha256 = read_init_model(init_model)
    architecture = net.architecture.to_dict()
    settings = dict(architecture=architecture, init_model=str(init_model),
                    init_model_sha256=sha256,
                    optimizer=optimizer_settings("adam", FINE_TUNING_LEARNING_RATE))
    settings.update(overrides)
    return default_config(net.kernel_size, **settings)


def architecture_options(kernel_size, *, scales=None, filter_size=None, n_filters=None,
                         n_hidden=None, zero_mean_filters=False, beta_k=None,
                         beta_k_mode=None, kernel_prior=False):
    """``config["architecture"]``: the options that differ from the defaults.

    Parameters
    ----------
    kernel_size : int
        17, 25 and 33 have 1, 2 and 3 scales, any other size one.
    scales : sequence of int, optional
        Kernel side of every scale, coarse to fine, ending in
        ``kernel_size`` (default: those of ``kernel_size``); recorded only
        when given.
    filter_size : int, optional
        Side of the convolution filters at every scale (default: the
        kernel size of each scale).
    n_filters, n_hidden : int, optional
    zero_mean_filters : bool, optional
    beta_k : float, optional
    beta_k_mode : {"constant", "relative"}, optional
        See :class:`refdeblur.network.Architecture`; recorded only when
        ``"relative"``, so that a configuration without the key means
        ``"constant"``.
    kernel_prior : bool, optional
        See :class:`refdeblur.network.Architecture`; recorded only when
        True.

    Returns
    -------
    dict
        Keyword arguments of :func:`refdeblur.build_network`.
    """
    architecture = {}
    if scales is not None:
        if int(scales[-1]) != int(kernel_size):
            raise ValueError(f"scales {list(scales)} end in {scales[-1]}, "
                             f"not {kernel_size}")
        architecture["kernel_sizes"] = [int(m) for m in scales]
    if filter_size is not None:
        n_scales = len(scales if scales is not None
                       else DEFAULT_SCALES.get(kernel_size, (kernel_size,)))
        architecture["filter_sizes"] = [filter_size] * n_scales
    if n_filters is not None:
        architecture["n_filters"] = n_filters
    if n_hidden is not None:
        architecture["n_hidden"] = n_hidden
    if zero_mean_filters:
        architecture["zero_mean_filters"] = True
    if kernel_prior:
        architecture["kernel_prior"] = True
    if beta_k is not None:
        architecture["beta_k"] = beta_k
    if beta_k_mode not in (None, "constant"):
        architecture["beta_k_mode"] = beta_k_mode
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
    init_model = config.get("init_model")
    text = config.get("content", "natural") == "text"
    parts = ["refdeblur", "train", "--kernel-size", str(config["kernel_size"])]
    if init_model:
        parts += ["--init", init_model]
    if text:
        documents = config.get("documents") or {}
        parts += ["--content", "text"]
        for option, key in (("--document-pages", "pages"),
                            ("--validation-pages", "validation_pages"),
                            ("--page-size", "page_size")):
            if key in documents:
                parts += [option, str(documents[key])]
    else:
        parts += ["--images", config["images"]]
    noise = config["noise_std"]
    noise = (",".join(repr(float(value)) for value in noise)
             if isinstance(noise, (list, tuple)) else str(noise))
    parts += ["--out", "RUN_DIR",
              "--steps", "STEPS", "--seed", str(config["seed"]),
              "--batch-size", str(config["batch_size"]),
              "--crop-size", str(config["crop_size"]),
              "--noise-std", noise]
    if not init_model:
        # a run from a trained network has no stage-wise schedule
        parts += ["--stage-steps", str(config["stage_steps"]),
                  "--frozen-steps", str(config["frozen_steps"])]
    parts += ["--optimizer", config["optimizer"].get("name", "adadelta"),
              "--learning-rate", str(config["optimizer"]["learning_rate"]),
              "--dtype", config.get("dtype", "float64")]
    if text:
        pass                            # the validation pages are rendered
    elif config.get("validation_folder"):
        parts += ["--val-images", config["validation_folder"]]
    elif config.get("validation_fraction"):
        parts += ["--val-fraction", repr(config["validation_fraction"])]
    else:
        parts += ["--validation-images", str(config["validation_images"])]
    parts += ["--validate-every", str(config["validate_every"])]
    if init_model:
        # the init model's, recorded in full; the prior kernel may be added to it
        arch = {"kernel_prior": arch.get("kernel_prior", False)}
    if arch.get("kernel_sizes"):
        parts += ["--scales", ",".join(str(m) for m in arch["kernel_sizes"])]
    if arch.get("filter_sizes"):
        parts += ["--filter-size", str(arch["filter_sizes"][-1])]
    if arch.get("n_filters"):
        parts += ["--n-filters", str(arch["n_filters"])]
    if arch.get("n_hidden"):
        parts += ["--n-hidden", str(arch["n_hidden"])]
    if arch.get("zero_mean_filters"):
        parts += ["--zero-mean-filters"]
    if arch.get("kernel_prior"):
        parts += ["--kernel-prior"]
    if arch.get("beta_k") is not None:
        parts += ["--beta-k", repr(arch["beta_k"])]
    if arch.get("beta_k_mode", "constant") != "constant":
        parts += ["--beta-k-mode", arch["beta_k_mode"]]
    if config.get("base_model"):
        parts += ["--base-model", config["base_model"]]
    if example_seeding(config) == "per_example":
        parts += ["--example-seeding", "per-example"]
    if stage_loss_weight(config) > 0:
        parts += ["--stage-loss-weight", repr(stage_loss_weight(config))]
    forcing = teacher_forcing(config)
    if forcing.probability > 0:
        parts += ["--teacher-forcing", repr(forcing.probability)]
        if forcing.until_step is not None:
            parts += ["--teacher-forcing-until", str(forcing.until_step)]
        if forcing.strength_power != 1.0:
            parts += ["--teacher-forcing-power", repr(forcing.strength_power)]
    return " ".join(parts)
