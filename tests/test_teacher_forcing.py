"""Teacher forcing and a loss on every stage: the kernel perturbations, the draw per
step, the configuration, and training with them."""

import json
import subprocess
import sys

import numpy as np
import pytest
import skimage.io

from refdeblur import build_network, load_model
from refdeblur.camera_shake import sample_kernel
from refdeblur.training.config import (default_config, stage_loss_weight, teacher_forcing,
                                       training_command)
from refdeblur.training.optim import Adam
from refdeblur.training.schedule import Phase
from refdeblur.training.step import OutlierFilter, training_step
from refdeblur.training.teacher_forcing import (PERTURBATIONS, _apply, forced_kernels,
                                                forced_positions, perturb_kernel)
from script_loader import load_script


@pytest.fixture
def kernel():
    return sample_kernel(17, np.random.default_rng(4))


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_every_perturbation_changes_the_kernel_and_strength_zero_hardly_does(kind, kernel):
    other = sample_kernel(17, np.random.default_rng(5))
    strong = np.maximum(_apply(kind, kernel, 1.0, np.random.default_rng(0), other), 0)
    strong /= strong.sum()
    assert np.sum((strong - kernel) ** 2) > 1e-4 * np.sum(kernel ** 2)
    if kind not in ("blur", "coarse"):      # these have a floor: sigma 0.3, a resize
        weak = _apply(kind, kernel, 0.0, np.random.default_rng(0), other)
        np.testing.assert_allclose(weak, kernel, atol=1e-12)


def test_dilation_scales_the_spread_about_the_centre():
    columns = np.arange(25)
    # two smooth dots 4 px either side of the centre (a point would alias when shrunk)
    row = np.exp(-(columns - 8.0) ** 2 / 2.0) + np.exp(-(columns - 16.0) ** 2 / 2.0)
    kernel = np.outer(np.exp(-(columns - 12.0) ** 2 / 2.0), row)
    kernel /= kernel.sum()
    for seed in range(8):                      # both signs of the dilation
        wide = _apply("dilate", kernel, 1.0, np.random.default_rng(seed), None)
        weight = wide.sum(axis=0)
        centre = columns @ weight / weight.sum()
        spread = np.sqrt(((columns - centre) ** 2) @ weight / weight.sum())
        assert centre == pytest.approx(12.0, abs=1e-9)
        # the dots' own width (1 px) adds in quadrature and scales along
        spread_of = {factor: np.sqrt(16.0 + 1.0) * factor
                     for factor in (np.exp(0.5), np.exp(-0.5))}
        assert any(spread == pytest.approx(value, rel=0.05)
                   for value in spread_of.values()), spread


