"""Import a script of ``benchmarks/`` or ``examples/`` as a module.

The tests call a script's functions, or its ``main`` with arguments,
in-process. The script's ``if __name__ == "__main__"`` block does not run.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(path, *, name=None):
    """The script at ``path`` (relative to the repository root, or absolute).

    Parameters
    ----------
    path : str or Path
    name : str, optional
        The module's name; default: the file's stem.

    Returns
    -------
    module
    """
    path = ROOT / path
    # A script may import modules beside it, as it does when run from there.
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(name or path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module
