"""``refdeblur train``, ``plot-training`` and ``export-model``."""

import argparse
import dataclasses
import json
import sys
import textwrap
from pathlib import Path

from ..layers.kernel_quotient import BETA_MODES
from ..models import SHIPPED_KERNEL_SIZES
from ..network import Architecture
from ..distributed import dask_client, require_distributed, train_distributed
from ..training import default_config, optimizer_settings, train
from ..training.config import (CONFIG_FILE, FINE_TUNING_LEARNING_RATE, LOG_FILE, RECIPES,
                               SHIPPED_INIT_NAMES, architecture_options, example_seeding,
                               fine_tuning_config, read_config, recipe_config,
                               recipe_steps)
from ..training.data import CONTENTS, DOCUMENT_DEFAULTS, check_noise_std
from ..training.export import export_run, recipe_path
from ..training.log import plot_training
from .errors import UserError

TRAIN_EXAMPLES = """\
examples:
  refdeblur train --kernel-size 17 --images ~/photos --out runs/k17 --steps 20000
  refdeblur train --kernel-size 17 --images ~/photos --out runs/k17 --steps 40000 --resume
  refdeblur train --kernel-size 25 --images ~/photos --out runs/k25 --steps 20000 \\
      --base-model runs/k17/checkpoint.npz --val-fraction 0.1
  # the shipped 25 px network's configuration (15,561 steps), then its export:
  refdeblur train --recipe k25 --images ~/photos --out runs/k25 \\
      --base-model benchmarks/training_runs/base17f17_for25.npz
  refdeblur export-model runs/k25 k25.npz
  # fine-tune the shipped 17 px network for noisy photos (5 % noise), or
  # for a range of noise levels, or for text (synthetic document pages):
  refdeblur train --init k17 --images ~/photos --out runs/k17_noisy \
      --steps 3000 --noise-std 0.05
  refdeblur train --init k17 --images ~/photos --out runs/k17_noise_range \
      --steps 3000 --noise-std 0.01,0.05
  refdeblur train --init k17 --content text --out runs/k17_text --steps 3000
  # on 4 local worker processes (needs refdeblur[distributed]); the same
  # weights as on 1, 2 or 0 workers with --example-seeding per-example:
  refdeblur train --kernel-size 17 --images ~/photos --out runs/k17 --steps 20000 \\
      --workers 4

recipes (--recipe, the configuration of a shipped network, from
refdeblur/models/NAME.json; the files named base are in
benchmarks/training_runs/ of the source repository):
""" + "".join(textwrap.fill(text, 79, initial_indent=f"  {name}: ",
                             subsequent_indent="       ", break_on_hyphens=False) + "\n"
             for name, text in RECIPES.items())

TRAIN_DESCRIPTION = textwrap.fill(
    "Train a network on synthetic camera shake of natural images (paper §3.3). "
    "The run folder receives checkpoint.npz (a model file), log.jsonl and "
    "config.json; --resume continues exactly where the last checkpoint stopped. "
    "--init starts from a trained network instead of random weights "
    "(fine-tuning); --content text trains on synthetic document pages. "
    "With --recipe, an option that is not given takes the recipe's value "
    "instead of the default shown.", 79)

#: The configuration options of ``refdeblur train`` and their config keys.
#: Their command-line default is None, so that a value given explicitly is
#: told apart from the recipe's (or the default configuration's) value.
CONFIG_OPTIONS = ("seed", "batch_size", "crop_size", "noise_std", "stage_steps",
                  "frozen_steps", "validate_every", "dtype")


