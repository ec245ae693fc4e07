"""The MATLAB-style test path in GNU Octave, and MATLAB-convention golden data.

derivations/matlab_path.md describes both parts:

* ``tests/octave/`` is a forward-only implementation of the network in the
  MATLAB language (``conv2``, ``fft2``, ``psf2otf``, ``imresize``). Where
  ``octave-cli`` with the image package is installed, the tests below run it
  on the shipped networks exported by
  :func:`refdeblur.porting.matlab.export_mat` and require the kernel of
  every stage to agree with :meth:`refdeblur.network.Network.forward` to
  1e-10 relative (``max|a - b| / max|b|``, float64). Elsewhere they skip.
* ``tests/data/octave_golden.mat`` holds outputs of MATLAB-convention
  helpers as Octave computes them (``tests/octave/make_golden.m``);
  refdeblur's own functions are compared with them without Octave. Where
  Octave's function is not MATLAB's (``imresize`` when shrinking,
  ``otf2psf`` on even grids, ``rgb2gray``, ``edgetaper``) the test pins the
  documented difference instead.
"""

import functools
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from scipy.ndimage import gaussian_filter
from skimage import data

from refdeblur import build_network, save_model
from refdeblur.camera_shake import sample_kernel
from refdeblur.image_io import RGB_TO_GRAY_WEIGHTS, rgb_to_gray
from refdeblur.inference.preparation import luminance
from refdeblur.inference.refinement import ValidConvolution
from refdeblur.kernels import center_kernel, resize_kernel
from refdeblur.layers.conv2d import Conv2D
from refdeblur.layers.crop_pad import grid_to_kernel, kernel_to_grid, otf2psf, psf2otf
from refdeblur.layers.edge_taper import taper_window
from refdeblur.layers.resample import Resample, cubic, imresize
from refdeblur.models import load_shipped_model
from refdeblur.porting.matlab import export_mat, matlab_name, matlab_variables
from refdeblur.training.data import blur_valid

ROOT = Path(__file__).resolve().parents[1]
OCTAVE_DIR = ROOT / "tests" / "octave"
GOLDEN = ROOT / "tests" / "data" / "octave_golden.mat"

#: Required agreement of the Octave forward pass, max|a - b| / max|b|.
FORWARD_TOLERANCE = 1e-10

#: MATLAB's rgb2gray weights as GNU Octave (7.3) writes them, to 6 decimals.
OCTAVE_RGB2GRAY_WEIGHTS = (0.298936, 0.587043, 0.114021)


# --------------------------------------------------------------------------
# Running Octave
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def octave_unavailable():
    """Why the Octave tests cannot run here, or None when they can."""
    executable = shutil.which("octave-cli")
    if executable is None:
        return ("octave-cli is not on PATH (Debian/Ubuntu: apt-get install -y "
                "octave octave-image)")
    probe = subprocess.run(
        [executable, "--norc", "--quiet", "--eval",
         "pkg load image; disp(exist('psf2otf') > 0 && exist('padarray') > 0)"],
        capture_output=True, text=True, timeout=120)
    if probe.returncode != 0 or probe.stdout.strip() != "1":
        return ("Octave's image package does not load (apt-get install -y "
                f"octave-image): {probe.stderr.strip()[-300:]}")
    return None


