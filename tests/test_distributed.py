"""Training and batch deblurring on Dask distributed (``refdeblur.distributed``).

With per-example seeding the weights are the same bits in one process, on
one worker and on two; a lost worker and a killed client change nothing;
a batch of files with a bad one deblurs the others, and a rerun skips what
is done. Without Dask the options say, in one line, how to install it.
The cluster tests skip where Dask distributed is not installed.
"""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
import skimage.io

from refdeblur import load_model
from refdeblur.cli import main
from refdeblur.model_io import read_model_file
from refdeblur.network import build_network
from refdeblur.training import default_config, train
from refdeblur.training.config import example_seeding, training_command
from refdeblur.training.data import ExampleSource
from refdeblur.training.optim import make_optimizer
from refdeblur.training.schedule import Phase
from refdeblur.training.step import OutlierFilter
from refdeblur.training.trainer import ExampleResult, example_seed, per_example_step

STEPS = 12

#: A tiny network trained in a few steps through all phases of the
#: stage-wise schedule (3 stages: new ones at steps 3 and 6, trained alone
#: for one step), with an outlier rule that skips examples from the start.
TINY = ["--scales", "9", "--crop-size", "48", "--batch-size", "4", "--filter-size", "5",
        "--n-filters", "4", "--stage-steps", "3", "--frozen-steps", "1",
        "--validate-every", "3", "--validation-images", "2", "--seed", "3"]


@pytest.fixture(scope="module")
def distributed():
    return pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed") / "images"
    folder.mkdir()
    for name in ("camera", "moon", "coins", "text", "brick", "grass"):
        skimage.io.imsave(folder / f"{name}.png", getattr(skimage.data, name)(),
                          check_contrast=False)
    return folder


def _cli_config(images, *options):
    """The configuration ``refdeblur train`` writes for these options."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "--images", str(images), "--out", "unused", "--steps",
                     str(STEPS), *TINY, *options, "--print-config"]) == 0
    return json.loads(printed.getvalue())


@pytest.fixture(scope="module")
def config(images):
    config = _cli_config(images, "--example-seeding", "per-example")
    config["n_validation"] = 4
    # skips examples from the fifth on: the rule must behave as in one process
    config["outliers"] = {"factor": 1.05, "decay": 0.5, "warmup": 4}
    return config


@pytest.fixture(scope="module")
def cluster(distributed):
    """A client of a local cluster of two worker processes, one thread each."""
    from refdeblur.distributed import dask_client
    with dask_client(workers=2) as client:
        workers = client.scheduler_info()["workers"].values()
        assert [worker["nthreads"] for worker in workers] == [1, 1]
        yield client


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """The single-process run with per-example seeding: weights and log."""
    run = tmp_path_factory.mktemp("reference") / "run"
    result = train(config, out_dir=run, steps=STEPS)
    assert result.step == STEPS
    return _weights(run), _log(run)


def _weights(run):
    return load_model(run / "checkpoint.npz").params


def _log(run):
    """The log without the wall times."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [{key: value for key, value in record.items() if key != "elapsed"}
            for record in records]


def _assert_same_run(run, reference):
    weights, log = reference
    other = _weights(run)
    assert set(other) == set(weights)
    for name in weights:
        np.testing.assert_array_equal(other[name], weights[name], err_msg=name)
    assert _log(run) == log


# ---------------------------------------------------------------------------
# Per-example seeding (no Dask needed)
# ---------------------------------------------------------------------------

def test_per_example_seeding_is_recorded_and_reproduced(images):
    config = _cli_config(images, "--example-seeding", "per-example")
    assert example_seeding(config) == "per_example"
    assert "--example-seeding per-example" in training_command(config)
    stream = _cli_config(images)
    assert "example_seeding" not in stream and example_seeding(stream) == "stream"
    assert "example-seeding" not in training_command(stream)
    chosen = default_config(9, example_seeding="per_example")
    assert chosen["example_seeding"] == "per_example"
    assert "example_seeding" not in default_config(9, example_seeding="stream")
    with pytest.raises(ValueError, match="example_seeding must be one of"):
        default_config(9, example_seeding="shuffled")


def test_example_seeds_make_the_same_example_anywhere(images):
    source = ExampleSource([skimage.data.camera() / 255.0], 32, 9, 0.01)
    y, k = source(np.random.default_rng(example_seed(3, 5, 1)))
    again, k_again = source(np.random.default_rng([3, 2, 5, 1]))
    np.testing.assert_array_equal(y, again)
    np.testing.assert_array_equal(k, k_again)
    other, _ = source(np.random.default_rng(example_seed(3, 5, 2)))
    assert not np.array_equal(y, other)


