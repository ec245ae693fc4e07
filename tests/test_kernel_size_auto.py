"""``kernel_size="auto"``: the network chosen from the image, reported, and
the border warning's rule (:func:`refdeblur.kernels.blur_exceeds_window`)."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from scipy.signal import fftconvolve

from refdeblur import (DeblurWarning, build_network, choose_kernel_size, deblur,
                       estimate_kernel, network_fast, sample_kernel)
from refdeblur._engine import NUMBA_WARNING
from refdeblur.cli import main
from refdeblur.inference import KernelSizeChoice, estimate_kernel_and_size
from refdeblur.kernels import (blur_exceeds_window, delta_kernel, kernel_border_mass,
                               kernel_support_radius)

CROP = 128


def streak(length, size=33, angle=0.5):
    """A straight motion blur of ``length`` px, centred in a ``size`` px window."""
    kernel = np.zeros((size, size))
    centre = size // 2
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        kernel[int(round(centre + t * np.sin(angle))),
               int(round(centre + t * np.cos(angle)))] = 1.0
    return kernel / kernel.sum()


def blurred_camera(kernel, seed=1):
    """A 128 px crop of the camera image blurred ('valid') by ``kernel``, noise 0.01."""
    from skimage import data
    sharp = data.camera().astype(np.float64)[::2, ::2] / 255
    side = CROP + kernel.shape[0] - 1
    blurry = fftconvolve(sharp[:side, 40:40 + side], kernel, mode="valid")
    return blurry + 0.01 * np.random.default_rng(seed).standard_normal(blurry.shape)


@pytest.fixture(scope="module")
def small_blur():
    return blurred_camera(streak(3))


@pytest.fixture(scope="module")
def large_blur():
    return blurred_camera(streak(27))


def test_auto_chooses_the_small_network_for_a_small_blur(small_blur):
    choice = choose_kernel_size(small_blur)
    assert choice.kernel_size == 17 and choice.mode == "auto"
    assert choice.probe_size == 33 and choice.support_px <= 17 - 4
    assert "17 px is the smallest window" in choice.reason


def test_auto_chooses_the_large_network_for_a_large_blur_and_reuses_its_estimate(
        large_blur, monkeypatch):
    calls = []
    predict = network_fast.predict
    monkeypatch.setattr(network_fast, "predict",
                        lambda net, *args, **kwargs: calls.append(net.kernel_size)
                        or predict(net, *args, **kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)    # it may reach 33 px too
        kernel, choice = estimate_kernel_and_size(large_blur)
    assert choice.kernel_size == 33 and choice.support_px > 25 - 4
    assert kernel.shape == (33, 33)
    assert calls == [33]            # the measured network's kernel is refined again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        np.testing.assert_array_equal(kernel, estimate_kernel(large_blur, 33))


def test_auto_is_the_default_and_gives_the_fixed_size_estimate(small_blur):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        auto = estimate_kernel(small_blur)
        fixed = estimate_kernel(small_blur, 17)
    np.testing.assert_array_equal(auto, fixed)


@pytest.mark.parametrize("size", ["big", "17", "", 17.0, True, None])
def test_kernel_size_other_than_auto_or_an_int_is_a_clear_error(size):
    image = np.zeros((64, 64))
    for function in (estimate_kernel, deblur):
        with pytest.raises(ValueError, match="kernel_size must be 'auto' or an int"):
            function(image, size)


def test_auto_with_a_model_uses_its_size():
    from skimage import data
    net = build_network(17, rng=np.random.default_rng(3), n_filters=4, n_hidden=4,
                        filter_sizes=(5,)).astype(np.float32)
    image = data.camera()[::8, ::8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        kernel, choice = estimate_kernel_and_size(image, model=net, refine=False)
    assert kernel.shape == (17, 17)
    assert choice._replace(condition=None) == KernelSizeChoice(17, "model", "the model's kernel size")
    assert choice.condition.network == "model given" and not choice.condition.refined


def test_auto_on_an_image_too_small_for_the_larger_networks_says_so():
    from skimage import data
    image = data.camera()[200:272, 200:280]          # 72 x 80: the 25 px network needs 74
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        kernel, choice = estimate_kernel_and_size(image)
    assert kernel.shape == (17, 17) and choice.kernel_size == 17
    assert "too small" in choice.reason and choice.support_px is None


def test_flat_image_warns_once_and_gives_a_delta_kernel():
    with pytest.warns(DeblurWarning, match="flat") as caught:
        kernel, choice = estimate_kernel_and_size(np.full((120, 120), 0.5))
    assert len(caught) == 1
    np.testing.assert_array_equal(kernel, delta_kernel(17))
    assert choice.kernel_size == 17 and "flat" in choice.reason


def test_json_report_and_cli_line_name_the_chosen_size(tmp_path, large_blur, capsys):
    photo = tmp_path / "shake.png"
    iio.imwrite(photo, np.round(np.clip(large_blur, 0, 1) * 255).astype(np.uint8))
    report = tmp_path / "report.json"
    assert main(["deblur", str(photo), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    record = json.loads(report.read_text())
    assert record["parameters"]["kernel_size"] == "auto"
    assert record["model"] is None
    assert [(entry["kernel_size"], entry["condition"]) for entry in record["models"]] == [
        (17, None), (25, None), (33, None), (17, "high_noise"), (25, "high_noise"),
        (17, "text"), (25, "text")]
    (image,) = record["images"]
    assert image["kernel_size"] == 33 == len(image["kernel"])
    choice = image["kernel_size_choice"]
    assert choice["mode"] == "auto" and choice["probe_size"] == 33
    assert choice["support_px"] > 21 and "33 px" in choice["reason"]
    assert image["refinement"] == "coarse_to_fine"
    assert f"33 px chosen from the blur (support {choice['support_px']} px)" in out


def test_fixed_size_is_reported_as_given(tmp_path, small_blur, capsys):
    photo = tmp_path / "small.png"
    iio.imwrite(photo, np.round(np.clip(small_blur, 0, 1) * 255).astype(np.uint8))
    report = tmp_path / "report.json"
    assert main(["deblur", str(photo), "--kernel-size", "17", "--no-refine",
                 "--json", str(report)]) == 0
    assert "17 px, " in capsys.readouterr().out
    (image,) = json.loads(report.read_text())["images"]
    assert image["kernel_size"] == 17
    assert image["kernel_size_choice"] == {"mode": "fixed", "reason": "kernel_size given",
                                           "support_px": None, "probe_size": None}


def test_cli_kernel_size_out_of_range_is_one_line_and_status_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "refdeblur", "deblur", "x.png", "--kernel-size", "21"],
        capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": f"error,ignore:{NUMBA_WARNING}:RuntimeWarning"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid choice '21' (choose auto, 17, 25, 33)" in lines[0]
    assert not list(tmp_path.iterdir())


# -- the border rule on synthetic kernels -----------------------------------

def test_support_radius_ignores_faint_tails():
    kernel = np.full((17, 17), 0.01)
    kernel[8, 6:11] = 1.0
    assert kernel_support_radius(kernel) == 2
    assert kernel_support_radius(kernel, 0.005) == 8
    assert kernel_support_radius(np.zeros((5, 5))) == 0


def test_warning_rule_is_silent_on_kernels_that_fit(rng):
    for _ in range(5):
        small = np.zeros((17, 17))
        small[4:13, 4:13] = sample_kernel(9, rng)
        assert not blur_exceeds_window(small)
    # Faint tails reaching the border are no evidence (the old rule fired here).
    tailed = np.full((17, 17), 0.005)
    tailed[8, 5:12] = 1.0
    assert kernel_border_mass(tailed) > 0.03 and not blur_exceeds_window(tailed)


def test_warning_rule_fires_on_truncated_kernels(rng):
    assert blur_exceeds_window(streak(25, size=33)[8:25, 8:25])
    for _ in range(5):
        large = sample_kernel(33, rng)
        while kernel_support_radius(large, 0.1) < 12:      # clearly wider than 17 px
            large = sample_kernel(33, rng)
        assert blur_exceeds_window(large[8:25, 8:25])


def test_auto_warns_only_where_its_measurement_cannot_hold_the_blur():
    # The README's sample photo: a 13 x 10 px blur. The 33 px estimate's
    # support chooses 17 px; the 17 px estimate touches its border, which a
    # fixed size reports and the automatic choice, whose measurement holds
    # the blur with room to spare, does not.
    from refdeblur.image_io import read_image
    photo = read_image(Path(__file__).resolve().parents[1] / "examples" / "blurry_astronaut.png",
                       as_gray=True)
    with warnings.catch_warnings(record=True) as fixed_warnings:
        warnings.simplefilter("always", DeblurWarning)
        fixed = estimate_kernel(photo, 17)
    assert any("border" in str(w.message) for w in fixed_warnings)
    with warnings.catch_warnings(record=True) as auto_warnings:
        warnings.simplefilter("always", DeblurWarning)
        kernel, choice = estimate_kernel_and_size(photo)
    assert choice.kernel_size == 17 and choice.support_px <= 17 - 2 * 2
    assert not [w for w in auto_warnings if issubclass(w.category, DeblurWarning)]
    np.testing.assert_array_equal(kernel, fixed)


def test_auto_keeps_the_warning_when_the_largest_window_is_chosen():
    too_large = blurred_camera(streak(37, size=37))      # wider than every window
    with warnings.catch_warnings(record=True) as fixed_warnings:
        warnings.simplefilter("always", DeblurWarning)
        estimate_kernel(too_large, 33)
    with warnings.catch_warnings(record=True) as auto_warnings:
        warnings.simplefilter("always", DeblurWarning)
        _, choice = estimate_kernel_and_size(too_large)
    assert choice.kernel_size == 33
    messages = [str(w.message) for w in auto_warnings]
    assert messages == [str(w.message) for w in fixed_warnings]
    assert len(messages) == 1 and "border of its 33x33 window" in messages[0]
