"""Ground truth for ports of the network to other frameworks and languages.

:mod:`refdeblur.porting.trace`
    Golden traces: every layer's inputs, outputs and gradients on a fixed
    input, in a plain ``.npz`` file with JSON metadata (``refdeblur trace``).
:mod:`refdeblur.porting.check`
    Compare a port's arrays with a trace and name the first layer that
    differs (``refdeblur check-port``).

The trace format, its names and the conventions a port must follow are
specified in derivations/porting.md.
"""

from .check import ArrayComparison, PortComparison, compare_traces, format_comparison
from .trace import make_trace, read_trace, write_trace

__all__ = ["ArrayComparison", "PortComparison", "compare_traces", "format_comparison",
           "make_trace", "read_trace", "write_trace"]
