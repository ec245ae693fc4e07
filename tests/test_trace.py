"""Golden traces (refdeblur/porting/trace.py, derivations/porting.md).

The trace's names and shapes are those the document lists, the same seed
gives the same bits, the recorded forward and backward passes are the
network's own, and the recorded gradients are those of the documented loss.
"""

import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from refdeblur import gradcheck
from refdeblur.cli import main
from refdeblur.models import load_shipped_model
from refdeblur.network import Architecture, Network
from refdeblur.porting import make_trace, read_trace, write_trace
from refdeblur.porting.trace import METADATA_KEY, reference_kernel

ROOT = Path(__file__).resolve().parents[1]
SPECIFICATION = ROOT / "derivations" / "porting.md"

#: Placeholders of the name patterns in derivations/porting.md.
PLACEHOLDERS = {"{j}": "[0-9]+", "{s}": "[0-9]+", "{layer}": "[a-z_0-9]+",
                "{param}": "[a-z_]+"}


@pytest.fixture(scope="module")
def trace17():
    return make_trace(17, size=(50, 50))


@pytest.fixture(scope="module")
def trace25():
    return make_trace(25)


def documented_patterns():
    """The name patterns of the tables of derivations/porting.md, §3."""
    text = SPECIFICATION.read_text(encoding="utf-8")
    section = text.split("## 3. Names", 1)[1].split("## 4.", 1)[0]
    patterns = re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)
    regexes = {}
    for pattern in patterns:
        regex = re.escape(pattern)
        for placeholder, part in PLACEHOLDERS.items():
            regex = regex.replace(re.escape(placeholder), part)
        regexes[pattern] = re.compile(regex + r"\Z")
    return regexes


def test_every_name_is_documented_and_every_documented_name_occurs(trace17, trace25):
    regexes = documented_patterns()
    assert len(regexes) > 60
    names = trace17[METADATA_KEY]["names"] + trace25[METADATA_KEY]["names"]
    undocumented = [name for name in names
                    if not any(regex.match(name) for regex in regexes.values())]
    assert not undocumented, undocumented
    # the bias rows apply to architectures with recombination biases only
    optional = {pattern for pattern in regexes if pattern.endswith("recombine1/grad_param/bias")
                or pattern.endswith("recombine2/grad_param/bias")}
    unused = [pattern for pattern, regex in regexes.items()
              if pattern not in optional and not any(regex.match(name) for name in names)]
    assert not unused, unused


def test_names_shapes_and_order_of_the_17px_trace(trace17):
    metadata = trace17[METADATA_KEY]
    names, aliases = metadata["names"], metadata["aliases"]
    assert len(names) == 160 and len(aliases) == 32
    assert set(trace17) - {METADATA_KEY} == set(names)
    assert all(trace17[alias] is trace17[name] for alias, name in aliases.items())
    assert names[0] == "input/blurry" and names[-1] == "input/grad_blurry"
    assert names.index("loss/value") < names.index("scale1/stage3/kernel_quotient/grad_out")
    # forward stage by stage and layer by layer, backward in reverse
    assert (names.index("scale1/stage1/conv/out") < names.index("scale1/stage1/tanh1/out")
            < names.index("scale1/stage1/kernel_quotient/out")
            < names.index("scale1/stage2/conv/out"))
    assert (names.index("scale1/stage3/kernel_quotient/grad_out")
            < names.index("scale1/stage2/image_quotient/grad_out")
            < names.index("scale1/stage1/conv/grad_in/x"))
    # 50 px input, 17 px filters: 34 px maps; grids of 5-smooth sizes
    expected = {
        "input/blurry": (1, 50, 50),
        "params/scale1.stage2.conv.weight": (32, 2, 17, 17),
        "scale1/stage1/conv/in/x": (1, 1, 50, 50),
        "scale1/stage2/conv/in/x": (1, 2, 50, 50),
        "scale1/stage1/conv/out": (1, 32, 34, 34),
        "scale1/stage3/recombine2/out": (1, 8, 34, 34),
        "scale1/stage3/kernel_quotient/in/x_sharp": (1, 4, 34, 34),
        "scale1/stage1/kernel_quotient/step/window": (34, 34),
        "scale1/stage1/kernel_quotient/step/tapered_sharp": (1, 2, 36, 36),
        "scale1/stage1/kernel_quotient/step/quotient": (1, 36, 36),
        "scale1/stage1/kernel_quotient/out": (1, 17, 17),
        "scale1/stage1/image_quotient/step/window": (90, 90),
        "scale1/stage1/image_quotient/step/beta_x": (),
        "scale1/stage1/image_quotient/out": (1, 50, 50),
        "loss/value": (),
        "scale1/stage1/image_quotient/grad_param/log_beta": (),
        "scale1/stage2/recombine2/grad_param/weight": (4, 32),
        "scale1/stage1/conv/grad_in/x": (1, 1, 50, 50),
        "scale1/stage2/conv/grad_param/weight": (32, 2, 17, 17),
        "input/grad_blurry": (1, 50, 50),
    }
    assert {name: trace17[name].shape for name in expected} == expected
    assert all(trace17[name].dtype == np.float64 for name in trace17 if name != METADATA_KEY)
    # the last stage's latent image reaches no loss
    assert "scale1/stage3/image_quotient/grad_out" not in names
    assert aliases["output/kernel"] == "scale1/stage3/kernel_quotient/out"