def add_train_parser(subparsers):
    defaults = default_config(17)
    architecture = {field.name: field.default for field in dataclasses.fields(Architecture)}
    parser = subparsers.add_parser(
        "train", help="train a kernel-estimation network",
        description=TRAIN_DESCRIPTION, epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=tuple(RECIPES),
                        help="the configuration of a shipped network, --steps "
                             "included; needs --base-model (see 'recipes' below) "
                             "(default: none, the options below)")
    parser.add_argument("--kernel-size", type=int,
                        help="kernel side: 17, 25 or 33 (1, 2 or 3 scales) "
                             "(required unless --recipe, --scales or --resume)")
    parser.add_argument("--scales", type=_scale_list, metavar="M1,M2,...",
                        help="kernel side of every scale, coarse to fine, odd and "
                             "increasing, e.g. 5,9,13,17: a deeper pyramid, or "
                             "one of its levels (then any odd side from 3 is "
                             "allowed); the last is the kernel size (default: "
                             "the paper's, 17 / 17,25 / 17,25,33)")
    parser.add_argument("--images", type=Path,
                        help="folder of natural images, searched recursively "
                             "(required, except with --content text)")
    parser.add_argument("--init", metavar="MODEL",
                        help="start from this trained network instead of random "
                             "weights: a model file (.npz) or a shipped network ("
                             f"{', '.join(SHIPPED_INIT_NAMES)}); the run takes its "
                             "kernel size and architecture, trains all its stages "
                             "from step 0 (no stage-wise schedule) with fresh "
                             "optimiser state, Adam at "
                             f"{FINE_TUNING_LEARNING_RATE:g} unless --optimizer or "
                             "--learning-rate say otherwise (default: none, random "
                             "initial weights)")
    parser.add_argument("--content", choices=CONTENTS,
                        help="natural: crops of the images of --images; text: "
                             "crops of synthetic document pages (fonts, sizes, "
                             "layouts, paper or blackboard) rendered from --seed "
                             "when the run starts, no image folder needed "
                             "(default: natural)")
    parser.add_argument("--document-pages", type=int, metavar="N",
                        help="with --content text: training pages "
                             f"(default: {DOCUMENT_DEFAULTS['pages']})")
    parser.add_argument("--validation-pages", type=int, metavar="N",
                        help="with --content text: validation pages, rendered "
                             "from a generator of their own "
                             f"(default: {DOCUMENT_DEFAULTS['validation_pages']})")
    parser.add_argument("--page-size", type=int, metavar="PX",
                        help="with --content text: side of a page in px "
                             f"(default: {DOCUMENT_DEFAULTS['page_size']})")
    parser.add_argument("--out", required=True, type=Path,
                        help="run folder (required)")
    parser.add_argument("--steps", type=int,
                        help="total number of steps of the run; a resumed run "
                             "continues up to this total (required, except "
                             "with --recipe: the shipped run's)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run folder's checkpoint with "
                             "its config.json; the options of the "
                             "configuration are then ignored (default: a new run)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the run's configuration (config.json) "
                             "and exit without training or writing anything "
                             "(default: train)")
    parser.add_argument("--seed", type=int,
                        help="seed of the initial weights and of the training "
                             f"data (default: {defaults['seed']})")
    parser.add_argument("--batch-size", type=int,
                        help="training examples per step "
                             f"(default: {defaults['batch_size']})")
    parser.add_argument("--crop-size", type=int,
                        help="side of the blurry training crops in px "
                             f"(default: {defaults['crop_size']})")
    parser.add_argument("--noise-std", type=_noise_value, metavar="S|LOW,HIGH",
                        help="standard deviation of the Gaussian noise added "
                             "to the blurry crops, grey values on [0, 1]; "
                             "LOW,HIGH draws each example's uniformly in that "
                             f"range (default: {defaults['noise_std']})")
    parser.add_argument("--filter-size", type=int,
                        help="side of the convolution filters (default: the "
                             "kernel size of each scale)")
    parser.add_argument("--n-filters", type=int,
                        help="convolution filters of each stage "
                             f"(default: {architecture['n_filters']})")
    parser.add_argument("--n-hidden", type=int,
                        help="hidden images after the first recombination of each "
                             "stage: with --n-filters, the capacity of the "
                             "feature extraction (paper Figs. 3-4) "
                             f"(default: {architecture['n_hidden']})")
    parser.add_argument("--kernel-prior", action="store_true", default=None,
                        help="regularise the kernel quotient of every stage after "
                             "the first of a scale towards the previous stage's "
                             "kernel instead of towards zero, so that a later "
                             "stage keeps its start where its features carry "
                             "little evidence; with --init, added to the init "
                             "model's network (default: the paper's quotient)")
    parser.add_argument("--zero-mean-filters", action="store_true", default=None,
                        help="start every convolution filter with zero sum per "
                             "input channel, edge-like first features "
                             "(default: random filters)")
    parser.add_argument("--beta-k", type=float,
                        help="regulariser of the kernel quotient, Eq. 4 "
                             f"(default: the paper's {architecture['beta_k']:g}); "
                             "with --beta-k-mode relative its factor on the "
                             "features' power")
    parser.add_argument("--beta-k-mode", choices=BETA_MODES,
                        help="constant: the kernel quotient's regulariser is "
                             "--beta-k; relative: --beta-k times the mean "
                             "power per frequency of each example's sharp-like "
                             "features (default: constant)")
    parser.add_argument("--dtype", choices=("float32", "float64"),
                        help=f"precision of the training (default: {defaults['dtype']})")
    parser.add_argument("--optimizer", choices=("adadelta", "adam"),
                        help="ADADELTA (the paper's) or Adam (the shipped "
                             "models': much faster on few steps) (default: adadelta)")
    parser.add_argument("--learning-rate", type=float,
                        help="ADADELTA: multiplier on its step; Adam: step "
                             "size (default: "
                             f"{optimizer_settings('adadelta')['learning_rate']:g} for "
                             f"ADADELTA, {optimizer_settings('adam')['learning_rate']:g} "
                             "for Adam, the paper's and Adam's own)")
    parser.add_argument("--stage-steps", type=int,
                        help="steps between adding two stages "
                             f"(default: {defaults['stage_steps']})")
    parser.add_argument("--frozen-steps", type=int,
                        help="steps a newly added stage trains alone "
                             f"(default: {defaults['frozen_steps']})")
    parser.add_argument("--base-model", type=Path,
                        help="trained coarser network whose scales are reused "
                             "(and frozen) for a 25 or 33 px network, or a 17 px "
                             "network to fine-tune (default: none, random "
                             "initial weights)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--validation-images", type=int, metavar="N",
                       help="hold out N of the images for validation, spread "
                            "over their sorted list, at least 1 and at most "
                            "half of them (default: "
                            f"{defaults['validation_images']})")
    split.add_argument("--val-fraction", type=float, metavar="F",
                       help="hold out this fraction of the images instead, "
                            "0 < F < 1, at least 1 image and at least 1 left "
                            "for training (default: --validation-images)")
    split.add_argument("--val-images", type=Path, metavar="DIR",
                       help="validate on the images of this folder instead; "
                            "its images are left out of training if they lie "
                            "below --images too (default: --validation-images)")
    parser.add_argument("--validate-every", type=int,
                        help="steps between two validations "
                             f"(default: {defaults['validate_every']})")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0,
                        help="wall-clock minutes between two checkpoints "
                             "(default: %(default)g)")
    parser.add_argument("--stage-loss-weight", type=float, metavar="W",
                        help="add W times the kernel loss of every earlier stage "
                             "of the finest scale to the final kernel's, so that "
                             "each stage stays an estimator of its own; needs "
                             "--example-seeding stream (default: 0, the paper's "
                             "loss on the final kernel only)")
    parser.add_argument("--teacher-forcing", type=float, metavar="P",
                        help="fraction of the examples of every step with two "
                             "stages or more in which one earlier stage of the "
                             "finest scale hands on the true kernel with random "
                             "errors (blur, blob, another kernel, shift, rotation, "
                             "dilation, coarse) instead of its own estimate, so "
                             "that the later stages learn to correct errors; "
                             "needs --example-seeding stream (default: 0, none)")
    parser.add_argument("--teacher-forcing-until", type=int, metavar="STEP",
                        help="stop the teacher forcing at this step; the later "
                             "stages then train on the earlier ones' own "
                             "estimates (default: never)")
    parser.add_argument("--teacher-forcing-power", type=float, metavar="Q",
                        help="draw each error of the teacher forcing at strength "
                             "u**Q, u uniform on [0, 1]: the larger Q, the more "
                             "forced starts are nearly right, so that a later "
                             "stage learns to keep a good start (default: 1)")
    parser.add_argument("--example-seeding", choices=("stream", "per-example"),
                        help="stream: the examples of every step drawn from one "
                             "generator; per-example: example i of step s from "
                             "its own generator, seeded [seed, 2, s, i], so that "
                             "they can be computed anywhere and the weights do "
                             "not depend on where (recorded in config.json) "
                             "(default: stream; per-example with --workers or "
                             "--scheduler, which need it)")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="compute every step's examples on a local Dask "
                              "cluster of N worker processes; implies "
                              "--example-seeding per-example for a new run, and "
                              "a resumed run must have it; needs "
                              "refdeblur[distributed] (default: none, this "
                              "process computes them)")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="compute them on the workers of the running Dask "
                              "scheduler at ADDRESS (tcp://host:8786) instead, "
                              "with the same conditions (default: none)")
    parser.set_defaults(handler=_run_train)


