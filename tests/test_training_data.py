"""Tests of training-pair generation (refdeblur.training.data) and image_io."""

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import convolve2d

from refdeblur.image_io import RGB_TO_GRAY_WEIGHTS, find_images, read_image, rgb_to_gray
from refdeblur.training.data import (
    TrainingBatch,
    blur_valid,
    gradient_fractions,
    is_flat,
    load_gray_images,
    load_image_folder,
    make_batch,
    make_pair,
    validation_set,
    validation_split,
)


@pytest.fixture(scope="module")
def natural_images():
    """Grey natural images shipped inside the scikit-image wheel (no download)."""
    return [skimage.data.camera() / 255.0,
            rgb_to_gray(skimage.data.astronaut() / 255.0),
            rgb_to_gray(skimage.data.coffee() / 255.0),
            skimage.data.grass() / 255.0]


def locate(image, crop):
    """(row, col) where ``crop`` sits in ``image``: match its first row exactly."""
    windows = sliding_window_view(image, (1, crop.shape[1]))[:, :, 0, :]
    hits = np.argwhere(np.all(windows == crop[0], axis=-1))
    assert len(hits) == 1, f"{len(hits)} matches for the crop's first row"
    return tuple(hits[0])


def steps_image(n_col_steps, n_row_steps, size=51, step=0.0625):
    """x[i, j] = a[j] + b[i]: exactly n_col_steps horizontal and n_row_steps
    vertical forward differences of ``step`` per row/column, all others 0."""
    a = np.zeros(size)
    b = np.zeros(size)
    a[1:n_col_steps + 1] = step       # after cumsum: jumps 0->1, ..., n-1->n
    b[1:n_row_steps + 1] = step
    return np.cumsum(a)[None, :] + np.cumsum(b)[:, None]


# --------------------------------------------------------------------------
# Blur model and alignment
# --------------------------------------------------------------------------

@pytest.mark.parametrize("crop_size,kernel_size", [(64, 17), (48, 33), (31, 3)])
def test_noise_free_pair_is_valid_convolution_of_aligned_patch(crop_size, kernel_size):
    # White noise: every row segment is unique, so the crop can be located.
    image = np.random.default_rng(7).random((150, 170))
    y, k, x = make_pair(image, crop_size, kernel_size, np.random.default_rng(3),
                        noise_std=0.0)
    r = kernel_size // 2
    top, left = locate(image, x)
    patch = image[top - r:top - r + crop_size + kernel_size - 1,
                  left - r:left - r + crop_size + kernel_size - 1]
    assert patch.shape == (crop_size + kernel_size - 1,) * 2, "x not inside the patch"
    expected = convolve2d(patch, k, mode="valid")   # true (flipped) convolution
    err = np.abs(y - expected).max()
    assert err < 1e-12, f"max |y - k*x| = {err:.3g}"
    np.testing.assert_array_equal(x, patch[r:r + crop_size, r:r + crop_size])


def test_blur_valid_is_convolution_not_correlation():
    # An off-centre delta kernel shifts the image; convolution and
    # correlation shift in opposite directions.
    patch = np.random.default_rng(0).random((20, 20))
    k = np.zeros((5, 5))
    k[2, 3] = 1.0                 # one column right of the centre
    y = blur_valid(patch, k)
    # y[i, j] = patch[i + 4 - 2, j + 4 - 3] = patch[i + 2, j + 1]
    np.testing.assert_allclose(y, patch[2:18, 1:17], atol=1e-12)


def test_noise_std_and_freshness(natural_images):
    image = natural_images[0]
    seed, sigma = 11, 0.05
    clean = make_pair(image, 128, 17, np.random.default_rng(seed), noise_std=0.0)
    noisy = make_pair(image, 128, 17, np.random.default_rng(seed), noise_std=sigma)
    # Noise is drawn last, so crop and kernel are the same.
    np.testing.assert_array_equal(clean.k, noisy.k)
    np.testing.assert_array_equal(clean.x, noisy.x)
    noise = noisy.y - clean.y
    n = noise.size
    # Relative standard error of a sample std is about 1/sqrt(2n) (0.55 %
    # for 128²); allow 5 of them. The mean's standard error is σ/sqrt(n).
    assert abs(noise.std() / sigma - 1) < 5 / np.sqrt(2 * n), f"noise std {noise.std():.5f}"
    assert abs(noise.mean()) < 5 * sigma / np.sqrt(n), f"noise mean {noise.mean():.2e}"
    # Default σ = 0.01, fresh noise on every call.
    rng = np.random.default_rng(seed)
    default = make_pair(image, 128, 17, rng)
    assert abs((default.y - clean.y).std() / 0.01 - 1) < 5 / np.sqrt(2 * n)
    again = make_pair(image, 128, 17, rng)
    assert not np.array_equal(default.y, again.y)