def test_aliases_and_recorded_steps_are_what_the_names_say(trace17, trace25):
    t = trace17
    stage = "scale1/stage2/"
    assert np.array_equal(np.tanh(t[stage + "conv/out"]), t[stage + "tanh1/out"])
    features = t[stage + "recombine2/out"]
    assert np.array_equal(features[:, :2], t[stage + "kernel_quotient/in/x_sharp"])
    assert np.array_equal(t[stage + "conv/in/x"][:, 1], t["scale1/stage1/image_quotient/out"])
    assert np.array_equal(t["scale1/stage1/image_quotient/grad_out"],
                          t["scale1/stage2/conv/grad_in/x"][:, 1])
    cropped = t[stage + "kernel_quotient/step/cropped"]
    positive = np.maximum(cropped, 0)
    np.testing.assert_allclose(t[stage + "kernel_quotient/out"],
                               positive / (positive.sum() + 1e-8), rtol=1e-14, atol=0)
    assert t[stage + "image_quotient/step/beta_x"] == np.exp(
        t["params/scale1.stage2.image_quotient.log_beta"])
    # the kernel sits on the image quotient's grid with its centre at the origin
    grid = t[stage + "image_quotient/step/kernel_grid"][0]
    kernel = t[stage + "kernel_quotient/out"][0]
    assert grid[0, 0] == kernel[8, 8] and grid[-1, -1] == kernel[7, 7]
    # the 25 px network: the coarse scale's latent image goes up to scale 2
    aliases = trace25[METADATA_KEY]["aliases"]
    assert aliases["scale2/resample_up/in/x"] == "scale1/stage3/image_quotient/out"
    assert aliases["scale1/stage3/image_quotient/grad_out"] == "scale2/resample_up/grad_in/x"
    up = trace25["scale2/resample_up/out"]
    assert np.array_equal(up, trace25["scale2/stage1/conv/in/x"][:, 1])
    rows = trace25["scale2/resample_up/step/row_matrix"]
    cols = trace25["scale2/resample_up/step/col_matrix"]
    np.testing.assert_allclose(rows @ trace25["scale1/stage3/image_quotient/out"][0] @ cols.T,
                               up[0], rtol=0, atol=1e-14)


def test_same_seed_gives_the_same_bits(trace17):
    again = make_trace(17, size=(50, 50), seed=0)
    assert again[METADATA_KEY] == trace17[METADATA_KEY]
    different = [name for name in trace17
                 if name != METADATA_KEY and not np.array_equal(again[name], trace17[name])]
    assert not different
    other = make_trace(17, size=(50, 50), seed=1)
    assert not np.array_equal(other["input/blurry"], trace17["input/blurry"])


