"""benchmarks/learning_curves.py: the hours of the pyramid levels below a run."""

import json
from pathlib import Path

from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "learning_curves.py"


def _script():
    return load_script(SCRIPT)


def test_base_hours_take_an_exported_recipe_before_its_run(tmp_path):
    curves = _script()
    # level 1 exported at 3,600 s of its run; level 2 on it, exported at 7,200 s
    (tmp_path / "level1_export.json").write_text(json.dumps(
        {"training_seconds": 3600.0, "config": {"base_model": None}}))
    (tmp_path / "level2_export.json").write_text(json.dumps(
        {"training_seconds": 7200.0, "config": {"base_model": "runs/level1_export.npz"}}))
    # the runs themselves went on: their folders' hours must not count
    hours_of = {"level1_export": 9.0, "level2_export": 9.0, "plain_run": 0.5}
    on_level2 = {"base_model": "runs/level2_export.npz"}
    assert curves.base_hours(on_level2, hours_of, runs=tmp_path) == 3.0
    assert curves.base_hours({"base_model": "runs/plain_run.npz"}, hours_of,
                             runs=tmp_path) == 0.5
    assert curves.base_hours({"base_model": "runs/unknown.npz"}, hours_of,
                             runs=tmp_path) == 0.0
    assert curves.base_hours({"base_model": None}, hours_of, runs=tmp_path) == 0.0