def test_per_example_step_sums_the_kept_gradients_in_order():
    net = build_network(9, rng=np.random.default_rng(0), filter_sizes=[5], n_filters=2)
    phase = Phase(0, 1, ("scale1.stage1.",))
    names = [name for name in net.params if name.startswith(phase.trainable)]
    rng = np.random.default_rng(1)
    grads = [{name: rng.standard_normal(net.params[name].shape) for name in names}
             for _ in range(4)]
    results = [ExampleResult(np.float64(loss), g, 0.0)
               for loss, g in zip([1.0, 1.0, 50.0, 1.0], grads)]
    before = {name: value.copy() for name, value in net.params.items()}
    optimizer = make_optimizer({"name": "adam", "learning_rate": 0.1})
    losses, keep = per_example_step(net, optimizer, OutlierFilter(warmup=2), results, phase)
    assert list(keep) == [1, 1, 0, 1] and list(losses) == [1.0, 1.0, 50.0, 1.0]
    # the same step with the mean of the kept gradients, added in example order
    expected = {name: before[name].copy() for name in names}
    mean = {name: (grads[0][name] + grads[1][name] + grads[3][name]) / 3 for name in names}
    make_optimizer({"name": "adam", "learning_rate": 0.1}).update(expected, mean, names)
    for name in names:
        np.testing.assert_array_equal(net.params[name], expected[name], err_msg=name)
    assert not np.array_equal(net.params[names[0]], before[names[0]])


def test_a_stream_run_refuses_examples_computed_elsewhere(images, tmp_path):
    stream = _cli_config(images)
    with pytest.raises(ValueError, match="needs per-example seeding"):
        train(stream, out_dir=tmp_path / "run", steps=1, examples=lambda source: None)
    assert not (tmp_path / "run").exists()


WITHOUT_DASK = """
import contextlib, io, json, sys
sys.modules["dask"] = None            # ``import dask.distributed`` raises ImportError
sys.modules["distributed"] = None
from refdeblur.cli import main
results = []
for command in json.loads(sys.argv[1]):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        results.append([main(command), stderr.getvalue()])
print(json.dumps(results))
"""


