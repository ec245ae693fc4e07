"""``refdeblur bench levin``: the data as distributed, outputs, bounds,
summaries, the kernel-size rules and bad input.

The scoring runs on two of the 32 cases to stay fast; one test marked slow
(``pytest -m slow``) runs all 32 with the default options and checks the
scores the README publishes. The data are found through
``REFDEBLUR_LEVIN_DATA`` (see ``conftest.py``).
"""

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from refdeblur import choose_kernel_size
from refdeblur.cli.bench import add_bench_parser, main_levin
from refdeblur.evaluation.levin import (CSV_COLUMNS, DEFAULT_OUT_DIR, ESTIMATES,
                                        METHODS, OUTPUT_FILES, BenchError,
                                        available_shipped_sizes, find_cases,
                                        load_case, oracle_kernel_size, run_levin,
                                        select_cases)
from refdeblur.image_io import read_image
from refdeblur.models import model_sha256, shipped_model_path

TWO_CASES = ("im01_ker01", "im02_ker05")     # true kernels of 19 and 13 px

#: What the README publishes for the full benchmark with the default options
#: (benchmarks/results/levin/summary.md): cases of 32 at error ratio <= 3.
PUBLISHED_ER3_CASES = {"refdeblur": 26, "network_only": 9}

# One two-case run is shared by the tests that only read its outputs (each
# run costs a few seconds); keyed by nothing, filled on first use. It picks
# the windows by the oracle rule, which costs one estimate per case where
# the default (auto) costs up to two; test_auto_... runs the default.
_SHARED_RUN = {}


@pytest.fixture
def two_case_run(levin_data, tmp_path_factory, capsys):
    if not _SHARED_RUN:
        out = tmp_path_factory.mktemp("levin") / "results"
        status = main_levin(["--data", str(levin_data), "--out", str(out),
                             "--cases", ",".join(TWO_CASES),
                             "--kernel-size", "oracle"])
        captured = capsys.readouterr()
        _SHARED_RUN.update(status=status, out=out, stdout=captured.out,
                           stderr=captured.err)
    return _SHARED_RUN


def _read_cases(path):
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


# ---------------------------------------------------------------------------
# the data as distributed

def test_mat_files_match_the_converted_layout(levin_converted_data):
    # The .mat reading against the converted folder's files, written by a
    # separate conversion: x and y are its 16-bit PNGs before rounding (so
    # within 0.5/65535), the kernel is its kernel*_conv.npy bit for bit, which
    # fixes the orientation (f is a correlation kernel).
    cases = {case["file"]: case for case in find_cases(levin_converted_data)}
    for name in TWO_CASES:
        blurry, sharp, kernel = load_case(levin_converted_data, cases[name])
        for image, folder in ((blurry, "y"), (sharp, "x")):
            png = read_image(levin_converted_data / folder / f"{name}_{folder}.png")
            assert image.flags.c_contiguous and image.dtype == np.float64
            assert np.array_equal(np.round(image * 65535) / 65535, png), (name, folder)
            assert np.abs(image - png).max() <= 0.5 / 65535
        conv = np.load(levin_converted_data / "kernels"
                       / f"kernel{cases[name]['kernel']}_conv.npy")
        assert np.array_equal(kernel, conv / conv.sum()), name


def test_converted_folder_reads_the_same_arrays(levin_converted_data, levin_data):
    # Bit for bit: a converted folder is read through the .mat files its
    # index.csv names (its PNGs are rounded to 16 bits).
    mat_folder = levin_data
    from_index = select_cases(find_cases(levin_converted_data), TWO_CASES)
    from_mat = select_cases(find_cases(mat_folder), TWO_CASES)
    assert [case["file"] for case in from_index] == [case["file"] for case in from_mat]
    for converted, distributed in zip(from_index, from_mat):
        assert (converted["image"], converted["kernel"]) == (
            distributed["image"], distributed["kernel"])
        for a, b in zip(load_case(levin_converted_data, converted),
                        load_case(mat_folder, distributed)):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_converted_folder_gives_the_same_rows(levin_converted_data, two_case_run,
                                              tmp_path, capsys):
    out = tmp_path / "converted"
    assert main_levin(["--data", str(levin_converted_data), "--out", str(out),
                       "--cases", ",".join(TWO_CASES),
                       "--kernel-size", "oracle"]) == 0, capsys.readouterr().err
    timeless = [[value for key, value in row.items() if key != "seconds"]
                for row in _read_cases(out / "cases.csv")]
    assert timeless == [[value for key, value in row.items() if key != "seconds"]
                        for row in _read_cases(two_case_run["out"] / "cases.csv")]


