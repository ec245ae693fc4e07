"""Regenerate the figures that the READMEs show, in ``examples/figures/``.

The main README and ``examples/README.md`` show three figures:
``fig06_sampled_kernels.png``, ``fig02_stage_outputs.png`` and
``coarse_to_fine_refinement.png``. This script runs the scripts that draw
them, in this process, each with ``--out`` set to the figures folder (and
``--quick`` when given); ``--all`` also runs the other figure scripts.

Usage::

    python make_figures.py [--out DIR] [--quick] [--all]

writes into ``examples/figures/`` (next to this script, whatever the
current directory) unless ``--out`` names another folder; ``--quick``
makes the small, fast versions (for tests), which should not replace the
committed figures.
"""

import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser  # noqa: E402

FIGURES_FOLDER = Path(__file__).resolve().parent / "figures"
#: The scripts whose figures the READMEs show, in the order they appear.
README_FIGURES = ("fig06_sampled_kernels", "fig02_stage_outputs",
                  "coarse_to_fine_refinement")
OTHER_FIGURES = ("fig07_learned_filters", "fig09_histograms",
                 "fig11_activation_maximisation", "fig13_14_specific_networks",
                 "fig19_error_vs_image_size")


def main(argv=None):
    parser = figure_parser(__doc__, "<script>.png", model=False, seed=False,
                           png_out=False, out_default=FIGURES_FOLDER,
                           quick_help="small, fast versions (for tests)")
    parser.add_argument("--all", action="store_true",
                        help="also the figure scripts the READMEs do not show")
    args = parser.parse_args(argv)
    scripts = README_FIGURES + (OTHER_FIGURES if args.all else ())
    for name in scripts:
        began = time.perf_counter()
        script_argv = ["--out", str(args.out)] + (["--quick"] if args.quick else [])
        importlib.import_module(name).main(script_argv)
        print(f"{name}: {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
