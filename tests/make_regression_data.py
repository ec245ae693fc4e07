"""Regenerate tests/data/shipped_regression.npz (run after changing a model).

``python tests/make_regression_data.py`` stores, for every shipped network,
the kernel it estimates on a fixed input (the centre of the README's sample
photo) without and with the kernel refinement (step 6b), together with the
SHA-256 of the model file. ``test_regression.py``
then fails whenever inference or a shipped model changes the result, so the
change is seen and the file is regenerated on purpose.
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "shipped_regression.npz"


def fixed_input():
    """Grey centre 256 x 256 of examples/blurry_astronaut.png, float64."""
    from refdeblur.image_io import read_image
    photo = read_image(HERE.parent / "examples" / "blurry_astronaut.png", as_gray=True)
    top = (photo.shape[0] - 256) // 2
    left = (photo.shape[1] - 256) // 2
    return photo[top:top + 256, left:left + 256]


def estimates():
    import warnings

    from refdeblur import DeblurWarning, estimate_kernel
    from refdeblur.kernel_refinement import refine_kernel
    from refdeblur.models import SHIPPED_KERNEL_SIZES, model_sha256, shipped_model_path
    image = fixed_input()
    arrays = {}
    for size in SHIPPED_KERNEL_SIZES:
        try:
            path = shipped_model_path(size)
        except ValueError:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeblurWarning)
            network_kernel = estimate_kernel(image, size, refine=False)
        arrays[f"k{size}_network"] = network_kernel
        arrays[f"k{size}"] = refine_kernel(image, network_kernel)
        arrays[f"k{size}_sha256"] = np.array(model_sha256(path))
    return arrays


def main():
    arrays = estimates()
    np.savez(DATA, **arrays)
    print(DATA, sorted(arrays))


if __name__ == "__main__":
    main()
