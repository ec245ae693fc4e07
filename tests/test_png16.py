"""The 16-bit colour PNG codec (Pillow reads such files as 8-bit)."""

import struct
import zlib

import imageio.v3 as iio
import numpy as np
import pytest

from refdeblur._png16 import is_16bit_colour_png, read_png16, write_png16
from refdeblur._png_numba import unfilter
from refdeblur.image_io import read_image_raw, write_image


def _paeth(left, up, up_left):
    estimate = left + up - up_left
    pa, pb, pc = (np.abs(estimate - v) for v in (left, up, up_left))
    return np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))


def _filter_rows(raw, kinds, bpp):
    """The PNG encoder's filters in vectorised NumPy: the oracle."""
    raw = raw.astype(np.int64)
    out = []
    for y, kind in enumerate(kinds):
        row = raw[y]
        prior = raw[y - 1] if y else np.zeros_like(row)
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int64), prior[:-bpp]])
        predicted = [np.zeros_like(row), left, prior, (left + prior) // 2,
                     _paeth(left, prior, up_left)][kind]
        out.append(np.concatenate([[kind], (row - predicted) & 0xFF]))
    return np.concatenate(out).astype(np.uint8)


@pytest.mark.parametrize("bpp", [1, 3, 6, 8])
def test_unfilter_inverts_every_filter_type(bpp, rng):
    raw = rng.integers(0, 256, size=(23, 7 * bpp), dtype=np.uint8)
    raw[5:9] = raw[4]                  # flat rows exercise the Up filter
    kinds = rng.integers(0, 5, size=23)
    kinds[:5] = [0, 1, 2, 3, 4]
    data = _filter_rows(raw, kinds, bpp)
    np.testing.assert_array_equal(unfilter(data, 23, raw.shape[1], bpp), raw)


def test_unknown_filter_type_is_an_error(rng):
    data = np.zeros(2 * 7, np.uint8)
    data[7] = 9
    with pytest.raises(ValueError):
        unfilter(data, 2, 6, 3)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_round_trip_and_header(channels, rng, tmp_path):
    image = rng.integers(0, 65536, size=(31, 17, channels)).astype(np.uint16)
    path = tmp_path / "x.png"
    write_image(path, image)
    assert is_16bit_colour_png(path)
    np.testing.assert_array_equal(read_image_raw(path), image)


def test_pillow_reads_our_files_as_the_same_picture(rng, tmp_path):
    # Pillow reduces 16-bit colour to 8 bits: its result must be our data's
    # high byte (so the files are valid PNGs for other readers).
    image = rng.integers(0, 65536, size=(12, 9, 3)).astype(np.uint16)
    path = tmp_path / "x.png"
    write_png16(path, image)
    eight = iio.imread(path, plugin="pillow")
    np.testing.assert_array_equal(eight, image >> 8)


def test_eight_bit_and_grey_files_still_go_through_pillow(rng, tmp_path):
    grey16 = rng.integers(0, 65536, size=(10, 11)).astype(np.uint16)
    rgb8 = rng.integers(0, 256, size=(10, 11, 3)).astype(np.uint8)
    for name, image in (("g.png", grey16), ("c.png", rgb8)):
        write_image(tmp_path / name, image)
        assert not is_16bit_colour_png(tmp_path / name)
        np.testing.assert_array_equal(read_image_raw(tmp_path / name), image)


def test_corrupt_data_is_an_oserror(rng, tmp_path):
    path = tmp_path / "x.png"
    write_png16(path, rng.integers(0, 65536, size=(8, 8, 3)).astype(np.uint16))
    blob = bytearray(path.read_bytes())
    start = blob.index(b"IDAT") + 4
    blob[start:start + 20] = b"\x00" * 20
    path.write_bytes(bytes(blob))
    with pytest.raises(OSError):
        read_png16(path)
    path.write_bytes(bytes(blob[:60]))
    with pytest.raises(OSError):
        read_png16(path)


def test_interlaced_files_are_refused(tmp_path):
    header = struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 1)
    body = b"IHDR" + header
    blob = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + body
            + struct.pack(">I", zlib.crc32(body)))
    path = tmp_path / "i.png"
    path.write_bytes(blob)
    with pytest.raises(OSError, match="interlaced"):
        read_png16(path)
