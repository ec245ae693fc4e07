"""The ``refdeblur`` command line.

Every user error (a bad path, a bad image, a bad model file, an option out of
range) ends with one line on stderr and exit status 2, never a traceback.
"""

import sys

from .. import __version__
from .bench import add_bench_parser
from .deblur import add_deblur_parser
from .errors import ArgumentParser, UserError, fail
from .port import add_check_port_parser, add_trace_parser
from .train import add_export_parser, add_plot_parser, add_train_parser


def build_parser():
    """The argument parser of the ``refdeblur`` command."""
    parser = ArgumentParser(
        prog="refdeblur",
        description="Blind deblurring with the network of Schuler et al., "
                    "'Learning to Deblur' (TPAMI 2016).")
    parser.add_argument("--version", action="version",
                        version=f"refdeblur {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_deblur_parser(subparsers, UserError)
    add_train_parser(subparsers)
    add_plot_parser(subparsers)
    add_export_parser(subparsers)
    add_bench_parser(subparsers, UserError)
    add_trace_parser(subparsers, UserError)
    add_check_port_parser(subparsers, UserError)
    return parser


def main(argv=None):
    """Entry point of the ``refdeblur`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        return fail(str(error))
    except (OSError, ValueError) as error:
        return fail(str(error))


if __name__ == "__main__":
    sys.exit(main())
