"""Trainer: ADADELTA, schedule, outlier rule, exact resume (also after SIGKILL).

And ``refdeblur train``: help and defaults, the shipped networks' recipes,
refused kernel sizes, the validation split, the progress bar.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.io

from refdeblur import load_model
from refdeblur._engine import NUMBA_WARNING
from refdeblur.cli import build_parser, main
from refdeblur.model_io import read_model_file
from refdeblur.training import TrainingResult, default_config, train
from refdeblur.training.config import RECIPES, recipe_config, training_command
from refdeblur.training.data import validation_split
from refdeblur.training.optim import Adadelta, Adam, make_optimizer, optimizer_settings
from refdeblur.training.schedule import Phase, phase_at, stagewise_schedule
from refdeblur.training.step import OutlierFilter



def _first_line(stderr):
    """The run's first line of its own, past the one warning a run without numba prints."""
    return next(line for line in stderr.splitlines()
                if NUMBA_WARNING not in line and not line.startswith(" "))

def test_adadelta_matches_hand_computed_steps():
    params = {"w": np.array([1.0, -2.0])}
    optimizer = Adadelta(learning_rate=0.01, decay=0.95, eps=1e-6)
    grad = np.array([0.5, -4.0])
    msg = np.zeros(2)
    mss = np.zeros(2)
    expected = params["w"].copy()
    for _ in range(3):
        msg = 0.95 * msg + 0.05 * grad ** 2
        step = -np.sqrt(mss + 1e-6) / np.sqrt(msg + 1e-6) * grad
        mss = 0.95 * mss + 0.05 * step ** 2
        expected = expected + 0.01 * step
        optimizer.update(params, {"w": grad}, ["w"])
    np.testing.assert_allclose(params["w"], expected, rtol=1e-15)


def test_adadelta_state_round_trip():
    optimizer = Adadelta()
    params = {"a": np.ones(3)}
    optimizer.update(params, {"a": np.arange(3.0)}, ["a"])
    restored = Adadelta()
    restored.load_state_arrays(optimizer.state_arrays())
    np.testing.assert_array_equal(restored.mean_square_grad["a"], optimizer.mean_square_grad["a"])
    np.testing.assert_array_equal(restored.mean_square_step["a"], optimizer.mean_square_step["a"])


