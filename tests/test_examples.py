"""The scripts in examples/ run on a fresh checkout and write only into ``--out``.

Each script runs in its own Python process with ``--quick`` (small images,
few iterations), from a working directory outside the repository, with
warnings turned into errors like the rest of the test suite; neither that
directory nor the repository gains a file.
"""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from refdeblur._engine import NUMBA_WARNING
from script_loader import load_script as _load_script

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLES = REPOSITORY / "examples"

SCRIPTS = {
    "coarse_to_fine_refinement.py": "coarse_to_fine_refinement.png",
    "fig02_stage_outputs.py": "fig02_stage_outputs.png",
    "fig06_sampled_kernels.py": "fig06_sampled_kernels.png",
    "fig07_learned_filters.py": "fig07_learned_filters.png",
    "fig09_histograms.py": "fig09_histograms.png",
    "fig11_activation_maximisation.py": "fig11_activation_maximisation.png",
    "fig13_14_specific_networks.py": "fig13_14_specific_networks.png",
    "fig19_error_vs_image_size.py": "fig19_error_vs_image_size.png",
    "fig15_16_nonuniform.py": "fig15_16_nonuniform.png",
}


def repository_files():
    """Files in the repository's root and in examples/, with their modification times.

    Byte-code caches are left out: importing a script may write them.
    """
    files = {p: p.stat().st_mtime_ns for p in REPOSITORY.iterdir() if p.is_file()}
    files.update({p: p.stat().st_mtime_ns for p in EXAMPLES.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts})
    return files


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
    before = repository_files()
    run_script(script, workdir, "--quick", "--out", str(out))
    check_png(out / SCRIPTS[script])
    assert [p.name for p in out.iterdir()] == [SCRIPTS[script]]
    assert not any(workdir.iterdir()), "the script wrote into the working directory"
    assert repository_files() == before, "the script changed the repository"


def test_blurry_sample_goes_to_out_and_matches_the_shipped_one(tmp_path):
    """``make_blurry_sample.py`` writes into ``--out`` only, and reproduces the
    tracked sample photo and its kernel byte for byte."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    out = tmp_path / "out"
    before = repository_files()
    run_script("make_blurry_sample.py", workdir, "--quick", "--out", str(out))
    names = ("blurry_astronaut.png", "blurry_astronaut_true_kernel.png")
    assert sorted(p.name for p in out.iterdir()) == list(names)
    for name in names:
        assert (out / name).read_bytes() == (EXAMPLES / name).read_bytes(), name
    assert not any(workdir.iterdir()), "the script wrote into the working directory"
    assert repository_files() == before, "the script changed the repository"


def test_make_figures_regenerates_every_figure_the_readmes_show(tmp_path, monkeypatch):
    """``make_figures.py`` covers every ``examples/figures/`` of both READMEs
    and writes them into ``--out`` (its scripts run in-process)."""
    shown = set()
    for readme in (REPOSITORY / "README.md", EXAMPLES / "README.md"):
        text = readme.read_text(encoding="utf-8")
        shown |= set(re.findall(r"examples/figures/(\w+\.png)", text))
        shown |= set(re.findall(r"\]\(figures/(\w+\.png)\)", text))
    committed = {p.name for p in (EXAMPLES / "figures").glob("*.png")}
    assert shown and shown <= committed, f"not committed: {sorted(shown - committed)}"
    module = load_script("make_figures.py")
    assert {name + ".png" for name in module.README_FIGURES} == shown
    assert module.FIGURES_FOLDER == EXAMPLES / "figures"
    # Drawing the figures is what the per-script tests check; here each
    # script's main only records the options it is given.
    calls = {}
    for name in module.README_FIGURES + module.OTHER_FIGURES:
        script = importlib.import_module(name)
        monkeypatch.setattr(script, "main", lambda argv, name=name: calls.__setitem__(name, argv))
    module.main(["--quick", "--out", str(tmp_path)])
    assert calls == {name: ["--out", str(tmp_path), "--quick"]
                     for name in module.README_FIGURES}
    calls.clear()
    module.main(["--all"])
    assert set(calls) == set(module.README_FIGURES + module.OTHER_FIGURES)
    assert all(argv == ["--out", str(EXAMPLES / "figures")] for argv in calls.values())


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
    return _load_script(EXAMPLES / script, name="example_" + Path(script).stem)


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
               if not p.name.startswith("_")
               and p.name not in ("make_blurry_sample.py", "make_figures.py", "port_check_numpy_minimal.py")}
    assert scripts == set(SCRIPTS), f"untested scripts: {sorted(scripts - set(SCRIPTS))}"
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for name in scripts | {"make_blurry_sample.py", "make_figures.py"}:
        assert name in readme, f"{name} is missing from examples/README.md"


@pytest.mark.parametrize("script", sorted(SCRIPTS) + ["make_blurry_sample.py"])
def test_every_script_takes_quick_and_out(script, capsys):
    """The options examples/README.md promises for every script."""
    with pytest.raises(SystemExit) as exit_info:
        load_script(script).main(["--help"])
    assert exit_info.value.code == 0
    usage = " ".join(capsys.readouterr().out.split())   # undo the line wrapping
    assert "--quick" in usage and "--out" in usage
    assert "current directory" in usage
