"""Minimal image reading helpers: files to float images in [0, 1].

Reading goes through ``imageio`` (a dependency of scikit-image) with the
plugin chosen from the file extension, so that an unreadable file raises a
plain ``OSError`` instead of imageio trying every legacy plugin in turn.
"""

import os
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from ._png16 import is_16bit_colour_png, read_png16, write_png16

__all__ = ["IMAGE_EXTENSIONS", "RGB_TO_GRAY_WEIGHTS", "read_image", "rgb_to_gray",
           "find_images", "read_image_raw", "write_image"]

#: File extensions :func:`find_images` collects (compared in lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif",
                    ".pgm", ".ppm", ".pnm", ".webp")

_TIFF_EXTENSIONS = (".tif", ".tiff")

#: Luma weights of MATLAB ``rgb2gray``: the first row of the inverse of the
#: NTSC YIQ matrix [[1, 0.956, 0.621], [1, -0.272, -0.647], [1, -1.106, 1.703]]
#: (rounded to 15 decimals, as in MATLAB's source). Their float64 sum is
#: 1 - 9e-16, so white maps to 0.9999999999999991, as in MATLAB.
RGB_TO_GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def read_image(path, *, as_gray=False):
    """Read an image file as float64 values in [0, 1].

    Parameters
    ----------
    path : str or os.PathLike
        Image file (PNG, JPEG, TIFF, BMP, ...). Multi-frame files (GIF,
        multi-page TIFF) give their first frame.
    as_gray : bool, optional
        Convert colour images to grey with :func:`rgb_to_gray` (alpha is
        dropped). Grey images are returned unchanged.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` for grey images (or with ``as_gray``), otherwise
        ``(H, W, C)``; float64. Unsigned integer images are divided by the
        maximum of their type (255 for uint8, 65535 for uint16), booleans
        become 0/1, floating-point images are returned as stored.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    OSError
        If the file cannot be decoded as an image.
    TypeError
        For signed-integer or other non-image data types.

    Examples
    --------
    >>> import os, skimage.data
    >>> from refdeblur.image_io import read_image
    >>> path = os.path.join(os.path.dirname(skimage.data.__file__), "camera.png")
    >>> img = read_image(path)
    >>> img.shape, img.dtype, float(img.max()) <= 1.0
    ((512, 512), dtype('float64'), True)
    """
    image = _to_unit_float(read_image_raw(path))
    if as_gray and image.ndim == 3:
        image = rgb_to_gray(image)
    return image


def _to_unit_float(raw):
    if raw.dtype == bool:
        return raw.astype(np.float64)
    if np.issubdtype(raw.dtype, np.unsignedinteger):
        return raw.astype(np.float64) / np.iinfo(raw.dtype).max
    if np.issubdtype(raw.dtype, np.floating):
        return raw.astype(np.float64)
    raise TypeError(f"unsupported image data type {raw.dtype}")


def rgb_to_gray(image, *, channel_axis=-1):
    """Grey values with MATLAB ``rgb2gray`` weights.

    Parameters
    ----------
    image : array_like
        Colour image with 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA)
        channels along ``channel_axis``. Alpha is dropped (not composited).
    channel_axis : int, optional
        Axis holding the channels (default last).

    Returns
    -------
    numpy.ndarray
        The image without the channel axis, float64:
        ``0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B``
        (see :data:`RGB_TO_GRAY_WEIGHTS`), or the grey channel itself.

    Raises
    ------
    ValueError
        If the channel axis does not have 1 to 4 entries.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.image_io import rgb_to_gray
    >>> rgb_to_gray(np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])).round(6)
    array([[0.298936, 0.114021]])
    """
    image = np.moveaxis(np.asarray(image, dtype=np.float64), channel_axis, -1)
    n_channels = image.shape[-1]
    if n_channels in (1, 2):
        return image[..., 0].copy()
    if n_channels in (3, 4):
        return image[..., :3] @ np.asarray(RGB_TO_GRAY_WEIGHTS)
    raise ValueError(f"expected 1 to 4 channels on axis {channel_axis}, got {n_channels}")


def find_images(folder, *, extensions=IMAGE_EXTENSIONS):
    """All image files below ``folder`` (recursive), in a deterministic order.

    Parameters
    ----------
    folder : str or os.PathLike
        Directory to search.
    extensions : iterable of str, optional
        File extensions to collect, with the dot; matched case-insensitively.

    Returns
    -------
    list of pathlib.Path
        Sorted by path relative to ``folder`` (as a POSIX string), so the
        order does not depend on the file system.

    Raises
    ------
    NotADirectoryError
        If ``folder`` is not a directory.

    Examples
    --------
    >>> import os, skimage.data
    >>> from refdeblur.image_io import find_images
    >>> paths = find_images(os.path.dirname(skimage.data.__file__))
    >>> any(p.name == "camera.png" for p in paths)
    True
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a directory: {folder}")
    wanted = {e.lower() for e in extensions}
    paths = [p for p in folder.rglob("*")
             if p.suffix.lower() in wanted and p.is_file()]
    return sorted(paths, key=lambda p: p.relative_to(folder).as_posix())


def write_image(path, image):
    """Write an image file atomically: a temporary file, then a rename.

    A failure (unwritable folder, full disk, unsupported format) leaves no
    partial file behind and never touches an existing file at ``path``
    (which is replaced only once the new file is complete).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; the extension picks the format (PNG, JPEG, TIFF, ...).
    image : ndarray
        uint8 or uint16, ``(H, W)`` or ``(H, W, C)``. JPEG is written at
        quality 95 (8 bits only).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    folder = path.parent
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix,
                                         dir=folder)
    os.close(handle)
    try:
        _give_default_permissions(temporary)
        if suffix in _TIFF_EXTENSIONS:
            iio.imwrite(temporary, image, plugin="tifffile")
        elif suffix == ".png" and image.dtype == np.uint16 and image.ndim == 3:
            write_png16(temporary, image)
        else:
            kwargs = {"quality": 95} if suffix in (".jpg", ".jpeg") else {}
            if suffix in (".jpg", ".jpeg") and image.dtype != np.uint8:
                image = np.round(image / 257.0).astype(np.uint8)
            iio.imwrite(temporary, image, plugin="pillow", extension=suffix,
                        **kwargs)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_image_raw(path):
    """Read an image file keeping its stored data type (uint8, uint16, float).

    Multi-frame files give their first frame. Raises ``FileNotFoundError``
    or ``OSError`` as :func:`read_image` does.
    """
    path = Path(path)
    if path.suffix.lower() in _TIFF_EXTENSIONS:
        # tifffile's ``index`` selects a series (all pages); ``page`` one page.
        return iio.imread(path, plugin="tifffile", page=0)
    if path.is_file() and is_16bit_colour_png(path):
        return read_png16(path)
    return iio.imread(path, plugin="pillow", index=0)


def _give_default_permissions(path):
    """``mkstemp`` creates files readable by their owner only; give the file
    the permissions a plainly created one would have (0666 minus umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
