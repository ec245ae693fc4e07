"""Reading and writing image files, and the one conversion of images to float.

Reading goes through ``imageio`` (a dependency of scikit-image) with the
plugin chosen from the file extension, so that an unreadable file raises a
plain ``OSError`` instead of imageio trying every legacy plugin in turn.
16-bit PNG files go through ``imagecodecs`` (libpng): Pillow reads 16-bit
colour PNGs as 8-bit and cannot write them.

:func:`as_float_image` is the package's single policy for turning image
arrays into floating point; every module that accepts images calls it.
"""

import json
import os
import tempfile
from pathlib import Path

import imagecodecs
import imageio.v3 as iio
import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "RGB_TO_GRAY_WEIGHTS", "as_float_image", "read_image",
           "rgb_to_gray", "find_images", "read_image_raw", "write_image",
           "give_default_permissions"]

#: File extensions :func:`find_images` collects (compared in lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif",
                    ".pgm", ".ppm", ".pnm", ".webp")

_TIFF_EXTENSIONS = (".tif", ".tiff")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: zlib level of the 16-bit PNG files :func:`write_image` writes; with the Up
#: filter (difference to the row above) it compresses photographs well.
_PNG16_LEVEL = 6

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
        ``(H, W, C)``; float64 (:func:`as_float_image`): unsigned integer
        images are divided by the maximum of their type (255 for uint8,
        65535 for uint16), booleans become 0/1, floating-point images are
        returned as stored.

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
    raw = read_image_raw(path)
    if np.issubdtype(raw.dtype, np.signedinteger):
        raise TypeError(f"unsupported image data type {raw.dtype}")
    image = as_float_image(raw, dtype=np.float64)
    if as_gray and image.ndim == 3:
        image = rgb_to_gray(image)
    return image


def as_float_image(image, dtype=None):
    """An image as floating point: the package's one conversion policy.

    Integer values are divided by the maximum of their type, as MATLAB's
    ``im2double`` does (``uint8`` 255 becomes exactly 1.0); floating-point
    values are kept as they are.

    Parameters
    ----------
    image : array_like
        Image of any shape.
    dtype : {None, numpy.float32, numpy.float64}, optional
        Type of the result. By default float32 and float64 images keep
        their type, smaller floats (float16) become float32, and integer and
        boolean images become float64.

    Returns
    -------
    ndarray
        Same shape. Unsigned integers map to [0, 1] (divided by 255 for
        uint8, 65535 for uint16, ...); signed integers to [-1, 1] (divided
        by the type's maximum, the most negative value clipped to -1, as
        :func:`skimage.util.img_as_float`); booleans to 0 and 1; floats keep
        their values. The division is done in float64 and the result then
        cast to ``dtype``. The input itself is returned when it already has
        the result's type.

    Raises
    ------
    ValueError
        For data types that are not real numbers (complex, object, text).

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.image_io import as_float_image
    >>> as_float_image(np.array([0, 51, 255], dtype=np.uint8))
    array([0. , 0.2, 1. ])
    >>> as_float_image(np.array([0.5], dtype=np.float32)).dtype
    dtype('float32')
    """
    image = np.asarray(image)
    kind = image.dtype.kind
    if kind == "f":
        default = image.dtype if image.dtype.itemsize >= 4 else np.float32
        return image.astype(dtype or default, copy=False)
    if kind == "b":
        return image.astype(dtype or np.float64)
    if kind in "ui":
        scaled = image.astype(np.float64) / np.iinfo(image.dtype).max
        if kind == "i":
            np.maximum(scaled, -1.0, out=scaled)
        return scaled.astype(dtype or np.float64, copy=False)
    raise ValueError(f"image must be a real-valued array, got dtype {image.dtype}")


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
        uint8 or uint16, ``(H, W)`` or ``(H, W, C)`` with C = 1 to 4
        (grey, grey + alpha, RGB, RGBA). uint16 PNG files keep 16 bits per
        sample; JPEG is written at quality 95 (8 bits only).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    folder = path.parent
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix,
                                         dir=folder)
    os.close(handle)
    try:
        give_default_permissions(temporary)
        if suffix in _TIFF_EXTENSIONS:
            iio.imwrite(temporary, image, plugin="tifffile")
        elif suffix == ".png" and image.dtype == np.uint16:
            with open(temporary, "wb") as stream:
                stream.write(imagecodecs.png_encode(np.ascontiguousarray(image),
                                                    level=_PNG16_LEVEL,
                                                    filter=imagecodecs.PNG.FILTER.UP))
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

    Multi-frame files give their first frame. 16-bit PNG files (grey, grey
    + alpha, RGB, RGBA) are read with all 16 bits.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    OSError
        If the file cannot be decoded; the message is one line.
    """
    path = Path(path)
    if path.suffix.lower() in _TIFF_EXTENSIONS:
        # tifffile's ``index`` selects a series (all pages); ``page`` one page.
        return iio.imread(path, plugin="tifffile", page=0)
    if path.is_file() and _png_bit_depth(path) == 16:
        return _read_png16(path)
    return iio.imread(path, plugin="pillow", index=0)


def _png_bit_depth(path):
    """Bits per sample from a PNG file's header, or None if it is not a PNG."""
    with open(path, "rb") as stream:
        head = stream.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24]


def _read_png16(path):
    try:
        return imagecodecs.png_decode(Path(path).read_bytes())
    except Exception as error:   # libpng reports corrupt data in several types
        reason = str(error).splitlines()[0] if isinstance(error, imagecodecs.PngError) else ""
        raise OSError("corrupt or truncated 16-bit PNG file"
                      + (f" ({reason})" if reason else "")) from None


def give_default_permissions(path):
    """Give a file the permissions a plainly created one would have.

    ``tempfile.mkstemp`` creates files readable by their owner only; a file
    written through a temporary one and renamed should look like any other
    (0666 minus the umask).

    Parameters
    ----------
    path : str or os.PathLike
        An existing file.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_json(path, document):
    """Write ``document`` as indented JSON, atomically; creates the folder.

    The file appears complete or not at all (written to a temporary file in
    the same folder, then renamed), with the permissions of a plainly
    created file.

    Parameters
    ----------
    path : pathlib.Path
        Destination.
    document : object
        Anything :func:`json.dump` accepts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        give_default_permissions(temporary)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=1)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