def _scale_list(text):
    """``--scales``: comma-separated odd kernel sides, strictly increasing."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of sizes: {text!r}")
    if any(size < 3 or size % 2 == 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"every size must be odd and at least 3: {text}")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise argparse.ArgumentTypeError(f"sizes must increase, coarse to fine: {text}")
    return sizes


def _noise_value(text):
    """``--noise-std``: one level, or a range ``LOW,HIGH`` (stored as a list)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number or a range LOW,HIGH: {text!r}") from None
    try:
        value = check_noise_std(values[0] if len(values) == 1 else values)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return list(value) if isinstance(value, tuple) else value


def _check_content_options(args):
    """Refuse the options of the other kind of content, one line each."""
    natural = {"--images": args.images, "--val-images": args.val_images,
               "--val-fraction": args.val_fraction,
               "--validation-images": args.validation_images}
    text = {"--document-pages": args.document_pages,
            "--validation-pages": args.validation_pages, "--page-size": args.page_size}
    if args.content == "text":
        for option, value in natural.items():
            if value is not None:
                raise UserError(f"{option} does not apply with --content text, which "
                                f"renders its pages (--document-pages, "
                                f"--validation-pages, --page-size)")
    else:
        for option, value in text.items():
            if value is not None:
                raise UserError(f"{option} applies only with --content text")
    for option, value, minimum in (("--document-pages", args.document_pages, 1),
                                   ("--validation-pages", args.validation_pages, 1),
                                   ("--page-size", args.page_size, 32)):
        if value is not None and value < minimum:
            raise UserError(f"{option} must be at least {minimum}, got {value}")


