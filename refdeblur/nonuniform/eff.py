"""The Efficient Filter Flow (EFF) model of spatially-varying blur (paper §6.3).

Hirsch, Sra, Schölkopf and Harmeling (CVPR 2010) approximate a blur that
changes across the image by overlapping patches, each blurred by its own
kernel:

    y = sum_r C_r^T ( k^(r) * (C_r Diag(w^(r)) x) )

where the windows ``w^(r)`` sum to one at every pixel, ``C_r`` crops the
patch rectangle of ``w^(r)`` widened by the kernel's half-width, ``*`` is a
true convolution and ``C_r^T`` adds the blurred patch back. With equal
kernels the model is one uniform convolution.

Derivation: derivations/eff.md; the code cites its equations ``(F1)``,
``(F2)``, ...

Conventions
-----------
* Kernels as everywhere in refdeblur: odd sides, centre at
  ``(m1 // 2, m2 // 2)``, convolution (not correlation).
* :func:`eff_blur` returns an image of the input's size ('same'); pixels
  outside the image count as zero (F3). For the blur of a photo, whose
  border pixels see the scene beyond the frame, use an image larger than
  the result by the kernel's half-width and crop (:meth:`PatchGrid.embedded`
  gives the matching grid of the larger domain).
* Patches are numbered row-major: ``r = i * cols + j`` for the patch in grid
  row ``i`` and column ``j``; the kernels are stacked in that order,
  ``(R, m1, m2)``.
* Colour: every function takes a keyword-only ``channel_axis``; the
  channels are blurred independently with the same kernels (the kernel
  adjoint sums over them).
"""

import numpy as np

from .._engine.fft import fast_length, irfft2, rfft2

__all__ = ["MIN_SPACING_PER_KERNEL", "PatchGrid", "patch_grid", "EffOperator",
           "eff_blur", "eff_blur_adjoint", "eff_kernel_adjoint"]

#: The distance between neighbouring patch centres (the tile size) must be at
#: least this many kernel sizes on both axes (F4).
MIN_SPACING_PER_KERNEL = 2


# ---------------------------------------------------------------------------
# the windows


def _axis_windows(n, count, offset, length):
    """``count`` raised-cosine windows along an axis (F1).

    The windows belong to an image axis of ``n`` pixels cut into ``count``
    tiles; they are evaluated on ``length`` pixels of which pixel
    ``offset`` is the image's first. Returns the windows ``(count, length)``
    and the tile centres ``(count,)`` in the coordinates of those pixels.
    """
    spacing = n / count
    centres = offset + (np.arange(count) + 0.5) * spacing - 0.5
    position = np.arange(length, dtype=np.float64)
    windows = np.zeros((count, length))
    for j, centre in enumerate(centres):
        u = (position - centre) / spacing
        if j == 0:
            u = np.maximum(u, 0.0)       # flat out to the first border (F1)
        if j == count - 1:
            u = np.minimum(u, 0.0)       # and to the last
        inside = np.abs(u) < 1.0
        windows[j, inside] = np.cos(0.5 * np.pi * u[inside]) ** 2
    return windows, centres


def _spans(windows):
    """``[start, stop)`` of the nonzero part of each window, ``(count, 2)``."""
    spans = np.empty((len(windows), 2), dtype=np.int64)
    for j, window in enumerate(windows):
        nonzero = np.flatnonzero(window)
        spans[j] = nonzero[0], nonzero[-1] + 1
    return spans


