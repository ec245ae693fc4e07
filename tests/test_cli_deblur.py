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
from refdeblur.inference.files import plan_outputs
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
    assert record["refdeblur_version"] and record["model"] is None
    assert all(len(entry["sha256"]) == 64 for entry in record["models"])
    assert record["parameters"]["noise"] == "auto"
    assert record["parameters"]["content"] == "natural"
    (image,) = record["images"]
    assert image["refinement"] == "single_scale"
    assert image["condition"]["noise"] == "low" and image["condition"]["network"] == "k17.npz"
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
    assert record["images"][0]["refinement"] == "none"
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


# ---------------------------------------------------------------------------
# Batches: output names decided up front, failures after the bar
# ---------------------------------------------------------------------------

def _inputs(*paths):
    return [(Path(path), Path(Path(path).name)) for path in paths]


def _names(plans):
    return [(plan.sharp_path.as_posix(), plan.kernel_path.name, plan.renamed)
            for plan in plans]


def test_output_names_of_inputs_sharing_a_stem_keep_the_extension(tmp_path):
    plans = plan_outputs(_inputs("in/a.png", "in/a.jpg", "in/b.png"), out_dir=Path("D"))
    assert _names(plans) == [("D/a_png_deblurred.png", "a_png_deblurred_kernel.png", True),
                             ("D/a_jpg_deblurred.jpg", "a_jpg_deblurred_kernel.png", True),
                             ("D/b_deblurred.png", "b_deblurred_kernel.png", False)]
    # beside the inputs, the same rule
    plans = plan_outputs(_inputs("in/a.png", "in/a.jpg"))
    assert [p.sharp_path.as_posix() for p in plans] == ["in/a_png_deblurred.png",
                                                        "in/a_jpg_deblurred.jpg"]
    # ... but only within one folder
    plans = plan_outputs(_inputs("x/a.png", "y/a.png"))
    assert [p.renamed for p in plans] == [False, False]


def test_output_names_that_still_clash_are_numbered_in_input_order():
    plans = plan_outputs(_inputs("x/a.png", "y/a.png", "z/a.png", "x/a.jpg"), out_dir=Path("D"))
    assert [p.sharp_path.name for p in plans] == [
        "a_png_deblurred.png", "a_png_2_deblurred.png", "a_png_3_deblurred.png",
        "a_jpg_deblurred.jpg"]
    assert len({p.kernel_path for p in plans}) == 4
    # a label made by the rule may be another input's own name
    plans = plan_outputs(_inputs("i/a.png", "i/a.jpg", "i/a_png.png"))
    assert [p.sharp_path.name for p in plans] == [
        "a_png_deblurred.png", "a_jpg_deblurred.jpg", "a_png_2_deblurred.png"]


def test_output_names_avoid_inputs_and_the_report():
    # a.png's default output a_deblurred.png is itself an input
    plans = plan_outputs(_inputs("i/a.png", "i/a_deblurred.png"))
    assert [p.sharp_path.name for p in plans] == ["a_png_deblurred.png",
                                                  "a_deblurred_deblurred.png"]
    plans = plan_outputs(_inputs("i/b.png"), out_dir=Path("D"),
                         reserved=[Path("D/b_deblurred_kernel.png")])
    assert _names(plans) == [("D/b_png_deblurred.png", "b_png_deblurred_kernel.png", True)]


