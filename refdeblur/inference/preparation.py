"""Steps 1 to 3 of deblurring: float values, colour planes and luminance, window.

The image enters as the user's array and leaves as float64 colour planes, an
alpha plane set aside, the luminance the kernel is estimated on, and the
most textured window of that luminance (derivations/inference.md, steps 1
to 3). :func:`merge_channels` and the restorer of :func:`to_unit_float` undo
the first two steps on the deblurred planes.
"""

import numpy as np

from ..image_io import RGB_TO_GRAY_WEIGHTS, as_float_image

__all__ = ["SATURATION_MARGIN", "to_unit_float", "split_channels", "merge_channels",
           "luminance", "textured_window", "unsaturated"]

#: Pixels within this distance of 0 or 1 count as saturated: they carry no
#: reliable blur information.
SATURATION_MARGIN = 0.02


def to_unit_float(image):
    """A float64 copy of the image in [0, 1] and a function undoing the conversion.

    Parameters
    ----------
    image : array_like
        uint8, uint16 (any unsigned integer type) or float in [0, 1].

    Returns
    -------
    as_float : ndarray
        float64 (:func:`refdeblur.image_io.as_float_image`, MATLAB
        ``im2double``).
    restore : callable
        Takes a float result of the same layout and returns it clipped to
        [0, 1] in the input's type: integers rounded to the nearest level,
        float32 and float64 kept, other floats as float64.

    Raises
    ------
    ValueError
        Empty, boolean, signed-integer or non-numeric images, NaN or Inf,
        and float images clearly outside [0, 1] (below -0.5 or above 1.5).
    """
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError("the image is empty")
    if image.dtype == bool:
        raise ValueError("boolean images cannot be deblurred")
    if np.issubdtype(image.dtype, np.signedinteger):
        raise ValueError(f"signed integer images ({image.dtype}) are not "
                         f"supported; convert to float in [0, 1]")
    if np.issubdtype(image.dtype, np.unsignedinteger):
        scale = float(np.iinfo(image.dtype).max)
        dtype = image.dtype

        def restore(result):
            return np.round(np.clip(result, 0.0, 1.0) * scale).astype(dtype)
        return as_float_image(image, dtype=np.float64), restore
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"unsupported image data type {image.dtype}")
    if not np.all(np.isfinite(image)):
        raise ValueError("the image contains NaN or Inf values")
    low, high = float(image.min()), float(image.max())
    if low < -0.5 or high > 1.5:
        raise ValueError(f"float images must hold values in [0, 1] "
                         f"(found {low:.4g} to {high:.4g}); divide by the "
                         f"white level first")
    dtype = image.dtype if image.dtype in (np.float32, np.float64) else np.float64

    def restore(result):
        return np.clip(result, 0.0, 1.0).astype(dtype, copy=False)
    return as_float_image(image, dtype=np.float64), restore


def split_channels(image, channel_axis):
    """Colour planes ``(C, H, W)`` and the alpha plane (or None) of an image.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` grey, or 3-D with 1 to 4 channels (grey, grey + alpha,
        RGB, RGBA) on ``channel_axis``.
    channel_axis : int or None
        Axis of the channels; ``None`` for a grey image.

    Returns
    -------
    planes : ndarray of shape (C, H, W)
        A view of the colour channels.
    alpha : ndarray of shape (H, W) or None

    Raises
    ------
    ValueError
        If the number of dimensions does not match ``channel_axis`` or there
        are more than 4 channels.
    """
    if channel_axis is None:
        if image.ndim != 2:
            raise ValueError(f"expected a 2-D grey image, got shape "
                             f"{image.shape}; pass channel_axis for colour")
        return image[None], None
    if image.ndim != 3:
        raise ValueError(f"expected a 3-D colour image with channel_axis, "
                         f"got shape {image.shape}")
    planes = np.moveaxis(image, channel_axis, 0)
    n_channels = planes.shape[0]
    if n_channels in (2, 4):          # grey + alpha, RGBA
        return planes[:-1], planes[-1]
    if n_channels in (1, 3):
        return planes, None
    raise ValueError(f"expected 1 to 4 channels on axis {channel_axis}, got "
                     f"{n_channels}")


def merge_channels(planes, alpha, channel_axis):
    """Undo :func:`split_channels`: alpha appended, channels back on their axis.

    Parameters
    ----------
    planes : ndarray of shape (C, H, W)
    alpha : ndarray of shape (H, W) or None
    channel_axis : int or None

    Returns
    -------
    ndarray
        ``(H, W)`` for ``channel_axis=None``, else 3-D with the channels on
        ``channel_axis``.
    """
    if alpha is not None:
        planes = np.concatenate([planes, alpha[None]])
    if channel_axis is None:
        return planes[0]
    return np.moveaxis(planes, 0, channel_axis)


