"""The ``refdeblur`` command line.

Every user error (a bad path, a bad image, a bad model file, an option out of
range) ends with one line on stderr and exit status 2, never a traceback.
"""

import argparse
import json
import signal
import sys
from pathlib import Path


from . import __version__
from .bench_levin import add_bench_parser
from .cli_deblur import add_deblur_parser


class UserError(Exception):
    """An error caused by the user's input; reported as one line."""


def _fail(message):
    print(f"refdeblur: error: {message}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------------
# refdeblur train
# ---------------------------------------------------------------------------

TRAIN_EXAMPLES = """\
examples:
  refdeblur train --kernel-size 17 --images ~/photos --out runs/k17 --steps 20000
  refdeblur train --kernel-size 17 --images ~/photos --out runs/k17 --steps 40000 --resume
  refdeblur train --kernel-size 25 --images ~/photos --out runs/k25 --steps 20000 \\
      --base-model runs/k17/checkpoint.npz
"""


def _add_train_parser(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a kernel-estimation network",
        description="Train a network on synthetic camera shake of natural "
                    "images (paper §3.3). The run folder receives "
                    "checkpoint.npz (a model file), log.jsonl and config.json; "
                    "--resume continues exactly where the last checkpoint "
                    "stopped.",
        epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel-size", type=int, required=True,
                        help="kernel side: 17, 25 or 33 (1, 2 or 3 scales)")
    parser.add_argument("--images", required=True, type=Path,
                        help="folder of natural images, searched recursively")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    parser.add_argument("--steps", type=int, required=True,
                        help="total number of steps of the run (a resumed run "
                             "continues up to this total)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run folder's checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=128,
                        help="side of the blurry training crops")
    parser.add_argument("--noise-std", type=float, default=0.01)
    parser.add_argument("--filter-size", type=int, default=None,
                        help="side of the convolution filters (default: the "
                             "kernel size of each scale)")
    parser.add_argument("--n-filters", type=int, default=None)
    parser.add_argument("--zero-mean-filters", action="store_true",
                        help="start every convolution filter with zero sum per "
                             "input channel (edge-like first features)")
    parser.add_argument("--beta-k", type=float, default=None,
                        help="regulariser of the kernel quotient, Eq. 4 "
                             "(default: the paper's 1e-4)")
    parser.add_argument("--dtype", choices=("float32", "float64"),
                        default="float32",
                        help="precision of the training (default float32)")
    parser.add_argument("--optimizer", choices=("adadelta", "adam"),
                        default="adadelta",
                        help="ADADELTA (the paper's, default) or Adam (the "
                             "shipped models': much faster on few steps)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="ADADELTA: multiplier on its step (default the "
                             "paper's 0.01); Adam: step size (default 1e-3)")
    parser.add_argument("--stage-steps", type=int, default=3000,
                        help="steps between adding two stages")
    parser.add_argument("--frozen-steps", type=int, default=100,
                        help="steps a newly added stage trains alone")
    parser.add_argument("--base-model", type=Path, default=None,
                        help="trained coarser network whose scales are reused "
                             "(and frozen) for a 25 or 33 px network")
    parser.add_argument("--validation-images", type=int, default=60,
                        help="images held out for validation")
    parser.add_argument("--validate-every", type=int, default=200)
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.set_defaults(handler=_run_train)


def _validation_split(paths, n_held_out):
    """Every k-th image (sorted order) is held out for validation."""
    if len(paths) < 2:
        raise UserError("need at least two images (one for validation)")
    n_held_out = max(1, min(n_held_out, len(paths) // 2))
    stride = len(paths) / n_held_out
    held = {int(i * stride) for i in range(n_held_out)}
    train = [p for i, p in enumerate(paths) if i not in held]
    validation = [p for i, p in enumerate(paths) if i in held]
    return train, validation


def _run_train(args):
    from tqdm import tqdm

    from .image_io import find_images
    from .training import Trainer, default_config, optimizer_settings
    from .training_data import load_gray_images, make_batch, validation_set

    if args.steps < 1:
        raise UserError("--steps must be at least 1")
    if not args.images.is_dir():
        raise UserError(f"image folder not found: {args.images}")
    run_dir = args.out
    config_path = run_dir / "config.json"
    if args.resume:
        if not (run_dir / "checkpoint.npz").is_file() or not config_path.is_file():
            raise UserError(f"nothing to resume in {run_dir} (no checkpoint.npz "
                            f"and config.json)")
        config = json.loads(config_path.read_text())
    else:
        if (run_dir / "checkpoint.npz").exists():
            raise UserError(f"{run_dir} already holds a run; use --resume to "
                            f"continue it or choose another --out")
        architecture = {}
        if args.filter_size is not None:
            n_scales = {17: 1, 25: 2, 33: 3}.get(args.kernel_size, 1)
            architecture["filter_sizes"] = [args.filter_size] * n_scales
        if args.n_filters is not None:
            architecture["n_filters"] = args.n_filters
        if args.zero_mean_filters:
            architecture["zero_mean_filters"] = True
        if args.beta_k is not None:
            architecture["beta_k"] = args.beta_k
        config = default_config(
            args.kernel_size, seed=args.seed, batch_size=args.batch_size,
            crop_size=args.crop_size, noise_std=args.noise_std,
            architecture=architecture, stage_steps=args.stage_steps,
            frozen_steps=args.frozen_steps,
            base_model=str(args.base_model) if args.base_model else None,
            validate_every=args.validate_every,
            optimizer=optimizer_settings(args.optimizer, args.learning_rate),
            dtype=args.dtype,
            n_validation=64)
        config["images"] = str(args.images)
        config["validation_images"] = args.validation_images
        run_dir.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(config, indent=2))

    kernel_size = config["kernel_size"]
    crop = config["crop_size"]
    paths = find_images(Path(config["images"]))
    train_paths, validation_paths = _validation_split(paths, config["validation_images"])
    min_size = crop + kernel_size - 1
    train_images = load_gray_images(train_paths, min_size=min_size)
    validation_images = load_gray_images(validation_paths, min_size=min_size)
    if not train_images or not validation_images:
        raise UserError(f"no usable images of at least {min_size} px in {config['images']}")
    validation = validation_set(validation_images, config["n_validation"], crop,
                                kernel_size, seed=config["validation_seed"],
                                noise_std=config["noise_std"])

    def batch_source(rng, batch_size):
        batch = make_batch(train_images, batch_size, crop, kernel_size, rng,
                           noise_std=config["noise_std"])
        return batch.y, batch.k

    trainer = Trainer(run_dir, config, batch_source, (validation.y, validation.k))
    if args.resume:
        trainer.load_checkpoint()
    else:
        trainer.initialise()
        trainer.save_checkpoint()

    def request_stop(signum, frame):
        trainer.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    bar = tqdm(total=args.steps, initial=min(trainer.step, args.steps),
               unit="step", dynamic_ncols=True, file=sys.stderr)

    def progress(step, loss, validation_error):
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.3g}", val=f"{validation_error:.3g}")

    error = trainer.run(args.steps, progress=progress,
                        checkpoint_seconds=60.0 * args.checkpoint_minutes)
    bar.close()
    state = "stopped" if trainer.stop_requested else "finished"
    print(f"{state} at step {trainer.step}; validation kernel error {error:.4g}; "
          f"checkpoint {trainer.checkpoint_path}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------
# refdeblur plot-training
# ---------------------------------------------------------------------------

def _add_plot_parser(subparsers):
    parser = subparsers.add_parser(
        "plot-training", help="draw the loss curves of a training run",
        description="Draw training and validation loss against the step from "
                    "RUN_DIR/log.jsonl into a PNG (default RUN_DIR/training.png).")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("-o", "--out", type=Path, default=None)
    parser.set_defaults(handler=_run_plot)


def _run_plot(args):
    from .training_plot import plot_training

    log = args.run_dir / "log.jsonl"
    if not log.is_file():
        raise UserError(f"no training log at {log}")
    out = args.out or args.run_dir / "training.png"
    plot_training(log, out)
    print(out)
    return 0


# ---------------------------------------------------------------------------
# refdeblur export-model
# ---------------------------------------------------------------------------

def _add_export_parser(subparsers):
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


def training_command(config):
    """The ``refdeblur train`` command line that reproduces a run's config."""
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


def _run_export(args):
    from .training import export_model
    from .training_plot import read_log

    checkpoint = args.run_dir / "checkpoint.npz"
    config_path = args.run_dir / "config.json"
    if not checkpoint.is_file() or not config_path.is_file():
        raise UserError(f"no training run in {args.run_dir} (need checkpoint.npz "
                        f"and config.json)")
    recipe_path = args.out.with_suffix(".json")
    for path in (args.out, recipe_path):
        if path.exists() and not args.overwrite:
            raise UserError(f"{path} exists; pass --overwrite to replace it")
    config = json.loads(config_path.read_text())
    records = read_log(args.run_dir / "log.jsonl") if (
        args.run_dir / "log.jsonl").is_file() else []
    curve = [[r["step"], r["validation"]] for r in records if "validation" in r]
    net = export_model(checkpoint, args.out, n_stages=args.stages)
    from .model_io import read_model_file
    _, header, _ = read_model_file(args.out)
    training = header["metadata"]["training"]
    recipe = {
        "model": args.out.name,
        "kernel_size": net.kernel_size,
        "architecture": net.architecture.to_dict(),
        "command": training_command(config).replace("STEPS", str(training["step"])),
        "steps": training["step"],
        "training_seconds": round(training["elapsed_seconds"], 1),
        "final_validation_kernel_error": curve[-1][1] if curve else None,
        "validation_curve": curve,
        "config": config,
    }
    if config.get("note"):
        # A run continued by hand with changed settings says so in its
        # config; the command above then only describes its last part.
        recipe["note"] = config["note"]
    from .cli_deblur import _write_json
    _write_json(recipe_path, recipe)
    print(f"{args.out} and {recipe_path}: step {training['step']}, validation "
          f"kernel error {recipe['final_validation_kernel_error']}")
    return 0


# ---------------------------------------------------------------------------

def build_parser():
    """The argument parser of the ``refdeblur`` command."""
    parser = argparse.ArgumentParser(
        prog="refdeblur",
        description="Blind deblurring with the network of Schuler et al., "
                    "'Learning to Deblur' (TPAMI 2016).")
    parser.add_argument("--version", action="version",
                        version=f"refdeblur {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_deblur_parser(subparsers, UserError)
    _add_train_parser(subparsers)
    _add_plot_parser(subparsers)
    _add_export_parser(subparsers)
    add_bench_parser(subparsers, UserError)
    return parser


def main(argv=None):
    """Entry point of the ``refdeblur`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        return _fail(str(error))
    except (OSError, ValueError) as error:
        return _fail(str(error))


if __name__ == "__main__":
    sys.exit(main())