def test_authors_file_names_are_read(levin_data, tmp_path):
    # im0{i+4}_flit0{j}.mat, as the authors name the files, is case im0{i}_ker0{j}.
    renamed = {"im01_ker01": "im05_flit01.mat", "im02_ker05": "im06_flit05.mat"}
    cases = {case["file"]: case for case in find_cases(levin_data)}
    for name, authors_name in renamed.items():
        shutil.copy(levin_data / cases[name]["mat_file"], tmp_path / authors_name)
    (tmp_path / "sizeL.mat").write_bytes(b"not a case")       # ignored
    found = find_cases(tmp_path)
    assert [(c["file"], c["image"], c["kernel"], c["mat_file"]) for c in found] == [
        ("im01_ker01", 1, 1, "im05_flit01.mat"), ("im02_ker05", 2, 5, "im06_flit05.mat")]
    for case in found:
        for a, b in zip(load_case(tmp_path, case), load_case(levin_data, cases[case["file"]])):
            assert np.array_equal(a, b)
    assert select_cases(found, ["im05_flit01", "im01_ker01"]) == [found[0]]
    shutil.copy(tmp_path / "im05_flit01.mat", tmp_path / "im01_ker01.mat")
    with pytest.raises(BenchError, match="both case im01_ker01"):
        find_cases(tmp_path)


def test_default_out_dir_is_a_new_folder_here(levin_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_levin(levin_data, cases=[TWO_CASES[1]], kernel_size=17,
                       progress=False, command_line="test")
    assert result["out_dir"] == DEFAULT_OUT_DIR == Path("levin-results")
    assert sorted(path.name for path in (tmp_path / "levin-results").iterdir()) == sorted(
        OUTPUT_FILES)
    with pytest.raises(BenchError, match="--overwrite"):
        run_levin(levin_data, cases=[TWO_CASES[1]], progress=False)


def test_run_writes_every_output_and_prints_the_summary(two_case_run):
    assert two_case_run["status"] == 0, two_case_run["stderr"]
    for name in OUTPUT_FILES:
        assert (two_case_run["out"] / name).is_file(), name
    assert (two_case_run["out"] / "error_ratio_cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| true kernel |" in two_case_run["stdout"]
    assert not list(two_case_run["out"].glob(".*")), "temporary files left behind"


def test_csv_has_one_row_per_case_and_method(two_case_run):
    rows = _read_cases(two_case_run["out"] / "cases.csv")
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["case"], r["method"]) for r in rows] == [
        (case, method) for case in TWO_CASES for method in METHODS]
    for row in rows:
        assert np.isfinite([float(row[k]) for k in ("psnr_db", "ssim", "ssd",
                                                    "error_ratio", "kernel_error")]).all()


def test_true_kernel_is_the_upper_bound(two_case_run):
    rows = _read_cases(two_case_run["out"] / "cases.csv")
    by_key = {(r["case"], r["method"]): r for r in rows}
    for case in TWO_CASES:
        true_row = by_key[case, "true_kernel"]
        assert float(true_row["error_ratio"]) == 1.0
        assert float(true_row["kernel_error"]) == 0.0
        assert float(true_row["psnr_db"]) > float(by_key[case, "no_deblurring"]["psnr_db"])
        for method in METHODS:
            row = by_key[case, method]
            # ER is the ratio of the two SSDs written beside it
            assert float(row["error_ratio"]) == pytest.approx(
                float(row["ssd"]) / float(true_row["ssd"]), rel=1e-12)


def test_auto_picks_the_window_refdeblur_picks(levin_data, tmp_path, capsys):
    # The default is what a user of refdeblur deblur gets: the library's
    # choice from the blurry image, for the refined and the unrefined row.
    out = tmp_path / "auto"
    assert main_levin(["--data", str(levin_data), "--out", str(out), "--cases",
                       ",".join(TWO_CASES)]) == 0, capsys.readouterr().err
    cases = {case["file"]: case for case in find_cases(levin_data)}
    rows = _read_cases(out / "cases.csv")
    for name in TWO_CASES:
        blurry, _, _ = load_case(levin_data, cases[name])
        choice = choose_kernel_size(blurry)
        for row in rows:
            if row["case"] == name and row["method"] in ESTIMATES:
                assert int(row["model_kernel_size"]) == choice.kernel_size, row
                assert row["model"] == f"k{choice.kernel_size}.npz"
                assert row["kernel_size_reason"] == choice.reason
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kernel_size_mode"] == "auto"
    assert summary["kernel_size_rule"].startswith("auto: ")
    assert summary["labels"]["refdeblur"].startswith("refdeblur (auto: k")
    # the 33 px network measures every case, so it is listed as used
    assert 33 in [model["kernel_size"] for model in summary["models"]]