def test_batch_of_inputs_sharing_a_stem_writes_every_output(tmp_path, rng, capsys):
    image = _photo(rng)
    iio.imwrite(tmp_path / "a.png", image)
    iio.imwrite(tmp_path / "a.jpg", image)
    out = tmp_path / "D"
    assert main(["deblur", str(tmp_path / "a.png"), str(tmp_path / "a.jpg"),
                 str(tmp_path / "a.png"), "--out-dir", str(out), "--kernel-size", "17",
                 "--json", str(out / "a_jpg_deblurred.jpg")]) == 0
    assert _files(out) == [Path("a_jpg_2_deblurred.jpg"), Path("a_jpg_2_deblurred_kernel.png"),
                           Path("a_jpg_deblurred.jpg"),        # the report, as asked
                           Path("a_png_deblurred.png"), Path("a_png_deblurred_kernel.png")]
    err = capsys.readouterr().err
    assert "error" not in err and err.count("note:") == 2
    report = json.loads((out / "a_jpg_deblurred.jpg").read_text())
    assert [Path(image["output"]).name for image in report["images"]] == [
        "a_png_deblurred.png", "a_jpg_2_deblurred.jpg"]          # the input given twice: once
    # a second run finds its outputs and replaces nothing without --overwrite
    before = {path: path.read_bytes() for path in out.iterdir()}
    assert main(["deblur", str(tmp_path / "a.png"), str(tmp_path / "a.jpg"),
                 "--out-dir", str(out), "--kernel-size", "17"]) == 2
    assert capsys.readouterr().err.count("exists; pass --overwrite") == 2
    assert {path: path.read_bytes() for path in out.iterdir()} == before


def test_failing_files_are_reported_after_the_bar_one_line_each(tmp_path, rng, capsys):
    good = [tmp_path / "first.png", tmp_path / "last.png"]
    for path in good:
        iio.imwrite(path, _photo(rng))
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    status = main(["deblur", str(good[0]), str(bad), str(tmp_path / "missing.png"),
                   str(good[1]), "--out-dir", str(out), "--kernel-size", "17",
                   "--no-refine"])
    assert status == 2
    assert _files(out) == [Path("first_deblurred.png"), Path("first_deblurred_kernel.png"),
                           Path("last_deblurred.png"), Path("last_deblurred_kernel.png")]
    err = capsys.readouterr().err
    assert "4/4" in err                              # the bar was drawn
    after_bar = err[err.rindex("4/4"):].split("\n", 1)[1]
    errors = [line for line in after_bar.splitlines() if line.startswith("refdeblur: error:")]
    assert len(errors) == 2
    assert "bad.png: cannot read" in errors[0] and "missing.png: no such file" in errors[1]
    assert "refdeblur: error" not in err[:err.rindex("4/4")]


def test_all_good_batch_exits_0(tmp_path, rng):
    for name in ("x.png", "y.png"):
        iio.imwrite(tmp_path / name, _photo(rng))
    assert main(["deblur", str(tmp_path), "--kernel-size", "17", "--no-refine"]) == 0


@pytest.mark.parametrize("options, message", [
    (["-o", "{tmp}/same.png", "--json", "{tmp}/same.png"], "name the same file"),
    (["-o", "{tmp}/same.png", "--kernel-out", "{tmp}/same.png"], "name the same file"),
    (["--json", "{photo}", "--overwrite"], "is an input file"),
    (["--json", "{tmp}"], "is a folder"),
])
def test_clashing_named_outputs_are_refused_up_front(options, message, photo, tmp_path,
                                                     capsys):
    before = {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    options = [option.format(tmp=tmp_path, photo=photo) for option in options]
    assert main(["deblur", str(photo), "--kernel-size", "17", *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before


def test_help_states_the_naming_rule_and_the_exit_status():
    result = _run(["deblur", "--help"])
    assert "output names:" in result.stdout and "a_png_deblurred.png" in result.stdout
    assert "exit status:" in result.stdout


@pytest.mark.parametrize("args", [
    [],                                                     # no subcommand
    ["deblur"],                                             # no input
    ["deblur", "x.png", "--kernel-size", "21"],             # a choice out of range
    ["train", "--beta-k-mode", "x", "--kernel-size", "17", "--images", ".",
     "--out", "run", "--steps", "1"],
    ["bench", "levin", "--data", "x", "--kernel-size", "9"],
])
def test_usage_errors_are_one_line(args, tmp_path):
    result = _run(args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0] and "--help" in lines[0], lines
    assert "usage:" not in result.stderr and not list(tmp_path.iterdir())