@pytest.mark.parametrize("kernel_size", [17, 25])
def test_trace_is_the_networks_forward_and_backward(kernel_size, trace17, trace25):
    trace = {17: trace17, 25: trace25}[kernel_size]
    aliases = trace[METADATA_KEY]["aliases"]
    net = load_shipped_model(kernel_size, dtype=np.float64)
    output, cache = net.forward_with_cache(trace["input/blurry"])
    assert np.array_equal(output.kernel, trace[aliases["output/kernel"]])
    assert np.array_equal(output.latent, trace[aliases["output/latent"]])
    grads, dimage = net.backward(output.kernel - trace["loss/k_ref"], cache, input_grad=True)
    assert np.array_equal(dimage, trace["input/grad_blurry"])
    compared = 0
    for name, value in grads.items():
        scale, stage, layer, key = name.split(".")
        recorded = f"{scale}/{stage}/{layer}/grad_param/{key}"
        if recorded in trace:
            assert np.array_equal(value, trace[recorded]), name
            compared += 1
        else:   # a stage that does not run
            assert not np.any(value), name
    arch = net.architecture
    stages_run = len(arch.kernel_sizes) * (arch.inference_stages or arch.n_stages)
    # five parameter arrays per stage, but no gradient for the last stage's β_x
    assert compared == 5 * stages_run - 1


def _loss(architecture, params, image, k_ref):
    kernel = Network(architecture, params).forward(image).kernel
    return 0.5 * float(np.sum((kernel - k_ref) ** 2))


@pytest.mark.parametrize("kernel_size, target", [
    (17, "scale1.stage1.conv.weight"),
    (17, "scale1.stage2.image_quotient.log_beta"),
    (17, "scale1.stage3.recombine2.weight"),
    (25, "scale1.stage1.conv.bias"),
    (25, "scale2.stage2.recombine1.weight"),
    (25, "input"),
])
def test_gradients_match_finite_differences_of_the_loss(kernel_size, target, trace17, trace25):
    trace = {17: trace17, 25: trace25}[kernel_size]
    architecture = Architecture.from_dict(trace[METADATA_KEY]["model"]["architecture"])
    params = {name[len("params/"):]: value for name, value in trace.items()
              if name.startswith("params/")}
    image, k_ref = trace["input/blurry"], trace["loss/k_ref"]
    if target == "input":
        point, gradient = image, trace["input/grad_blurry"]

        def loss(x):
            return _loss(architecture, params, x, k_ref)
    else:
        scale, stage, layer, key = target.split(".")
        point, gradient = params[target], trace[f"{scale}/{stage}/{layer}/grad_param/{key}"]

        def loss(x):
            return _loss(architecture, dict(params, **{target: x}), image, k_ref)
    direction = np.random.default_rng(7).standard_normal(np.shape(point))
    direction /= np.linalg.norm(direction)
    # the steps whose estimates agree best: large steps may cross kinks of the
    # kernels' threshold, small ones lose digits where the derivative is tiny
    numeric, _ = gradcheck.stable_directional_derivative(loss, point, direction,
                                                        steps=(1e-4, 1e-5, 1e-6), order=2)
    analytic = gradcheck.inner(gradient, direction)
    assert abs(numeric - analytic) <= 1e-6 * abs(analytic), (numeric, analytic)


