"""``refdeblur deblur``: blind deblurring of image files.

Every problem with one input (unreadable, too small, NaN, an output that
exists, ...) is reported as one line on stderr; the other inputs are still
processed and the exit status is 2 if any input failed. Outputs are written
to a temporary file and renamed, so there is never a partial output, an
existing file is replaced only with ``--overwrite``, and an input is never
overwritten.
"""

import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .image_io import _give_default_permissions

DEBLUR_EXAMPLES = """\
examples:
  refdeblur deblur photo.jpg
      writes photo_deblurred.jpg and photo_deblurred_kernel.png beside it
  refdeblur deblur photo.png -o sharp.png --kernel-size 33 --json sharp.json
  refdeblur deblur shots/ --out-dir results/ --kernel-size 17
  refdeblur deblur a.png b.png --method wiener --noise-std 0.01
"""

SUFFIX = "_deblurred"


class InputError(Exception):
    """A problem with one input file; reported as one line, others go on."""


def add_deblur_parser(subparsers, user_error):
    """Register ``refdeblur deblur``; ``user_error`` is the CLI's error type."""
    import argparse

    from .inference import DECONVOLUTION_METHODS, DEFAULT_MAX_WINDOW

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


def _collect_inputs(paths, user_error):
    """``(path, relative name)`` of every input image."""
    from .image_io import find_images

    found = []
    for path in paths:
        if path.is_dir():
            images = find_images(path)
            if not images:
                raise user_error(f"no images found in folder {path}")
            found.extend((image, image.relative_to(path)) for image in images)
        else:
            # Missing files are reported per input, like unreadable ones.
            found.append((path, Path(path.name)))
    return found


def _output_paths(source, relative, args):
    """Where the sharp image and the kernel PNG of ``source`` go."""
    if args.out is not None:
        sharp = args.out
    else:
        folder = (args.out_dir / relative.parent if args.out_dir is not None
                  else source.parent)
        sharp = folder / f"{relative.stem}{SUFFIX}{source.suffix}"
    if sharp.suffix == "":
        sharp = sharp.with_suffix(".png")
    kernel = (args.kernel_out if args.kernel_out is not None
              else sharp.with_name(f"{sharp.stem}_kernel.png"))
    return sharp, kernel


def _check_outputs(source, outputs, overwrite):
    for output in outputs:
        if output.exists() and output.resolve() == source.resolve():
            raise InputError(f"{output} is the input file; refusing to "
                             f"overwrite it")
        if output.is_dir():
            raise InputError(f"output path {output} is a folder")
        if output.exists() and not overwrite:
            raise InputError(f"{output} exists; pass --overwrite to replace it")


