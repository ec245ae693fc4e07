"""Agreement of the Octave forward pass with refdeblur, per network and stage.

Runs the images and networks of tests/test_octave.py (same seed, same
images) through tests/octave/run_network.m and Network.forward in float64
and prints, per network, scale and stage, the worst relative error
max|a - b| / max|b| over the three images, and the time of each side's
forward passes. Needs octave-cli with the image package:

    .venv/bin/python tests/octave/agreement.py
    .venv/bin/python tests/octave/agreement.py --builtin imresize

``--builtin imresize`` (or ``otf2psf``) runs the forward pass with Octave's
own function in place of tests/octave/imresize_matlab.m (otf2psf_matlab.m),
to show what the difference between Octave's and MATLAB's function does to
the kernels.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_octave import (blurred_images, octave_stage_kernels,  # noqa: E402
                         octave_unavailable, reference_stage_kernels, relative_error)

from refdeblur.models import load_shipped_model  # noqa: E402

#: The seed of the ``rng`` fixture of tests/conftest.py.
SEED = 20261125

#: Replacements of this folder's MATLAB transcriptions by Octave's functions.
BUILTINS = {
    "imresize": ("imresize_matlab.m", "function out = imresize_matlab(in, out_size)\n"
                 "out = imresize(in, out_size);\nend\n"),
    "otf2psf": ("otf2psf_matlab.m", "function psf = otf2psf_matlab(otf, out_size)\n"
                "psf = real(otf2psf(otf, out_size));\nend\n"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builtin", choices=sorted(BUILTINS),
                        help="use Octave's own function instead of the MATLAB transcription")
    args = parser.parse_args()
    reason = octave_unavailable()
    if reason is not None:
        sys.exit(f"agreement.py: {reason}")
    print(f"{'network':>8} {'images':>24} {'scale':>5} {'stage':>5} "
          f"{'worst rel. error':>16} {'octave s':>9} {'refdeblur s':>11}")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        override = None
        if args.builtin:
            override = folder / "override"
            override.mkdir()
            name, text = BUILTINS[args.builtin]
            (override / name).write_text(text)
        for kernel_size in (17, 25, 33):
            net = load_shipped_model(kernel_size).astype(np.float64)
            images = blurred_images(kernel_size, np.random.default_rng(SEED))
            started = time.perf_counter()
            ours = reference_stage_kernels(net, images)
            our_seconds = time.perf_counter() - started
            theirs, their_seconds = octave_stage_kernels(net, images, folder,
                                                         first_on_path=override)
            shapes = " ".join(f"{h}x{w}" for h, w in (image.shape for image in images))
            for scale, stage in sorted({key[1:] for key in ours}):
                worst = max(relative_error(theirs[key], ours[key]) for key in ours
                            if key[1:] == (scale, stage))
                print(f"{'k%d' % kernel_size:>8} {shapes:>24} {scale + 1:>5} "
                      f"{stage + 1:>5} {worst:>16.2e} {their_seconds:>9.2f} "
                      f"{our_seconds:>11.2f}")


if __name__ == "__main__":
    main()
