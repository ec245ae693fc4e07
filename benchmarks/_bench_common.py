"""Timing and table helpers shared by the benchmark scripts of this folder."""

import sys
import time


def best_time(function, repeats, warmup=1):
    """Best wall time of ``function()`` in seconds over ``repeats`` calls,
    after ``warmup`` untimed calls (Numba compilation, FFT plans)."""
    for _ in range(warmup):
        function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def print_table(title, header, rows, note=None):
    """Print rows (lists of already formatted strings) as a Markdown table."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    print(f"\n## {title}\n")
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    if note:
        print(f"\n{note}")
    sys.stdout.flush()
