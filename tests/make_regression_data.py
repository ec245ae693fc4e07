"""Regenerate tests/data/shipped_regression.npz (run after changing a model).

``python tests/make_regression_data.py`` stores, for every shipped network,
the kernels it estimates on a fixed input (the centre of the README's sample
photo): the last stage's kernel of every scale (``k{size}_scale{j}``, the
finest is also ``k{size}_network``), and the default estimate with the
kernel refinement of step 6b (``k{size}``), together with the SHA-256 of the
model file; for every network fine-tuned for a condition, its kernel
(``k{size}_{condition}_network``, the one ``noise="high"`` or
``content="text"`` returns without refinement) and SHA-256. ``test_regression.py`` then fails whenever inference or a shipped model changes the result, so the
change is seen and the file is regenerated on purpose.
"""

from pathlib import Path

import numpy as np

from refdeblur.image_io import read_image
from refdeblur.inference import network_kernels
from refdeblur.network_fast import predict
from refdeblur.inference.refinement import refine_coarse_to_fine
from refdeblur.models import (SHIPPED_CONDITIONS, SHIPPED_KERNEL_SIZES, load_shipped_model,
                              model_sha256, shipped_model_path)

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "shipped_regression.npz"


def fixed_input():
    """Grey centre 256 x 256 of examples/blurry_astronaut.png, float64."""
    photo = read_image(HERE.parent / "examples" / "blurry_astronaut.png", as_gray=True)
    top = (photo.shape[0] - 256) // 2
    left = (photo.shape[1] - 256) // 2
    return photo[top:top + 256, left:left + 256]


def estimates():
    image = fixed_input()
    arrays = {}
    for size in SHIPPED_KERNEL_SIZES:
        try:
            path = shipped_model_path(size)
        except ValueError:
            continue
        net = load_shipped_model(size)
        scale_kernels = network_kernels(predict(net, image.astype(net.dtype)))
        for j, kernel in enumerate(scale_kernels):
            arrays[f"k{size}_scale{j}"] = kernel
        arrays[f"k{size}_network"] = scale_kernels[-1]
        arrays[f"k{size}"] = refine_coarse_to_fine(
            image, scale_kernels[0], net.architecture.kernel_sizes)
        arrays[f"k{size}_sha256"] = np.array(model_sha256(path))
    for condition, sizes in SHIPPED_CONDITIONS.items():
        for size in sizes:
            net = load_shipped_model(size, condition=condition)
            kernel = network_kernels(predict(net, image.astype(net.dtype)))[-1]
            arrays[f"k{size}_{condition}_network"] = kernel
            arrays[f"k{size}_{condition}_sha256"] = np.array(
                model_sha256(shipped_model_path(size, condition)))
    return arrays


def main():
    arrays = estimates()
    np.savez(DATA, **arrays)
    print(DATA, sorted(arrays))


if __name__ == "__main__":
    main()