def test_adam_matches_hand_computed_steps():
    params = {"w": np.array([1.0, -2.0])}
    optimizer = Adam(learning_rate=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    grads = [np.array([0.5, -4.0]), np.array([-1.0, 2.0]), np.array([0.25, 0.0])]
    m = np.zeros(2)
    v = np.zeros(2)
    expected = params["w"].copy()
    for t, grad in enumerate(grads, start=1):
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad ** 2
        m_hat, v_hat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
        expected = expected - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
        optimizer.update(params, {"w": grad}, ["w"])
    np.testing.assert_allclose(params["w"], expected, rtol=1e-14)
    # the first step has size lr whatever the gradient's scale
    fresh = {"w": np.zeros(2)}
    Adam(learning_rate=0.1).update(fresh, {"w": np.array([1e-3, -3e4])}, ["w"])
    np.testing.assert_allclose(fresh["w"], [-0.1, 0.1], rtol=1e-4)


def test_adam_counts_steps_per_parameter_and_round_trips():
    optimizer = Adam(learning_rate=0.01)
    params = {"a": np.ones(3), "b": np.ones(2)}
    optimizer.update(params, {"a": np.arange(3.0)}, ["a"])
    optimizer.update(params, {"a": np.ones(3), "b": np.ones(2)}, ["a", "b"])
    assert optimizer.steps == {"a": 2, "b": 1}     # a stage added later starts at t = 1
    restored = Adam(learning_rate=0.01)
    restored.load_state_arrays(optimizer.state_arrays())
    assert restored.steps == optimizer.steps
    for name in params:
        np.testing.assert_array_equal(restored.first_moment[name], optimizer.first_moment[name])
        np.testing.assert_array_equal(restored.second_moment[name], optimizer.second_moment[name])
    a, b = dict(params), {k: v.copy() for k, v in params.items()}
    grad = {"a": np.array([0.3, -0.2, 0.1]), "b": np.array([1.0, 2.0])}
    optimizer.update(a, grad, ["a", "b"])
    restored.update(b, grad, ["a", "b"])
    for name in params:
        np.testing.assert_array_equal(a[name], b[name])


def test_make_optimizer_reads_the_config():
    assert isinstance(make_optimizer({"learning_rate": 0.3, "decay": 0.95, "eps": 1e-6}),
                      Adadelta)                     # settings without a name
    adam = make_optimizer({"name": "adam", "learning_rate": 3e-4})
    assert isinstance(adam, Adam) and adam.learning_rate == 3e-4
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer({"name": "sgd"})


def test_optimizer_settings_are_the_optimizers_defaults():
    assert optimizer_settings() == {"learning_rate": 0.01, "decay": 0.95, "eps": 1e-6}
    assert optimizer_settings("adam") == {"name": "adam", "learning_rate": 1e-3,
                                          "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    adam = make_optimizer(optimizer_settings("adam", 3e-4))
    assert isinstance(adam, Adam) and adam.learning_rate == 3e-4
    json.dumps(optimizer_settings("adam"))           # goes into config.json
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizer_settings("sgd")


def test_stagewise_schedule_follows_the_paper():
    phases = stagewise_schedule(1000, 50, 3, "scale1.")
    assert phases == [
        Phase(0, 1, ("scale1.stage1.",)),
        Phase(1000, 2, ("scale1.stage2.",)),                 # new stage alone
        Phase(1050, 2, ("scale1.stage1.", "scale1.stage2.")),  # then end to end
        Phase(2000, 3, ("scale1.stage3.",)),
        Phase(2050, 3, ("scale1.stage1.", "scale1.stage2.", "scale1.stage3.")),
    ]
    assert phase_at(phases, 999).n_stages == 1
    assert phase_at(phases, 1049).trainable == ("scale1.stage2.",)
    assert phase_at(phases, 10 ** 6).n_stages == 3


def test_outlier_filter_skips_large_errors_after_warmup():
    rule = OutlierFilter(factor=10.0, decay=0.5, warmup=2)
    assert list(rule.mask([1.0, 1.0])) == [1, 1]           # warm-up
    assert list(rule.mask([5.0, 100.0, 1.0])) == [1, 0, 1]
    assert rule.seen == 5


def _write_images(folder):
    folder.mkdir()
    for name in ("camera", "moon", "coins", "text", "brick", "grass"):
        image = getattr(skimage.data, name)()
        skimage.io.imsave(folder / f"{name}.png", image, check_contrast=False)


TINY = ["--kernel-size", "17", "--crop-size", "40", "--batch-size", "2",
        "--filter-size", "5", "--n-filters", "4", "--stage-steps", "4",
        "--frozen-steps", "2", "--validate-every", "3", "--validation-images", "2",
        "--seed", "3"]


def _train(images, out, steps, *extra, **kwargs):
    tiny = TINY
    if {"--val-fraction", "--val-images"} & set(extra):    # they exclude --validation-images
        at = TINY.index("--validation-images")
        tiny = TINY[:at] + TINY[at + 2:]
    command = [sys.executable, "-m", "refdeblur", "train", "--images", str(images),
               "--out", str(out), "--steps", str(steps)] + tiny + list(extra)
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train") / "images"
    _write_images(folder)
    return folder


def _weights(path):
    return load_model(path).params


def test_resume_is_bit_identical(image_folder, tmp_path):
    straight = _train(image_folder, tmp_path / "straight", 12)
    assert straight.returncode == 0, straight.stderr
    first = _train(image_folder, tmp_path / "split", 6)
    assert first.returncode == 0, first.stderr
    second = _train(image_folder, tmp_path / "split", 12, "--resume")
    assert second.returncode == 0, second.stderr
    a, b = _weights(tmp_path / "straight" / "checkpoint.npz"), _weights(tmp_path / "split" / "checkpoint.npz")
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    _, header, _ = read_model_file(tmp_path / "split" / "checkpoint.npz")
    assert header["metadata"]["training_state"]["step"] == 12
    log = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert any("validation" in record for record in log)
    assert {record["n_stages"] for record in log} == {1, 2, 3}


def test_resume_is_bit_identical_with_adam(image_folder, tmp_path):
    straight = _train(image_folder, tmp_path / "straight", 10, "--optimizer", "adam")
    assert straight.returncode == 0, straight.stderr
    first = _train(image_folder, tmp_path / "split", 5, "--optimizer", "adam")
    assert first.returncode == 0, first.stderr
    second = _train(image_folder, tmp_path / "split", 10, "--resume")
    assert second.returncode == 0, second.stderr
    a, b = _weights(tmp_path / "straight" / "checkpoint.npz"), _weights(tmp_path / "split" / "checkpoint.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    config = json.loads((tmp_path / "split" / "config.json").read_text())
    assert config["optimizer"]["name"] == "adam"
    assert config["optimizer"]["learning_rate"] == 1e-3
    assert "--optimizer adam --learning-rate 0.001" in training_command(config)


def test_resume_after_sigkill_loses_nothing(image_folder, tmp_path):
    reference = _train(image_folder, tmp_path / "reference", 14)
    assert reference.returncode == 0, reference.stderr
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "refdeblur", "train", "--images", str(image_folder),
               "--out", str(run), "--steps", "14", "--checkpoint-minutes", "0"] + TINY
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = run / "log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 1 and process.poll() is None:
            break
        time.sleep(0.05)
    # killed between two checkpoints, or earlier, or even while writing one
    time.sleep(0.3)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    resumed = _train(image_folder, run, 14, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(tmp_path / "reference" / "checkpoint.npz"), _weights(run / "checkpoint.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), "a step was logged twice"


def test_train_refuses_to_overwrite_a_run(image_folder, tmp_path):
    assert _train(image_folder, tmp_path / "run", 2).returncode == 0
    again = _train(image_folder, tmp_path / "run", 2)
    assert again.returncode == 2
    assert "already holds a run" in again.stderr
    assert "Traceback" not in again.stderr


def test_train_reports_missing_folder(tmp_path):
    result = _train(tmp_path / "absent", tmp_path / "run", 2)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "image folder not found" in result.stderr


def test_plot_training(image_folder, tmp_path):
    assert _train(image_folder, tmp_path / "run", 6).returncode == 0
    result = subprocess.run([sys.executable, "-m", "refdeblur", "plot-training",
                             str(tmp_path / "run")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    png = tmp_path / "run" / "training.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same run, exported as a compact model with its recipe
    out = tmp_path / "k7.npz"
    export = subprocess.run([sys.executable, "-m", "refdeblur", "export-model",
                             str(tmp_path / "run"), str(out), "--stages", "2"],
                            capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    net = load_model(out)
    assert net.architecture.n_stages == 2 and net.dtype == np.float32
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["steps"] == 6 and recipe["command"].startswith("refdeblur train")
    assert recipe["validation_curve"][-1][0] == 6
    again = subprocess.run([sys.executable, "-m", "refdeblur", "export-model",
                            str(tmp_path / "run"), str(out)],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr
    # a run still training has logged past its checkpoint: the recipe stops there
    with open(tmp_path / "run" / "log.jsonl", "a") as log:
        log.write(json.dumps({"step": 9, "loss": 0.1, "validation": 0.5}) + "\n")
    ahead = tmp_path / "ahead.npz"
    assert subprocess.run([sys.executable, "-m", "refdeblur", "export-model",
                           str(tmp_path / "run"), str(ahead)]).returncode == 0
    recipe = json.loads(ahead.with_suffix(".json").read_text())
    assert recipe["validation_curve"][-1][0] == 6
    assert recipe["final_validation_kernel_error"] == recipe["validation_curve"][-1][1]


def test_architecture_flags_reach_the_model_and_the_recipe(image_folder, tmp_path):
    run = _train(image_folder, tmp_path / "flags", 1, "--zero-mean-filters",
                 "--beta-k", "0.5", "--n-hidden", "6", "--kernel-prior")
    assert run.returncode == 0, run.stderr
    arch = load_model(tmp_path / "flags" / "checkpoint.npz").architecture
    assert arch.zero_mean_filters and arch.beta_k == 0.5
    assert (arch.n_filters, arch.n_hidden, arch.kernel_prior) == (4, 6, True)
    config = json.loads((tmp_path / "flags" / "config.json").read_text())
    command = training_command(config)
    assert "--zero-mean-filters" in command and "--beta-k 0.5" in command
    assert "--n-filters 4 --n-hidden 6" in command and "--kernel-prior" in command
    refused = _train(image_folder, tmp_path / "bad", 1, "--n-hidden", "0")
    assert refused.returncode != 0 and "--n-hidden must be at least 1" in refused.stderr


def _tiny_config(image_folder):
    return default_config(7, seed=3, batch_size=2, crop_size=32, stage_steps=4,
                          frozen_steps=2, validate_every=3, validation_images=2,
                          architecture={"filter_sizes": [5], "n_filters": 4},
                          images=str(image_folder))


def test_library_train_stops_on_sigterm_and_resumes(image_folder, tmp_path):
    run = tmp_path / "run"
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    seen = []

    def progress(step, loss, validation_error):
        seen.append(step)
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)    # a graceful stop, not death

    config = _tiny_config(image_folder)
    result = train(config, out_dir=run, steps=5, progress=progress)
    assert isinstance(result, TrainingResult)
    assert result.stopped and result.step == 2 and seen == [1, 2]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers
    assert json.loads((run / "config.json").read_text()) == config
    _, header, _ = read_model_file(result.checkpoint)
    assert header["metadata"]["training_state"]["step"] == 2
    resumed = train(None, out_dir=run, steps=3, resume=True)
    assert not resumed.stopped and resumed.step == 3
    assert resumed.validation_error > 0


def test_library_train_refuses_bad_requests(image_folder, tmp_path):
    config = _tiny_config(image_folder)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(None, out_dir=tmp_path / "absent", steps=1, resume=True)
    with pytest.raises(ValueError, match="needs a config"):
        train(None, out_dir=tmp_path / "run", steps=1)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        train(config, out_dir=tmp_path / "run", steps=0)
    lonely = tmp_path / "one_image"
    lonely.mkdir()
    skimage.io.imsave(lonely / "camera.png", skimage.data.camera(), check_contrast=False)
    with pytest.raises(ValueError, match="at least two images"):
        train(dict(config, images=str(lonely)), out_dir=tmp_path / "run", steps=1)
    assert not (tmp_path / "run").exists()          # nothing written for a failed start
    assert train(config, out_dir=tmp_path / "run", steps=1).step == 1
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(config, out_dir=tmp_path / "run", steps=1)
    with pytest.raises(ValueError, match="own config.json"):
        train(config, out_dir=tmp_path / "run", steps=2, resume=True)


# ---------------------------------------------------------------------------
# refdeblur train: options, recipes, validation split, progress
# ---------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]

#: The configuration keys added after the shipped runs; their defaults
#: reproduce what those runs did.
NEWER_KEYS = {"validation_fraction": None, "validation_folder": None,
              "init_model": None, "init_model_sha256": None, "content": "natural",
              "documents": None}


def _train_parser():
    parser = build_parser()
    (subparsers,) = [action for action in parser._actions
                     if isinstance(action, argparse._SubParsersAction)]
    return subparsers.choices["train"]


def test_every_train_option_has_help_with_its_default():
    missing = []
    for action in _train_parser()._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = action.help or ""
        if not text or not ("(default:" in text or "(required" in text):
            missing.append("/".join(action.option_strings))
    assert not missing, f"no help or no default: {missing}"
    shown = subprocess.run([sys.executable, "-m", "refdeblur", "train", "--help"],
                           capture_output=True, text=True)
    assert shown.returncode == 0
    assert "(default: adadelta)" in shown.stdout and "recipes" in shown.stdout
    assert "last of the shipped 17 px network's three phases" in shown.stdout


def _printed_config(capsys, *options):
    assert main(["train", "--out", "unused", "--print-config", *map(str, options)]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_is_the_shipped_configuration(name, tmp_path, capsys):
    recipe = json.loads((REPO / "refdeblur" / "models" / f"{name}.json").read_text())
    shipped = {key: value for key, value in recipe["config"].items() if key != "note"}
    # A recipe that fine-tunes a network names it (init_model, a path from the
    # repository root); one that trains on a frozen base needs that file.
    base = [] if shipped.get("init_model") else ["--base-model", shipped["base_model"]]
    config = _printed_config(capsys, "--recipe", name, "--images", shipped["images"], *base)
    assert config == {**NEWER_KEYS, **shipped}
    assert recipe_config(name, images=shipped["images"]) == config
    assert training_command(config).replace("STEPS", str(recipe["steps"])) == recipe["command"]
    assert not (tmp_path / "unused").exists() and not Path("unused").exists()


def test_recipe_options_given_explicitly_override_it(capsys):
    base = ["--recipe", "k25", "--images", "photos", "--base-model", "base.npz"]
    config = _printed_config(capsys, *base, "--learning-rate", "1e-4", "--crop-size", "128",
                             "--val-fraction", "0.1")
    expected = recipe_config("k25", images="photos", base_model="base.npz", crop_size=128,
                             validation_fraction=0.1)
    expected["optimizer"]["learning_rate"] = 1e-4
    assert config == expected
    assert config["optimizer"]["name"] == "adam"       # only the rate changed
    adadelta = _printed_config(capsys, *base, "--optimizer", "adadelta")
    assert adadelta["optimizer"] == {"learning_rate": 0.01, "decay": 0.95, "eps": 1e-6}
    assert adadelta["architecture"] == recipe_config("k25")["architecture"]


def test_a_fine_tuning_recipe_takes_overrides_but_not_another_network(capsys):
    recipe = json.loads((REPO / "refdeblur" / "models" / "k17.json").read_text())
    assert recipe["config"]["init_model"] == recipe["parent_model"]["model"]
    config = _printed_config(capsys, "--recipe", "k17", "--images", "photos",
                             "--learning-rate", "1e-5", "--crop-size", "256")
    assert config["init_model"] == recipe["config"]["init_model"]
    assert config["init_model_sha256"] == recipe["parent_model"]["sha256"]
    assert config["optimizer"]["learning_rate"] == 1e-5 and config["crop_size"] == 256
    assert config["architecture"] == recipe["config"]["architecture"]
    for options, message in ((["--base-model", "b.npz"], "--base-model does not apply"),
                             (["--stage-steps", "500"], "--stage-steps does not apply"),
                             (["--filter-size", "9"], "--filter-size 9 contradicts")):
        assert main(["train", "--out", "unused", "--print-config", "--recipe", "k17",
                     "--images", "photos", *options]) == 2
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1


def _one_line_refusal(result):
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("options, message", [
    (["--kernel-size", "21"], "--kernel-size must be 17, 25 or 33"),
    (["--kernel-size", "7"], "--kernel-size must be 17, 25 or 33"),
    (["--recipe", "k25"], "pass --base-model"),
    (["--recipe", "k25", "--kernel-size", "17", "--base-model", "b.npz"], "25 px network"),
    (["--kernel-size", "17", "--val-fraction", "1.5"], "--val-fraction must be between"),
    (["--kernel-size", "17", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--kernel-size", "17", "--base-model", "absent.npz"], "base model not found"),
])
def test_train_refuses_bad_options_in_one_line(options, message, image_folder, tmp_path):
    command = [sys.executable, "-m", "refdeblur", "train", "--images", str(image_folder),
               "--out", str(tmp_path / "run"), "--steps", "2", *options]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert message in _one_line_refusal(result)
    assert not (tmp_path / "run").exists()


def test_validation_split_by_fraction_keeps_one_image_on_each_side():
    paths = [f"{i:02d}" for i in range(11)]
    train_part, held = validation_split(paths, fraction=0.5)
    assert len(held) == 6 and len(train_part) == 5 and set(held) | set(train_part) == set(paths)
    assert len(validation_split(paths, fraction=0.01)[1]) == 1      # at least one
    assert len(validation_split(paths[:2], fraction=0.99)[0]) == 1   # one left to train
    assert validation_split(paths, 60) == validation_split(paths, 5)  # the default: half
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        validation_split(paths, fraction=1.0)


def _bar_states(stderr):
    """The successive texts of a progress bar (tqdm rewrites its line with CR)."""
    return [state for line in stderr.splitlines() for state in line.split("\r")
            if "step/s" in state or "s/step" in state or "?step" in state]


def test_val_fraction_is_stated_and_recorded(image_folder, tmp_path):
    run = _train(image_folder, tmp_path / "run", 2, "--val-fraction", "0.5")
    assert run.returncode == 0, run.stderr
    first_line = _first_line(run.stderr)
    assert "3 of the 6 images" in first_line and "3 for training" in first_line
    assert "--val-fraction 0.5" in first_line
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["validation_fraction"] == 0.5
    assert "--val-fraction 0.5" in training_command(config)


def test_val_images_folder_is_left_out_of_training(image_folder, tmp_path):
    held = image_folder / "held"          # below --images: must not train
    held.mkdir()
    skimage.io.imsave(held / "astronaut.png", skimage.data.astronaut()[..., 0],
                      check_contrast=False)
    try:
        run = _train(image_folder, tmp_path / "run", 1, "--val-images", str(held))
    finally:
        (held / "astronaut.png").unlink()
        held.rmdir()
    assert run.returncode == 0, run.stderr
    first_line = _first_line(run.stderr)
    assert "6 training images" in first_line and "1 validation images" in first_line
    assert "left out of training" in first_line
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["validation_folder"] == str(held)
    assert f"--val-images {held}" in training_command(config)


def test_default_split_is_stated(image_folder, tmp_path):
    run = _train(image_folder, tmp_path / "run", 1)
    assert run.returncode == 0, run.stderr
    first_line = _first_line(run.stderr)
    assert first_line.startswith("2 of the 6 images in ") and "--validation-images 2" in first_line


def test_progress_shows_the_last_validation_once_there_is_one(image_folder, tmp_path):
    every_step = {**os.environ, "TQDM_MININTERVAL": "0"}     # draw the bar at every step
    run = _train(image_folder, tmp_path / "run", 4, env=every_step)   # validates at 3 and 4
    assert run.returncode == 0, run.stderr
    states = _bar_states(run.stderr)
    assert "nan" not in run.stderr
    before = [s for s in states if "| 1/4" in s or "| 2/4" in s]
    after = [s for s in states if "| 3/4" in s or "| 4/4" in s]
    assert before and after
    assert not any("val=" in s for s in before)
    assert "val=" in after[-1]
    assert "validation kernel error" in run.stderr
    last = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4
    resumed = _train(image_folder, tmp_path / "run", 6, "--resume", env=every_step)
    assert resumed.returncode == 0, resumed.stderr
    # the resumed bar shows the log's last validation until it validates again
    states = _bar_states(resumed.stderr)
    assert states and all(f"val={last['validation']:.3g}" in s
                          for s in states if "/6" in s and "| 6/6" not in s)


def test_a_run_without_the_newer_keys_resumes_bit_identically(image_folder, tmp_path):
    straight = _train(image_folder, tmp_path / "straight", 8)
    assert straight.returncode == 0, straight.stderr
    assert _train(image_folder, tmp_path / "old", 4).returncode == 0
    config_path = tmp_path / "old" / "config.json"
    config = json.loads(config_path.read_text())
    assert {key: config.pop(key) for key in NEWER_KEYS} == NEWER_KEYS
    config_path.write_text(json.dumps(config))           # as runs wrote it before
    resumed = _train(image_folder, tmp_path / "old", 8, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = _weights(tmp_path / "straight" / "checkpoint.npz")
    b = _weights(tmp_path / "old" / "checkpoint.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


TRAINING_RUNS = REPO / "benchmarks" / "training_runs"


@pytest.mark.parametrize("run", sorted(path.parent.name
                                       for path in TRAINING_RUNS.glob("*/config.json"))
                         or ["none"])
def test_shipped_run_configs_keep_their_meaning(run, capsys):
    path = TRAINING_RUNS / run / "config.json"
    if not path.is_file():
        pytest.skip("no training runs in this checkout")
    config = json.loads(path.read_text())
    # every key they hold is still a training option, at the same place; runs started
    # before the validation-split options lack those keys and resume with their defaults
    # (the keys recorded only when on: example_seeding, teacher_forcing, stage_loss_weight)
    optional = {"note", "example_seeding", "teacher_forcing", "stage_loss_weight"}
    assert set(config) - optional <= set(default_config(config["kernel_size"]))
    # and the command that reproduces them is accepted and gives the same network
    command = training_command(config).replace("STEPS", "1").split()
    assert command[:2] == ["refdeblur", "train"]
    assert main([*command[1:], "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kernel_size"] == config["kernel_size"]
    assert printed["architecture"] == config["architecture"]
    for key in optional - {"note"}:
        assert printed.get(key) == config.get(key), key


def test_beta_k_mode_flag_reaches_config_model_and_recipe(image_folder, tmp_path, capsys):
    assert "beta_k_mode" not in _printed_config(capsys, *TINY, "--images", "x",
                                                "--steps", "1")["architecture"]
    straight = _train(image_folder, tmp_path / "straight", 6, "--beta-k-mode", "relative",
                      "--beta-k", "0.05")
    assert straight.returncode == 0, straight.stderr
    config = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert config["architecture"]["beta_k_mode"] == "relative"
    assert "--beta-k 0.05 --beta-k-mode relative" in training_command(config)
    arch = load_model(tmp_path / "straight" / "checkpoint.npz").architecture
    assert (arch.beta_k_mode, arch.beta_k) == ("relative", 0.05)
    assert _train(image_folder, tmp_path / "split", 3, "--beta-k-mode", "relative",
                  "--beta-k", "0.05").returncode == 0
    resumed = _train(image_folder, tmp_path / "split", 6, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = _weights(tmp_path / "straight" / "checkpoint.npz")
    b = _weights(tmp_path / "split" / "checkpoint.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    refused = _train(image_folder, tmp_path / "bad", 1, "--beta-k-mode", "learned")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def test_a_checkpoint_without_beta_k_mode_resumes_as_constant(image_folder, tmp_path):
    straight = _train(image_folder, tmp_path / "straight", 6)
    assert straight.returncode == 0, straight.stderr
    assert _train(image_folder, tmp_path / "old", 3).returncode == 0
    checkpoint = tmp_path / "old" / "checkpoint.npz"
    with np.load(checkpoint) as archive:
        contents = {key: archive[key] for key in archive.files}
    (header_key,) = [key for key, value in contents.items() if value.dtype.kind == "U"]
    header = json.loads(str(contents[header_key]))
    assert header["architecture"].pop("beta_k_mode") == "constant"
    contents[header_key] = np.array(json.dumps(header, sort_keys=True))
    np.savez(checkpoint, **contents)                     # as files were written before
    assert load_model(checkpoint).architecture.beta_k_mode == "constant"
    resumed = _train(image_folder, tmp_path / "old", 6, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = _weights(tmp_path / "straight" / "checkpoint.npz")
    b = _weights(checkpoint)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_scales_train_a_deeper_pyramid_level_by_level(image_folder, tmp_path):
    tiny = TINY[2:]                                   # without --kernel-size 17

    def run(out, steps, *extra):
        return subprocess.run([sys.executable, "-m", "refdeblur", "train", "--images",
                               str(image_folder), "--out", str(out), "--steps", str(steps),
                               *tiny, *extra], capture_output=True, text=True)

    coarse = run(tmp_path / "s5", 3, "--scales", "5")
    assert coarse.returncode == 0, coarse.stderr
    config = json.loads((tmp_path / "s5" / "config.json").read_text())
    assert config["kernel_size"] == 5 and config["architecture"]["kernel_sizes"] == [5]
    base = tmp_path / "s5" / "checkpoint.npz"
    finer = run(tmp_path / "s9", 3, "--scales", "5,9", "--base-model", str(base))
    assert finer.returncode == 0, finer.stderr
    config = json.loads((tmp_path / "s9" / "config.json").read_text())
    assert "--scales 5,9" in training_command(config)
    trained, before = _weights(tmp_path / "s9" / "checkpoint.npz"), _weights(base)
    assert load_model(tmp_path / "s9" / "checkpoint.npz").architecture.kernel_sizes == (5, 9)
    # the coarse level is reused as it is; only the new, finer scale learns
    for name, value in before.items():
        np.testing.assert_array_equal(trained[name], value, err_msg=name)
    assert any(name.startswith("scale2.") for name in trained)
    for bad in (["--scales", "5,9", "--kernel-size", "17"], ["--scales", "9,5"],
                ["--scales", "4,9"], ["--kernel-size", "9"]):
        refused = subprocess.run([sys.executable, "-m", "refdeblur", "train", "--images",
                                  str(image_folder), "--out", str(tmp_path / "bad"),
                                  "--steps", "1", *bad], capture_output=True, text=True)
        assert refused.returncode == 2, bad
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert not (tmp_path / "bad").exists()
