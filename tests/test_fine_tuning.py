"""Fine-tuning (``refdeblur train --init``), noise ranges and runs on synthetic
documents (``--content text``): derivations/fine_tuning.md."""

import dataclasses
import json

import numpy as np
import pytest
import skimage.data
import skimage.io

from refdeblur import build_network, load_model
from refdeblur.cli import main
from refdeblur.model_io import save_model
from refdeblur.models import load_shipped_model, model_sha256
from refdeblur.training import train
from refdeblur.training.config import fine_tuning_config, training_command
from refdeblur.training.data import (check_noise_std, load_run_data, make_batch,
                                     validation_set, ExampleSource)
from refdeblur.training.export import export_run
from refdeblur.training.trainer import Trainer, fine_tuning_phases


# ---------------------------------------------------------------------------
# Noise level or range
# ---------------------------------------------------------------------------

def _pin_images():
    return [skimage.data.camera() / 255.0, skimage.data.moon() / 255.0]


def test_a_single_noise_level_keeps_the_data_stream_unchanged():
    """Batches of a single noise level, pinned by the code before noise ranges existed.

    Background runs resume from committed checkpoints: their data stream,
    the generator's state after a batch included, must not move. The
    generator's state is exact; the values agree to 1e-8, not to the last
    bit, because the Cholesky factor of the trajectory's ill-conditioned
    covariance rounds differently on different processors (about 1e-9
    relative, derivations/training.md, "Reproducibility and resume"): a
    change to the stream moves them by far more.
    """
    images = _pin_images()
    rng = np.random.default_rng([7, 1])
    batch = make_batch(images, 3, 24, 9, rng, noise_std=0.01)
    assert rng.bit_generator.state["state"]["state"] == 6561813590751987942640547590481799184
    pinned = [(923.4886802236188, 531.3149697336203, 0.2709717248093094),
              (3.0, 0.2776662611244969, 0.0),
              (922.7686274509804, 546.5768242983468, 0.17254901960784313)]
    for array, (total, squares, entry) in zip(batch, pinned):
        np.testing.assert_allclose([array.sum(), (array ** 2).sum(), array.flat[5]],
                                   [total, squares, entry], rtol=1e-8)
    validation = validation_set(images, 2, 24, 9, seed=12345, noise_std=0.03)
    pinned = [(545.2868336764585, 0.5774881703601062), (2.0, 0.0),
              (543.9176470588235, 0.5647058823529412)]
    for array, (total, entry) in zip(validation, pinned):
        np.testing.assert_allclose([array.sum(), array.flat[7]], [total, entry], rtol=1e-8)
    rng = np.random.default_rng([7, 2, 0, 1])
    y, k = ExampleSource(images, 24, 9, 0.01)(rng)
    assert rng.bit_generator.state["state"]["state"] == 161848840599253957602178419125572752945
    np.testing.assert_allclose([y.sum(), k.sum(), y.flat[3]],
                               [238.77052987944876, 1.0, 0.09581083661907576], rtol=1e-8)


def test_a_noise_range_draws_every_example_s_level_inside_it():
    # blur keeps a constant image constant: what is left is the noise alone
    flat = [np.full((80, 80), 0.5)]
    batch = make_batch(flat, 24, 64, 9, np.random.default_rng(0), noise_std=(0.02, 0.08),
                       reject_flat=False)
    levels = (batch.y - 0.5).std(axis=(1, 2))
    assert levels.min() > 0.02 * 0.95 and levels.max() < 0.08 * 1.05
    assert levels.max() - levels.min() > 0.03          # drawn, not one value
    # the same generator state gives the same levels
    again = make_batch(flat, 24, 64, 9, np.random.default_rng(0), noise_std=[0.02, 0.08],
                       reject_flat=False)
    np.testing.assert_array_equal(again.y, batch.y)


@pytest.mark.parametrize("value, message", [
    (-0.01, ">= 0"), ((0.05, 0.01), "above its high end"), ((0.01, 0.02, 0.03), "two values"),
    ((0.01, float("nan")), ">= 0"), ("loud", "a number or a range"),
])
def test_bad_noise_levels_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        check_noise_std(value)


def test_a_range_of_equal_ends_is_the_single_level():
    assert check_noise_std([0.02, 0.02]) == 0.02