# --------------------------------------------------------------------------
# Flat-patch rule
# --------------------------------------------------------------------------

def test_gradient_fractions_counts_forward_differences():
    img = steps_image(3, 5)
    fx, fy = gradient_fractions(img, grad_threshold=0.0625)
    # The difference equal to the threshold counts ("0.05 or above").
    assert (fx, fy) == (3 / 50, 5 / 50), f"fractions {fx}, {fy}"


def test_flat_rule_boundary_and_either_direction():
    rule = dict(grad_threshold=0.0625, min_grad_fraction=0.06)
    assert not is_flat(steps_image(3, 3), **rule), "exactly 6 % must be accepted"
    assert is_flat(steps_image(2, 30), **rule), "4 % in x must be rejected"
    assert is_flat(steps_image(30, 2), **rule), "4 % in y must be rejected"
    # Stripes: all gradients in one direction (the 'or' reading, camera_shake.md G16).
    assert is_flat(steps_image(50, 0), **rule)


def test_flat_rule_on_images(natural_images):
    assert is_flat(np.full((64, 64), 0.4))
    sparse = np.zeros((64, 64))
    sparse[20:40, 30:] = 1.0          # one rectangle: 2 edges per direction
    fx, fy = gradient_fractions(sparse)
    assert is_flat(sparse), f"sparse edges accepted (fx={fx:.3f}, fy={fy:.3f})"
    textured = natural_images[3][:128, :128]          # grass
    fx, fy = gradient_fractions(textured)
    assert not is_flat(textured), f"texture rejected (fx={fx:.3f}, fy={fy:.3f})"


def test_flat_images_are_rejected_by_the_generator(natural_images):
    with pytest.raises(RuntimeError, match="flat"):
        make_pair(np.full((100, 100), 0.5), 32, 9, np.random.default_rng(0),
                  max_attempts=10)
    # Sparse gradients: rejected unless the rule is switched off.
    sparse = np.zeros((100, 100))
    sparse[50:, :] = 1.0
    with pytest.raises(RuntimeError, match="flat"):
        make_pair(sparse, 64, 9, np.random.default_rng(0), max_attempts=10)
    pair = make_pair(sparse, 64, 9, np.random.default_rng(0), reject_flat=False)
    assert pair.y.shape == (64, 64)
    # In a batch, flat images are skipped in favour of textured ones.
    images = [np.full((100, 100), 0.5), natural_images[3]]
    batch = make_batch(images, 6, 48, 9, np.random.default_rng(1))
    for i, x in enumerate(batch.x):
        assert not is_flat(x), f"example {i} is flat"


# --------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------

def test_batch_shapes_dtypes_and_kernels(natural_images, rng):
    batch = make_batch(natural_images, 5, 64, 17, rng)
    assert isinstance(batch, TrainingBatch)
    assert batch.y.shape == (5, 64, 64) and batch.x.shape == (5, 64, 64)
    assert batch.k.shape == (5, 17, 17)
    for name, arr in batch._asdict().items():
        assert arr.dtype == np.float64, f"{name} is {arr.dtype}"
    sums = batch.k.sum(axis=(1, 2))
    assert np.abs(sums - 1).max() < 1e-12, f"kernel sums {sums}"
    assert batch.x.min() >= 0 and batch.x.max() <= 1


def test_batch_determinism(natural_images):
    a = make_batch(natural_images, 4, 32, 9, np.random.default_rng(5))
    b = make_batch(natural_images, 4, 32, 9, np.random.default_rng(5))
    c = make_batch(natural_images, 4, 32, 9, np.random.default_rng(6))
    for name in TrainingBatch._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.y, c.y)


def test_validation_set_is_fixed(natural_images):
    a = validation_set(natural_images, 3, 32, 9, seed=123)
    b = validation_set(natural_images, 3, 32, 9, seed=123)
    for name in TrainingBatch._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.y, validation_set(natural_images, 3, 32, 9, seed=124).y)


def test_bad_arguments(natural_images, rng):
    with pytest.raises(ValueError):
        make_pair(natural_images[0], 64, 16, rng)            # even kernel
    with pytest.raises(ValueError):
        make_pair(np.zeros((40, 40)), 32, 17, rng)           # image < patch
    with pytest.raises(ValueError):
        make_pair(skimage.data.astronaut() / 255.0, 32, 9, rng)  # colour
    with pytest.raises(ValueError, match="uint8"):
        make_pair(skimage.data.camera(), 32, 9, rng)         # 0..255, not [0, 1]
    with pytest.raises(ValueError):
        make_batch([], 2, 32, 9, rng)
    with pytest.raises(ValueError):
        make_pair(natural_images[0], 32, 9, rng, noise_std=-0.1)
    with pytest.raises(TypeError):
        make_pair(natural_images[0], 32, 9, 0)