def run_octave(expression, *, first_on_path=None, timeout=600):
    """Evaluate an expression in ``octave-cli`` with tests/octave on the path.

    Skips the calling test where Octave or its image package is missing.
    Only the exit status counts: Octave 7.3 as packaged by Debian prints
    "error: ignoring const execution_exception& while preparing to exit" on
    stderr after every successful run.

    Parameters
    ----------
    expression : str
    first_on_path : path-like, optional
        A folder searched before tests/octave, whose ``.m`` files replace
        those of the same name (tests/octave/agreement.py swaps in Octave's
        own functions this way).
    timeout : float, optional
        Seconds.
    """
    reason = octave_unavailable()
    if reason is not None:
        pytest.skip(reason)
    command = f"pkg load image; addpath('{OCTAVE_DIR.as_posix()}'); "
    if first_on_path is not None:
        command += f"addpath('{Path(first_on_path).as_posix()}'); "
    command += expression
    result = subprocess.run([shutil.which("octave-cli"), "--norc", "--quiet",
                             "--eval", command],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"octave-cli failed ({result.returncode}):\n"
                                    f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def relative_error(a, b):
    """``max|a - b| / max|b|``."""
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


# --------------------------------------------------------------------------
# The Octave forward pass
# --------------------------------------------------------------------------

def blurred_images(kernel_size, rng):
    """Three blurred grey images of about the smallest size the network takes.

    A crop of scikit-image's astronaut (grey with MATLAB's ``rgb2gray``
    weights), random rectangles and a smooth random field, each blurred
    with its own camera-shake kernel of the network's size plus 1 % noise.
    Their shapes differ (odd and even, landscape and portrait), so that
    every scale meets odd and even FFT grids.
    """
    side = load_shipped_model(kernel_size).min_image_size()
    shapes = [(side, side + 5), (side + 3, side), (side + 1, side + 2)]
    m = kernel_size
    astronaut = rgb_to_gray(data.astronaut() / 255.0)
    sources = []
    height, width = shapes[0][0] + m - 1, shapes[0][1] + m - 1
    sources.append(astronaut[20:20 + height, 150:150 + width])
    height, width = shapes[1][0] + m - 1, shapes[1][1] + m - 1
    rectangles = np.full((height, width), 0.5)
    for _ in range(40):
        top, left = rng.integers(0, height), rng.integers(0, width)
        rectangles[top:top + rng.integers(3, 30), left:left + rng.integers(3, 30)] = rng.random()
    sources.append(rectangles)
    height, width = shapes[2][0] + m - 1, shapes[2][1] + m - 1
    field = gaussian_filter(rng.random((height, width)), 2.0)
    sources.append((field - field.min()) / (field.max() - field.min()))
    images = []
    for source in sources:
        blurred = blur_valid(source, sample_kernel(m, rng))
        images.append(blurred + 0.01 * rng.standard_normal(blurred.shape))
    return images


def octave_stage_kernels(net, images, folder, *, first_on_path=None):
    """Run tests/octave/run_network.m; ``{(image, scale, stage): kernel}``, seconds.

    ``folder`` receives the exported model, the images and the kernels;
    ``first_on_path`` is passed to :func:`run_octave`.
    """
    model_file = export_mat(net, folder / "model.mat")
    images_file = folder / "images.mat"
    scipy.io.savemat(images_file, {"n_images": float(len(images)),
                                   **{f"image{i + 1}": image for i, image in enumerate(images)}})
    out_file = folder / "kernels.mat"
    run_octave(f"run_network('{model_file.as_posix()}', '{images_file.as_posix()}', "
               f"'{out_file.as_posix()}')", first_on_path=first_on_path)
    contents = scipy.io.loadmat(out_file)
    kernels = {}
    for name, value in contents.items():
        if match := re.fullmatch(r"kernel(\d+)_scale(\d+)_stage(\d+)", name):
            kernels[tuple(int(index) - 1 for index in match.groups())] = value
    return kernels, contents["seconds"].item()


def reference_stage_kernels(net, images):
    """The same from :meth:`Network.forward` in float64."""
    kernels = {}
    for i, image in enumerate(images):
        output = net.forward(image)
        for j, stages in enumerate(output.stage_kernels):
            for s, kernel in enumerate(stages):
                kernels[(i, j, s)] = kernel
    return kernels


def assert_forward_agrees(net, images, folder):
    ours = reference_stage_kernels(net, images)
    theirs, _ = octave_stage_kernels(net, images, folder)
    assert sorted(theirs) == sorted(ours)
    errors = {key: relative_error(theirs[key], ours[key]) for key in ours}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= FORWARD_TOLERANCE, (
        f"image {worst[0] + 1}, scale {worst[1] + 1}, stage {worst[2] + 1}: "
        f"relative error {errors[worst]:.2e}")
    return errors


@pytest.mark.parametrize("kernel_size", [17, 25, 33])
def test_octave_forward_matches_every_stage_of_the_shipped_network(kernel_size, rng,
                                                                   tmp_path):
    reason = octave_unavailable()
    if reason is not None:
        pytest.skip(reason)
    net = load_shipped_model(kernel_size).astype(np.float64)
    errors = assert_forward_agrees(net, blurred_images(kernel_size, rng), tmp_path)
    arch = net.architecture
    n_run = ((len(arch.kernel_sizes) - 1) * arch.n_stages
             + (arch.inference_stages or arch.n_stages))
    assert len(errors) == 3 * n_run


def test_octave_forward_takes_every_architecture_option(rng, tmp_path):
    """A small random two-scale network with the options the shipped ones leave
    at their defaults: relative β_k, recombination bias, no conv bias, taper
    and filter widths unlike the kernel sizes, four pairs in stage 1."""
    reason = octave_unavailable()
    if reason is not None:
        pytest.skip(reason)
    net = build_network(9, rng=rng, kernel_sizes=(5, 9), n_filters=4, n_hidden=5,
                        n_pairs=(4, 2, 3), filter_sizes=(3, 5), taper_widths=(4, 6),
                        conv_bias=False, recombine_bias=True, beta_k_mode="relative",
                        beta_k=0.05, inference_stages=2)
    images = [rng.random((31, 28)), rng.random((26, 33))]
    errors = assert_forward_agrees(net, images, tmp_path)
    assert len(errors) == 2 * (3 + 2)


def test_octave_golden_file_is_what_make_golden_writes(tmp_path):
    """The committed golden data is reproducible from tests/octave/make_golden.m."""
    out_file = tmp_path / "golden.mat"
    run_octave(f"cd('{OCTAVE_DIR.as_posix()}'); make_golden('{out_file.as_posix()}')")
    fresh, committed = scipy.io.loadmat(out_file), scipy.io.loadmat(GOLDEN)
    names = {name for name in committed if not name.startswith("__")}
    assert names == {name for name in fresh if not name.startswith("__")}
    for name in sorted(names - {"generator"}):
        np.testing.assert_allclose(fresh[name], committed[name], rtol=0, atol=1e-14,
                                   err_msg=name)


# --------------------------------------------------------------------------
# The exported file
# --------------------------------------------------------------------------

def test_export_mat_holds_every_parameter_and_the_architecture(tmp_path):
    net = load_shipped_model(25)
    contents = scipy.io.loadmat(export_mat(25, tmp_path / "k25.mat"))
    for name, value in net.params.items():
        stored = contents[matlab_name(name)]
        expected = value.reshape(-1, 1) if value.ndim == 1 else np.atleast_2d(value)
        assert stored.dtype == np.float64
        np.testing.assert_array_equal(stored, expected, err_msg=name)
    assert contents["scale2_stage1_conv_weight"].shape == (32, 2, 17, 17)
    assert contents["scale1_stage1_conv_weight"].shape == (32, 1, 17, 17)
    np.testing.assert_array_equal(contents["kernel_sizes"], [[17, 25]])
    np.testing.assert_array_equal(contents["taper_widths"], [[17, 25]])
    np.testing.assert_array_equal(contents["image_pads"], [[17, 25]])
    # every stage, unless the model file was exported with fewer (--stages)
    assert contents["inference_stages"].item() == (net.architecture.inference_stages
                                                    or net.architecture.n_stages)
    assert contents["beta_k"].item() == net.architecture.beta_k
    assert str(contents["beta_k_mode"][0]) == "constant"
    assert contents["kernel_eps"].item() == 1e-8
    assert str(contents["format"][0]) == "refdeblur-matlab"


def test_export_mat_reads_networks_model_files_and_kernel_sizes(tmp_path, rng):
    net = build_network(17, rng=rng, n_filters=3, n_hidden=3, filter_sizes=(5,))
    save_model(net, tmp_path / "net.npz")
    from_file = scipy.io.loadmat(export_mat(tmp_path / "net.npz", tmp_path / "a.mat"))
    from_network = scipy.io.loadmat(export_mat(net, tmp_path / "b.mat"))
    variables = matlab_variables(net)
    assert variables["inference_stages"] == 3.0  # None resolved to all stages
    for name in variables:
        if name != "refdeblur_version":
            np.testing.assert_array_equal(from_file[name], from_network[name], err_msg=name)


def test_matlab_name_rejects_what_matlab_cannot_name():
    assert matlab_name("scale1.stage3.recombine2.weight") == "scale1_stage3_recombine2_weight"
    with pytest.raises(ValueError):
        matlab_name("scale1.stage1.conv-weight")
    with pytest.raises(ValueError):
        matlab_name("scale1." + "x" * 70)


# --------------------------------------------------------------------------
# Golden outputs of MATLAB-convention helpers (no Octave needed)
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def golden():
    return scipy.io.loadmat(GOLDEN)


NETWORK_RESIZES = {  # name -> (input, output shape) in the golden file
    "down_k25_s1": ("resize_input", None),
    "down_k33_s1": ("resize_input", None),
    "down_k33_s2": ("resize_input", None),
    "up_k25_s2": ("matlab_imresize_down_k25_s1", None),
    "up_k33_s2": ("matlab_imresize_down_k33_s1", None),
    "up_k33_s3": ("matlab_imresize_down_k33_s2", None),
}


@pytest.mark.parametrize("case", sorted(NETWORK_RESIZES))
def test_resample_equals_matlab_imresize_algorithm(golden, case):
    """Resample (the network's resizing) and tests/octave/imresize_matlab.m,
    two implementations of MATLAB's imresize, agree at every resize of the
    25 and 33 px networks' pyramids."""
    source = golden[NETWORK_RESIZES[case][0]]
    expected = golden[f"matlab_imresize_{case}"]
    resized, _ = Resample(source.shape, expected.shape).forward(source)
    np.testing.assert_allclose(resized, expected, rtol=0, atol=1e-14)


def _octave_row_sums(in_size, out_size, scale):
    """Sum of the unnormalised antialiased cubic weights of every output (S5)."""
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_size + 1) / scale + 0.5 * (1 - 1 / scale)
    taps = np.floor(u - width / 2)[:, None] + np.arange(int(np.ceil(width)) + 2)
    distance = u[:, None] - taps
    weights = scale * cubic(scale * distance) if scale < 1 else cubic(distance)
    return weights.sum(axis=1)


