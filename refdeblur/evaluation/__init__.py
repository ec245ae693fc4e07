"""Benchmarks of the shipped networks on public data sets.

:mod:`refdeblur.evaluation.levin` runs and scores the Levin et al. 2009
benchmark (``refdeblur bench levin``); :mod:`refdeblur.evaluation.reporting`
writes its tables, plot and files.
"""

from .levin import (CSV_COLUMNS, DEFAULT_OUT_DIR, METHODS, OUTPUT_FILES,
                    BenchError, find_cases, load_case, oracle_kernel_size,
                    run_levin, summarise)

__all__ = ["BenchError", "CSV_COLUMNS", "DEFAULT_OUT_DIR", "METHODS",
           "OUTPUT_FILES", "find_cases", "load_case", "oracle_kernel_size",
           "run_levin", "summarise"]