def luminance(planes):
    """MATLAB ``rgb2gray`` of ``(C, H, W)`` colour planes; grey passes through.

    Weights :data:`refdeblur.image_io.RGB_TO_GRAY_WEIGHTS`.
    """
    if planes.shape[0] == 1:
        return planes[0]
    return np.tensordot(np.asarray(RGB_TO_GRAY_WEIGHTS), planes, axes=1)


def unsaturated(gray):
    """Mask of the pixels more than :data:`SATURATION_MARGIN` away from 0 and 1."""
    return (gray > SATURATION_MARGIN) & (gray < 1.0 - SATURATION_MARGIN)


def textured_window(gray, max_window):
    """Slices of the square window of side ``max_window`` with the most edges.

    Gradient energy of the unsaturated pixels is summed over a grid of
    candidate windows (steps of an eighth of the window); the best wins.

    Parameters
    ----------
    gray : ndarray of shape (H, W)
        Luminance in [0, 1].
    max_window : int or None
        Side of the window; ``None`` or a side of at least ``max(H, W)``
        gives the whole image.

    Returns
    -------
    tuple of slice
        ``(rows, cols)``; ``gray[rows, cols]`` is the window (the whole
        image's side where it is shorter than ``max_window``).

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.inference.preparation import textured_window
    >>> gray = np.full((64, 64), 0.5)
    >>> gray[40:50, 40:50] = 0.7                 # the only edges
    >>> textured_window(gray, 32)
    (slice(20, 52, None), slice(20, 52, None))
    """
    height, width = gray.shape
    if max_window is None or max(height, width) <= max_window:
        return slice(0, height), slice(0, width)
    side_h, side_w = min(height, max_window), min(width, max_window)
    step = max(1, max_window // 8)
    tops = np.array(sorted(set(range(0, height - side_h + 1, step)) | {height - side_h}))
    lefts = np.array(sorted(set(range(0, width - side_w + 1, step)) | {width - side_w}))
    rows = np.unique(np.concatenate([tops, tops + side_h]))
    integral = np.zeros((rows.size, width + 1))
    integral[:, 1:] = np.cumsum(_column_sums(gray, rows), axis=1)
    top_rows = np.searchsorted(rows, tops)
    bottom_rows = np.searchsorted(rows, tops + side_h)
    totals = (integral[np.ix_(bottom_rows, lefts + side_w)]
              - integral[np.ix_(top_rows, lefts + side_w)]
              - integral[np.ix_(bottom_rows, lefts)] + integral[np.ix_(top_rows, lefts)])
    # The first of the largest in row-major order, as a scan keeping only
    # strictly larger totals would find.
    best_top, best_left = np.unravel_index(np.argmax(totals), totals.shape)
    top, left = int(tops[best_top]), int(lefts[best_left])
    return slice(top, top + side_h), slice(left, left + side_w)


#: Rows of the image per block of :func:`_column_sums`: its buffers stay in
#: the core's cache, and no image-sized array is made.
_ROWS_PER_BLOCK = 64


def _column_sums(gray, rows):
    """Sums of the edge energy over the rows above each row in ``rows``, per column.

    Row ``k`` of the result is ``cumsum(energy, axis=0)[rows[k] - 1]`` (zeros
    for ``rows[k] = 0``), ``energy`` as :func:`_edge_energy` gives it. The
    running sum adds one row at a time, in the order of ``cumsum``, so the
    values are the same; a row is a vectorised addition, where ``cumsum``
    down the columns runs one element at a time.
    """
    height, width = gray.shape
    sums = np.zeros((rows.size, width), dtype=gray.dtype)
    running = np.zeros(width, dtype=gray.dtype)
    energy = np.empty((_ROWS_PER_BLOCK, width), dtype=gray.dtype)
    scratch = np.empty((_ROWS_PER_BLOCK, width), dtype=gray.dtype)
    wanted = {int(row): index for index, row in enumerate(rows)}
    for start in range(0, height, _ROWS_PER_BLOCK):
        stop = min(start + _ROWS_PER_BLOCK, height)
        _edge_energy(gray, start, stop, energy[:stop - start], scratch)
        for offset, row in enumerate(energy[:stop - start]):
            np.add(running, row, out=running)
            index = wanted.get(start + offset + 1)
            if index is not None:
                sums[index] = running
    return sums


def _edge_energy(gray, start, stop, out, scratch):
    """Rows ``start:stop`` of ``|dx| + |dy|`` on the unsaturated pixels, 0 elsewhere.

    Forward differences; those past the last row or column are 0.
    """
    rows = gray[start:stop]
    out[:, -1] = 0
    np.subtract(rows[:, 1:], rows[:, :-1], out=out[:, :-1])
    np.abs(out, out=out)
    with_row_below = min(stop, gray.shape[0] - 1) - start
    if with_row_below > 0:
        vertical = scratch[:with_row_below]
        np.subtract(gray[start + 1:start + 1 + with_row_below],
                    gray[start:start + with_row_below], out=vertical)
        out[:with_row_below] += np.abs(vertical, out=vertical)
    # x * 1 = x and x * 0 = 0 for the finite, non-negative energy
    np.multiply(out, unsaturated(rows), out=out)