@pytest.mark.parametrize("text, message", [
    ("-0.1", "must be >= 0"), ("0.05,0.01", "above its high end"), ("a,b", "a range LOW,HIGH"),
])
def test_cli_refuses_bad_noise_in_one_line(text, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--kernel-size", "17", "--images", "x", "--out", "unused",
              "--steps", "1", "--noise-std", text])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_cli_records_a_noise_range_and_its_command(capsys):
    assert main(["train", "--kernel-size", "17", "--images", "photos", "--out", "unused",
                 "--steps", "1", "--noise-std", "0.01,0.05", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["noise_std"] == [0.01, 0.05]
    assert "--noise-std 0.01,0.05 " in training_command(config)


# ---------------------------------------------------------------------------
# --init: a run from a trained network
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A tiny single-scale 9 px network, saved as a model file."""
    net = build_network(9, rng=np.random.default_rng(11), n_filters=4, n_hidden=4,
                        filter_sizes=(5,))
    path = tmp_path_factory.mktemp("parent") / "parent.npz"
    save_model(net.astype(np.float32), path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fine") / "images"
    folder.mkdir()
    for name in ("camera", "moon", "coins", "text"):
        skimage.io.imsave(folder / f"{name}.png", getattr(skimage.data, name)(),
                          check_contrast=False)
    return folder


def _config(parent, **overrides):
    settings = dict(seed=3, batch_size=2, crop_size=32, validate_every=3,
                    validation_images=2, n_validation=4)
    settings.update(overrides)
    return fine_tuning_config(str(parent), **settings)


def test_a_run_from_an_init_model_starts_at_its_weights(parent, images, tmp_path):
    config = _config(parent, images=str(images))
    assert config["init_model"] == str(parent)
    assert config["init_model_sha256"] == model_sha256(parent)
    assert config["optimizer"] == {"name": "adam", "learning_rate": 1e-4, "beta1": 0.9,
                                   "beta2": 0.999, "eps": 1e-8}
    trainer = Trainer(tmp_path / "run", config, None, None)
    trainer.initialise()
    weights = load_model(parent).params
    assert set(trainer.net.params) == set(weights)
    for name, value in weights.items():
        np.testing.assert_array_equal(trainer.net.params[name], value, err_msg=name)
    # one phase from step 0: every stage runs and trains (no stage-wise growth)
    (phase,) = trainer.phases()
    assert (phase.first_step, phase.n_stages) == (0, 3)
    train(config, out_dir=tmp_path / "trained", steps=2)
    trained = load_model(tmp_path / "trained" / "checkpoint.npz").params
    for stage in (1, 2, 3):
        name = f"scale1.stage{stage}.conv.weight"
        assert not np.array_equal(trained[name], weights[name]), name


def test_a_prior_kernel_can_be_added_to_the_init_model(parent, images, tmp_path, capsys):
    config = _config(parent, images=str(images))
    config["architecture"]["kernel_prior"] = True
    trainer = Trainer(tmp_path / "run", config, None, None)
    trainer.initialise()
    assert trainer.net.architecture.kernel_prior
    weights = load_model(parent).params
    for name, value in weights.items():
        np.testing.assert_array_equal(trainer.net.params[name], value, err_msg=name)
    train(config, out_dir=tmp_path / "trained", steps=1)
    assert load_model(tmp_path / "trained" / "checkpoint.npz").architecture.kernel_prior
    # the command line records it, and training_command gives it back
    assert main(["train", "--init", str(parent), "--images", str(images), "--out",
                 str(tmp_path / "cli"), "--steps", "1", "--kernel-prior",
                 "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["architecture"]["kernel_prior"] is True
    assert "--kernel-prior" in training_command(printed)


def test_fine_tuning_runs_only_the_stages_the_parent_runs():
    # a 25 px network exported with --stages 2, as the recipes allow
    k25 = dataclasses.replace(load_shipped_model(25).architecture, inference_stages=2)
    (phase,) = fine_tuning_phases(k25)
    assert phase.n_stages == k25.inference_stages == 2
    assert phase.trainable == ("scale2.stage1.", "scale2.stage2.", "scale1.")
    (phase,) = fine_tuning_phases(dataclasses.replace(k25, inference_stages=None))
    assert phase.n_stages == 3 and "scale2.stage3." in phase.trainable


def test_an_init_run_resumes_bit_identically_without_its_init_file(parent, images,
                                                                    tmp_path):
    copy = tmp_path / "parent_copy.npz"
    copy.write_bytes(parent.read_bytes())
    config = _config(copy, images=str(images), noise_std=[0.01, 0.05])
    train(config, out_dir=tmp_path / "straight", steps=4)
    train(dict(config), out_dir=tmp_path / "split", steps=2)
    copy.unlink()                      # the checkpoint holds the weights
    train(None, out_dir=tmp_path / "split", steps=4, resume=True)
    a = load_model(tmp_path / "straight" / "checkpoint.npz").params
    b = load_model(tmp_path / "split" / "checkpoint.npz").params
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_config_and_recipe_record_the_parent(parent, images, tmp_path):
    config = _config(parent, images=str(images))
    train(config, out_dir=tmp_path / "run", steps=1)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["init_model"] == str(parent)
    assert stored["init_model_sha256"] == model_sha256(parent)
    _, recipe = export_run(tmp_path / "run", tmp_path / "child.npz")
    assert recipe["parent_model"] == {"model": str(parent), "sha256": model_sha256(parent)}
    assert f"--init {parent} " in recipe["command"]
    assert "--stage-steps" not in recipe["command"]


def test_a_changed_init_file_is_refused(parent, images, tmp_path):
    config = _config(parent, images=str(images))
    config["init_model_sha256"] = "0" * 64
    with pytest.raises(ValueError, match="not the file"):
        train(config, out_dir=tmp_path / "run", steps=1)


def test_cli_init_takes_the_architecture_and_a_shipped_name(parent, capsys):
    assert main(["train", "--init", str(parent), "--images", "photos", "--out", "unused",
                 "--steps", "1", "--kernel-size", "9", "--n-filters", "4",
                 "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["kernel_size"] == 9
    assert config["architecture"] == load_model(parent).architecture.to_dict()
    assert config["optimizer"]["learning_rate"] == 1e-4
    assert main(["train", "--init", "k25", "--images", "photos", "--out", "unused",
                 "--steps", "1", "--optimizer", "adadelta", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["kernel_size"] == 25 and config["init_model"] == "k25"
    assert config["optimizer"]["learning_rate"] == 0.01     # ADADELTA's own default
    assert config["architecture"] == load_model("k25").architecture.to_dict()


@pytest.mark.parametrize("options, message", [
    (["--kernel-size", "17"], "--kernel-size 17 contradicts --init"),
    (["--n-filters", "8"], "--n-filters 8 contradicts --init"),
    (["--filter-size", "9"], "--filter-size 9 contradicts --init"),
    (["--zero-mean-filters"], "--zero-mean-filters True contradicts"),
    (["--stage-steps", "4"], "--stage-steps does not apply with --init"),
    (["--base-model", "b.npz"], "--base-model does not apply with --init"),
])
def test_cli_refuses_options_that_contradict_the_init_model(options, message, parent,
                                                            capsys, tmp_path):
    status = main(["train", "--init", str(parent), "--images", "photos",
                   "--out", str(tmp_path / "run"), "--steps", "1", *options])
    error = capsys.readouterr().err.strip()
    assert status == 2 and message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_cli_refuses_an_unreadable_init_model(tmp_path, capsys):
    not_a_model = tmp_path / "notes.npz"
    not_a_model.write_text("not a model")
    plain = tmp_path / "plain.npz"
    np.savez(plain, weights=np.zeros(3))
    for init, message in ((tmp_path / "absent.npz", "init model not found"),
                          (not_a_model, "not a readable refdeblur model"),
                          (plain, "not a refdeblur model")):
        status = main(["train", "--init", str(init), "--images", "photos",
                       "--out", str(tmp_path / "run"), "--steps", "1"])
        error = capsys.readouterr().err.strip()
        assert status == 2 and message in error and len(error.splitlines()) == 1, error


# ---------------------------------------------------------------------------
# --content text
# ---------------------------------------------------------------------------

def _text_config(parent, **overrides):
    return _config(parent, content="text",
                   documents={"pages": 2, "validation_pages": 1, "page_size": 128},
                   **overrides)


def test_a_text_run_renders_its_pages_from_the_seed(parent):
    config = _text_config(parent)
    data = load_run_data(config)
    assert "2 synthetic document pages of 128 px" in data.split
    again = load_run_data(dict(config))
    np.testing.assert_array_equal(again.validation[0], data.validation[0])
    other = load_run_data(dict(config, seed=4))
    assert not np.array_equal(other.validation[0], data.validation[0])
    # training and validation pages come from generators of their own
    train_pages = data.example_source.images
    assert len(train_pages) == 2
    assert not any(np.array_equal(page, again.example_source.images[0])
                   for page in other.example_source.images)


def test_a_text_run_resumes_bit_identically(parent, tmp_path):
    config = _text_config(parent)
    assert config["images"] is None
    train(config, out_dir=tmp_path / "straight", steps=3)
    train(dict(config), out_dir=tmp_path / "split", steps=1)
    train(None, out_dir=tmp_path / "split", steps=3, resume=True)
    a = load_model(tmp_path / "straight" / "checkpoint.npz").params
    b = load_model(tmp_path / "split" / "checkpoint.npz").params
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    stored = json.loads((tmp_path / "split" / "config.json").read_text())
    assert stored["content"] == "text" and stored["documents"]["page_size"] == 128


def test_cli_text_content_needs_no_images_and_refuses_theirs(capsys, tmp_path):
    assert main(["train", "--kernel-size", "17", "--content", "text", "--out", "unused",
                 "--steps", "1", "--document-pages", "5", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["content"] == "text" and config["images"] is None
    assert config["documents"] == {"pages": 5, "validation_pages": 8, "page_size": 512}
    assert "--content text --document-pages 5" in training_command(config)
    for options, message in ((["--content", "text", "--images", "photos"],
                              "--images does not apply with --content text"),
                             (["--images", "photos", "--page-size", "256"],
                              "--page-size applies only with --content text"),
                             (["--content", "text", "--page-size", "16"],
                              "--page-size must be at least 32")):
        status = main(["train", "--kernel-size", "17", "--out", str(tmp_path / "run"),
                       "--steps", "1", *options])
        error = capsys.readouterr().err.strip()
        assert status == 2 and message in error and len(error.splitlines()) == 1