@pytest.mark.parametrize("case", sorted(NETWORK_RESIZES) + [
    "scale_17_25", "scale_25_33", "scale_17_33",
    "inverse_scale_17_25", "inverse_scale_25_33", "inverse_scale_17_33"])
def test_octave_imresize_is_matlab_imresize_without_weight_normalisation(golden, case):
    """Octave's imresize skips MATLAB's normalisation of the weights (S5).

    With it put back per output pixel, refdeblur's imresize reproduces
    Octave's everywhere; without it they differ when shrinking (by up to
    2.2e-2 on values in [0, 1]) and agree when enlarging, where the cubic
    weights sum to 1 anyway.
    """
    octave = golden[f"octave_imresize_{case}"]
    if case in NETWORK_RESIZES:
        source = golden[NETWORK_RESIZES[case][0]]
        ours = imresize(source, output_shape=octave.shape)
        scales = [n_out / n_in for n_out, n_in in zip(octave.shape, source.shape)]
    else:
        numerator, denominator = (int(n) for n in case.split("_")[-2:])
        scale = numerator / denominator
        source = golden["resize_input"]
        if case.startswith("inverse"):
            source = golden[f"octave_imresize_scale_{numerator}_{denominator}"]
            scale = 1 / scale
        ours = imresize(source, scale=scale)
        scales = [scale, scale]
    assert ours.shape == octave.shape
    rows = _octave_row_sums(source.shape[0], octave.shape[0], scales[0])
    cols = _octave_row_sums(source.shape[1], octave.shape[1], scales[1])
    np.testing.assert_allclose(rows[:, None] * ours * cols[None, :], octave,
                               rtol=0, atol=1e-14)
    difference = np.max(np.abs(ours - octave))
    if min(scales) < 1:
        assert difference > 1e-4
    else:
        assert difference < 1e-14


