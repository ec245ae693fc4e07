"""``python -m refdeblur`` is the ``refdeblur`` command."""

import sys

from .cli import main

sys.exit(main())
