import json
import zipfile

import numpy as np
import pytest

from refdeblur import build_network, load_model, save_model
from refdeblur.model_io import read_model_file
from refdeblur.models import load_model as load_shipped_or_file


def _tiny(rng):
    return build_network(5, rng=rng, kernel_sizes=(3, 5), filter_sizes=(3, 3),
                         n_filters=3, n_hidden=3)


def test_round_trip_gives_identical_network(rng, tmp_path):
    net = _tiny(rng)
    path = tmp_path / "model.npz"
    save_model(net, path, metadata={"recipe": "test"}, extra_arrays={"step": np.array(7)})
    loaded, header, extra = read_model_file(path)
    assert loaded.architecture == net.architecture
    assert set(loaded.params) == set(net.params)
    for name, value in net.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
    image = rng.random((24, 22))
    np.testing.assert_array_equal(loaded.forward(image).kernel, net.forward(image).kernel)
    assert header["metadata"] == {"recipe": "test"}
    assert header["architecture"]["kernel_sizes"] == [3, 5]
    assert int(extra["step"]) == 7
    assert load_model(path).architecture == net.architecture


def test_model_file_needs_no_pickle(rng, tmp_path):
    path = tmp_path / "model.npz"
    save_model(_tiny(rng), path)
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            assert archive[key].dtype != object
        json.loads(str(archive["__metadata__"]))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.npz")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ValueError, match="folder"):
        load_model(tmp_path)


def test_truncated_file(rng, tmp_path):
    path = tmp_path / "model.npz"
    save_model(_tiny(rng), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_model(path)


@pytest.mark.parametrize("kind", ["text", "npy"])
def test_not_an_archive(kind, tmp_path):
    path = tmp_path / "model.npz"
    if kind == "text":
        path.write_text("this is not a model")
    else:
        with open(path, "wb") as stream:
            np.save(stream, np.ones(3))
    with pytest.raises(ValueError, match="not a readable refdeblur model") as raised:
        load_model(path)
    # NumPy's own message for a non-archive suggests loading it unsafely.
    assert "pickle" not in str(raised.value)


def test_npz_without_metadata(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(ValueError, match="not a refdeblur model"):
        load_model(path)


def test_pickled_content_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __metadata__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        load_model(path)


def _rewrite(path, edit):
    with np.load(path, allow_pickle=False) as archive:
        contents = {key: archive[key] for key in archive.files}
    edit(contents)
    np.savez(path, **contents)


def test_mismatched_parameter_shape(rng, tmp_path):
    path = tmp_path / "model.npz"
    save_model(_tiny(rng), path)
    _rewrite(path, lambda c: c.__setitem__("param/scale1.stage1.conv.weight", np.ones((2, 2))))
    with pytest.raises(ValueError, match="scale1.stage1.conv.weight has shape"):
        load_model(path)


def test_missing_parameter(rng, tmp_path):
    path = tmp_path / "model.npz"
    save_model(_tiny(rng), path)
    _rewrite(path, lambda c: c.pop("param/scale2.stage3.recombine2.weight"))
    with pytest.raises(ValueError, match="missing"):
        load_model(path)


def test_wrong_format_version(rng, tmp_path):
    path = tmp_path / "model.npz"
    save_model(_tiny(rng), path)

    def bump(contents):
        header = json.loads(str(contents["__metadata__"]))
        header["format_version"] = 99
        contents["__metadata__"] = np.array(json.dumps(header))

    _rewrite(path, bump)
    with pytest.raises(ValueError, match="format version 99"):
        load_model(path)


def test_nan_parameter(rng, tmp_path):
    path = tmp_path / "model.npz"
    save_model(_tiny(rng), path)
    _rewrite(path, lambda c: c.__setitem__("param/scale1.stage1.conv.bias",
                                           np.full(3, np.nan)))
    with pytest.raises(ValueError, match="NaN"):
        load_model(path)


def test_failed_save_keeps_the_old_file(rng, tmp_path):
    path = tmp_path / "model.npz"
    save_model(_tiny(rng), path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_model(_tiny(rng), path, metadata={"not json": object()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    assert zipfile.is_zipfile(path)


@pytest.mark.parametrize("name", [17, "25", "k33"])
def test_shipped_networks_load_by_kernel_size(name):
    size = int(str(name).removeprefix("k"))
    assert load_shipped_or_file(name).kernel_size == size
    assert load_model(name).kernel_size == size


def test_a_file_named_like_a_size_is_the_file(tmp_path, monkeypatch):
    net = build_network(17, rng=np.random.default_rng(0), n_filters=4)
    save_model(net, tmp_path / "25")
    monkeypatch.chdir(tmp_path)
    assert load_shipped_or_file("25").kernel_size == 17