def test_resize_kernel_agrees_with_octave_imresize_when_enlarging(golden):
    kernel17 = golden["kernel17"]
    for source, size, name in ((kernel17, 25, "octave_imresize_kernel25"),
                               (golden["octave_imresize_kernel25"], 33,
                                "octave_imresize_kernel33")):
        octave = golden[name]
        np.testing.assert_allclose(imresize(source, output_shape=(size, size)), octave,
                                   rtol=0, atol=1e-15)
    positive = np.maximum(golden["octave_imresize_kernel25"], 0)
    np.testing.assert_allclose(resize_kernel(kernel17, 25),
                               center_kernel(positive / positive.sum()), rtol=0, atol=1e-15)


@pytest.mark.parametrize("grid", ["odd_12x15", "odd_11x14", "odd_11x13", "even_9x10"])
def test_psf2otf_and_otf2psf_are_matlabs(golden, grid):
    psf = golden["psf_even" if grid.startswith("even") else "psf_odd"]
    otf = golden[f"otf_{grid}"]
    np.testing.assert_allclose(psf2otf(psf, otf.shape), otf, rtol=0, atol=1e-13)
    np.testing.assert_allclose(otf2psf(otf, psf.shape), psf, rtol=0, atol=1e-14)
    np.testing.assert_allclose(golden[f"matlab_otf2psf_{grid}"], psf, rtol=0, atol=1e-14)