def test_real_training_images(train_data):
    folder = train_data
    paths = find_images(folder)
    assert len(paths) >= 3, f"only {len(paths)} images in {folder}"
    # A few of each subset (the sorted order groups them by folder).
    picks = paths[::max(1, len(paths) // 6)][:6]
    images = load_gray_images(picks, min_size=128 + 33 - 1)
    assert len(images) == len(picks), f"{len(picks) - len(images)} images skipped"
    batch = make_batch(images, 6, 128, 33, np.random.default_rng(0))
    assert batch.y.shape == (6, 128, 128) and batch.k.shape == (6, 33, 33)
    for i, (x, y) in enumerate(zip(batch.x, batch.y)):
        assert not is_flat(x), f"example {i} flat"
        # The blur removes detail: fewer strong gradients in y than in x.
        assert gradient_fractions(y)[0] < gradient_fractions(x)[0] + 0.05


# --------------------------------------------------------------------------
# image_io
# --------------------------------------------------------------------------

def test_rgb_to_gray_weights():
    w = np.array(RGB_TO_GRAY_WEIGHTS)
    # MATLAB: first row of inv(YIQ matrix), rounded to 15 decimals.
    yiq = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
    np.testing.assert_allclose(w, np.linalg.inv(yiq)[0], atol=5e-16)
    np.testing.assert_allclose(rgb_to_gray(np.eye(3)[None]), w[None], rtol=0, atol=0)
    rgb = np.random.default_rng(0).random((4, 5, 3))
    rgba = np.concatenate([rgb, np.zeros((4, 5, 1))], axis=-1)
    np.testing.assert_array_equal(rgb_to_gray(rgba), rgb_to_gray(rgb))
    np.testing.assert_allclose(rgb_to_gray(np.moveaxis(rgb, -1, 0), channel_axis=0),
                               rgb_to_gray(rgb), atol=1e-15)
    np.testing.assert_array_equal(rgb_to_gray(rgb[..., :2]), rgb[..., 0])
    with pytest.raises(ValueError):
        rgb_to_gray(np.zeros((4, 4, 5)))


def test_read_image_scales_by_type_maximum(tmp_path):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (12, 9), dtype=np.uint8)
    u16 = rng.integers(0, 65536, (12, 9), dtype=np.uint16)
    rgb = rng.integers(0, 256, (12, 9, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "u8.png", u8)
    iio.imwrite(tmp_path / "u16.png", u16)
    iio.imwrite(tmp_path / "rgb.PNG", rgb)
    a = read_image(tmp_path / "u8.png")
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, u8 / 255.0)
    np.testing.assert_array_equal(read_image(tmp_path / "u16.png"), u16 / 65535.0)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.PNG"), rgb / 255.0)
    np.testing.assert_allclose(read_image(tmp_path / "rgb.PNG", as_gray=True),
                               rgb_to_gray(rgb / 255.0), atol=1e-15)


def test_find_images_and_loading(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    img = (np.random.default_rng(1).random((40, 30)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "b" / "deep" / "z.png", img)
    iio.imwrite(tmp_path / "a.JPG", img, extension=".jpg")
    iio.imwrite(tmp_path / "b" / "small.png", img[:10, :10])
    (tmp_path / "b" / "broken.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("not an image")
    paths = find_images(tmp_path)
    rel = [p.relative_to(tmp_path).as_posix() for p in paths]
    assert rel == ["a.JPG", "b/broken.png", "b/deep/z.png", "b/small.png"], rel
    with pytest.warns(UserWarning, match="1 unreadable and 1 too-small"):
        images = load_gray_images(paths, min_size=20)
    assert [im.shape for im in images] == [(40, 30), (40, 30)]
    with pytest.raises(NotADirectoryError):
        find_images(tmp_path / "missing")
    with pytest.raises(OSError):
        read_image(tmp_path / "b" / "broken.png")
    with pytest.raises(ValueError, match="no usable images"), \
            pytest.warns(UserWarning):
        load_image_folder(tmp_path, min_size=1000)


def test_validation_split_holds_out_every_kth_image():
    paths = [f"{i:02d}.png" for i in range(10)]
    train, validation = validation_split(paths, 3)
    assert validation == ["00.png", "03.png", "06.png"]
    assert train == [p for p in paths if p not in validation]
    # at least one and at most half of the images are held out
    assert len(validation_split(paths, 0)[1]) == 1
    assert len(validation_split(paths, 100)[1]) == 5
    with pytest.raises(ValueError, match="at least two images"):
        validation_split(paths[:1], 1)