class PatchGrid:
    """Overlapping windows that sum to one, and the patch rectangles (F1)-(F4).

    Made by :func:`patch_grid` (for an image) or :meth:`embedded` (for a
    larger domain around the image). Read-only by convention.

    Attributes
    ----------
    shape : tuple of int
        ``(H, W)`` of the domain the windows cover.
    grid : tuple of int
        ``(rows, cols)`` of patches; ``n_patches = rows * cols``.
    kernel_size : int
        The largest kernel side the patches have room for.
    margin : int
        ``kernel_size // 2``: how far a patch's blur reaches beyond its window.
    centres : ndarray of float, shape (R, 2)
        Row and column of every patch centre in pixels (pixel ``(0, 0)`` is
        the top-left pixel of the domain), row-major patch order.
    row_windows, col_windows : ndarray, shapes (rows, H) and (cols, W)
        The 1-D windows; ``w^(r)(i, j) = row_windows[r // cols, i] *
        col_windows[r % cols, j]`` (F2).
    supports : ndarray of int, shape (R, 4)
        ``row_start, row_stop, col_start, col_stop`` of the pixels where
        ``w^(r) > 0``.
    rects : ndarray of int, shape (R, 4)
        The rectangles of ``C_r``: the supports widened by ``margin`` on every
        side (F4). They may reach beyond the domain: those pixels read as
        zero and are dropped when patches are added back.
    patch_shape : tuple of int
        Shape of the largest rectangle; the arrays of :meth:`windowed_patches`
        and :meth:`crop_patches` have this shape, patch ``r`` in their
        top-left corner.
    """

    def __init__(self, shape, grid, kernel_size, row_windows, col_windows,
                 row_centres, col_centres):
        self.shape = tuple(int(n) for n in shape)
        self.grid = tuple(int(g) for g in grid)
        self.kernel_size = int(kernel_size)
        self.margin = self.kernel_size // 2
        self.row_windows = row_windows
        self.col_windows = col_windows
        rows, cols = self.grid
        self.centres = np.stack(np.meshgrid(row_centres, col_centres, indexing="ij"),
                                axis=-1).reshape(rows * cols, 2)
        row_spans, col_spans = _spans(row_windows), _spans(col_windows)
        self.supports = np.concatenate(
            [np.repeat(row_spans, cols, axis=0), np.tile(col_spans, (rows, 1))], axis=1)
        q = self.margin
        self.rects = self.supports + np.array([-q, q, -q, q])  # (F4)
        self.patch_shape = (int(np.max(self.rects[:, 1] - self.rects[:, 0])),
                            int(np.max(self.rects[:, 3] - self.rects[:, 2])))
        self._windows = {}

    @property
    def n_patches(self):
        """Number of patches ``R = rows * cols``."""
        return self.grid[0] * self.grid[1]

    def __repr__(self):
        return (f"PatchGrid(shape={self.shape}, grid={self.grid}, "
                f"kernel_size={self.kernel_size})")

    def window(self, r, power=1):
        """The window ``w^(r)`` on its support, shape of ``supports[r]`` (F2).

        ``power`` raises it element-wise (``0.5``: the square-root windows of
        a symmetric splitting, derivations/eff.md (F13)). The result is
        read-only and cached: all windows of one power together take about
        four times the memory of an image of the domain.
        """
        key = (int(r), float(power))
        if key not in self._windows:  # cached: iterative solvers ask again and again
            rows, cols = divmod(key[0], self.grid[1])
            r0, r1, c0, c1 = self.supports[r]
            window = np.outer(self.row_windows[rows, r0:r1] ** power,
                              self.col_windows[cols, c0:c1] ** power)
            window.flags.writeable = False
            self._windows[key] = window
        return self._windows[key]

    def embedded(self, offset, shape):
        """The same windows on a larger domain that contains this one.

        Parameters
        ----------
        offset : tuple of int
            ``(row, col)`` of this grid's pixel ``(0, 0)`` in the larger
            domain, ``>= 0``.
        shape : tuple of int
            ``(H', W')`` of the larger domain; it must contain this one.

        Returns
        -------
        PatchGrid
            Windows equal to these on this domain and, outside it, extended
            by the flat outer windows (F7); centres shifted by ``offset``.
        """
        top, left = (int(o) for o in offset)
        height, width = (int(n) for n in shape)
        if (top < 0 or left < 0 or top + self.shape[0] > height
                or left + self.shape[1] > width):
            raise ValueError(f"a domain of shape {(height, width)} with the image at "
                             f"{(top, left)} does not contain the image {self.shape}")
        row_windows, row_centres = _axis_windows(self.shape[0], self.grid[0], top, height)
        col_windows, col_centres = _axis_windows(self.shape[1], self.grid[1], left, width)
        return PatchGrid((height, width), self.grid, self.kernel_size, row_windows,
                         col_windows, row_centres, col_centres)

    # -- C_r, Diag(w^(r)) and their transposes ---------------------------------

    def _clipped(self, r):
        """Image slices of rectangle ``r`` inside the domain, and where they
        fall in the patch array."""
        top, bottom, left, right = self.rects[r]
        height, width = self.shape
        i0, i1 = max(top, 0), min(bottom, height)
        j0, j1 = max(left, 0), min(right, width)
        return ((slice(i0, i1), slice(j0, j1)),
                (slice(i0 - top, i1 - top), slice(j0 - left, j1 - left)))

    def _empty_patches(self, image, dtype, shape):
        dtype = np.result_type(image.dtype, np.float32) if dtype is None else dtype
        shape = self.patch_shape if shape is None else tuple(shape)
        if shape[0] < self.patch_shape[0] or shape[1] < self.patch_shape[1]:
            raise ValueError(f"patch arrays of shape {shape} cannot hold patches of "
                             f"{self.patch_shape}")
        return np.zeros((self.n_patches,) + shape, dtype=dtype)

    def windowed_patches(self, image, dtype=None, *, power=1, shape=None):
        """``C_r Diag(w^(r)) x`` for every patch, stacked (F3).

        Parameters
        ----------
        image : ndarray, shape ``self.shape``
        dtype : data-type, optional
            Of the result (default: the image's float type).
        power : float, optional
            Use the windows raised to this power (see :meth:`window`).
        shape : tuple of int, optional
            Shape of each patch array, at least ``patch_shape`` (the default),
            e.g. a transform size.

        Returns
        -------
        ndarray, shape ``(R,) + shape``
            Row ``t`` of patch ``r`` is image row ``rects[r, 0] + t`` (columns
            likewise); zero in the margins and beyond the rectangle.
        """
        image = np.asarray(image)
        out = self._empty_patches(image, dtype, shape)
        q = self.margin
        for r in range(self.n_patches):
            r0, r1, c0, c1 = self.supports[r]
            out[r, q:q + r1 - r0, q:q + c1 - c0] = (image[r0:r1, c0:c1]
                                                     * self.window(r, power))
        return out

    def crop_patches(self, image, dtype=None, *, shape=None):
        """``C_r x`` for every patch, stacked: the rectangles, zero outside the domain.

        Same layout and arguments as :meth:`windowed_patches`.
        """
        image = np.asarray(image)
        out = self._empty_patches(image, dtype, shape)
        for r in range(self.n_patches):
            inside, where = self._clipped(r)
            out[(r,) + where] = image[inside]
        return out

    def overlap_add(self, patches, *, windowed=False, power=1):
        """``sum_r C_r^T p_r``, or with ``windowed`` ``sum_r Diag(w^(r)) C_r^T p_r``.

        The transposes of :meth:`crop_patches` and :meth:`windowed_patches`.

        Parameters
        ----------
        patches : ndarray, shape ``(R, P, Q)`` with ``(P, Q) >= patch_shape``
            Patches in the layout of :meth:`windowed_patches`; entries beyond
            the rectangle are ignored.
        windowed : bool, optional
            Multiply each patch by its window (its support only).
        power : float, optional
            With ``windowed``, the windows raised to this power.

        Returns
        -------
        ndarray, shape ``self.shape``
        """
        out = np.zeros(self.shape, dtype=patches.dtype)
        q = self.margin
        for r in range(self.n_patches):
            if windowed:
                r0, r1, c0, c1 = self.supports[r]
                out[r0:r1, c0:c1] += (patches[r, q:q + r1 - r0, q:q + c1 - c0]
                                      * self.window(r, power))
            else:
                inside, where = self._clipped(r)
                out[inside] += patches[(r,) + where]
        return out


