"""Reading and writing 16-bit colour PNG files, which Pillow cannot do.

Pillow (the decoder imageio uses) reads 16-bit RGB and RGBA PNGs as 8-bit
and refuses to write them. This module handles exactly those files:
non-interlaced PNGs with 16 bits per sample and colour type 2 (RGB),
4 (grey + alpha) or 6 (RGBA). Everything else goes through Pillow.
"""

import struct
import zlib

import numpy as np

from ._png_numba import unfilter

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
#: Colour types this module decodes (16-bit only); Pillow handles 16-bit grey.
HANDLED_COLOUR_TYPES = (2, 4, 6)


def png_header(path):
    """``(width, height, bit_depth, colour_type, interlace)`` or None if not a PNG."""
    with open(path, "rb") as stream:
        head = stream.read(33)
    if len(head) < 33 or not head.startswith(_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return width, height, depth, colour, interlace


def is_16bit_colour_png(path):
    """True for a PNG this module must read (16-bit RGB, grey + alpha, RGBA)."""
    header = png_header(path)
    return header is not None and header[2] == 16 and header[3] in HANDLED_COLOUR_TYPES


def read_png16(path):
    """Decode a 16-bit colour PNG to a uint16 array ``(H, W, C)``.

    Raises
    ------
    OSError
        For interlaced, truncated or corrupt files.
    """
    with open(path, "rb") as stream:
        blob = stream.read()
    width, height, depth, colour, interlace = png_header(path)
    if interlace:
        raise OSError("interlaced 16-bit PNG files are not supported")
    channels = _CHANNELS[colour]
    position, chunks = len(_SIGNATURE), []
    while position + 8 <= len(blob):
        length, kind = struct.unpack(">I4s", blob[position:position + 8])
        body = blob[position + 8:position + 8 + length]
        if len(body) != length:
            raise OSError("truncated PNG file")
        if kind == b"IDAT":
            chunks.append(body)
        if kind == b"IEND":
            break
        position += 12 + length
    try:
        data = zlib.decompress(b"".join(chunks))
    except zlib.error as error:
        raise OSError(f"corrupt PNG image data ({error})") from None
    row_bytes = width * channels * 2
    if len(data) < height * (row_bytes + 1):
        raise OSError("truncated PNG image data")
    try:
        raw = unfilter(np.frombuffer(data, dtype=np.uint8), height, row_bytes,
                       channels * 2)
    except ValueError as error:
        raise OSError(f"corrupt PNG image data ({error})") from None
    return raw.view(">u2").reshape(height, width, channels).astype(np.uint16)


def write_png16(path, image):
    """Write a uint16 ``(H, W, C)`` image (C = 2, 3 or 4) as a 16-bit PNG.

    Rows use the Up filter (difference to the row above), which compresses
    photographs well and needs no per-pixel loop.
    """
    image = np.ascontiguousarray(image, dtype=np.uint16)
    height, width, channels = image.shape
    colour = {3: 2, 2: 4, 4: 6}[channels]
    rows = image.astype(">u2").view(np.uint8).reshape(height, width * channels * 2)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2                                      # Up
    filtered[:, 1:] = rows
    filtered[1:, 1:] -= rows[:-1]                           # modulo 256
    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    with open(path, "wb") as stream:
        stream.write(_SIGNATURE + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6))
                     + chunk(b"IEND", b""))
