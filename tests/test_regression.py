"""Stored outputs of the shipped networks on a fixed input.

Any change to the inference path or to a shipped model changes these
kernels; regenerate ``tests/data/shipped_regression.npz`` on purpose with
``python tests/make_regression_data.py`` when the change is intended.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_regression_data import DATA, fixed_input  # noqa: E402

from refdeblur import DeblurWarning, estimate_kernel  # noqa: E402
from refdeblur.inference import network_kernels  # noqa: E402
from refdeblur.network_fast import predict  # noqa: E402
from refdeblur._engine import HAVE_NUMBA  # noqa: E402
from refdeblur.inference.refinement import refine_coarse_to_fine, refine_kernel  # noqa: E402
from refdeblur.models import (SHIPPED_CONDITIONS, SHIPPED_KERNEL_SIZES,  # noqa: E402
                              load_shipped_model, model_sha256, shipped_model_path)


@pytest.mark.parametrize("size", SHIPPED_KERNEL_SIZES)
def test_shipped_model_reproduces_its_stored_kernel(size):
    with np.load(DATA, allow_pickle=False) as archive:
        stored = {key: archive[key] for key in archive.files}
    if f"k{size}" not in stored:
        pytest.skip(f"no {size} px model was shipped when the data was made")
    path = shipped_model_path(size)
    assert model_sha256(path) == str(stored[f"k{size}_sha256"]), (
        f"the shipped {size} px model changed; regenerate {DATA.name} with "
        f"python tests/make_regression_data.py")
    image = fixed_input()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        network_kernel = estimate_kernel(image, size, refine=False)
        kernel = estimate_kernel(image, size)
    np.testing.assert_allclose(network_kernel, stored[f"k{size}_network"],
                               rtol=1e-4, atol=1e-6)
    net = load_shipped_model(size)
    scale_kernels = network_kernels(predict(net, image.astype(net.dtype)))
    stored_scales = [stored[f"k{size}_scale{j}"] for j in range(len(scale_kernels))]
    for now, then in zip(scale_kernels, stored_scales):
        np.testing.assert_allclose(now, then, rtol=1e-4, atol=1e-6)
    # The refinement thresholds its kernels (A7), so float32 rounding in the
    # network can move a pixel across a threshold: it is checked from the
    # stored network kernels, where it is float64 throughout, and the
    # default estimate must be exactly the network's kernels, refined coarse
    # to fine (a single scale: refine_kernel).
    sizes = net.architecture.kernel_sizes
    refined = refine_coarse_to_fine(image, stored_scales[0], sizes)
    if HAVE_NUMBA:
        np.testing.assert_allclose(refined, stored[f"k{size}"], rtol=1e-6, atol=1e-9)
    else:
        # Without numba the deconvolution inside the refinement runs its
        # NumPy formulation, which rounds differently; the threshold of (A7)
        # can then drop or keep a pixel, moving a little of the kernel's
        # unit mass (observed 1.2e-2 at 25 px, under 1e-5 at 17 and 33 px).
        assert np.abs(refined - stored[f"k{size}"]).sum() < 0.03
    np.testing.assert_array_equal(kernel, refine_coarse_to_fine(image, scale_kernels[0],
                                                                sizes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        finest_only = estimate_kernel(image, size, refine={"coarse_to_fine": False})
    np.testing.assert_array_equal(finest_only, refine_kernel(image, network_kernel))


#: The arguments that select each fine-tuned network.
CONDITION_ARGUMENTS = {"high_noise": {"noise": "high"},
                       "text": {"content": "text", "noise": "low"}}


@pytest.mark.parametrize("size, condition", [
    (size, condition) for condition, sizes in SHIPPED_CONDITIONS.items() for size in sizes])
def test_fine_tuned_model_reproduces_its_stored_kernel(size, condition):
    with np.load(DATA, allow_pickle=False) as archive:
        stored = {key: archive[key] for key in archive.files}
    key = f"k{size}_{condition}"
    assert model_sha256(shipped_model_path(size, condition)) == str(stored[f"{key}_sha256"]), (
        f"the shipped {key} model changed; regenerate {DATA.name} with "
        f"python tests/make_regression_data.py")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        kernel = estimate_kernel(fixed_input(), size, refine=False,
                                 **CONDITION_ARGUMENTS[condition])
    np.testing.assert_allclose(kernel, stored[f"{key}_network"], rtol=1e-4, atol=1e-6)