def patch_grid(image_shape, grid=(3, 3), *, kernel_size):
    """Overlapping windows that sum to one on an image, and their patches.

    Parameters
    ----------
    image_shape : tuple of int
        ``(H, W)``, or a longer shape whose first two entries are used
        (a colour image with the channels last).
    grid : tuple of int, optional
        ``(rows, cols)`` of patches.
    kernel_size : int
        Odd side of the largest local kernel.

    Returns
    -------
    PatchGrid

    Raises
    ------
    ValueError
        If the grid or kernel size is not a positive integer (odd for the
        kernel), or if the patches are closer than
        ``MIN_SPACING_PER_KERNEL * kernel_size`` pixels on an axis (a grid too
        fine for the kernel, or an image too small for it).

    Notes
    -----
    Each axis of ``n`` pixels is cut into ``g`` tiles of ``s = n / g`` pixels;
    the window of tile ``j`` is ``cos^2(pi u / 2)``, ``u = (i - t_j) / s``,
    on ``|u| < 1`` around the tile centre ``t_j`` and flat (1) from the
    outermost centres to the image border, so neighbouring windows overlap
    by 50 % and sum to one exactly (``cos^2 + sin^2 = 1``, F1). The 2-D
    windows are products of the 1-D ones (F2). Why this window: it is
    smooth (continuous slope, so the blur changes gradually between
    patches), the partition of unity holds by construction, not by a
    normalisation, and its support is compact (two tiles), which keeps the
    patches small; see derivations/eff.md §1.

    Examples
    --------
    >>> g = patch_grid((256, 384), (2, 3), kernel_size=25)
    >>> g.centres[:3].tolist()
    [[63.5, 63.5], [63.5, 191.5], [63.5, 319.5]]
    >>> g.patch_shape
    (216, 280)
    """
    shape = tuple(int(n) for n in tuple(image_shape)[:2])
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image_shape must start with two positive sides, got "
                         f"{image_shape}")
    grid = tuple(grid)
    if len(grid) != 2 or not all(isinstance(g, (int, np.integer)) and g >= 1 for g in grid):
        raise ValueError(f"grid must be two positive integers (rows, cols), got {grid}")
    if not (isinstance(kernel_size, (int, np.integer)) and kernel_size >= 1
            and kernel_size % 2 == 1):
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    minimum = MIN_SPACING_PER_KERNEL * int(kernel_size)  # (F4)
    if min(shape) < minimum:
        raise ValueError(f"an image of {shape[0]} x {shape[1]} px is too small for a "
                         f"{kernel_size}-px kernel: both sides must be at least "
                         f"{minimum} px")
    finest = (shape[0] // minimum, shape[1] // minimum)
    if grid[0] > finest[0] or grid[1] > finest[1]:
        raise ValueError(f"a {grid[0]} x {grid[1]} grid is too fine for a "
                         f"{kernel_size}-px kernel on a {shape[0]} x {shape[1]} image: "
                         f"patch centres must be at least {minimum} px apart, which "
                         f"allows at most {finest[0]} x {finest[1]} patches")
    row_windows, row_centres = _axis_windows(shape[0], grid[0], 0, shape[0])
    col_windows, col_centres = _axis_windows(shape[1], grid[1], 0, shape[1])
    return PatchGrid(shape, grid, kernel_size, row_windows, col_windows, row_centres,
                     col_centres)


# ---------------------------------------------------------------------------
# the operator


def _check_kernels(kernels, grid):
    kernels = np.asarray(kernels)
    if kernels.dtype.kind not in "fiu":
        raise ValueError(f"kernels must be real numbers, got dtype {kernels.dtype}")
    if kernels.ndim != 3 or kernels.shape[0] != grid.n_patches:
        raise ValueError(f"kernels must have shape (R, m, m) with R = {grid.n_patches} "
                         f"patches, got {kernels.shape}")
    m1, m2 = kernels.shape[1:]
    if m1 % 2 == 0 or m2 % 2 == 0:
        raise ValueError(f"kernel sides must be odd, got {kernels.shape[1:]}")
    if max(m1, m2) > grid.kernel_size:
        raise ValueError(f"kernels of {m1} x {m2} px are larger than the grid's "
                         f"kernel_size {grid.kernel_size}")
    if not np.all(np.isfinite(kernels)):
        raise ValueError("kernels contain NaN or Inf")
    return kernels


def _kernel_spectra(kernels, fft_shape, dtype):
    """Half spectra of the kernels with their centres moved to the origin (F5)."""
    n, m1, m2 = kernels.shape
    placed = np.zeros((n,) + tuple(fft_shape), dtype=dtype)
    placed[:, :m1, :m2] = kernels
    placed = np.roll(placed, (-(m1 // 2), -(m2 // 2)), axis=(1, 2))
    return rfft2(placed)


class EffOperator:
    """The EFF blur ``A`` of (F3) for fixed kernels, and its adjoint (F8).

    Holds the kernels' spectra on the patch FFT grid, so that repeated
    applications (an iterative solver) transform the kernels once.

    Parameters
    ----------
    grid : PatchGrid
    kernels : ndarray, shape (R, m1, m2)
        One kernel per patch, row-major patch order; odd sides no larger than
        ``grid.kernel_size``.
    dtype : {numpy.float64, numpy.float32}, optional
        Precision of the transforms.

    Attributes
    ----------
    grid : PatchGrid
    fft_shape : tuple of int
        Per-patch transform size, fast lengths ``>= grid.patch_shape`` (F5).
    """

    def __init__(self, grid, kernels, *, dtype=np.float64):
        kernels = _check_kernels(kernels, grid)
        self.grid = grid
        self.dtype = np.dtype(dtype)
        self.fft_shape = tuple(fast_length(n) for n in grid.patch_shape)
        self.spectra = _kernel_spectra(kernels.astype(self.dtype), self.fft_shape,
                                       self.dtype)  # (R, Fh, Fw // 2 + 1)

    def forward(self, image):
        """``A x``: the blurred image, zero outside the domain (F3), (F5).

        Parameters
        ----------
        image : ndarray, shape ``grid.shape``

        Returns
        -------
        ndarray, shape ``grid.shape``
        """
        spectra = rfft2(self.grid.windowed_patches(image, self.dtype, shape=self.fft_shape))
        spectra *= self.spectra
        return self.grid.overlap_add(irfft2(spectra, self.fft_shape))

    def adjoint(self, residual):
        """``A^T z``: correlate each rectangle with its kernel, then window (F8).

        Parameters
        ----------
        residual : ndarray, shape ``grid.shape``

        Returns
        -------
        ndarray, shape ``grid.shape``
        """
        spectra = rfft2(self.grid.crop_patches(residual, self.dtype, shape=self.fft_shape))
        spectra *= np.conj(self.spectra)
        return self.grid.overlap_add(irfft2(spectra, self.fft_shape), windowed=True)


# ---------------------------------------------------------------------------
# functions on images


def _planes(image, channel_axis):
    """``(C, H, W)`` view of a float image and a function putting planes back."""
    image = np.asarray(image)
    if image.dtype.kind not in "fiub":
        raise ValueError(f"image must be real numbers, got dtype {image.dtype}")
    if image.dtype.kind != "f":
        image = image.astype(np.float64)
    expected = 2 if channel_axis is None else 3
    if image.ndim != expected:
        layout = "(H, W)" if channel_axis is None else "3-D with channel_axis"
        raise ValueError(f"image must be {expected}-D {layout}, got shape {image.shape}")
    if channel_axis is None:
        return image[None], lambda planes: planes[0]
    axis = int(channel_axis)
    if not -3 <= axis < 3:
        raise ValueError(f"channel_axis {channel_axis} out of range for a 3-D image")
    return np.moveaxis(image, axis, 0), lambda planes: np.moveaxis(planes, 0, axis)


def _check_shape(grid, shape):
    if not isinstance(grid, PatchGrid):
        raise ValueError(f"grid must be a PatchGrid (see patch_grid), got "
                         f"{type(grid).__name__}")
    if tuple(shape) != grid.shape:
        raise ValueError(f"the grid covers {grid.shape}, the image is {tuple(shape)}")


def _apply(image, kernels, grid, channel_axis, adjoint):
    planes, restore = _planes(image, channel_axis)
    _check_shape(grid, planes.shape[1:])
    dtype = np.float32 if planes.dtype == np.float32 else np.float64
    operator = EffOperator(grid, kernels, dtype=dtype)
    apply = operator.adjoint if adjoint else operator.forward
    return restore(np.stack([apply(plane) for plane in planes]))


def eff_blur(image, kernels, grid, *, channel_axis=None):
    """Blur an image with one kernel per patch, the EFF model (F3).

    Parameters
    ----------
    image : ndarray
        ``(H, W)``, or 3-D with the colours on ``channel_axis``.
    kernels : ndarray, shape (R, m1, m2)
        One kernel per patch of ``grid`` (row-major order), odd sides, centre
        at ``(m1 // 2, m2 // 2)``, convolution convention.
    grid : PatchGrid
        From :func:`patch_grid` for this image's ``(H, W)``.
    channel_axis : int, optional
        Axis of the colour channels, each blurred with the same kernels.

    Returns
    -------
    ndarray
        The blurred image, shape of ``image`` ('same'; pixels outside the
        image count as zero); float32 for float32 input, else float64.

    Notes
    -----
    Each windowed patch is convolved by FFT on its own grid of fast lengths
    at least the patch rectangle, all patches in one batched transform, and
    added back (F5). With equal kernels the result equals
    ``scipy.signal.fftconvolve(image, k, mode="same")`` (F6).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import fftconvolve
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((96, 96))
    >>> g = patch_grid(x.shape, (2, 2), kernel_size=5)
    >>> k = np.full((4, 5, 5), 1 / 25)
    >>> bool(np.allclose(eff_blur(x, k, g), fftconvolve(x, k[0], mode="same")))
    True
    """
    return _apply(image, kernels, grid, channel_axis, adjoint=False)


def eff_blur_adjoint(residual, kernels, grid, *, channel_axis=None):
    """The adjoint of :func:`eff_blur` with respect to the image (F8).

    Parameters
    ----------
    residual : ndarray
        Shape of an image of ``grid``, colours on ``channel_axis`` if given.
    kernels : ndarray, shape (R, m1, m2)
    grid : PatchGrid
    channel_axis : int, optional

    Returns
    -------
    ndarray
        ``A^T z``, shape of ``residual``: per patch the rectangle correlated
        with the kernel, then windowed, and summed over patches.
    """
    return _apply(residual, kernels, grid, channel_axis, adjoint=True)


def eff_kernel_adjoint(image, residual, grid, kernel_size=None, *, channel_axis=None):
    """The adjoint of :func:`eff_blur` with respect to the kernels (F9).

    For the linear map ``k -> eff_blur(image, k, grid)`` at a fixed image,
    the gradient of ``<residual, eff_blur(image, k, grid)>``.

    Parameters
    ----------
    image : ndarray
        The image that is blurred, ``(H, W)`` or with ``channel_axis``.
    residual : ndarray
        Shape of ``image``.
    grid : PatchGrid
    kernel_size : int, optional
        Odd side of the kernels (default ``grid.kernel_size``; at most that).
    channel_axis : int, optional
        The channels share the kernels: their contributions are summed.

    Returns
    -------
    ndarray, shape (R, kernel_size, kernel_size)
        Per patch, the windowed patch of ``image`` correlated with the
        rectangle of ``residual``, at the kernel's offsets.
    """
    m = grid.kernel_size if kernel_size is None else kernel_size
    if not (isinstance(m, (int, np.integer)) and 1 <= m <= grid.kernel_size and m % 2):
        raise ValueError(f"kernel_size must be odd and between 1 and the grid's "
                         f"{grid.kernel_size}, got {kernel_size}")
    planes, _ = _planes(image, channel_axis)
    residuals, _ = _planes(residual, channel_axis)
    if planes.shape != residuals.shape:
        raise ValueError(f"image {np.shape(image)} and residual {np.shape(residual)} "
                         f"differ in shape")
    _check_shape(grid, planes.shape[1:])
    dtype = np.float32 if planes.dtype == np.float32 else np.float64
    fft_shape = tuple(fast_length(n) for n in grid.patch_shape)
    half = m // 2
    out = np.zeros((grid.n_patches, m, m), dtype=dtype)
    for plane, z in zip(planes, residuals):
        patches = rfft2(grid.windowed_patches(plane, dtype, shape=fft_shape))
        spectra = rfft2(grid.crop_patches(z, dtype, shape=fft_shape))
        spectra *= np.conj(patches)
        correlation = irfft2(spectra, fft_shape)  # (R, Fh, Fw), offsets mod F
        # offsets -half..half, wrapped to the array's corners (F9)
        out += np.roll(correlation, (half, half), axis=(1, 2))[:, :m, :m]
    return out
