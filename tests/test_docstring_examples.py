"""The Examples sections of the public docstrings run and print what they show."""

import doctest
import importlib
import pkgutil

import pytest

import refdeblur

# refdeblur.__main__ runs the command line when imported.
MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(refdeblur.__path__,
                                                                "refdeblur.")
                 if name != "refdeblur.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    # The project's warnings filter (errors) applies: an example that warns fails.
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
