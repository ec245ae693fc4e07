"""``refdeblur deblur``: blind deblurring of image files.

Every problem with one input (unreadable, too small, NaN, an output that
exists, ...) is reported as one line on stderr; the other inputs are still
processed and the exit status is 2 if any input failed. The work on each
file is :mod:`refdeblur.inference.files`.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from ..inference import DECONVOLUTION_METHODS, DEFAULT_MAX_WINDOW
from ..inference.files import collect_inputs, deblur_files, report_header, write_report
from ..model_io import load_model
from ..models import load_shipped_model, shipped_model_path

DEBLUR_EXAMPLES = """\
examples:
  refdeblur deblur photo.jpg
      writes photo_deblurred.jpg and photo_deblurred_kernel.png beside it
  refdeblur deblur photo.png -o sharp.png --kernel-size 33 --json sharp.json
  refdeblur deblur shots/ --out-dir results/ --kernel-size 17
  refdeblur deblur a.png b.png --method wiener --noise-std 0.01
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
                            "INPUT_deblurred.EXT beside the input)")
    where.add_argument("--out-dir", type=Path,
                       help="folder for the outputs (created if missing)")
    parser.add_argument("--kernel-size", type=int, default=25,
                        choices=(17, 25, 33),
                        help="side of the kernel window: larger than the "
                             "blur (default 25)")
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
    parser.add_argument("--model", type=Path,
                        help="model file to use instead of the shipped one")
    parser.set_defaults(handler=lambda args: run_deblur(args, user_error))


def _inputs(args, user_error):
    """The input images, once the options are known to fit them."""
    try:
        inputs = collect_inputs(args.inputs)
    except ValueError as error:
        raise user_error(str(error)) from None
    if len(inputs) > 1 and (args.out is not None or args.kernel_out is not None):
        raise user_error("-o/--out and --kernel-out take a single input; use "
                         "--out-dir for several")
    if args.max_window < 0:
        raise user_error("--max-window must be >= 0")
    if args.noise_std is not None and not args.noise_std >= 0:
        raise user_error("--noise-std must be >= 0")
    return inputs


def _model(args, user_error):
    """The network and its file; ``--model`` overrides ``--kernel-size``."""
    if args.model is None:
        return load_shipped_model(args.kernel_size), shipped_model_path(args.kernel_size)
    try:
        model = load_model(args.model).astype(np.float32)
    except (OSError, ValueError) as error:
        raise user_error(f"cannot use model {args.model}: {error}") from None
    args.kernel_size = model.kernel_size
    return model, args.model


def run_deblur(args, user_error):
    """Handler of ``refdeblur deblur``; returns the exit status."""
    # tqdm is imported here: only this command draws a progress bar.
    from tqdm import tqdm

    inputs = _inputs(args, user_error)
    model, model_path = _model(args, user_error)
    if args.json is not None and args.json.exists() and not args.overwrite:
        raise user_error(f"{args.json} exists; pass --overwrite to replace it")
    report = report_header(model, model_path, kernel_size=args.kernel_size,
                           method=args.method, noise_std=args.noise_std,
                           max_window=args.max_window, refine=args.refine)
    results = deblur_files(inputs, out=args.out, out_dir=args.out_dir,
                           kernel_out=args.kernel_out, overwrite=args.overwrite,
                           kernel_size=args.kernel_size, model=model, method=args.method,
                           noise_std=args.noise_std, max_window=args.max_window or None,
                           refine=args.refine)
    failures = 0
    bar = tqdm(results, total=len(inputs), unit="image", disable=len(inputs) < 2,
               file=sys.stderr)
    for result in bar:
        if result.error is not None:
            failures += 1
            tqdm.write(f"refdeblur: error: {result.error}", file=sys.stderr)
            continue
        for message in result.record["warnings"]:
            tqdm.write(f"refdeblur: warning: {result.source}: {message}", file=sys.stderr)
        report["images"].append(result.record)
        if len(inputs) == 1:
            print(f"{result.sharp_path} (kernel: {result.kernel_path}, "
                  f"{result.record['seconds']:.1f} s)")
    bar.close()
    if args.json is not None:
        write_report(args.json, report)
    return 2 if failures else 0