def _check_options(args):
    """Refuse values out of range, one line each."""
    if args.scales is not None:
        if args.kernel_size not in (None, args.scales[-1]):
            raise UserError(f"--scales {','.join(map(str, args.scales))} ends in "
                            f"{args.scales[-1]} px, not --kernel-size {args.kernel_size}")
        if args.recipe is not None:
            raise UserError("--scales and --recipe exclude each other: a recipe "
                            "fixes its scales")
        args.kernel_size = args.scales[-1]
    elif (args.kernel_size is not None and args.kernel_size not in SHIPPED_KERNEL_SIZES
          and args.init is None):       # an init model's own size is checked against it
        raise UserError(f"--kernel-size must be 17, 25 or 33 (1, 2 or 3 scales), "
                        f"got {args.kernel_size}")
    if args.recipe is not None and args.kernel_size not in (None, int(args.recipe[1:])):
        raise UserError(f"--recipe {args.recipe} trains a {args.recipe[1:]} px network, "
                        f"not --kernel-size {args.kernel_size}")
    at_least = {"--steps": (args.steps, 1), "--batch-size": (args.batch_size, 1),
                "--crop-size": (args.crop_size, 1), "--filter-size": (args.filter_size, 1),
                "--n-filters": (args.n_filters, 1), "--n-hidden": (args.n_hidden, 1),
                "--stage-steps": (args.stage_steps, 1),
                "--frozen-steps": (args.frozen_steps, 0),
                "--validation-images": (args.validation_images, 1),
                "--validate-every": (args.validate_every, 1)}
    for option, (value, minimum) in at_least.items():
        if value is not None and value < minimum:
            raise UserError(f"{option} must be at least {minimum}, got {value}")
    _check_content_options(args)
    for option, value in (("--beta-k", args.beta_k),
                          ("--checkpoint-minutes", args.checkpoint_minutes)):
        if value is not None and not value >= 0:
            raise UserError(f"{option} must be >= 0, got {value}")
    if args.learning_rate is not None and not args.learning_rate > 0:
        raise UserError(f"--learning-rate must be > 0, got {args.learning_rate}")
    if args.val_fraction is not None and not 0 < args.val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.teacher_forcing is not None and not 0 <= args.teacher_forcing <= 1:
        raise UserError(f"--teacher-forcing must be between 0 and 1, got "
                        f"{args.teacher_forcing}")
    if args.teacher_forcing_until is not None:
        if args.teacher_forcing_until < 0:
            raise UserError(f"--teacher-forcing-until must be >= 0, got "
                            f"{args.teacher_forcing_until}")
        if not args.teacher_forcing:
            raise UserError("--teacher-forcing-until needs --teacher-forcing")
    if args.teacher_forcing_power is not None:
        if not 0 < args.teacher_forcing_power < float("inf"):
            raise UserError(f"--teacher-forcing-power must be > 0, got "
                            f"{args.teacher_forcing_power}")
        if not args.teacher_forcing:
            raise UserError("--teacher-forcing-power needs --teacher-forcing")
    if args.stage_loss_weight is not None and not 0 <= args.stage_loss_weight < float("inf"):
        raise UserError(f"--stage-loss-weight must be >= 0, got {args.stage_loss_weight}")
    for option, value in (("--teacher-forcing", args.teacher_forcing),
                          ("--stage-loss-weight", args.stage_loss_weight)):
        if value and (args.example_seeding == "per-example"
                      or _cluster_option(args) is not None):
            raise UserError(f"{option} needs --example-seeding stream (no "
                            f"--workers or --scheduler)")
    option = _cluster_option(args)
    if option is not None:
        if args.example_seeding == "stream":
            raise UserError(f"{option} needs --example-seeding per-example")
        try:
            require_distributed()
        except ImportError as error:
            raise UserError(f"{option}: {error}") from None


