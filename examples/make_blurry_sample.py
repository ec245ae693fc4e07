"""Make the blurred sample photo that the README's first command deblurs.

The sharp photo is scikit-image's ``astronaut`` (Eileen Collins, NASA; "no
known copyright restrictions, released into the public domain" per
``skimage.data.astronaut``). It is blurred with a synthetic camera-shake
kernel (``refdeblur.sample_kernel``, fixed seed) by 'valid' convolution of
every colour channel, so the borders are real, not circular; Gaussian noise
of standard deviation 0.01 is added and the result is stored as 8-bit PNG.

Usage::

    python make_blurry_sample.py [--out DIR] [--quick]

writes ``blurry_astronaut.png`` and ``blurry_astronaut_true_kernel.png``
(the kernel, enlarged for viewing) into the current directory, or into
``--out``. The copies in this folder are regenerated with
``python examples/make_blurry_sample.py --out examples/``. ``--quick`` is
accepted like in every script of this folder and changes nothing: the
sample is the same photo either way, so the README's commands stay true.
The true kernel is also available in code as
:func:`sample_kernel_and_image`, which the tests use.
"""

import sys
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _figure_common
from _figure_common import figure_parser, output_folder  # noqa: E402

from refdeblur import sample_kernel  # noqa: E402
from refdeblur.inference.files import kernel_image  # noqa: E402
from refdeblur.image_io import write_image  # noqa: E402

NAME = "blurry_astronaut.png"
KERNEL_NAME = "blurry_astronaut_true_kernel.png"

SEED = 2016
KERNEL_WINDOW = 23       # the blur fits the default 25 px window
NOISE_STD = 0.01


def sample_kernel_and_image():
    """``(blurry uint8 (H, W, 3), true kernel (m, m), sharp float crop)``."""
    rng = np.random.default_rng(SEED)
    kernel = sample_kernel(KERNEL_WINDOW, rng)
    sharp = data.astronaut().astype(np.float64) / 255.0
    blurry = np.stack([fftconvolve(sharp[..., c], kernel, mode="valid")
                       for c in range(3)], axis=-1)
    blurry += NOISE_STD * rng.standard_normal(blurry.shape)
    blurry_u8 = np.round(np.clip(blurry, 0, 1) * 255).astype(np.uint8)
    half = KERNEL_WINDOW // 2
    return blurry_u8, kernel, sharp[half:-half, half:-half]


def main(argv=None):
    parser = figure_parser(__doc__, NAME, model=False, seed=False, png_out=False,
                           quick_help="accepted for uniformity; the sample is the same")
    args = parser.parse_args(argv)
    out = output_folder(args.out)
    blurry, kernel, _ = sample_kernel_and_image()
    for name, image in ((NAME, blurry), (KERNEL_NAME, kernel_image(kernel))):
        write_image(out / name, image)
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
