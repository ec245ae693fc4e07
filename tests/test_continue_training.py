"""The command that resumes a committed training run (benchmarks/training_runs)."""

import json
import sys
from pathlib import Path

import pytest

RUNS = Path(__file__).resolve().parents[1] / "benchmarks" / "training_runs"
sys.path.insert(0, str(RUNS))
import continue_training  # noqa: E402


def test_a_run_on_photos_passes_its_image_folder():
    command = continue_training.resume_command({"images": "../shared/data/train"},
                                               Path("runs/x"), 500)
    assert command[:3] == ["nice", "-n", "19"]
    assert command[command.index("--images") + 1] == "../shared/data/train"
    assert command[-1] == "--resume"
    assert command[command.index("--steps") + 1] == "500"


def test_a_run_on_documents_has_no_image_folder():
    command = continue_training.resume_command({"images": None, "content": "text"},
                                               Path("runs/k17_text"), 12000)
    assert "--images" not in command and all(isinstance(part, str) for part in command)
    assert command[command.index("--out") + 1] == str(Path("runs/k17_text"))


@pytest.mark.parametrize("folder", sorted(p for p in RUNS.iterdir()
                                          if (p / "config.json").is_file()),
                         ids=lambda p: p.name)
def test_every_committed_run_gives_a_command(folder):
    config = json.loads((folder / "config.json").read_text())
    command = continue_training.resume_command(config, folder, 1)
    assert all(isinstance(part, str) for part in command)
    assert ("--images" in command) == bool(config.get("images"))