def _cluster_option(args):
    """``--workers`` or ``--scheduler``, whichever was given (None for neither)."""
    if args.workers is not None:
        return "--workers"
    return "--scheduler" if args.scheduler is not None else None


def _check_resumed_seeding(args):
    """Refuse a cluster for a resumed run that draws its examples from one stream."""
    option = _cluster_option(args)
    if option is not None and example_seeding(read_config(args.out)) == "stream":
        raise UserError(f"{option} needs per-example seeding, and the run in {args.out} "
                        f"draws its examples from one stream; resume it without "
                        f"{option}, or start a new run")


def _run_train(args):
    _check_options(args)
    if args.images is None and not args.resume and args.content != "text":
        raise UserError("--images is required for a new run (or --content text)")
    if args.steps is None and (args.resume or args.recipe is None):
        raise UserError("--steps is required" + ("" if args.resume else " (or --recipe)"))
    if args.resume:
        config = None
        if args.print_config:
            print(json.dumps(read_config(args.out), indent=2))
            return 0
        if (args.out / CONFIG_FILE).is_file():
            _check_resumed_seeding(args)
    else:
        config = new_run_config(args)
        if args.print_config:
            print(json.dumps(config, indent=2))
            return 0
        for option, path in (("image folder", args.images),
                             ("validation folder", args.val_images)):
            if path is not None and not path.is_dir():
                raise UserError(f"{option} not found: {path}")
        if args.base_model is not None and not args.base_model.is_file():
            raise UserError(f"base model not found: {args.base_model}")
        if args.content == "text":
            print("rendering the document pages ...", file=sys.stderr)
    steps = args.steps if args.steps is not None else recipe_steps(args.recipe)
    options = dict(out_dir=args.out, steps=steps, resume=args.resume, progress=True,
                   checkpoint_seconds=60.0 * args.checkpoint_minutes)
    if _cluster_option(args) is None:
        result = train(config, **options)
    else:
        with dask_client(workers=args.workers, scheduler=args.scheduler) as client:
            result = train_distributed(config, client=client, **options)
    state = "stopped" if result.stopped else "finished"
    validation = ("no validation yet" if result.validation_error != result.validation_error
                  else f"validation kernel error {result.validation_error:.4g}")
    print(f"{state} at step {result.step}; {validation}; checkpoint {result.checkpoint}",
          file=sys.stderr)
    return 0


