"""The figure scripts in examples/ run on a fresh checkout and write a PNG.

Each script runs in its own Python process with ``--quick`` (small images,
few iterations), from a working directory outside the repository, with
warnings turned into errors like the rest of the test suite.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from refdeblur._engine import NUMBA_WARNING

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

SCRIPTS = {
    "coarse_to_fine_refinement.py": "coarse_to_fine_refinement.png",
    "fig02_stage_outputs.py": "fig02_stage_outputs.png",
    "fig07_learned_filters.py": "fig07_learned_filters.png",
    "fig09_histograms.py": "fig09_histograms.png",
    "fig11_activation_maximisation.py": "fig11_activation_maximisation.png",
    "fig19_error_vs_image_size.py": "fig19_error_vs_image_size.png",
}


def run_script(script, cwd, *args):
    result = subprocess.run(
        [sys.executable, "-W", "error", "-W", f"ignore:{NUMBA_WARNING}:RuntimeWarning",
         str(EXAMPLES / script), *args],
        cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"{script} failed with code {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def check_png(path):
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert 150 <= height <= 5000 and 150 <= width <= 5000, image.shape
    assert np.all(np.isfinite(image))
    assert float(image[..., :3].std()) > 0.01, "the figure is blank"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_writes_its_figure(script, tmp_path):
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    out = tmp_path / "out"
    run_script(script, workdir, "--quick", "--out", str(out))
    check_png(out / SCRIPTS[script])
    assert not any(workdir.iterdir()), "the script wrote into the working directory"


def test_model_option_and_default_output(tmp_path):
    """``--model`` loads a model file; without ``--out`` the PNG goes to the cwd."""
    from refdeblur import save_model
    from refdeblur.models import load_shipped_model

    model = tmp_path / "copy.npz"
    save_model(load_shipped_model(17), model)
    run_script("fig07_learned_filters.py", tmp_path, "--quick", "--model", str(model))
    check_png(tmp_path / "fig07_learned_filters.png")


def load_script(script):
    """Import a script as a module (its ``main`` does not run)."""
    spec = importlib.util.spec_from_file_location(
        "example_" + Path(script).stem, EXAMPLES / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_out_is_a_folder_or_a_png_file(script, tmp_path):
    module = load_script(script)
    name = SCRIPTS[script]
    assert module.NAME == name
    assert module.save_figure.__module__ == "_figure_common"
    output_path = sys.modules["_figure_common"].output_path   # save_figure's
    assert output_path(None, name) == Path(name)
    assert output_path(tmp_path / "my.png", name) == tmp_path / "my.png"
    assert output_path(tmp_path / "new" / "dir", name) == tmp_path / "new" / "dir" / name
    assert (tmp_path / "new" / "dir").is_dir()


def test_every_script_is_tested_and_documented():
    # every script but the helpers and the sample-photo maker draws a figure
    scripts = {p.name for p in EXAMPLES.glob("*.py")
               if not p.name.startswith("_") and p.name != "make_blurry_sample.py"}
    listed = set(SCRIPTS) | {"fig06_sampled_kernels.py"}
    assert scripts == listed, f"untested scripts: {sorted(scripts - listed)}"
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for name in scripts:
        assert name in readme, f"{name} is missing from examples/README.md"
