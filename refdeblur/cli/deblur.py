"""``refdeblur deblur``: blind deblurring of image files.

The output names of the whole batch are decided before anything is written
(:data:`refdeblur.inference.files.OUTPUT_NAMES`). Every problem with one
input (unreadable, too small, NaN, an output that exists, ...) is reported
as one line on stderr once the progress bar is done; the other inputs are
still processed and the exit status is 2 if any input failed. The work on
each file is :mod:`refdeblur.inference.files`; with ``--workers`` or
``--scheduler`` the files are mapped over the workers of a Dask cluster
(:mod:`refdeblur.distributed.deblurring`) and an input whose outputs both
exist is skipped unless ``--overwrite``.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from ..distributed import dask_client, deblur_files_distributed, require_distributed
from ..inference import DECONVOLUTION_METHODS, DEFAULT_MAX_WINDOW, HIGH_NOISE_STD
from ..inference.files import (OUTPUT_NAMES, collect_inputs, deblur_files, plan_outputs,
                               report_header, write_report)
from ..model_io import load_model
from ..models import SHIPPED_KERNEL_SIZES

DEBLUR_EXAMPLES = """\
examples:
  refdeblur deblur photo.jpg
      writes photo_deblurred.jpg and photo_deblurred_kernel.png beside it;
      the kernel size is chosen from the blur (--kernel-size auto)
  refdeblur deblur photo.png -o sharp.png --kernel-size 33 --json sharp.json
  refdeblur deblur shots/ --out-dir results/ --kernel-size 17
  refdeblur deblur a.png b.png --method wiener --noise-std 0.01
  refdeblur deblur shots/ --out-dir results/ --workers 4
      on 4 local worker processes (needs refdeblur[distributed]); run again,
      it deblurs only the inputs whose outputs are missing
  refdeblur deblur photo.jpg --nonuniform --grid 3 4
      a blur that changes across the photo (camera rotation): one kernel per
      patch of a 3 x 4 grid; photo_deblurred_kernel.png shows the kernels at
      their patches

""" + OUTPUT_NAMES + """
exit status: 0 if every input was deblurred, 2 if any failed (one line on
stderr per failed input, after the progress bar) or the options are wrong.
"""


def add_deblur_parser(subparsers, user_error):
    """Register ``refdeblur deblur``; ``user_error`` is the CLI's error type."""
    parser = subparsers.add_parser(
        "deblur", help="deblur photos (estimate the blur, then deconvolve)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=DEBLUR_EXAMPLES,
        description="Estimate the camera-shake kernel of each photo with the "
                    "shipped network and deconvolve every colour channel. "
                    "Writes the sharp image and, beside it, the kernel as a "
                    "PNG (<name>_kernel.png).")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="image files or folders (searched recursively)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-o", "--out", type=Path,
                       help="output file (one input only; default "
                            "NAME_deblurred.EXT beside the input, see "
                            "'output names' below)")
    where.add_argument("--out-dir", type=Path,
                       help="folder for the outputs (created if missing)")
    parser.add_argument("--kernel-size", type=_kernel_size_argument, default="auto",
                        metavar="{auto,17,25,33}",
                        help="side of the kernel window, larger than the blur; "
                             "auto (default): estimate with the 33 px network "
                             "and use the smallest window that holds that "
                             "kernel's support with 2 px to spare (the report "
                             "says which and why)")
    parser.add_argument("--kernel-out", type=Path,
                        help="kernel PNG path (one input only)")
    parser.add_argument("--json", type=Path,
                        help="write a JSON report (version, model hash, "
                             "parameters, timings, kernel per image)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    parser.add_argument("--method", default="hyper_laplacian",
                        choices=DECONVOLUTION_METHODS,
                        help="non-blind deconvolution (default hyper_laplacian)")
    parser.add_argument("--noise-std", type=float,
                        help="noise level on [0, 1] (default: estimated)")
    parser.add_argument("--max-window", type=int, default=DEFAULT_MAX_WINDOW,
                        help="estimate the kernel on the most textured "
                             "square of at most this side; 0 = whole image "
                             f"(default {DEFAULT_MAX_WINDOW})")
    parser.add_argument("--no-refine", dest="refine", action="store_false",
                        help="use the network's kernel as it is, without the "
                             "refinement by alternating minimisation (step "
                             "6b, not in the paper; derivations/"
                             "kernel_refinement.md)")
    parser.add_argument("--noise", choices=("auto", "low", "high"), default="auto",
                        help="the photo's noise: high uses the network fine-tuned "
                             "for heavy noise where one is shipped (17, 25 px) and "
                             "skips the refinement, which makes noisy estimates "
                             "worse; auto (default): high when the noise estimated "
                             f"on the luminance is at least {HIGH_NOISE_STD} (on "
                             "[0, 1]); the report says which and why")
    parser.add_argument("--content", choices=("natural", "text"), default="natural",
                        help="what the photo shows: text (documents, whiteboards, "
                             "screens) uses the network fine-tuned on synthetic "
                             "documents where one is shipped (default: natural)")
    parser.add_argument("--model", type=Path,
                        help="model file to use instead of the shipped one")
    parser.add_argument("--nonuniform", action="store_true",
                        help="for a blur that changes across the photo (camera "
                             "rotation): estimate one kernel per patch of a grid "
                             "(paper 6.3) and deconvolve with them (hyper_laplacian "
                             "only); the kernel PNG shows the local kernels at their "
                             "patch positions")
    parser.add_argument("--grid", nargs=2, type=int, metavar=("ROWS", "COLS"),
                        help="with --nonuniform: rows and columns of patches; "
                             "neighbouring centres must be at least twice the "
                             "kernel size apart (default 3 3, fewer where the "
                             "image has no room)")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="deblur on a local Dask cluster of N worker "
                              "processes, each writing its outputs; an input "
                              "whose two outputs exist is skipped unless "
                              "--overwrite; needs refdeblur[distributed] "
                              "(default: one after the other in this process)")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="the same on the workers of the running Dask "
                              "scheduler at ADDRESS (tcp://host:8786), which "
                              "must see the inputs and outputs at the same paths")
    parser.set_defaults(handler=lambda args: run_deblur(args, user_error))


