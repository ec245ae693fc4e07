"""The comparison protocol of benchmarks/bench_learning.py on a tiny network.

The script is imported from its path; it runs on a two-scale network with
four filters and a folder of six small crops of scikit-image's pictures.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from refdeblur.camera_shake import sample_kernels
from refdeblur.image_io import write_image
from refdeblur.kernels import delta_kernel, resize_kernel
from refdeblur.model_io import read_model_file, save_model
from refdeblur.network import Network, build_network
from refdeblur.training.data import load_gray_images, validation_set
from refdeblur.training.step import kernel_errors
from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_learning.py"
CROP = 32
PAIRS = 4


bench = load_script(SCRIPT)


def tiny_network(seed=0):
    return build_network(9, rng=np.random.default_rng(seed), kernel_sizes=(5, 9),
                         n_stages=2, n_pairs=(2, 2), n_filters=4, n_hidden=4,
                         filter_sizes=(3, 3))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    pictures = [data.camera(), data.coins(), data.moon(),
                data.astronaut()[..., 1],
                data.text(), data.brick()]
    for index, picture in enumerate(pictures):
        write_image(folder / f"image{index}.png", picture[100:196, 100:196])
    return folder


@pytest.fixture(scope="module")
def pairs(image_folder):
    images = load_gray_images(bench.held_out_paths(image_folder))
    return bench.protocol_pairs(images, PAIRS, CROP, 9, seed=2024)


def test_dc_share_of_constant_zero_mean_and_mixed_images():
    rng = np.random.default_rng(0)
    constant = np.full((2, 3, 16, 16), 0.7)
    noise = rng.standard_normal((2, 3, 16, 16))
    zero_mean = noise - noise.mean(axis=(-2, -1), keepdims=True)
    np.testing.assert_allclose(bench.dc_share(constant), 1.0, rtol=1e-12)
    assert bench.dc_share(constant).shape == (2, 3)
    np.testing.assert_allclose(bench.dc_share(zero_mean), 0.0, atol=1e-12)
    # a + b cos: power a^2 at frequency zero out of a^2 + b^2 / 2
    columns = np.arange(16)
    mixed = 2.0 + 3.0 * np.cos(2 * np.pi * columns / 16) * np.ones((16, 1))
    np.testing.assert_allclose(bench.dc_share(mixed), 4.0 / (4.0 + 4.5), rtol=1e-12)
    assert bench.dc_share(np.zeros((16, 16))) == 0.0


def test_scale_rows_compare_each_scale_with_its_resized_truth():
    truth = sample_kernels(3, 9, np.random.default_rng(1))
    resized = np.stack([resize_kernel(k, 5) for k in truth])
    coarse = resized.copy()                        # exact at the coarse scale
    fine = np.stack([delta_kernel(9)] * 3)         # a delta at the finest
    rows = bench.scale_rows([coarse, fine], truth, [(0.1, 0.2), (0.3, 0.4)])
    assert [row.kernel_size for row in rows] == [5, 9]
    assert rows[0].error == 0.0
    # ||delta - t||^2 = 1 - 2 t_centre + sum t^2, by hand
    by_hand = np.mean([1 - 2 * t[4, 4] + np.sum(t ** 2) for t in truth])
    assert rows[1].error == pytest.approx(by_hand, rel=1e-12)
    fixed = np.mean([np.sum((r - resized.mean(axis=0)) ** 2) for r in resized])
    assert rows[0].fixed == pytest.approx(fixed, rel=1e-12)
    assert rows[1].ratio == pytest.approx(rows[1].error / rows[1].fixed, rel=1e-12)
    assert (rows[1].dc_sharp, rows[1].dc_blurry) == (0.3, 0.4)
    # the coarse answer resized to the fine scale, scored there
    assert np.isnan(rows[0].upsampled)
    up = np.stack([resize_kernel(k, 9) for k in coarse])
    assert rows[1].upsampled == pytest.approx(np.mean(np.sum((up - truth) ** 2, axis=(1, 2))),
                                              rel=1e-12)


@pytest.mark.parametrize("kernel_prior", [False, True])
def test_evaluate_matches_the_training_validation(pairs, kernel_prior):
    net = tiny_network()
    if kernel_prior:
        net = Network(dataclasses.replace(net.architecture, kernel_prior=True), net.params)
    model = bench.ModelInfo("tiny", net, 2, {})
    result = bench.evaluate(model, pairs, crop=CROP)
    assert (result.kernel_size, result.scales, result.n_stages, result.crop) == \
        (9, (5, 9), 2, CROP)
    # the recording forward pass gives predict's kernels
    for stages in (1, 2):
        expected = kernel_errors(net, pairs.y, pairs.k, n_stages=stages).mean()
        assert result.stage_errors[stages - 1] == pytest.approx(expected, rel=1e-10)
    assert result.error == result.stage_errors[-1]
    assert result.scale_rows[-1].error == result.error
    fixed = np.mean(np.sum((pairs.k - pairs.k.mean(axis=0)) ** 2, axis=(1, 2)))
    assert result.fixed == pytest.approx(fixed, rel=1e-12)
    assert result.ratio == result.error / result.fixed
    assert 0 <= result.dc_sharp <= 1 and 0 <= result.dc_blurry <= 1
    assert (result.dc_sharp, result.dc_blurry) == (result.scale_rows[-1].dc_sharp,
                                                   result.scale_rows[-1].dc_blurry)
    oracle = bench.gradient_quotient(pairs.y, pairs.x, 9, bench.ORACLE_BETA)
    assert result.oracle == np.mean(np.sum((oracle - pairs.k) ** 2, axis=(1, 2)))

    row = bench.comparison_row("tiny", result)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert len(cells) == len(bench.COMPARISON_COLUMNS)
    assert cells[:5] == ["tiny", "9", "5, 9", "2", str(CROP)]
    assert float(cells[7]) == pytest.approx(result.error / result.fixed, abs=5e-4)


def test_refinement_rows_start_from_the_perturbed_truth(pairs):
    net = tiny_network()
    model = bench.ModelInfo("tiny", net, 2, {})
    rows = bench.refinement_rows(model, pairs, seed=5)
    assert [row[0] for row in rows] == ["mixture of 1-3", *bench.PERTURBATIONS]
    for label, start, later in rows:
        assert len(later) == 1 and start > 0 and later[0] > 0
    # the start is the forced kernel's error; stage 2 is the network's from that start
    starts = bench.perturbed_starts(pairs.k, ("shift",), seed=5)
    shift = dict((row[0], row) for row in rows)["shift"]
    assert shift[1] == pytest.approx(np.mean(np.sum((starts - pairs.k) ** 2, axis=(1, 2))))
    output, _ = net.forward_with_cache(
        pairs.y, forced={0: (starts, np.ones(len(starts), dtype=bool))})
    assert shift[2][0] == pytest.approx(np.mean(np.sum((output.kernel - pairs.k) ** 2,
                                                       axis=(1, 2))), rel=1e-6)
    lines = bench.refinement_lines("tiny", rows)
    assert lines[1].startswith("| error kind | start (stage 1 forced) | after stage 2 |")
    assert len(lines) == 3 + len(rows)


def test_handover_rows_start_from_the_coarse_answer_and_the_resized_truth(pairs):
    net = tiny_network(seed=3)
    model = bench.ModelInfo("tiny", net, 2, {})
    rows = dict((row[0], row) for row in bench.handover_rows(model, pairs))
    assert list(rows) == ["coarser scale's answer", "ideal coarse answer", "true kernel"]

    def error(kernels):
        return np.mean(np.sum((kernels - pairs.k) ** 2, axis=(1, 2)))

    coarse = net.forward(pairs.y).stage_kernels[0][-1]
    answer = np.stack([resize_kernel(k, 9) for k in coarse])
    assert rows["coarser scale's answer"][1] == pytest.approx(error(answer))
    ideal = np.stack([resize_kernel(resize_kernel(k, 5), 9) for k in pairs.k])
    assert rows["ideal coarse answer"][1] == pytest.approx(error(ideal))
    assert rows["true kernel"][1] == 0
    # stage 2 is the network's own, from that start
    output, _ = net.forward_with_cache(pairs.y, forced={0: (ideal, np.ones(len(ideal), bool))})
    assert rows["ideal coarse answer"][2][0] == pytest.approx(error(output.kernel), rel=1e-6)
    lines = bench.handover_lines("tiny", list(rows.values()), fixed=0.5)
    assert lines[1].startswith("| stage 1 hands on | start | after stage 2 |")
    assert f"({rows['true kernel'][2][0] / 0.5:.3f})" in lines[-1]


def test_handover_of_a_single_scale_network_starts_from_the_truth(pairs):
    net = build_network(9, rng=np.random.default_rng(1), kernel_sizes=(9,), n_stages=2,
                        n_pairs=(2, 2), n_filters=4, n_hidden=4, filter_sizes=(3,))
    rows = bench.handover_rows(bench.ModelInfo("one scale", net, 2, {}), pairs)
    assert [row[0] for row in rows] == ["true kernel"]
    assert rows[0][1] == 0 and rows[0][2][0] > 0


def test_handover_is_printed_for_several_scales(image_folder, tmp_path, capsys):
    path = tmp_path / "tiny.npz"
    save_model(tiny_network(), path)
    bench.main(["--model", str(path), "--images", str(image_folder), "--pairs", "2",
                "--crop", str(CROP), "--handover"])
    out = capsys.readouterr().out
    assert "the finest scale's later stages from a coarse answer" in out
    assert "| ideal coarse answer |" in out


def test_oracle_recovers_noise_free_kernels(image_folder):
    images = load_gray_images(bench.held_out_paths(image_folder))
    clean = validation_set(images, PAIRS, 64, 9, seed=3, noise_std=0.0)
    kernels = bench.gradient_quotient(clean.y, clean.x, 9, 1e-6)
    error = np.mean(np.sum((kernels - clean.k) ** 2, axis=(1, 2)))
    assert error < 0.1 * bench.fixed_kernel_errors(clean.k).mean()


def test_checkpoint_runs_the_stages_of_its_phase():
    net = tiny_network()
    config = {"stage_steps": 100, "frozen_steps": 10}

    def header(step):
        return {"metadata": {"training_state": {"step": step, "config": config}}}

    assert bench.stages_in_use(net, header(0)) == 1
    assert bench.stages_in_use(net, header(99)) == 1
    assert bench.stages_in_use(net, header(100)) == 2
    assert bench.stages_in_use(net, {"metadata": {}}) == 2
    assert bench.model_label("run/checkpoint.npz", header(1234)) == \
        "run/checkpoint.npz @ step 1,234"


def test_notes_on_another_split_or_the_same_seed():
    net = tiny_network()

    def model(**config):
        return bench.ModelInfo("m", net, 2, {"metadata": {"training": {"config": config}}})

    assert bench.protocol_notes(model(validation_images=60, validation_seed=1), 2024) == []
    assert "another validation split" in bench.protocol_notes(
        model(validation_fraction=0.1), 2024)[0]
    assert "seed 2024" in bench.protocol_notes(model(validation_seed=2024), 2024)[0]


def test_markdown_only_prints_one_row_per_model(image_folder, tmp_path, capsys):
    path = tmp_path / "tiny.npz"
    save_model(tiny_network(), path)
    bench.main(["--model", str(path), str(path), "--images", str(image_folder),
                "--pairs", str(PAIRS), "--crop", str(CROP), "--markdown-only"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| model | kernel px |")
    assert lines[2] == lines[3]            # the same pairs for the same kernel size
    assert lines[2].startswith("| tiny.npz | 9 | 5, 9 | 2 | 32 |")
    assert read_model_file(path)[0].kernel_size == 9


@pytest.mark.parametrize("arguments, message", [
    (["--model", "missing.npz"], "model file not found"),
    (["--pairs", "0"], "--pairs must be positive"),
    (["--kernel-sizes", "19"], "--kernel-sizes"),
])
def test_bad_input_is_one_line_on_stderr(image_folder, capsys, arguments, message):
    with pytest.raises(SystemExit) as stop:
        bench.main(["--images", str(image_folder), *arguments])
    assert stop.value.code != 0
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error