def test_oracle_picks_the_window_from_the_true_kernel(two_case_run):
    available = available_shipped_sizes()
    for row in _read_cases(two_case_run["out"] / "cases.csv"):
        if row["method"] in ESTIMATES:
            expected = oracle_kernel_size(int(row["true_kernel_size"]), available)
            assert int(row["model_kernel_size"]) == expected, row
            assert row["model"] == f"k{expected}.npz"
            assert row["kernel_size_reason"].startswith("oracle: the true kernel spans")
    summary = json.loads((two_case_run["out"] / "summary.json").read_text())
    assert [model["kernel_size"] for model in summary["models"]] == sorted(
        {oracle_kernel_size(size, available) for size in (13, 19)})
    assert summary["kernel_size_mode"] == "oracle"
    assert summary["kernel_size_rule"].startswith("oracle: ")
    assert summary["labels"]["refdeblur"].startswith("refdeblur (oracle: k")
    markdown = (two_case_run["out"] / "summary.md").read_text()
    assert "- kernel size: oracle: " in markdown


def test_summary_numbers_are_means_of_the_cases(two_case_run):
    rows = _read_cases(two_case_run["out"] / "cases.csv")
    summary = json.loads((two_case_run["out"] / "summary.json").read_text())
    assert set(summary["methods"]) == set(METHODS)
    for method, stats in summary["methods"].items():
        mine = [r for r in rows if r["method"] == method]
        ratios = np.array([float(r["error_ratio"]) for r in mine])
        assert stats["n_cases"] == len(TWO_CASES)
        assert stats["mean_psnr_db"] == pytest.approx(np.mean([float(r["psnr_db"]) for r in mine]))
        assert stats["mean_ssim"] == pytest.approx(np.mean([float(r["ssim"]) for r in mine]))
        assert stats["mean_error_ratio"] == pytest.approx(ratios.mean())
        assert stats["share_er_le_2"] == pytest.approx(np.mean(ratios <= 2))
        assert stats["share_er_le_3"] == pytest.approx(np.mean(ratios <= 3))
    assert sorted(summary["by_kernel_size"]) == ["13", "19"]
    assert summary["methods"]["true_kernel"]["share_er_le_2"] == 1.0
    assert summary["commit"] and summary["models"][0]["sha256"]
    markdown = (two_case_run["out"] / "summary.md").read_text()
    assert "published, not measured here" in markdown
    assert "By true kernel size" in markdown


def test_existing_results_are_not_overwritten(two_case_run, levin_data, capsys):
    before = (two_case_run["out"] / "cases.csv").read_bytes()
    status = main_levin(["--data", str(levin_data), "--out", str(two_case_run["out"]),
                         "--cases", TWO_CASES[0]])
    error = capsys.readouterr().err
    assert status == 2
    assert "--overwrite" in error and len(error.strip().splitlines()) == 1
    assert (two_case_run["out"] / "cases.csv").read_bytes() == before


