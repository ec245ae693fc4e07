"""``refdeblur deblur`` on the command line: outputs, reports and bad input.

Every bad input must give one line on stderr, exit status 2, no traceback,
no partial output, and leave existing files untouched.
"""

import json
import warnings
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from refdeblur._engine import NUMBA_WARNING
from refdeblur.cli import main
from refdeblur.image_io import read_image, read_image_raw, write_image
from refdeblur.inference import DeblurWarning, estimate_kernel
from refdeblur.inference.refinement import refinement_mode
from refdeblur.models import load_shipped_model

REPO = Path(__file__).resolve().parents[1]


def _photo(rng, shape=(72, 80, 3), dtype=np.uint8):
    from skimage import data
    base = data.astronaut()[200:200 + shape[0], 200:200 + shape[1]]
    if len(shape) == 2:
        base = base.mean(axis=-1)
    image = base.astype(np.float64) / 255
    if dtype == np.uint16:
        return np.round(image * 65535).astype(np.uint16)
    return np.round(image * 255).astype(np.uint8)


@pytest.fixture
def photo(tmp_path, rng):
    path = tmp_path / "photo.png"
    iio.imwrite(path, _photo(rng))
    return path


def _run(args, cwd=None):
    """The installed command in a fresh process: what a user sees."""
    return subprocess.run([sys.executable, "-m", "refdeblur", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONWARNINGS":
                               f"error,ignore:{NUMBA_WARNING}:RuntimeWarning"})


def _files(folder):
    return sorted(p.relative_to(folder) for p in Path(folder).rglob("*") if p.is_file())


def test_deblur_writes_image_kernel_and_report(photo, tmp_path):
    report = tmp_path / "report.json"
    result = _run(["deblur", photo, "--kernel-size", "17", "--json", report])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    sharp = read_image_raw(tmp_path / "photo_deblurred.png")
    assert sharp.shape == (72, 80, 3) and sharp.dtype == np.uint8
    kernel_png = read_image_raw(tmp_path / "photo_deblurred_kernel.png")
    assert kernel_png.shape[0] >= 256 and kernel_png.max() == 255
    record = json.loads(report.read_text())
    assert record["refdeblur_version"] and len(record["model_sha256"]) == 64
    assert record["parameters"]["refinement"] == "single_scale"
    (image,) = record["images"]
    kernel = np.array(image["kernel"])
    assert kernel.shape == (17, 17) and abs(kernel.sum() - 1) < 1e-6
    assert image["seconds"] > 0 and image["output"].endswith("photo_deblurred.png")