def new_run_config(args):
    """The configuration of a new run from ``refdeblur train``'s arguments.

    Starts from the recipe (``--recipe``), the trained network
    (``--init``) or the default configuration and applies every option
    given explicitly.
    """
    if args.init is not None:
        config = _init_config(args)
    elif args.recipe is not None:
        config = recipe_config(args.recipe)
        if config.get("init_model") is not None:
            config = _refuse_contradicting_init(
                args, config, f"--recipe {args.recipe} (fine-tuning {config['init_model']})")
        elif args.base_model is None:
            raise UserError(f"--recipe {args.recipe} trains on top of a base network: "
                            f"pass --base-model ({RECIPES[args.recipe]})")
    elif args.kernel_size is None:
        raise UserError("--kernel-size is required (or --recipe or --scales)")
    else:
        config = default_config(args.kernel_size)
    kernel_size = config["kernel_size"]
    for key in CONFIG_OPTIONS:
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if config.get("init_model") is None:   # an init model's architecture is recorded in full
        config["architecture"] = {**config["architecture"], **architecture_options(
            kernel_size, scales=args.scales, filter_size=args.filter_size,
            n_filters=args.n_filters, n_hidden=args.n_hidden,
            kernel_prior=bool(args.kernel_prior),
            zero_mean_filters=bool(args.zero_mean_filters), beta_k=args.beta_k,
            beta_k_mode=args.beta_k_mode)}
    if args.optimizer is not None or args.learning_rate is not None:
        recipe_optimizer = config["optimizer"].get("name", "adadelta")
        name = args.optimizer or recipe_optimizer
        learning_rate = args.learning_rate
        if learning_rate is None and name == recipe_optimizer:
            learning_rate = config["optimizer"]["learning_rate"]
        config["optimizer"] = optimizer_settings(name, learning_rate)
    config["images"] = None if args.images is None else str(args.images)
    if args.content is not None:
        config["content"] = args.content
    if config.get("content") == "text":
        documents = dict(DOCUMENT_DEFAULTS)
        for key, value in (("pages", args.document_pages),
                           ("validation_pages", args.validation_pages),
                           ("page_size", args.page_size)):
            if value is not None:
                documents[key] = value
        config["documents"] = documents
    if args.base_model is not None:
        config["base_model"] = str(args.base_model)
    if args.validation_images is not None:
        config["validation_images"] = args.validation_images
    if args.val_fraction is not None:
        config["validation_fraction"] = args.val_fraction
    if args.val_images is not None:
        config["validation_folder"] = str(args.val_images)
    if args.example_seeding == "per-example" or _cluster_option(args) is not None:
        config["example_seeding"] = "per_example"
    if args.stage_loss_weight:
        config["stage_loss_weight"] = args.stage_loss_weight
    if args.teacher_forcing:
        config["teacher_forcing"] = {"probability": args.teacher_forcing,
                                     "until_step": args.teacher_forcing_until}
        if args.teacher_forcing_power is not None:
            config["teacher_forcing"]["strength_power"] = args.teacher_forcing_power
    return config