def _assert_one_line_error(argv, tmp_path, capsys):
    assert main_levin(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("refdeblur: error: ")
    assert len(error.strip().splitlines()) == 1
    assert "Traceback" not in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("folder", ["nowhere", "."])
def test_bad_data_folder_gives_one_line_and_status_2(folder, tmp_path, capsys):
    # "." is a folder that exists but holds no case file
    _assert_one_line_error(["--data", str(tmp_path / folder), "--out",
                            str(tmp_path / "out")], tmp_path, capsys)


def test_folder_above_the_data_names_it(tmp_path):
    (tmp_path / "Levin09blurdata").mkdir()
    (tmp_path / "Levin09blurdata" / "im05_flit01.mat").write_bytes(b"")
    with pytest.raises(BenchError, match="Levin09blurdata, pass that folder"):
        find_cases(tmp_path)


@pytest.mark.parametrize("content", ["garbage", "no kernel", "integer image"])
def test_bad_mat_file_gives_one_line_and_status_2(content, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    path = data / "im01_ker01.mat"
    image = np.full((31, 31), 0.5)
    if content == "garbage":
        path.write_bytes(b"not a MATLAB file" * 20)
    elif content == "no kernel":
        scipy.io.savemat(path, {"x": image, "y": image})
    else:
        scipy.io.savemat(path, {"x": image, "y": np.full((31, 31), 128, np.uint8),
                                "f": np.ones((3, 3)) / 9})
    _assert_one_line_error(["--data", str(data), "--out", str(tmp_path / "out")],
                           tmp_path, capsys)


def test_unknown_case_gives_one_line_and_status_2(levin_data, tmp_path, capsys):
    _assert_one_line_error(["--data", str(levin_data), "--out", str(tmp_path / "out"),
                            "--cases", "im09_ker01"], tmp_path, capsys)


def test_missing_data_raises_bench_error(tmp_path):
    with pytest.raises(BenchError, match="not found"):
        run_levin(tmp_path / "nowhere", tmp_path / "out")


def test_oracle_kernel_size():
    assert oracle_kernel_size(13, [17, 25, 33]) == 17
    assert oracle_kernel_size(17, [17, 25, 33]) == 17
    assert oracle_kernel_size(19, [17, 25, 33]) == 25
    assert oracle_kernel_size(27, [17, 25, 33]) == 33
    assert oracle_kernel_size(27, [17]) == 17          # falls back to the largest
    assert oracle_kernel_size(13, [25]) == 25
    with pytest.raises(BenchError):
        oracle_kernel_size(13, [])


def test_bench_parser_registers_levin():
    class CliError(Exception):
        pass

    parser = argparse.ArgumentParser(prog="refdeblur")
    add_bench_parser(parser.add_subparsers(dest="command", required=True), CliError)
    args = parser.parse_args(["bench", "levin", "--data", "somewhere",
                              "--kernel-size", "25", "--cases", "im01_ker01"])
    assert args.kernel_size == 25 and callable(args.handler)
    assert parser.parse_args(["bench", "levin", "--data", "d"]).kernel_size == "auto"
    assert parser.parse_args(["bench", "levin", "--data", "d",
                              "--kernel-size", "oracle"]).kernel_size == "oracle"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "levin", "--data", "d", "--kernel-size", "21"])
    # a BenchError reaches the CLI as its own one-line error type
    with pytest.raises(CliError, match="not found"):
        args.handler(args)


def test_unavailable_fixed_kernel_size_is_a_clear_error(levin_data, tmp_path):
    missing = [size for size in (17, 25, 33) if size not in available_shipped_sizes()]
    if not missing:
        pytest.skip("every shipped model is installed")
    with pytest.raises(BenchError, match=f"--kernel-size {missing[0]}"):
        run_levin(levin_data, tmp_path / "out", kernel_size=missing[0],
                  cases=[TWO_CASES[0]])


def test_model_file_is_used_for_every_case(levin_data, tmp_path):
    model = shipped_model_path(17)
    result = run_levin(levin_data, tmp_path / "out", model_path=model,
                       cases=[TWO_CASES[1]], progress=False, command_line="test")
    estimate = [r for r in result["rows"] if r["method"] == "refdeblur"]
    assert [r["model"] for r in estimate] == [model.name]
    assert result["info"]["models"] == [{"file": model.name, "path": str(model),
                                         "kernel_size": 17,
                                         "sha256": model_sha256(model)}]
    assert result["info"]["kernel_size_rule"].startswith("fixed: the model file")
    assert estimate[0]["kernel_size_reason"] == "the model file's kernel size"
    assert result["kernels"][TWO_CASES[1]].shape == (17, 17)


def test_oracle_with_a_model_file_is_a_clear_error(levin_data, tmp_path, capsys):
    _assert_one_line_error(["--data", str(levin_data), "--out", str(tmp_path / "out"),
                            "--kernel-size", "oracle", "--model",
                            str(shipped_model_path(17))], tmp_path, capsys)


@pytest.mark.slow
def test_full_benchmark_keeps_the_published_scores(levin_data, tmp_path):
    # All 32 cases with the default options, as the README's command runs
    # them: its figures of cases at error ratio <= 3 must still hold.
    result = run_levin(levin_data, tmp_path / "levin", progress=False,
                       command_line="test")
    assert result["info"]["kernel_size_mode"] == "auto"
    for method, published in PUBLISHED_ER3_CASES.items():
        summary = result["methods"][method]
        assert summary["n_cases"] == 32
        cases = round(summary["share_er_le_3"] * 32)
        assert cases >= published, (method, cases, result["summary_table"])