def test_perturbed_kernels_are_kernels_and_reproducible(kernel):
    other = sample_kernel(17, np.random.default_rng(6))
    first = [perturb_kernel(kernel, np.random.default_rng(seed), other=other)
             for seed in range(20)]
    again = [perturb_kernel(kernel, np.random.default_rng(seed), other=other)
             for seed in range(20)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
        assert a.shape == (17, 17) and a.min() >= 0
        assert a.sum() == pytest.approx(1.0, abs=1e-12)
    errors = [np.sum((a - kernel) ** 2) for a in first]
    assert len(set(np.round(errors, 12))) == 20     # a broad mixture, not one error


def test_a_larger_strength_power_gives_starts_nearer_the_truth(kernel):
    other = sample_kernel(17, np.random.default_rng(6))

    def mean_error(power):
        rng = np.random.default_rng(0)
        return np.mean([np.sum((perturb_kernel(kernel, rng, other=other,
                                                strength_power=power) - kernel) ** 2)
                         for _ in range(60)])

    errors = [mean_error(power) for power in (1.0, 3.0)]
    assert errors[1] < 0.8 * errors[0]


def test_forced_kernels_draw():
    rng = np.random.default_rng(0)
    kernels = np.stack([sample_kernel(9, rng) for _ in range(6)])
    assert forced_kernels(rng, kernels, 1, 1.0) is None
    assert forced_kernels(rng, kernels, 3, 0.0) is None
    forced = forced_kernels(np.random.default_rng(1), kernels, 3, 1.0)
    assert set(forced) <= {(0, 0), (0, 1)}
    masks = np.array([mask for _, mask in forced.values()])
    np.testing.assert_array_equal(masks.sum(axis=0), np.ones(6))    # each once
    replaced, _ = next(iter(forced.values()))
    assert replaced.shape == kernels.shape
    assert all(not np.allclose(replaced[i], kernels[i]) for i in range(6))
    half = forced_kernels(np.random.default_rng(2), np.repeat(kernels, 50, axis=0), 2, 0.5)
    fraction = sum(mask.sum() for _, mask in half.values()) / 300
    assert 0.4 < fraction < 0.6 and set(half) == {(0, 0)}


def test_forced_positions_include_the_coarser_scales_last_stage():
    assert forced_positions(1, [3]) == []
    assert forced_positions(3, [3]) == [(0, 0), (0, 1)]
    assert forced_positions(1, [3, 3, 3]) == [(1, 2)]
    assert forced_positions(2, [3, 3]) == [(0, 2), (1, 0)]


def test_forced_kernels_at_the_coarser_scale_are_resized():
    rng = np.random.default_rng(0)
    kernels = np.stack([sample_kernel(9, rng) for _ in range(40)])
    forced = forced_kernels(np.random.default_rng(3), kernels, 2, 1.0,
                            scale_sizes=(5, 9), scale_stages=(3, 3))
    assert set(forced) == {(0, 2), (1, 0)}
    coarse, coarse_mask = forced[(0, 2)]
    fine, fine_mask = forced[(1, 0)]
    assert coarse.shape == (40, 5, 5) and fine.shape == (40, 9, 9)
    np.testing.assert_array_equal(coarse_mask | fine_mask, np.ones(40, dtype=bool))
    assert not np.any(coarse_mask & fine_mask)
    assert np.allclose(coarse[coarse_mask].sum(axis=(1, 2)), 1.0)
    assert np.all(coarse[~coarse_mask] == 0)
    # a single-scale network run with one stage has nothing to force
    assert forced_kernels(rng, kernels, 1, 1.0, scale_sizes=(9,), scale_stages=(3,)) is None


def test_configuration_records_teacher_forcing_only_when_on():
    assert "teacher_forcing" not in default_config(17)
    assert teacher_forcing(default_config(17)) == (0.0, None, 1.0)
    config = default_config(17, teacher_forcing={"probability": 0.5, "until_step": 900},
                            images="IMAGES")
    assert teacher_forcing(config) == (0.5, 900, 1.0)
    assert "--teacher-forcing 0.5 --teacher-forcing-until 900" in training_command(config)
    assert "--teacher-forcing-power" not in training_command(config)
    config["teacher_forcing"]["strength_power"] = 3.0
    assert "--teacher-forcing-until 900 --teacher-forcing-power 3.0" in training_command(config)
    with pytest.raises(ValueError, match="strength_power"):
        teacher_forcing({"teacher_forcing": {"probability": 0.5, "strength_power": 0}})
    with pytest.raises(ValueError, match="probability"):
        teacher_forcing({"teacher_forcing": {"probability": 1.5}})
    with pytest.raises(ValueError, match="stream"):
        default_config(17, teacher_forcing={"probability": 0.5},
                       example_seeding="per_example")


TINY = ["--kernel-size", "17", "--crop-size", "40", "--batch-size", "3",
        "--filter-size", "5", "--n-filters", "4", "--stage-steps", "3",
        "--frozen-steps", "1", "--validate-every", "4", "--validation-images", "2",
        "--seed", "3", "--optimizer", "adam"]


def _train(images, out, steps, *extra):
    command = [sys.executable, "-m", "refdeblur", "train", "--images", str(images),
               "--out", str(out), "--steps", str(steps)] + TINY + list(extra)
    return subprocess.run(command, capture_output=True, text=True)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train") / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        image = rng.random((72, 80))
        skimage.io.imsave(folder / f"image{index}.png",
                          (255 * image).astype(np.uint8), check_contrast=False)
    return folder


def test_training_with_teacher_forcing_changes_the_weights_and_resumes_bit_identically(
        image_folder, tmp_path):
    forced = ["--teacher-forcing", "1.0", "--teacher-forcing-until", "7"]
    straight = _train(image_folder, tmp_path / "straight", 9, *forced)
    assert straight.returncode == 0, straight.stderr
    first = _train(image_folder, tmp_path / "split", 5, *forced)
    assert first.returncode == 0, first.stderr
    second = _train(image_folder, tmp_path / "split", 9, "--resume")
    assert second.returncode == 0, second.stderr
    free = _train(image_folder, tmp_path / "free", 9)
    assert free.returncode == 0, free.stderr
    a = load_model(tmp_path / "straight" / "checkpoint.npz").params
    b = load_model(tmp_path / "split" / "checkpoint.npz").params
    c = load_model(tmp_path / "free" / "checkpoint.npz").params
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # stage 1 trains alone for 3 steps, identically; stage 2 then sees forced inputs
    assert any(not np.array_equal(a[name], c[name]) for name in a if ".stage2." in name)
    config = json.loads((tmp_path / "split" / "config.json").read_text())
    assert config["teacher_forcing"] == {"probability": 1.0, "until_step": 7}


@pytest.mark.parametrize("extra, message", [
    (["--teacher-forcing", "1.5"], "--teacher-forcing must be between 0 and 1"),
    (["--teacher-forcing-until", "5"], "--teacher-forcing-until needs --teacher-forcing"),
    (["--teacher-forcing-power", "2"], "--teacher-forcing-power needs --teacher-forcing"),
    (["--teacher-forcing", "0.5", "--teacher-forcing-power", "0"],
     "--teacher-forcing-power must be > 0"),
    (["--teacher-forcing", "0.5", "--example-seeding", "per-example"], "needs --example-seeding stream"),
])
def test_bad_teacher_forcing_options_are_refused_in_one_line(image_folder, tmp_path, extra,
                                                             message):
    result = _train(image_folder, tmp_path / "bad", 3, *extra)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "bad").exists()


