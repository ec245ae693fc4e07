"""16-bit PNG files: written and read with all 16 bits (Pillow reads 8)."""

import imageio.v3 as iio
import numpy as np
import pytest

from refdeblur.image_io import read_image, read_image_raw, write_image


@pytest.mark.parametrize("channels", [None, 2, 3, 4])
def test_round_trip_keeps_16_bits(channels, rng, tmp_path):
    shape = (31, 17) if channels is None else (31, 17, channels)
    image = rng.integers(0, 65536, size=shape).astype(np.uint16)
    path = tmp_path / "x.png"
    write_image(path, image)
    back = read_image_raw(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, image)
    np.testing.assert_array_equal(read_image(path), image / 65535.0)


def test_pillow_reads_our_files_as_the_same_picture(rng, tmp_path):
    # Pillow reduces 16-bit colour to 8 bits: its result must be our data's
    # high byte (so the files are valid PNGs for other readers).
    image = rng.integers(0, 65536, size=(12, 9, 3)).astype(np.uint16)
    path = tmp_path / "x.png"
    write_image(path, image)
    eight = iio.imread(path, plugin="pillow")
    np.testing.assert_array_equal(eight, image >> 8)


def test_eight_bit_files_still_round_trip(rng, tmp_path):
    for name, shape in (("g.png", (10, 11)), ("c.png", (10, 11, 3)), ("a.png", (10, 11, 4))):
        image = rng.integers(0, 256, size=shape).astype(np.uint8)
        write_image(tmp_path / name, image)
        back = read_image_raw(tmp_path / name)
        assert back.dtype == np.uint8
        np.testing.assert_array_equal(back, image)


def test_corrupt_and_truncated_files_are_one_line_oserrors(rng, tmp_path):
    path = tmp_path / "x.png"
    write_image(path, rng.integers(0, 65536, size=(8, 8, 3)).astype(np.uint16))
    blob = bytearray(path.read_bytes())
    start = blob.index(b"IDAT") + 4
    blob[start:start + 20] = b"\x00" * 20
    path.write_bytes(bytes(blob))
    with pytest.raises(OSError, match="16-bit PNG") as corrupt:
        read_image_raw(path)
    path.write_bytes(bytes(blob[:60]))
    with pytest.raises(OSError, match="16-bit PNG") as truncated:
        read_image_raw(path)
    for error in (corrupt, truncated):
        assert "\n" not in str(error.value)


def test_views_of_other_layouts_are_written(rng, tmp_path):
    planes = rng.integers(0, 65536, size=(3, 9, 10)).astype(np.uint16)
    image = np.moveaxis(planes, 0, -1)          # not C-contiguous
    write_image(tmp_path / "x.png", image)
    np.testing.assert_array_equal(read_image_raw(tmp_path / "x.png"), image)
