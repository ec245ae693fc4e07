"""Make the blurred sample photo that the README's first command deblurs.

The sharp photo is scikit-image's ``astronaut`` (Eileen Collins, NASA; "no
known copyright restrictions, released into the public domain" per
``skimage.data.astronaut``). It is blurred with a synthetic camera-shake
kernel (``refdeblur.sample_kernel``, fixed seed) by 'valid' convolution of
every colour channel, so the borders are real, not circular; Gaussian noise
of standard deviation 0.01 is added and the result is stored as 8-bit PNG.

Run ``python examples/make_blurry_sample.py [--out DIR]``; it writes
``blurry_astronaut.png`` and ``blurry_astronaut_true_kernel.png`` (the
kernel, enlarged for viewing). The true kernel is also available in code
as :func:`sample_kernel_and_image`, which the tests use.
"""

import argparse
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve
from skimage import data

from refdeblur import sample_kernel
from refdeblur.inference.files import kernel_image
from refdeblur.image_io import write_image

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    blurry, kernel, _ = sample_kernel_and_image()
    write_image(args.out / "blurry_astronaut.png", blurry)
    write_image(args.out / "blurry_astronaut_true_kernel.png", kernel_image(kernel))
    print(args.out / "blurry_astronaut.png")


if __name__ == "__main__":
    main()