# -- a loss on every stage (trained like teacher forcing: an option of the loss) --

def test_configuration_records_the_stage_loss_only_when_on():
    assert "stage_loss_weight" not in default_config(17)
    assert stage_loss_weight(default_config(17)) == 0.0
    config = default_config(17, stage_loss_weight=0.5, images="IMAGES")
    assert stage_loss_weight(config) == 0.5
    assert "--stage-loss-weight 0.5" in training_command(config)
    with pytest.raises(ValueError, match=">= 0"):
        stage_loss_weight({"stage_loss_weight": -1.0})


def test_training_step_with_a_stage_loss_moves_the_earlier_stages_more(rng):
    images = rng.random((3, 40, 40))
    kernels = np.stack([sample_kernel(7, rng) for _ in range(3)])
    phase = Phase(0, 2, ("scale1.stage2.", "scale1.stage1."))
    updates = {}
    for weight in (0.0, 1.0):
        net = build_network(7, rng=np.random.default_rng(0), filter_sizes=(5,), n_filters=4,
                            n_hidden=4, dtype=np.float64)
        before = {name: value.copy() for name, value in net.params.items()}
        losses, _ = training_step(net, Adam(learning_rate=1e-3), OutlierFilter(), images,
                                  kernels, phase, stage_loss_weight=weight)
        updates[weight] = {name: net.params[name] - before[name] for name in before}
        # the losses returned are the final kernel's, whatever the weight
        output = net.forward(images, n_stages=2)
        assert losses.shape == (3,)
    stage1 = "scale1.stage1.conv.weight"
    assert not np.allclose(updates[0.0][stage1], updates[1.0][stage1])
    np.testing.assert_array_equal(updates[0.0]["scale1.stage3.conv.weight"], 0)
    assert output.kernel.shape == (3, 7, 7)


def test_stage_loss_weight_is_refused_with_per_example_seeding(image_folder, tmp_path):
    result = _train(image_folder, tmp_path / "bad", 3, "--stage-loss-weight", "0.5",
                    "--example-seeding", "per-example")
    assert result.returncode != 0
    assert "--stage-loss-weight needs --example-seeding stream" in result.stderr
    assert "Traceback" not in result.stderr


def test_starts_benchmark_prints_one_row_per_power_and_the_error_falls(capsys):
    script = load_script("benchmarks/teacher_forcing_starts.py")
    script.main(["--kernel-size", "9", "--kernels", "40", "--powers", "1", "4"])
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| 1 |") or line.startswith("| 4 |")]
    assert len(rows) == 2
    means = [float(row.split("|")[2]) for row in rows]
    assert means[1] < means[0]
