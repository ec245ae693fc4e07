"""The version of refdeblur, in a module of its own so that the modules
that record it (model files, reports) need not import the package root."""

__version__ = "0.1.0.dev0"
