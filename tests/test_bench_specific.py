"""benchmarks/bench_specific.py on a tiny setting: every row, finite numbers.

The script is imported from its path and run in-process on 96 px crops of a
folder of scikit-image's pictures, with the shipped 17 px network as both
the generic and the "specific" network.
"""

import math
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from refdeblur.image_io import write_image
from refdeblur.model_io import read_model_file, save_model
from refdeblur.models import model_sha256, shipped_model_path
from refdeblur.network import Network
from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_specific.py"
TINY = ["--pairs", "2", "--side", "96", "--quick"]


bench = load_script(SCRIPT)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    pictures = [data.camera(), data.coins(), data.moon(), data.astronaut()[..., 1],
                data.brick(), data.grass()]
    for index, picture in enumerate(pictures):
        write_image(folder / f"image{index}.png", picture[:160, :160])
    return folder


def table(output, title):
    """Rows of the Markdown table under ``## title``: label -> cells."""
    lines = output.splitlines()
    start = lines.index(f"## {title}") + 4          # title, blank, header, rule
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def numbers(cells):
    return [float(cell) for cell in cells if cell != "–"]


def test_noise_condition_prints_every_row_with_finite_numbers(image_folder, capsys):
    status = bench.main(["--specific", str(shipped_model_path(17)), "--images",
                         str(image_folder), "--noise-levels", "0.01,0.05", *TINY])
    output = capsys.readouterr().out
    assert status == 0
    digest = model_sha256(shipped_model_path(17))[:12]
    assert output.count(f"sha256 {digest}") == 2      # generic and specific
    for level in ("0.01", "0.05"):
        rows = table(output, f"held-out photos, noise {level}")
        assert list(rows) == list(bench.ROWS)
        for label, cells in rows.items():
            values = numbers(cells)
            assert len(values) == (5 if label in (bench.ROWS[0], bench.TRUE_ROW) else 6)
            assert all(math.isfinite(v) for v in values), (label, cells)
        true = rows[bench.TRUE_ROW]
        assert float(true[1]) == 0.0 and float(true[2]) == 1.0 and true[3] == "2"
        assert true[4] == "0"                            # no warning for the truth
        # the same network on the same cases: the same numbers
        assert rows[bench.ROWS[1]][:5] == rows[bench.ROWS[2]][:5]
        assert rows[bench.ROWS[3]][:5] == rows[bench.ROWS[4]][:5]
        if level == "0.01":     # the default refines the generic network's kernel
            assert rows[bench.ROWS[5]][:5] == rows[bench.ROWS[3]][:5]
        # a delta kernel is far from camera shake of 11 px and more
        assert float(rows[bench.ROWS[0]][1]) > 10 * float(rows[bench.ROWS[1]][1])
    summary = table(output, "PSNR (dB) per noise level")
    assert list(summary) == list(bench.ROWS)


def test_text_condition_runs_on_document_pages(capsys):
    status = bench.main(["--specific", str(shipped_model_path(17)), "--condition", "text",
                         *TINY])
    output = capsys.readouterr().out
    assert status == 0
    assert "generator [777, 5]" in output
    rows = table(output, "synthetic documents, noise 0.01")
    assert list(rows) == list(bench.ROWS)
    assert all(math.isfinite(v) for cells in rows.values() for v in numbers(cells))
    photo = table(output, f"scikit-image's text photo (public domain), 2 crops of "
                          f"{bench.REAL_TEXT_SIDE} px, noise 0.01")
    assert list(photo) == list(bench.ROWS)
    assert all(math.isfinite(v) for cells in photo.values() for v in numbers(cells))


def test_checkpoint_from_scratch_runs_only_its_trained_stages(tmp_path):
    net, _, _ = read_model_file(shipped_model_path(17))
    config = {"stage_steps": 100, "frozen_steps": 10, "train_coarse_at_end": False}
    path = tmp_path / "checkpoint.npz"
    save_model(net, path, metadata={"training_state": {"step": 150, "config": config}})
    assert bench.load_network(path).net.architecture.inference_stages == 2
    # a fine-tuning run trains all the parent's stages from step 0
    config["init_model"] = "k17"
    save_model(net, path, metadata={"training_state": {"step": 0, "config": config}})
    loaded = bench.load_network(path)
    assert (loaded.net.architecture.inference_stages or loaded.net.architecture.n_stages) == 3
    assert "fine-tuned from k17" in loaded.description
    assert isinstance(loaded.net, Network) and loaded.net.params[
        next(iter(loaded.net.params))].dtype == np.float32


@pytest.mark.parametrize("argv, message", [
    (["--specific", "missing.npz", "--condition", "text"], "--specific: model file not found"),
    (["--specific", str(shipped_model_path(25)), "--condition", "text"], "25 px network"),
    (["--specific", str(shipped_model_path(17)), "--noise-levels", "0.01,x",
      "--condition", "text"], "not a comma-separated list"),
])
def test_bad_input_is_one_line_and_exit_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
