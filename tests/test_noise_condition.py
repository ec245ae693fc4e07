"""``noise="auto"``: the noise condition decided from the photo, the network
fine-tuned for heavy noise, no refinement under heavy noise, and the report."""

import json
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from scipy.signal import fftconvolve

from refdeblur import DeblurWarning, deblur, estimate_kernel, sample_kernel
from refdeblur.cli import main
from refdeblur.inference import (HIGH_NOISE_STD, choose_noise_condition,
                                 estimate_kernel_and_size)
from refdeblur.models import (SHIPPED_CONDITIONS, has_shipped_model, load_model,
                              load_shipped_model, model_sha256, shipped_model_path)

SIDE = 128


def blurred(noise_std, seed=3):
    """A 128 px crop of the camera image blurred by a 13 px shake, with noise."""
    from skimage import data
    rng = np.random.default_rng(seed)
    kernel = sample_kernel(13, rng)
    sharp = data.camera().astype(np.float64)[::2, ::2] / 255
    side = SIDE + kernel.shape[0] - 1
    blurry = fftconvolve(sharp[40:40 + side, 40:40 + side], kernel, mode="valid")
    return blurry + noise_std * rng.standard_normal(blurry.shape)


def quiet_estimate(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        return estimate_kernel_and_size(*args, **kwargs)


@pytest.mark.parametrize("noise_std, condition", [
    (0.0, "low"), (0.01, "low"), (0.015, "low"), (0.03, "high"), (0.05, "high")])
def test_condition_follows_the_estimated_noise(noise_std, condition):
    found, estimated = choose_noise_condition(blurred(noise_std))
    assert found == condition
    # without noise the estimator reads the crop's residual detail (~0.002)
    assert abs(estimated - noise_std) < 0.1 * noise_std + 0.003
    assert (estimated >= HIGH_NOISE_STD) == (condition == "high")


def test_colour_photo_is_judged_on_its_luminance():
    grey = blurred(0.05)
    colour = np.stack([grey] * 3, axis=-1)
    (condition, estimated), (grey_condition, grey_estimated) = (
        choose_noise_condition(colour, channel_axis=-1), choose_noise_condition(grey))
    assert condition == grey_condition == "high"
    assert estimated == pytest.approx(grey_estimated, rel=1e-12)


def test_noisy_photo_gets_the_high_noise_network_unrefined():
    image = blurred(0.05)
    kernel, choice = quiet_estimate(image, 17)
    condition = choice.condition
    assert (condition.noise, condition.noise_mode, condition.content, condition.network,
            condition.refined) == ("high", "auto", "natural", "k17_high_noise.npz", False)
    assert "at least 0.02" in condition.reason and "not refined" in condition.reason
    expected, _ = quiet_estimate(image, 17, model=load_shipped_model(17, condition="high_noise"),
                                 refine=False, noise="low")
    np.testing.assert_array_equal(kernel, expected)


def test_clean_photo_keeps_the_generic_network_refined():
    image = blurred(0.01)
    kernel, choice = quiet_estimate(image, 17)
    assert (choice.condition.noise, choice.condition.network, choice.condition.refined) == (
        "low", "k17.npz", True)
    expected, _ = quiet_estimate(image, 17, model=load_shipped_model(17), noise="low")
    np.testing.assert_array_equal(kernel, expected)


def test_given_condition_overrides_the_estimate():
    image = blurred(0.01)
    _, high = quiet_estimate(image, 17, noise="high")
    assert (high.condition.noise, high.condition.noise_mode, high.condition.estimated_std) == (
        "high", "given", None)
    assert high.condition.network == "k17_high_noise.npz"
    _, low = quiet_estimate(blurred(0.05), 17, noise="low")
    assert (low.condition.noise, low.condition.network, low.condition.refined) == (
        "low", "k17.npz", True)


def test_a_refine_dict_refines_whatever_the_noise():
    image = blurred(0.05)
    kernel, choice = quiet_estimate(image, 17, refine={"n_iter": 2})
    assert choice.condition.refined and choice.condition.network == "k17_high_noise.npz"
    unrefined, _ = quiet_estimate(image, 17)
    assert not np.array_equal(kernel, unrefined)


def test_size_without_a_high_noise_network_uses_the_generic_one_unrefined():
    assert not has_shipped_model(33, "high_noise")
    image = blurred(0.05)
    _, choice = quiet_estimate(image, 33)
    assert (choice.condition.network, choice.condition.refined) == ("k33.npz", False)
    assert "no high-noise network is shipped for 33 px" in choice.condition.reason


def test_a_given_model_is_used_under_any_noise():
    net = load_shipped_model(17)
    _, choice = quiet_estimate(blurred(0.05), 17, model=net)
    assert choice.condition.network == "model given" and not choice.condition.refined


@pytest.mark.parametrize("bad", ["medium", None, 0.05, "HIGH"])
def test_bad_noise_argument_is_a_value_error(bad):
    image = blurred(0.01)
    with pytest.raises(ValueError, match="noise must be one of"):
        estimate_kernel(image, 17, noise=bad)
    with pytest.raises(ValueError, match="noise must be one of"):
        deblur(image, 17, noise=bad)


def test_shipped_high_noise_model_and_its_recipe():
    assert SHIPPED_CONDITIONS == {"high_noise": (17, 25), "text": (17, 25)}
    path = shipped_model_path(17, "high_noise")
    assert path.name == "k17_high_noise.npz"
    net = load_model("k17_high_noise")
    generic = load_shipped_model(17)
    assert net.architecture == generic.architecture
    assert any(not np.array_equal(net.params[name], generic.params[name])
               for name in generic.params)
    recipe = json.loads(path.with_suffix(".json").read_text())
    # The parent is the generic network it was fine-tuned from, kept with
    # the training runs: the recipe names that file and its SHA-256.
    parent = recipe["parent_model"]
    assert recipe["config"]["noise_std"] == 0.05
    assert f"--init {parent['model']} " in recipe["command"]
    parent_path = Path(__file__).resolve().parents[1] / parent["model"]
    assert model_sha256(parent_path) == parent["sha256"]
    with pytest.raises(ValueError, match="no 'high_noise' network is shipped"):
        shipped_model_path(33, "high_noise")


def _photo(tmp_path, noise_std):
    path = tmp_path / f"noisy_{noise_std}.png"
    iio.imwrite(path, np.round(np.clip(blurred(noise_std), 0, 1) * 255).astype(np.uint8))
    return path


def test_cli_reports_the_condition_and_network(tmp_path, capsys):
    photo = _photo(tmp_path, 0.05)
    report = tmp_path / "report.json"
    assert main(["deblur", str(photo), "--kernel-size", "17", "--json", str(report)]) == 0
    record = json.loads(report.read_text())
    assert record["parameters"]["noise"] == "auto"
    (image,) = record["images"]
    assert image["condition"]["noise"] == "high" and image["refinement"] == "none"
    assert image["condition"]["network"] == "k17_high_noise.npz"
    assert image["condition"]["estimated_std"] > HIGH_NOISE_STD


def test_cli_refuses_noise_with_nonuniform(tmp_path, capsys):
    photo = _photo(tmp_path, 0.01)
    status = main(["deblur", str(photo), "--nonuniform", "--noise", "high"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--noise high" in err[0]
    assert not list(tmp_path.glob("*_deblurred*"))


def test_text_content_takes_the_document_network_refined_unless_noisy():
    kernel, choice = quiet_estimate(blurred(0.01), 17, content="text")
    assert (choice.condition.content, choice.condition.network, choice.condition.refined) == (
        "text", "k17_text.npz", True)
    assert "fine-tuned on documents" in choice.condition.reason
    expected, _ = quiet_estimate(blurred(0.01), 17, noise="low",
                                 model=load_shipped_model(17, condition="text"))
    np.testing.assert_array_equal(kernel, expected)
    _, noisy = quiet_estimate(blurred(0.05), 17, content="text")
    assert (noisy.condition.noise, noisy.condition.network, noisy.condition.refined) == (
        "high", "k17_text.npz", False)


def test_text_content_without_a_document_network_says_so():
    assert not has_shipped_model(33, "text")
    kernel, choice = quiet_estimate(blurred(0.01), 33, content="text")
    condition = choice.condition
    assert (condition.content, condition.network, condition.refined) == ("text", "k33.npz", True)
    assert "no document network is shipped for 33 px" in condition.reason
    expected, _ = quiet_estimate(blurred(0.01), 33)
    np.testing.assert_array_equal(kernel, expected)


@pytest.mark.parametrize("bad", ["photo", None, "TEXT"])
def test_bad_content_argument_is_a_value_error(bad):
    with pytest.raises(ValueError, match="content must be one of"):
        estimate_kernel(blurred(0.01), 17, content=bad)


def test_cli_refuses_content_with_nonuniform(tmp_path, capsys):
    photo = _photo(tmp_path, 0.01)
    assert main(["deblur", str(photo), "--nonuniform", "--content", "text"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--content text" in err[0]


@pytest.mark.parametrize("options, network, refined", [
    ({"noise": "high"}, "k25_high_noise.npz", False),
    ({"content": "text", "noise": "low"}, "k25_text.npz", True)])
def test_25_px_fine_tuned_networks_are_selected(options, network, refined):
    kernel, choice = quiet_estimate(blurred(0.01), 25, **options)
    assert (choice.condition.network, choice.condition.refined) == (network, refined)
    condition = "high_noise" if "noise" in options and options["noise"] == "high" else "text"
    expected, _ = quiet_estimate(blurred(0.01), 25, refine=refined, noise="low",
                                 model=load_shipped_model(25, condition=condition))
    np.testing.assert_array_equal(kernel, expected)