def kernel_image(kernel, min_side=256):
    """The kernel as an 8-bit picture: its maximum white, enlarged by an
    integer factor (nearest neighbour) to at least ``min_side`` px."""
    kernel = np.asarray(kernel, dtype=np.float64)
    peak = kernel.max()
    scaled = kernel / peak if peak > 0 else kernel
    factor = max(1, -(-min_side // kernel.shape[0]))
    big = np.kron(scaled, np.ones((factor, factor)))
    return np.round(np.clip(big, 0, 1) * 255).astype(np.uint8)


def _read(source):
    from .image_io import read_image_raw

    if not source.exists():
        raise InputError(f"{source}: no such file")
    try:
        image = read_image_raw(source)
    except Exception as error:   # decoders raise many types on bad files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"{source}: cannot read the image ({reason})") from None
    if image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4):
        raise InputError(f"{source}: unsupported image layout {image.shape}")
    if image.ndim not in (2, 3):
        raise InputError(f"{source}: unsupported image layout {image.shape}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image


def refinement_mode(refine, model):
    """What step 6b does with this model: ``"none"``, ``"single_scale"`` (the
    network's kernel refined at its one scale) or ``"coarse_to_fine"`` (from
    the coarsest scale's kernel over every scale; derivations/
    kernel_refinement.md, A8). Images smaller than twice the kernel are
    not refined whatever this says."""
    if not refine:
        return "none"
    return "coarse_to_fine" if len(model.architecture.kernel_sizes) > 1 else "single_scale"


def _deblur_one(source, sharp_path, kernel_path, args, model):
    from .image_io import write_image
    from .inference import DeblurWarning, deblur

    image = _read(source)
    channel_axis = -1 if image.ndim == 3 else None
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeblurWarning)
        try:
            sharp, kernel = deblur(
                image, args.kernel_size, channel_axis=channel_axis, model=model,
                method=args.method, noise_std=args.noise_std,
                max_window=args.max_window or None, refine=args.refine)
        except ValueError as error:
            raise InputError(f"{source}: {error}") from None
    seconds = time.perf_counter() - started
    messages = [str(w.message) for w in caught
                if issubclass(w.category, DeblurWarning)]
    if sharp.dtype not in (np.uint8, np.uint16):
        # float input (e.g. a float TIFF): write 16 bits where the format can
        sharp = np.round(np.clip(sharp, 0, 1) * 65535).astype(np.uint16)
    for path in (sharp_path, kernel_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    write_image(sharp_path, sharp)
    write_image(kernel_path, kernel_image(kernel))
    return {
        "input": str(source), "output": str(sharp_path),
        "kernel_png": str(kernel_path), "shape": list(image.shape),
        "dtype": str(image.dtype), "seconds": round(seconds, 3),
        "warnings": messages, "kernel": np.round(kernel, 8).tolist(),
    }


def _write_json(path, report):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        _give_default_permissions(temporary)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(report, stream, indent=1)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run_deblur(args, user_error):
    """Handler of ``refdeblur deblur``; returns the exit status."""
    from tqdm import tqdm

    from .model_io import load_model
    from .models import load_shipped_model, model_sha256, shipped_model_path

    inputs = _collect_inputs(args.inputs, user_error)
    if len(inputs) > 1 and (args.out is not None or args.kernel_out is not None):
        raise user_error("-o/--out and --kernel-out take a single input; use "
                         "--out-dir for several")
    if args.max_window < 0:
        raise user_error("--max-window must be >= 0")
    if args.noise_std is not None and not args.noise_std >= 0:
        raise user_error("--noise-std must be >= 0")
    if args.model is not None:
        try:
            model = load_model(args.model).astype(np.float32)
        except (OSError, ValueError) as error:
            raise user_error(f"cannot use model {args.model}: {error}") from None
        if model.kernel_size != args.kernel_size:
            args.kernel_size = model.kernel_size
        model_path = args.model
    else:
        model_path = shipped_model_path(args.kernel_size)
        model = load_shipped_model(args.kernel_size)
    if args.json is not None and args.json.exists() and not args.overwrite:
        raise user_error(f"{args.json} exists; pass --overwrite to replace it")
    report = {"refdeblur_version": __version__, "model": str(model_path),
              "model_sha256": model_sha256(model_path),
              "parameters": {"kernel_size": args.kernel_size,
                             "method": args.method, "noise_std": args.noise_std,
                             "max_window": args.max_window, "refine": args.refine,
                             "refinement": refinement_mode(args.refine, model)},
              "images": []}
    failures = 0
    bar = tqdm(inputs, unit="image", disable=len(inputs) < 2, file=sys.stderr)
    for source, relative in bar:
        sharp_path, kernel_path = _output_paths(source, relative, args)
        try:
            _check_outputs(source, (sharp_path, kernel_path), args.overwrite)
            record = _deblur_one(source, sharp_path, kernel_path, args, model)
        except InputError as error:
            failures += 1
            tqdm.write(f"refdeblur: error: {error}", file=sys.stderr)
            continue
        except OSError as error:
            failures += 1
            tqdm.write(f"refdeblur: error: {source}: cannot write the output "
                       f"({error.strerror or error})", file=sys.stderr)
            continue
        for message in record["warnings"]:
            tqdm.write(f"refdeblur: warning: {source}: {message}", file=sys.stderr)
        report["images"].append(record)
        if len(inputs) == 1:
            print(f"{sharp_path} (kernel: {kernel_path}, "
                  f"{record['seconds']:.1f} s)")
    bar.close()
    if args.json is not None:
        _write_json(args.json, report)
    return 2 if failures else 0
