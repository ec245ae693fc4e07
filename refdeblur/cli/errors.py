"""User errors of the command line: one line on stderr, exit status 2."""

import sys


class UserError(Exception):
    """An error caused by the user's input; reported as one line."""


def fail(message):
    """Print ``message`` as the command's one error line; return the exit status 2."""
    print(f"refdeblur: error: {message}", file=sys.stderr)
    return 2