def test_no_refine_gives_the_network_kernel_and_says_so(photo, tmp_path):
    report = tmp_path / "report.json"
    out = tmp_path / "plain.png"
    result = _run(["deblur", photo, "--kernel-size", "17", "--no-refine", "-o", out,
                   "--json", report])
    assert result.returncode == 0, result.stderr
    record = json.loads(report.read_text())
    assert record["parameters"]["refine"] is False
    assert record["parameters"]["refinement"] == "none"
    kernel = np.array(record["images"][0]["kernel"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        expected = estimate_kernel(read_image(photo), 17, channel_axis=-1, refine=False)
    np.testing.assert_allclose(kernel, expected, atol=1e-6)


@pytest.mark.parametrize("size, refine, mode", [
    (17, True, "single_scale"), (25, True, "coarse_to_fine"), (33, True, "coarse_to_fine"),
    (25, False, "none")])
def test_report_names_the_refinement(size, refine, mode):
    assert refinement_mode(refine, load_shipped_model(size)) == mode


def test_help_shows_examples():
    result = _run(["deblur", "--help"])
    assert result.returncode == 0 and "examples:" in result.stdout


def test_folder_of_images_with_out_dir(tmp_path, rng):
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    iio.imwrite(source / "a.png", _photo(rng))
    iio.imwrite(source / "sub" / "b.png", _photo(rng, (70, 70), np.uint16))
    out = tmp_path / "out"
    assert main(["deblur", str(source), "--out-dir", str(out),
                 "--kernel-size", "17"]) == 0
    assert _files(out) == [Path("a_deblurred.png"), Path("a_deblurred_kernel.png"),
                           Path("sub/b_deblurred.png"),
                           Path("sub/b_deblurred_kernel.png")]
    assert read_image_raw(out / "sub" / "b_deblurred.png").dtype == np.uint16


def _bad_png_files(tmp_path, rng):
    good = tmp_path / "good.png"
    iio.imwrite(good, _photo(rng))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    one_px = tmp_path / "one.png"
    iio.imwrite(one_px, np.zeros((1, 1), np.uint8))
    small = tmp_path / "small.png"
    iio.imwrite(small, _photo(rng, (12, 30)))
    nan_tiff = tmp_path / "nan.tif"
    nan_image = np.full((60, 60), 0.5, np.float32)
    nan_image[3, 4] = np.nan
    iio.imwrite(nan_tiff, nan_image, plugin="tifffile")
    return {"truncated": (truncated, "cannot read"),
            "text": (text, "cannot read"),
            "empty": (empty, "cannot read"),
            "one_px": (one_px, "smaller than"),
            "small": (small, "smaller than"),
            "nan": (nan_tiff, "NaN"),
            "missing": (tmp_path / "missing.png", "no such file"),
            "folder_without_images": (tmp_path / "nothing", "no images found")}


@pytest.mark.parametrize("case", ["truncated", "text", "empty", "one_px", "small",
                                  "nan", "missing", "folder_without_images"])
def test_bad_inputs_give_one_line_and_status_2(case, tmp_path, rng, capsys):
    (tmp_path / "nothing").mkdir()
    path, message = _bad_png_files(tmp_path, rng)[case]
    before = _files(tmp_path)
    status = main(["deblur", str(path), "--kernel-size", "17"])
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert _files(tmp_path) == before          # nothing written


def test_bad_input_in_a_fresh_process_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage")
    result = _run(["deblur", bad])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _files(tmp_path) == [Path("bad.jpg")]


def test_existing_output_is_kept_unless_overwrite(photo, tmp_path, capsys):
    existing = tmp_path / "photo_deblurred.png"
    existing.write_bytes(b"precious")
    assert main(["deblur", str(photo), "--kernel-size", "17"]) == 2
    assert "exists" in capsys.readouterr().err
    assert existing.read_bytes() == b"precious"
    assert not (tmp_path / "photo_deblurred_kernel.png").exists()
    assert main(["deblur", str(photo), "--kernel-size", "17", "--overwrite"]) == 0
    assert read_image_raw(existing).shape == (72, 80, 3)


def test_input_is_never_overwritten(photo, capsys):
    original = photo.read_bytes()
    assert main(["deblur", str(photo), "-o", str(photo), "--overwrite",
                 "--kernel-size", "17"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert photo.read_bytes() == original


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(photo, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["deblur", str(photo), "--out-dir", str(locked),
                     "--kernel-size", "17"]) == 2
        assert "cannot write" in capsys.readouterr().err
        assert _files(locked) == []
    finally:
        locked.chmod(0o700)


def test_output_folder_that_is_a_file(photo, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    assert main(["deblur", str(photo), "--out-dir", str(blocker / "x"),
                 "--kernel-size", "17"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0]
    assert blocker.read_text() == "a file where a folder should be"


@pytest.mark.parametrize("content, message", [
    (b"garbage", "not a readable refdeblur model"),
    (None, "not a refdeblur model"),
])
def test_bad_model_file(photo, tmp_path, content, message, capsys):
    model = tmp_path / "model.npz"
    if content is None:
        np.savez(model, weights=np.zeros(3))
    else:
        model.write_bytes(content)
    assert main(["deblur", str(photo), "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "photo_deblurred.png").exists()


def test_alpha_and_sixteen_bit_input(tmp_path, rng):
    rgba = np.concatenate([_photo(rng, (70, 72, 3), np.uint16),
                           np.full((70, 72, 1), 40000, np.uint16)], axis=-1)
    path = tmp_path / "rgba16.png"
    write_image(path, rgba)      # Pillow cannot write 16-bit colour PNGs
    assert main(["deblur", str(path), "--kernel-size", "17"]) == 0
    sharp = read_image_raw(tmp_path / "rgba16_deblurred.png")
    assert sharp.dtype == np.uint16 and sharp.shape == (70, 72, 4)
    assert np.all(sharp[..., 3] == 40000)


def test_flat_image_warns_and_succeeds(tmp_path, capsys):
    path = tmp_path / "flat.png"
    iio.imwrite(path, np.full((64, 64), 128, np.uint8))
    assert main(["deblur", str(path), "--kernel-size", "17"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "flat" in err
    np.testing.assert_array_equal(read_image_raw(tmp_path / "flat_deblurred.png"), 128)


def test_several_inputs_one_bad_others_done(photo, tmp_path, capsys):
    missing = tmp_path / "missing.png"
    out = tmp_path / "out"
    assert main(["deblur", str(photo), str(missing), "--out-dir", str(out),
                 "--kernel-size", "17"]) == 2
    assert "missing.png: no such file" in capsys.readouterr().err
    assert (out / "photo_deblurred.png").exists()


def test_single_output_options_refuse_several_inputs(photo, tmp_path, capsys):
    assert main(["deblur", str(photo), str(photo), "-o", str(tmp_path / "x.png")]) == 2
    assert "single input" in capsys.readouterr().err
