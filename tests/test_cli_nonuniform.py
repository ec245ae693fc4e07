"""``refdeblur deblur --nonuniform [--grid R C]``: outputs, report and bad grids.

A bad grid gives one line on stderr, exit status 2, no traceback and no
output file.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from skimage import data

from refdeblur._engine import NUMBA_WARNING
from refdeblur.cli import main
from refdeblur.image_io import read_image_raw


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    iio.imwrite(path, data.astronaut()[180:308, 160:320])      # 128 x 160 x 3, uint8
    return path


def _files(folder):
    return sorted(p.relative_to(folder) for p in Path(folder).rglob("*") if p.is_file())


def test_writes_the_image_the_kernel_field_and_the_report(photo, tmp_path):
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "refdeblur", "deblur", str(photo), "--nonuniform",
         "--grid", "2", "2", "--kernel-size", "17", "--json", str(report)],
        capture_output=True, text=True,
        env={**os.environ, "PYTHONWARNINGS": f"error,ignore:{NUMBA_WARNING}:RuntimeWarning"})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "2 x 2 patches" in result.stdout
    sharp = read_image_raw(tmp_path / "photo_deblurred.png")
    assert sharp.shape == (128, 160, 3) and sharp.dtype == np.uint8
    field = read_image_raw(tmp_path / "photo_deblurred_kernel.png")
    assert field.ndim == 2 and field.dtype == np.uint8 and field.max() == 255
    assert abs(field.shape[1] / field.shape[0] - 160 / 128) < 0.02   # the image's aspect
    assert field[0, 0] == 128                                         # the grey canvas
    record = json.loads(report.read_text())
    assert record["parameters"]["nonuniform"] == {"grid": [2, 2]}
    (image,) = record["images"]
    assert image["kernel_size"] == 17 and image["kernel_png"].endswith("_kernel.png")
    local = image["nonuniform"]
    assert local["grid"] == [2, 2]
    np.testing.assert_allclose(local["centres"], [[31.5, 39.5], [31.5, 119.5],
                                                  [95.5, 39.5], [95.5, 119.5]])
    kernels = np.array(local["kernels"])
    assert kernels.shape == (4, 17, 17)
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-6)
    assert local["seconds_estimate"] > 0 and local["seconds_deconvolution"] > 0
    if local["projection"] is None:
        assert local["pose_count"] is None
    else:
        assert local["pose_count"] == 4913
    assert isinstance(image["warnings"], list)


@pytest.mark.parametrize("arguments, message", [
    (["--nonuniform", "--grid", "0", "2"], "--grid needs two integers >= 1, got 0 2"),
    (["--grid", "2", "2"], "--grid needs --nonuniform"),
    (["--nonuniform", "--method", "wiener"], "hyper_laplacian only"),
    (["--nonuniform", "--grid", "3", "3", "--kernel-size", "25"],
     "a 3 x 3 grid is too fine for a 25-px kernel on a 128 x 160 image"),
    (["--nonuniform", "--grid", "9", "2"], "a 9 x 2 grid is too fine for a 17-px kernel"),
])
def test_bad_grids_give_one_line_status_2_and_no_output(photo, tmp_path, capsys, arguments,
                                                       message):
    status = main(["deblur", str(photo), *arguments])
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert _files(tmp_path) == [Path("photo.png")]
