"""``refdeblur bench levin``: the Levin et al. 2009 benchmark from the command line.

The arguments go to :func:`refdeblur.evaluation.levin.run_levin`, which scores
the cases and writes ``cases.csv``, ``summary.md``, ``summary.json`` and
``error_ratio_cdf.png``; the summary table is printed.
"""

import argparse
import shlex
import sys
from pathlib import Path

from ..evaluation.levin import DEFAULT_OUT_DIR, BenchError, run_levin
from .errors import fail

__all__ = ["add_bench_parser", "main_levin"]

BENCH_EXAMPLES = """\
data: LevinEtalCVPR09Data from Anat Levin's web page (Levin, Weiss, Durand,
Freeman, "Understanding and evaluating blind deconvolution algorithms",
CVPR 2009); --data is the folder of its .mat files once unpacked.

examples:
  refdeblur bench levin --data ~/data/Levin09blurdata
  refdeblur bench levin --data ~/data/Levin09blurdata --kernel-size oracle --out oracle/
  refdeblur bench levin --data ~/data/Levin09blurdata --kernel-size 25 --out k25/
  refdeblur bench levin --data ~/data/Levin09blurdata --cases im01_ker01,im02_ker05
"""

LEVIN_DESCRIPTION = (
    "Estimate the kernel of the 32 cases of Levin et al. (CVPR 2009) with "
    "the network chosen from each blurry image (as refdeblur deblur does; "
    "see --kernel-size), deconvolve with it, with the network's unrefined "
    "kernel, with the true kernel and with a delta kernel, and "
    "score with Levin's protocol (PSNR, SSIM, error ratio up to shift). "
    "Writes cases.csv, summary.md, summary.json and error_ratio_cdf.png.")


def _kernel_size_argument(text):
    if text in ("auto", "oracle"):
        return text
    if text in ("17", "25", "33"):
        return int(text)
    raise argparse.ArgumentTypeError(
        f"invalid choice {text!r} (choose auto, oracle, 17, 25 or 33)")


def _add_levin_arguments(parser):
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="folder of Levin et al.'s 32 files im0?_ker0?.mat "
                             "or, as the authors name them, im0?_flit0?.mat "
                             "(variables x, y, f); a converted folder whose "
                             "index.csv names them is read too")
    parser.add_argument("--out", type=Path, metavar="OUT_DIR",
                        help=f"output folder (default ./{DEFAULT_OUT_DIR}); "
                             f"result files already there are replaced only "
                             f"with --overwrite")
    parser.add_argument("--kernel-size", type=_kernel_size_argument, default="auto",
                        metavar="{auto,oracle,17,25,33}",
                        help="network window per case: auto (default) = chosen "
                             "from the blurry image, as refdeblur deblur does "
                             "(the network-only row uses the network of that "
                             "size); oracle = the smallest shipped size >= the "
                             "true kernel size, else the largest shipped: it "
                             "needs the true kernel and gives the upper "
                             "reference for auto; or one size for every case")
    parser.add_argument("--model", type=Path, metavar="FILE",
                        help="model file to use for every case instead of the "
                             "shipped networks (its kernel size; not with "
                             "--kernel-size oracle)")
    parser.add_argument("--cases", metavar="NAMES",
                        help="comma-separated case names (e.g. "
                             "im01_ker01,im02_ker05; the authors' im05_flit01 "
                             "is im01_ker01); default all 32")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace result files already in the output folder")


def _run_from_args(args, command_line):
    cases = None
    if args.cases is not None:
        cases = [name.strip() for name in args.cases.split(",") if name.strip()]
        if not cases:
            raise BenchError("--cases is empty")
    result = run_levin(args.data, args.out, kernel_size=args.kernel_size,
                       model_path=args.model, cases=cases, overwrite=args.overwrite,
                       command_line=command_line, progress=True)
    print(result["summary_table"])
    print(f"\nresults in {result['out_dir']} "
          f"({result['info']['wall_seconds']:.1f} s)")
    return 0


def add_bench_parser(subparsers, user_error):
    """Register ``refdeblur bench levin``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``refdeblur`` command's subparsers.
    user_error : type
        The CLI's one-line error type; a
        :class:`~refdeblur.evaluation.levin.BenchError` is re-raised as it.
    """
    bench = subparsers.add_parser(
        "bench", help="run a benchmark",
        description="Benchmarks of the shipped networks on public data sets.")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
    levin = benchmarks.add_parser(
        "levin", help="Levin et al. 2009: 32 real camera-shake cases",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=BENCH_EXAMPLES,
        description=LEVIN_DESCRIPTION)
    _add_levin_arguments(levin)

    def handler(args):
        try:
            return _run_from_args(args, shlex.join(["refdeblur", *sys.argv[1:]]))
        except BenchError as error:
            raise user_error(str(error)) from None

    levin.set_defaults(handler=handler)


def main_levin(argv=None):
    """``refdeblur bench levin`` as a function; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``bench levin`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 after a one-line error on stderr.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="refdeblur bench levin",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=BENCH_EXAMPLES)
    _add_levin_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _run_from_args(args, shlex.join(["refdeblur", "bench", "levin", *argv]))
    except BenchError as error:
        return fail(str(error))
