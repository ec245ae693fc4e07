"""Numba kernel of the 16-bit PNG reader: undoing the PNG row filters.

Pillow reads 16-bit colour PNGs as 8-bit, so :mod:`refdeblur._png16` decodes
them itself; the only loop that NumPy cannot vectorise is the reversal of the
per-row filters (Sub, Average and Paeth depend on the byte just restored).
The oracle in the tests is Pillow's decoder on 8-bit files, which run the
very same filter code with another byte count per pixel.
"""

import numba
import numpy as np


@numba.njit(cache=True)
def _paeth(left, up, up_left):
    estimate = left + up - up_left
    to_left = abs(estimate - left)
    to_up = abs(estimate - up)
    to_up_left = abs(estimate - up_left)
    if to_left <= to_up and to_left <= to_up_left:
        return left
    if to_up <= to_up_left:
        return up
    return up_left


@numba.njit(cache=True)
def unfilter(data, height, row_bytes, bytes_per_pixel):
    """Reverse the PNG filters of ``height`` rows of ``row_bytes`` bytes.

    Parameters
    ----------
    data : ndarray of uint8
        The decompressed image data: per row a filter-type byte, then the
        filtered row.
    height, row_bytes, bytes_per_pixel : int

    Returns
    -------
    ndarray of uint8, shape (height, row_bytes)
        The raw rows. Raises ``ValueError`` on an unknown filter type.
    """
    out = np.zeros((height, row_bytes), dtype=np.uint8)
    prior = np.zeros(row_bytes, dtype=np.int64)
    for y in range(height):
        start = y * (row_bytes + 1)
        kind = data[start]
        row = data[start + 1:start + 1 + row_bytes]
        for x in range(row_bytes):
            left = np.int64(out[y, x - bytes_per_pixel]) if x >= bytes_per_pixel else 0
            up = prior[x]
            if kind == 0:
                predicted = 0
            elif kind == 1:
                predicted = left
            elif kind == 2:
                predicted = up
            elif kind == 3:
                predicted = (left + up) // 2
            elif kind == 4:
                up_left = prior[x - bytes_per_pixel] if x >= bytes_per_pixel else 0
                predicted = _paeth(left, up, up_left)
            else:
                raise ValueError("unknown PNG filter type")
            out[y, x] = (np.int64(row[x]) + predicted) & 0xFF
        for x in range(row_bytes):
            prior[x] = out[y, x]
    return out
