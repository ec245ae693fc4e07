"""The worst gradient-check and adjoint-test error of every layer.

For porters: a port that checks its own layers against finite differences
can compare its errors with these, layer by layer, to see whether it is as
close to the exact gradient as this implementation.

Run ``python benchmarks/gradcheck_report.py`` (the stored output is
``benchmarks/results/gradcheck_report.txt``). It runs the layer and network
tests (``tests/layers``, ``tests/test_network.py``) with a recorder switched
on (``REFDEBLUR_GRADCHECK_REPORT``, see ``tests/conftest.py``) and prints,
per test module, the number of checks and the worst relative error of the
finite-difference gradient checks and of the adjoint (dot-product) tests.
The tests themselves require <= 1e-6; this shows how far below that each
layer is.
"""

import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "gradchecks.json"
        env = {**os.environ, "REFDEBLUR_GRADCHECK_REPORT": str(report)}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/layers", "tests/test_network.py"],
            cwd=ROOT, env=env, capture_output=True, text=True)
        print(result.stdout.strip().splitlines()[-1])
        records = json.loads(report.read_text())
    table = collections.defaultdict(lambda: {"gradient": [], "adjoint": []})
    for record in records:
        module = record["test"].split("::")[0].rsplit("/", 1)[-1]
        table[module][record["kind"]].append(record["value"])
    print("\n| test module | gradient checks | worst gradient rel. error "
          "| adjoint tests | worst adjoint mismatch |")
    print("|---|---|---|---|---|")
    for module in sorted(table):
        grads, adjoints = table[module]["gradient"], table[module]["adjoint"]
        worst_grad = f"{max(grads):.1e}" if grads else "-"
        worst_adj = f"{max(adjoints):.1e}" if adjoints else "-"
        print(f"| {module} | {len(grads)} | {worst_grad} | {len(adjoints)} | "
              f"{worst_adj} |")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