@pytest.mark.parametrize("grid", ["odd_12x15", "odd_11x14", "odd_11x13", "even_9x10"])
def test_octave_otf2psf_is_one_pixel_off_for_odd_kernels_on_even_grids(golden, grid):
    """Octave's otf2psf centres on the grid, not on the PSF: along an axis
    where the grid is even and the PSF odd it crops one pixel further up
    (left) than MATLAB's, the inverse of psf2otf; elsewhere they agree."""
    psf = golden["psf_even" if grid.startswith("even") else "psf_odd"]
    otf = golden[f"otf_{grid}"]
    shifts = [1 if n % 2 == 0 and m % 2 == 1 else 0 for n, m in zip(otf.shape, psf.shape)]
    placed = np.roll(kernel_to_grid(psf, otf.shape), shifts, axis=(0, 1))
    octave = golden[f"octave_otf2psf_{grid}"]
    np.testing.assert_allclose(octave, grid_to_kernel(placed, psf.shape), rtol=0, atol=1e-14)
    assert (np.max(np.abs(octave - psf)) > 0.1) == any(shifts)


def test_conv2d_valid_is_conv2_valid_with_the_filter_rotated(golden):
    image, kernel = golden["conv_image"], golden["conv_kernel"]
    layer = Conv2D(1, 1, kernel.shape[0])
    params = {"weight": kernel[::-1, ::-1][None, None].copy(), "bias": np.zeros(1)}
    out, _ = layer.forward(image[None, None], params)
    np.testing.assert_allclose(out[0, 0], golden["conv2_valid"], rtol=0, atol=1e-13)
    np.testing.assert_allclose(blur_valid(image, kernel), golden["conv2_valid"],
                               rtol=0, atol=1e-13)
    np.testing.assert_allclose(ValidConvolution(image, kernel.shape[0])(kernel),
                               golden["conv2_valid"], rtol=0, atol=1e-13)


