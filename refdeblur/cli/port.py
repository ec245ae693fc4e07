"""``refdeblur trace`` and ``refdeblur check-port``: ground truth for ports.

``trace`` writes a golden trace of a network (:mod:`refdeblur.porting.trace`);
``check-port`` compares a port's arrays with it and names the first layer
that differs (:mod:`refdeblur.porting.check`). The format and the names are
specified in derivations/porting.md.
"""

import argparse
import math
from pathlib import Path

from ..model_io import load_model
from ..models import SHIPPED_KERNEL_SIZES
from ..porting.check import compare_traces, format_comparison, read_port_arrays
from ..porting.trace import make_trace, read_trace, write_trace

__all__ = ["add_trace_parser", "add_check_port_parser"]

TRACE_EXAMPLES = """\
examples:
  refdeblur trace --kernel-size 17 --out trace17.npz
  refdeblur trace --kernel-size 33 --out trace33.npz --seed 3
  refdeblur trace --model my_model.npz --out mine.npz --size 80 96

The file is a plain .npz archive (float64 arrays, one per name) with a JSON
entry __metadata__; derivations/porting.md lists every name and convention.
"""

CHECK_EXAMPLES = """\
examples:
  refdeblur check-port trace17.npz port17.npz
  refdeblur check-port trace17.npz port17_float32.npz --rtol 1e-4

An array agrees when max |port - trace| <= atol + rtol * max |trace|.
Trace names missing from the port's file are counted, not failures.
exit status: 0 if every compared array agrees, 1 if any differs (or none
has a trace name), 2 if a file is missing or unreadable.
"""


def add_trace_parser(subparsers, user_error):
    """Register ``refdeblur trace``; ``user_error`` is the CLI's error type."""
    parser = subparsers.add_parser(
        "trace", help="write a golden trace of a network for porters",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TRACE_EXAMPLES,
        description="Run a network in float64 on a fixed synthetic blurry image "
                    "and write every layer's inputs, outputs, upstream gradient "
                    "and input and parameter gradients of a fixed loss on the "
                    "final kernel, under stable names.")
    parser.add_argument("--kernel-size", type=int, choices=SHIPPED_KERNEL_SIZES,
                        help="trace the shipped network of this kernel size")
    parser.add_argument("--model", type=Path,
                        help="trace this model file instead of a shipped network")
    parser.add_argument("--out", type=Path, required=True, help="the trace file to write")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the synthetic input (default 0)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="input size (default: 64 x 64 or the network's "
                             "minimum, whichever is larger)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing trace file")
    parser.set_defaults(handler=lambda args: run_trace(args, user_error))


def run_trace(args, user_error):
    """Handler of ``refdeblur trace``; returns the exit status."""
    if args.model is None and args.kernel_size is None:
        raise user_error("give --kernel-size or --model")
    if args.out.exists() and not args.overwrite:
        raise user_error(f"{args.out} exists (use --overwrite to replace it)")
    if not args.out.parent.is_dir():
        raise user_error(f"the folder of --out does not exist: {args.out.parent}")
    if args.seed < 0:
        raise user_error("--seed must be >= 0")
    if args.size is not None and min(args.size) < 1:
        raise user_error("--size must be two positive integers")
    model = args.kernel_size
    if args.model is not None:
        net = load_model(args.model)     # a missing or bad file: one line, exit 2
        if args.kernel_size is not None and net.kernel_size != args.kernel_size:
            raise user_error(f"{args.model} estimates kernels of {net.kernel_size} px, "
                             f"not {args.kernel_size}")
        model = args.model
    trace = make_trace(model, seed=args.seed, size=args.size)
    metadata = trace["__metadata__"]
    write_trace(trace, args.out, overwrite=args.overwrite)
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {len(metadata['names'])} names "
          f"({len(metadata['names']) - len(metadata['aliases'])} arrays, "
          f"{len(metadata['aliases'])} aliases), {size / 1e6:.1f} MB, "
          f"input {metadata['size'][0]}x{metadata['size'][1]}, seed {metadata['seed']}, "
          f"loss {float(trace['loss/value']):.6e}")
    return 0


def _tolerance(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be finite and >= 0, got {text}")
    return value


def add_check_port_parser(subparsers, user_error):
    """Register ``refdeblur check-port``; ``user_error`` is the CLI's error type."""
    parser = subparsers.add_parser(
        "check-port", help="compare a port's arrays with a golden trace",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=CHECK_EXAMPLES,
        description="Compare every array of the port's .npz file whose name the "
                    "trace knows, in network order; print max absolute and "
                    "relative errors per array and the first layer whose output "
                    "or gradient differs.")
    parser.add_argument("trace", type=Path, help="a trace from refdeblur trace")
    parser.add_argument("theirs", type=Path,
                        help="the port's arrays: an .npz file with trace names")
    parser.add_argument("--rtol", type=_tolerance, default=1e-8,
                        help="relative tolerance, on the largest entry of each "
                             "array (default 1e-8; about 1e-4 for float32)")
    parser.add_argument("--atol", type=_tolerance, default=0.0,
                        help="absolute tolerance (default 0)")
    parser.set_defaults(handler=lambda args: run_check_port(args, user_error))


def run_check_port(args, user_error):
    """Handler of ``refdeblur check-port``; returns the exit status."""
    try:
        ours = read_trace(args.trace)
        theirs = read_port_arrays(args.theirs)
    except (OSError, ValueError) as error:
        raise user_error(str(error)) from None
    result = compare_traces(ours, theirs, rtol=args.rtol, atol=args.atol)
    print(format_comparison(result))
    return 0 if result.ok else 1