def test_without_dask_the_options_say_how_to_install_it(images, tmp_path):
    out = str(tmp_path / "out")
    train = ["train", "--kernel-size", "17", "--images", str(images), "--out", out,
             "--steps", "1"]
    commands = [train + ["--workers", "2"], train + ["--scheduler", "tcp://127.0.0.1:8786"],
                ["deblur", str(images), "--out-dir", out, "--workers", "2"]]
    result = subprocess.run([sys.executable, "-c", WITHOUT_DASK, json.dumps(commands)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for status, stderr in json.loads(result.stdout.splitlines()[-1]):
        assert status == 2
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert "install refdeblur[distributed]" in stderr
    assert not (tmp_path / "out").exists()


def test_cluster_options_are_refused_in_one_line(images, tmp_path, capsys):
    for options, message in ((["--workers", "0"], "--workers must be at least 1"),
                             (["--workers", "2", "--example-seeding", "stream"],
                              "--workers needs --example-seeding per-example")):
        assert main(["train", "--images", str(images), "--out", str(tmp_path / "run"),
                     "--steps", "1", *TINY, *options]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------
# On a cluster
# ---------------------------------------------------------------------------

def test_two_workers_give_the_weights_of_one_process(config, cluster, reference, tmp_path):
    from refdeblur.distributed import train_distributed
    result = train_distributed(config, client=cluster, out_dir=tmp_path / "run",
                               steps=STEPS)
    assert result.step == STEPS
    _assert_same_run(tmp_path / "run", reference)
    assert any(record["skipped"] for record in reference[1])   # the rule was at work


def test_one_worker_gives_the_same_weights(config, distributed, reference, tmp_path):
    from refdeblur.distributed import dask_client, train_distributed
    with dask_client(workers=1) as client:
        assert len(client.scheduler_info()["workers"]) == 1
        train_distributed(config, client=client, out_dir=tmp_path / "run", steps=STEPS)
    _assert_same_run(tmp_path / "run", reference)


def test_a_stream_run_cannot_resume_on_a_cluster(distributed, images, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--images", str(images), "--out", str(run), "--steps", "1",
                 *TINY]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--steps", "2", "--resume",
                 "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "draws its examples from one stream" in err
    assert len(err.strip().splitlines()) == 1, err


def test_resume_after_the_client_is_killed(config, cluster, reference, tmp_path):
    from refdeblur.distributed import train_distributed
    run = tmp_path / "run"
    train(config, out_dir=run, steps=3)
    # resumed on the cluster by the command line, which is killed after a checkpoint
    command = [sys.executable, "-m", "refdeblur", "train", "--out", str(run), "--steps",
               str(STEPS), "--resume", "--checkpoint-minutes", "0",
               "--scheduler", cluster.scheduler.address]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    log = run / "log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if max(record["step"] for record in _log(run)) >= 6:   # validated, checkpointed
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    _, header, _ = read_model_file(run / "checkpoint.npz")
    assert 3 < header["metadata"]["training_state"]["step"] < STEPS
    result = train_distributed(None, client=cluster, out_dir=run, steps=STEPS, resume=True)
    assert result.step == STEPS
    _assert_same_run(run, reference)
    assert not [path.name for path in run.iterdir() if path.name.endswith(".tmp")]


def _photo(shape=(72, 80, 3)):
    return skimage.data.astronaut()[200:200 + shape[0], 200:200 + shape[1]]


def test_batch_deblurring_with_a_bad_file(cluster, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    iio.imwrite(folder / "a.png", _photo())
    iio.imwrite(folder / "b.png", _photo()[:, ::-1])
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    out = tmp_path / "out"
    command = ["deblur", str(folder), "--out-dir", str(out), "--kernel-size", "17",
               "--scheduler", cluster.scheduler.address]
    assert main(command) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error" in line]
    assert len(errors) == 1 and "bad.png: cannot read the image" in errors[0], captured.err
    done = sorted(path.name for path in out.iterdir())
    assert done == ["a_deblurred.png", "a_deblurred_kernel.png", "b_deblurred.png",
                    "b_deblurred_kernel.png"]
    # the same outputs as in one process, in input order
    single = tmp_path / "single"
    assert main(["deblur", str(folder / "a.png"), str(folder / "b.png"), "--out-dir",
                 str(single), "--kernel-size", "17"]) == 0
    capsys.readouterr()
    for name in done:
        np.testing.assert_array_equal(iio.imread(out / name), iio.imread(single / name))
    # a rerun skips what is done; --overwrite deblurs everything again
    stamps = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "skipped 2 of 3 inputs whose outputs exist" in err and "bad.png" in err
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} == stamps
    assert main(command + ["--overwrite", "--json", str(tmp_path / "report.json")]) == 2
    assert "skipped" not in capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    assert [Path(image["input"]).name for image in report["images"]] == ["a.png", "b.png"]
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} != stamps


class _DyingSource:
    """An example source whose worker dies the first time it makes one example."""

    def __init__(self, source, fatal_seed, marker):
        self.source, self.fatal_seed, self.marker = source, fatal_seed, marker

    def __call__(self, rng):
        if list(rng.bit_generator.seed_seq.entropy) == self.fatal_seed:
            if not self.marker.exists():
                self.marker.touch()
                os._exit(1)
        return self.source(rng)


@pytest.mark.slow
def test_a_lost_worker_changes_nothing(config, cluster, reference, tmp_path):
    """The last test on the module's cluster, which restarts the lost worker behind it.

    Slow (a worker process dies and a new one starts); the per-example seeds
    that make a recomputed task give the same result are what
    test_resume_after_the_client_is_killed checks.
    """
    import cloudpickle
    from refdeblur.distributed import DaskExamples
    # the workers cannot import this test module; send the class itself
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "died"
    fatal = example_seed(config["seed"], 4, 1)
    def dying(source):
        return DaskExamples(cluster, _DyingSource(source, fatal, marker))

    train(config, out_dir=tmp_path / "run", steps=STEPS, examples=dying)
    assert marker.exists()
    _assert_same_run(tmp_path / "run", reference)


@pytest.mark.slow
def test_the_command_line_starts_a_local_cluster(distributed, images, tmp_path):
    """``--workers 2`` end to end, Ctrl-C included (the fast tests join a cluster)."""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "refdeblur", "train", "--images", str(images),
               "--out", str(run), "--steps", "1000", *TINY, "--workers", "2"]
    # Ctrl-C in a terminal signals the whole process group, workers included
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (run / "log.jsonl").exists() and _log(run):
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "stopped at step" in stderr and "Traceback" not in stderr
    _, header, _ = read_model_file(run / "checkpoint.npz")
    stopped = header["metadata"]["training_state"]["step"]
    assert json.loads((run / "config.json").read_text())["example_seeding"] == "per_example"
    steps = stopped + 3
    resumed = subprocess.run([sys.executable, "-m", "refdeblur", "train", "--out", str(run),
                              "--steps", str(steps), "--resume", "--workers", "2"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    single = tmp_path / "single"
    train(_cli_config(images, "--example-seeding", "per-example"), out_dir=single,
          steps=steps)
    _assert_same_run(run, (_weights(single), _log(single)))
    folder = tmp_path / "photos"
    folder.mkdir()
    iio.imwrite(folder / "a.png", _photo())
    iio.imwrite(folder / "b.png", _photo()[::-1])
    deblurred = subprocess.run([sys.executable, "-m", "refdeblur", "deblur", str(folder),
                                "--out-dir", str(tmp_path / "out"), "--kernel-size", "17",
                                "--workers", "2"], capture_output=True, text=True)
    assert deblurred.returncode == 0, deblurred.stderr
    assert len(list((tmp_path / "out").iterdir())) == 4