def test_conv2d_input_gradient_is_conv2_full(golden):
    """The adjoint of the 'valid' correlation with w is conv2(dout, w, 'full') (C3)."""
    dout, kernel = golden["conv_image"], golden["conv_kernel"]
    m = kernel.shape[0]
    layer = Conv2D(1, 1, m)
    params = {"weight": kernel[None, None].copy(), "bias": np.zeros(1)}
    x = np.zeros((1, 1, dout.shape[0] + m - 1, dout.shape[1] + m - 1))
    _, cache = layer.forward(x, params)
    dx, _ = layer.backward(dout[None, None], cache)
    np.testing.assert_allclose(dx[0, 0], golden["conv2_full"], rtol=0, atol=1e-13)


@pytest.mark.parametrize("kernel_name, prefix", [("conv_kernel", "conv2_"),
                                                 ("conv_kernel_even", "conv2_even_")])
def test_conv2_same_centre_is_the_psf2otf_centre(golden, kernel_name, prefix):
    """conv2(x, k, 'same') is, away from the borders, the circular convolution
    with psf2otf(k): both put the kernel's centre at floor(m/2) (0-based),
    refdeblur's convention for kernels of either parity."""
    image, kernel = golden["conv_image"], golden[kernel_name]
    same = golden[f"{prefix}same"]
    circular = np.real(np.fft.ifft2(np.fft.fft2(image) * psf2otf(kernel, image.shape)))
    (mh, mw), (height, width) = kernel.shape, image.shape
    rows = slice(mh - 1 - mh // 2, height - mh // 2)
    cols = slice(mw - 1 - mw // 2, width - mw // 2)
    np.testing.assert_allclose(circular[rows, cols], same[rows, cols], rtol=0, atol=1e-13)
    full = golden[f"{prefix}full"]
    np.testing.assert_allclose(same, full[mh // 2:mh // 2 + height, mw // 2:mw // 2 + width],
                               rtol=0, atol=1e-14)


def test_luminance_is_matlab_rgb2gray_not_octaves(golden):
    """refdeblur uses MATLAB's full-precision rgb2gray weights; Octave rounds
    them to 6 decimals, which moves grey values by up to 1e-7."""
    rgb = golden["rgb_input"]
    octave = golden["rgb2gray_output"]
    ours = luminance(np.moveaxis(rgb, -1, 0))
    np.testing.assert_allclose(ours, rgb_to_gray(rgb), rtol=0, atol=2e-16)
    offset = rgb @ (np.array(RGB_TO_GRAY_WEIGHTS) - OCTAVE_RGB2GRAY_WEIGHTS)
    np.testing.assert_allclose(ours - octave, offset, rtol=0, atol=1e-15)
    assert 1e-8 < np.max(np.abs(ours - octave)) < 1e-7


def test_barthann_taper_is_not_edgetaper(golden):
    """refdeblur tapers features and the padded image with a flat-top Barthann
    window, not edgetaper: both leave the interior untouched, but the taper
    fades the border to 0 where edgetaper blends towards the blurred image."""
    image, psf = golden["resize_input"], golden["edgetaper_psf"]
    octave = golden["edgetaper_output"]
    m = psf.shape[0]
    tapered = image * taper_window(image.shape, m)
    interior = (slice(m, -m), slice(m, -m))
    np.testing.assert_array_equal(octave[interior], image[interior])
    np.testing.assert_array_equal(tapered[interior], image[interior])
    assert np.all(tapered[0] == 0) and np.all(tapered[:, 0] == 0)
    assert np.min(octave[0]) > 0.1 and np.min(octave[:, 0]) > 0.1
