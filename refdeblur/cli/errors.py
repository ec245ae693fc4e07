"""User errors of the command line: one line on stderr, exit status 2."""

import argparse
import sys


class UserError(Exception):
    """An error caused by the user's input; reported as one line."""


def fail(message):
    """Print ``message`` as the command's one error line; return the exit status 2."""
    print(f"refdeblur: error: {message}", file=sys.stderr)
    return 2


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error.

    argparse prints the whole usage block before its message; a user who
    mistyped one option gets that option's complaint and where to look.
    Subcommand parsers inherit this class through ``add_subparsers``.
    """

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
