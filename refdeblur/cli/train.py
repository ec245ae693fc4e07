"""``refdeblur train``, ``plot-training`` and ``export-model``."""

import argparse
import sys
from pathlib import Path

from ..training import default_config, optimizer_settings, train
from ..training.config import LOG_FILE, architecture_options
from ..training.export import export_run, recipe_path
from ..training.log import plot_training
from .errors import UserError

TRAIN_EXAMPLES = """\
examples:
  refdeblur train --kernel-size 17 --images ~/photos --out runs/k17 --steps 20000
  refdeblur train --kernel-size 17 --images ~/photos --out runs/k17 --steps 40000 --resume
  refdeblur train --kernel-size 25 --images ~/photos --out runs/k25 --steps 20000 \\
      --base-model runs/k17/checkpoint.npz
"""


def add_train_parser(subparsers):
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


def _run_train(args):
    if args.steps < 1:
        raise UserError("--steps must be at least 1")
    if not args.images.is_dir():
        raise UserError(f"image folder not found: {args.images}")
    result = train(None if args.resume else _new_run_config(args), out_dir=args.out,
                   steps=args.steps, resume=args.resume, progress=True,
                   checkpoint_seconds=60.0 * args.checkpoint_minutes)
    state = "stopped" if result.stopped else "finished"
    print(f"{state} at step {result.step}; validation kernel error "
          f"{result.validation_error:.4g}; checkpoint {result.checkpoint}",
          file=sys.stderr)
    return 0


def _new_run_config(args):
    architecture = architecture_options(
        args.kernel_size, filter_size=args.filter_size, n_filters=args.n_filters,
        zero_mean_filters=args.zero_mean_filters, beta_k=args.beta_k)
    return default_config(
        args.kernel_size, seed=args.seed, batch_size=args.batch_size,
        crop_size=args.crop_size, noise_std=args.noise_std,
        architecture=architecture, stage_steps=args.stage_steps,
        frozen_steps=args.frozen_steps,
        base_model=str(args.base_model) if args.base_model else None,
        validate_every=args.validate_every,
        optimizer=optimizer_settings(args.optimizer, args.learning_rate),
        dtype=args.dtype, images=str(args.images),
        validation_images=args.validation_images)


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