def test_input_follows_the_documented_recipe(trace17):
    m, (height, width), seed = 17, (50, 50), 0
    r, c = (m - 1) / 2, m // 8
    i = np.arange(m)[:, None]
    j = np.arange(m)[None, :]
    k_ref = np.exp(-(i - r) ** 2 / (2 * (m / 10) ** 2) - (j - r - c) ** 2 / (2 * (m / 5) ** 2))
    k_ref /= k_ref.sum()
    np.testing.assert_allclose(reference_kernel(m), k_ref, rtol=1e-14, atol=0)
    assert np.argmax(k_ref.sum(axis=0)) == r + c and np.argmax(k_ref.sum(axis=1)) == r
    rng = np.random.default_rng(seed)
    sharp_h, sharp_w = height + m - 1, width + m - 1
    coarse = rng.random((math.ceil(sharp_h / 4), math.ceil(sharp_w / 4)))
    sharp = np.kron(coarse, np.ones((4, 4)))[:sharp_h, :sharp_w]
    # 'valid' true convolution: the flipped kernel slides over the image
    flipped = k_ref[::-1, ::-1]
    blurred = np.zeros((height, width))
    for u in range(m):
        for v in range(m):
            blurred += flipped[u, v] * sharp[u:u + height, v:v + width]
    blurry = np.clip(blurred + 0.01 * rng.standard_normal((height, width)), 0, 1)
    np.testing.assert_allclose(trace17["input/blurry"][0], blurry, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(trace17["loss/k_ref"][0], reference_kernel(m))
    kernel = trace17[trace17[METADATA_KEY]["aliases"]["output/kernel"]]
    assert trace17["loss/value"] == 0.5 * np.sum((kernel - trace17["loss/k_ref"]) ** 2)


def test_file_round_trip_and_no_overwrite(trace17, tmp_path):
    path = tmp_path / "trace.npz"
    write_trace(trace17, path)
    assert [p.name for p in tmp_path.iterdir()] == ["trace.npz"]
    back = read_trace(path)
    assert back[METADATA_KEY] == trace17[METADATA_KEY]
    assert set(back) == set(trace17)
    assert all(np.array_equal(back[name], trace17[name])
               for name in trace17 if name != METADATA_KEY)
    # a plain npz reader sees float64 arrays and JSON, no pickles, no aliases
    with np.load(path, allow_pickle=False) as archive:
        assert len(archive.files) == 1 + 160 - 32
        metadata = json.loads(str(archive[METADATA_KEY]))
        assert metadata["format"] == "refdeblur-trace"
        assert archive["scale1/stage1/conv/out"].dtype == np.float64
    with zipfile.ZipFile(path) as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_trace(make_trace(17, size=(50, 50), seed=3), path)
    assert path.read_bytes() == before
    write_trace(trace17, path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["trace.npz"]


def test_make_trace_refuses_bad_arguments():
    with pytest.raises(ValueError, match="too small"):
        make_trace(17, size=(40, 64))
    with pytest.raises(ValueError, match="seed"):
        make_trace(17, size=(50, 50), seed=-1)
    with pytest.raises(ValueError, match="no shipped model"):
        make_trace(19)


def run_cli(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_trace_command(tmp_path, capsys):
    out = tmp_path / "t.npz"
    status, stdout, _ = run_cli(["trace", "--kernel-size", "17", "--size", "50", "50",
                                 "--seed", "2", "--out", str(out)], capsys)
    assert status == 0 and f"wrote {out}" in stdout
    metadata = read_trace(out)[METADATA_KEY]
    assert metadata["seed"] == 2 and metadata["size"] == [50, 50]
    assert metadata["model"]["name"] == "shipped k17.npz"
    # from a model file, the same arrays
    model = ROOT / "refdeblur" / "models" / "k17.npz"
    other = tmp_path / "m.npz"
    status, _, _ = run_cli(["trace", "--model", str(model), "--size", "50", "50",
                            "--seed", "2", "--out", str(other)], capsys)
    assert status == 0
    final = "scale1/stage3/kernel_quotient/out"
    assert np.array_equal(read_trace(other)[final], read_trace(out)[final])


@pytest.mark.parametrize("argv, message", [
    (["--kernel-size", "17", "--size", "50", "50"], "exists (use --overwrite"),
    (["--size", "50", "50"], "give --kernel-size or --model"),
    (["--kernel-size", "17", "--size", "30", "30", "--overwrite"], "too small"),
    (["--kernel-size", "17", "--seed", "-1", "--overwrite"], "--seed must be >= 0"),
    (["--model", str(ROOT / "missing.npz"), "--overwrite"], "not found"),
    (["--model", str(ROOT / "refdeblur" / "models" / "k25.npz"), "--kernel-size", "17",
      "--overwrite"],
     "estimates kernels of 25 px, not 17"),
])
def test_trace_command_errors_are_one_line(argv, message, tmp_path, capsys):
    out = tmp_path / "t.npz"
    out.write_bytes(b"keep")
    status, stdout, stderr = run_cli(["trace", *argv, "--out", str(out)], capsys)
    assert status == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
    assert out.read_bytes() == b"keep"


def test_a_network_with_a_kernel_prior_is_refused_for_a_port(tmp_path):
    from refdeblur import build_network
    from refdeblur.porting.matlab import export_mat
    net = build_network(5, rng=np.random.default_rng(0), filter_sizes=(3,), n_filters=2,
                        n_hidden=2, kernel_prior=True)
    with pytest.raises(ValueError, match="kernel_prior"):
        make_trace(net)
    with pytest.raises(ValueError, match="kernel_prior"):
        export_mat(net, tmp_path / "net.mat")
    assert not (tmp_path / "net.mat").exists()