def _kernel_size_argument(text):
    """``auto`` or a shipped kernel size; argparse reports anything else."""
    if text == "auto":
        return text
    if text in {str(size) for size in SHIPPED_KERNEL_SIZES}:
        return int(text)
    sizes = ", ".join(map(str, SHIPPED_KERNEL_SIZES))
    raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose auto, {sizes})")


def _inputs(args, user_error):
    """The input images, once the options are known to fit them."""
    try:
        inputs = collect_inputs(args.inputs)
    except ValueError as error:
        raise user_error(str(error)) from None
    # the same file given twice is one input, but not one path for -o
    several = len(inputs) > 1 or len(args.inputs) > 1
    if several and (args.out is not None or args.kernel_out is not None):
        raise user_error("-o/--out and --kernel-out take a single input; use "
                         "--out-dir for several")
    if args.max_window < 0:
        raise user_error("--max-window must be >= 0")
    if args.noise_std is not None and not args.noise_std >= 0:
        raise user_error("--noise-std must be >= 0")
    _check_nonuniform(args, user_error)
    if args.workers is not None and args.workers < 1:
        raise user_error(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None or args.scheduler is not None:
        try:
            require_distributed()
        except ImportError as error:
            option = "--workers" if args.workers is not None else "--scheduler"
            raise user_error(f"{option}: {error}") from None
    _check_named_outputs(args, inputs, user_error)
    return inputs


def _check_nonuniform(args, user_error):
    """Refuse --grid without --nonuniform, grids below 1 and other deconvolutions."""
    if args.grid is not None and not args.nonuniform:
        raise user_error("--grid needs --nonuniform")
    if args.grid is not None and min(args.grid) < 1:
        raise user_error(f"--grid needs two integers >= 1, got {args.grid[0]} {args.grid[1]}")
    if args.nonuniform and args.method != "hyper_laplacian":
        raise user_error(f"--nonuniform deconvolves with hyper_laplacian only, not "
                         f"--method {args.method}")
    if args.nonuniform and (args.noise != "auto" or args.content != "natural"):
        option = (f"--noise {args.noise}" if args.noise != "auto"
                  else f"--content {args.content}")
        raise user_error(f"--nonuniform estimates with the generic networks; {option} "
                         f"is for a uniform blur")


def _check_named_outputs(args, inputs, user_error):
    """Refuse output paths given on the command line that clash."""
    named = [(option, path) for option, path in
             (("-o/--out", args.out), ("--kernel-out", args.kernel_out), ("--json", args.json))
             if path is not None]
    for i, (option, path) in enumerate(named):
        for other_option, other in named[i + 1:]:
            if path.resolve() == other.resolve():
                raise user_error(f"{option} and {other_option} name the same file {path}")
    if args.json is None:
        return
    if args.json.is_dir():
        raise user_error(f"--json {args.json} is a folder")
    if any(args.json.resolve() == source.resolve() for source, _ in inputs):
        raise user_error(f"--json {args.json} is an input file; refusing to overwrite it")
    if args.json.exists() and not args.overwrite:
        raise user_error(f"{args.json} exists; pass --overwrite to replace it")


def _model(args, user_error):
    """The network and its file; ``--model`` overrides ``--kernel-size``.

    None for both without ``--model``: each image's network is chosen from
    its blur (``--kernel-size auto``) and noise (``--noise``).
    """
    if args.model is None:
        return None, None
    try:
        model = load_model(args.model).astype(np.float32)
    except (OSError, ValueError) as error:
        raise user_error(f"cannot use model {args.model}: {error}") from None
    if args.kernel_size != "auto":   # with auto, the report says the model's size was used
        args.kernel_size = model.kernel_size
    return model, args.model


def run_deblur(args, user_error):
    """Handler of ``refdeblur deblur``; returns the exit status."""
    inputs = _inputs(args, user_error)
    model, model_path = _model(args, user_error)
    plans = plan_outputs(inputs, out=args.out, out_dir=args.out_dir,
                         kernel_out=args.kernel_out,
                         reserved=[args.json] if args.json is not None else [])
    for plan in plans:
        if plan.renamed:
            print(f"refdeblur: note: {plan.source} -> {plan.sharp_path} (its default name "
                  f"clashes; see 'output names' in --help)", file=sys.stderr)
    report = report_header(model, model_path, kernel_size=args.kernel_size,
                           method=args.method, noise_std=args.noise_std,
                           max_window=args.max_window, refine=args.refine, noise=args.noise,
                           content=args.content)
    options = dict(overwrite=args.overwrite, kernel_size=args.kernel_size, model=model,
                   method=args.method, noise_std=args.noise_std,
                   max_window=args.max_window or None, refine=args.refine, noise=args.noise,
                   content=args.content)
    if args.nonuniform:
        grid = tuple(args.grid) if args.grid is not None else None
        options.update(nonuniform=True, grid=grid)
        report["parameters"]["nonuniform"] = {"grid": None if grid is None else list(grid)}
    if args.workers is None and args.scheduler is None:
        results = _in_input_order(deblur_files(plans, **options), plans)
    else:
        with dask_client(workers=args.workers, scheduler=args.scheduler) as client:
            results = _in_input_order(deblur_files_distributed(client, plans, **options),
                                      plans)
    # Messages wait for the bar to finish, so that they do not interleave with it.
    messages = []
    failures = 0
    skipped = 0
    for result in results:
        if result.skipped:
            skipped += 1
        elif result.error is not None:
            failures += 1
            messages.append(f"refdeblur: error: {result.error}")
        else:
            messages.extend(f"refdeblur: warning: {result.source}: {message}"
                            for message in result.record["warnings"])
            report["images"].append(result.record)
    if skipped:
        messages.insert(0, f"refdeblur: note: skipped {skipped} of {len(plans)} inputs "
                           f"whose outputs exist (--overwrite deblurs them again)")
    for message in messages:
        print(message, file=sys.stderr)
    for record in report["images"]:
        print(_done_line(record))
    if args.json is not None:
        write_report(args.json, report)
    return 2 if failures else 0


def _in_input_order(results, plans):
    """Every result, under the progress bar as they come, then in input order."""
    # tqdm is imported here: only this command draws a progress bar.
    from tqdm import tqdm

    position = {plan.source: index for index, plan in enumerate(plans)}
    with tqdm(results, total=len(plans), unit="image", disable=len(plans) < 2,
              file=sys.stderr) as bar:
        done = list(bar)
    return sorted(done, key=lambda result: position[result.source])


def _done_line(record):
    """The line that says where a deblurred image went and which kernel size it got."""
    size = f"{record['kernel_size']} px"
    if record["kernel_size_choice"]["mode"] == "auto":
        support = record["kernel_size_choice"]["support_px"]
        size += (f" chosen from the blur (support {support} px)" if support is not None
                 else " chosen automatically")
    if "nonuniform" in record:
        rows, cols = record["nonuniform"]["grid"]
        size += f", {rows} x {cols} patches"
    return (f"{record['output']} (kernel: {record['kernel_png']}, {size}, "
            f"{record['seconds']:.1f} s)")