def _init_config(args):
    """The configuration of ``--init``, refusing options that contradict it."""
    if args.recipe is not None:
        raise UserError("--init and --recipe exclude each other: the init model fixes "
                        "the architecture and the schedule")
    try:
        config = fine_tuning_config(args.init)
    except (FileNotFoundError, ValueError) as error:
        raise UserError(f"--init: {error}") from None
    return _refuse_contradicting_init(args, config, f"--init {args.init}")


def _refuse_contradicting_init(args, config, source):
    """``config`` of a run from a trained network, refusing options against it.

    The network fixes the architecture and every stage trains from step 0,
    so options that would change either contradict ``source`` (``--init
    FILE``, or a recipe that fine-tunes a network); only the prior kernel,
    which adds no parameters, may be added.
    """
    for option, value in (("--base-model", args.base_model),
                          ("--stage-steps", args.stage_steps),
                          ("--frozen-steps", args.frozen_steps)):
        if value is not None:
            raise UserError(f"{option} does not apply with {source}: it starts from a "
                            f"complete network whose every stage trains from step 0")
    arch = config["architecture"]
    filter_sizes = set(arch["filter_sizes"])
    model = {"--kernel-size": (args.kernel_size, config["kernel_size"]),
             "--scales": (args.scales, arch["kernel_sizes"]),
             "--filter-size": (args.filter_size, filter_sizes.pop()
                               if len(filter_sizes) == 1 else arch["filter_sizes"]),
             "--n-filters": (args.n_filters, arch["n_filters"]),
             "--n-hidden": (args.n_hidden, arch["n_hidden"]),
             "--zero-mean-filters": (args.zero_mean_filters, arch["zero_mean_filters"]),
             "--beta-k": (args.beta_k, arch["beta_k"]),
             "--beta-k-mode": (args.beta_k_mode, arch["beta_k_mode"])}
    for option, (given, value) in model.items():
        if given is not None and given != value:
            raise UserError(f"{option} {given} contradicts {source}, whose "
                            f"network has {value}")
    if args.kernel_prior:
        # no new parameters: the init model's weights start it
        config["architecture"]["kernel_prior"] = True
    return config


# ---------------------------------------------------------------------------
# refdeblur plot-training
# ---------------------------------------------------------------------------

def add_plot_parser(subparsers):
    parser = subparsers.add_parser(
        "plot-training", help="draw the loss curves of a training run",
        description="Draw training and validation loss against the step from "
                    "RUN_DIR/log.jsonl into a PNG (default RUN_DIR/training.png).")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("-o", "--out", type=Path, default=None)
    parser.set_defaults(handler=_run_plot)


def _run_plot(args):
    log = args.run_dir / LOG_FILE
    if not log.is_file():
        raise UserError(f"no training log at {log}")
    out = args.out or args.run_dir / "training.png"
    plot_training(log, out)
    print(out)
    return 0


# ---------------------------------------------------------------------------
# refdeblur export-model
# ---------------------------------------------------------------------------

def add_export_parser(subparsers):
    parser = subparsers.add_parser(
        "export-model", help="turn a training run into a compact model file",
        description="Write the network of RUN_DIR/checkpoint.npz as a float32 "
                    "model file (no optimiser state) and, beside it, a JSON "
                    "recipe: the equivalent training command, steps, wall "
                    "time and validation curve.")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("out", type=Path, metavar="OUT.npz")
    parser.add_argument("--stages", type=int, default=None,
                        help="keep only the first STAGES stages of every scale "
                             "(when later ones are not trained yet)")
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(handler=_run_export)


def _run_export(args):
    for path in (args.out, recipe_path(args.out)):
        if path.exists() and not args.overwrite:
            raise UserError(f"{path} exists; pass --overwrite to replace it")
    _, recipe = export_run(args.run_dir, args.out, n_stages=args.stages)
    print(f"{args.out} and {recipe_path(args.out)}: step {recipe['steps']}, validation "
          f"kernel error {recipe['final_validation_kernel_error']}")
    return 0
