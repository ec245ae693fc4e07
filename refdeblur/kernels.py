"""Small operations on blur kernels: identity, centring, resizing, sharpening.

A kernel here is a square, odd-sided, non-negative array that sums to 1,
its centre at ``(m // 2, m // 2)``, in the convolution convention
``blurry = scipy.signal.convolve2d(sharp, kernel)``.
"""

import numpy as np
from scipy.ndimage import gaussian_filter

from .layers.resample import imresize

__all__ = ["delta_kernel", "center_kernel", "resize_kernel", "kernel_border_mass",
           "sharpen_kernel"]


def delta_kernel(size, dtype=np.float64):
    """The identity blur: a single 1 in the centre of a ``size`` x ``size`` grid.

    Parameters
    ----------
    size : int
        Side of the kernel.
    dtype : data-type, optional
        Data type of the result (default float64).

    Returns
    -------
    ndarray of shape (size, size)

    Examples
    --------
    >>> from refdeblur.kernels import delta_kernel
    >>> delta_kernel(3)
    array([[0., 0., 0.],
           [0., 1., 0.],
           [0., 0., 0.]])
    """
    kernel = np.zeros((size, size), dtype=dtype)
    kernel[size // 2, size // 2] = 1.0
    return kernel


def center_kernel(kernel):
    """Shift a kernel by whole pixels so its centre of mass is in the middle.

    A shifted kernel only shifts the deblurred image; centring keeps the
    result aligned with the input. Mass shifted out of the window is
    dropped and the kernel renormalised to sum 1.

    Parameters
    ----------
    kernel : array_like of shape (m_rows, m_cols)
        Non-negative kernel.

    Returns
    -------
    ndarray
        The centred kernel; the input itself if it has no mass or is
        already centred.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.kernels import center_kernel
    >>> kernel = np.zeros((5, 5)); kernel[0, 0] = 1.0
    >>> np.argwhere(center_kernel(kernel)).tolist()
    [[2, 2]]
    """
    kernel = np.asarray(kernel)
    total = kernel.sum()
    if not total > 0:
        return kernel
    m_rows, m_cols = kernel.shape
    rows, cols = np.indices(kernel.shape)
    shift_r = int(round(m_rows // 2 - float((rows * kernel).sum() / total)))
    shift_c = int(round(m_cols // 2 - float((cols * kernel).sum() / total)))
    if shift_r == 0 and shift_c == 0:
        return kernel
    shifted = np.zeros_like(kernel)
    src_r = slice(max(0, -shift_r), m_rows - max(0, shift_r))
    dst_r = slice(max(0, shift_r), m_rows - max(0, -shift_r))
    src_c = slice(max(0, -shift_c), m_cols - max(0, shift_c))
    dst_c = slice(max(0, shift_c), m_cols - max(0, -shift_c))
    shifted[dst_r, dst_c] = kernel[src_r, src_c]
    return shifted / shifted.sum()


def resize_kernel(kernel, size):
    """A kernel resized to ``size`` x ``size``, for the next finer scale.

    MATLAB-style cubic ``imresize`` (:func:`refdeblur.layers.resample.
    imresize`), negative lobes clipped, sum 1, centred. The image pyramid
    shrinks by ``m_j / m_J``, so a blur of ``m_j`` px at scale ``j`` is one
    of ``m_{j+1}`` px at scale ``j + 1`` (derivations/kernel_refinement.md,
    A8).

    Parameters
    ----------
    kernel : array_like of shape (m, m)
        Non-negative kernel.
    size : int
        Side of the result.

    Returns
    -------
    ndarray of shape (size, size)
        float64, sums to 1, centred; a delta kernel if nothing positive
        survives the resize.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.kernels import delta_kernel, resize_kernel
    >>> resized = resize_kernel(np.ones((17, 17)), 25)
    >>> resized.shape, bool(np.isclose(resized.sum(), 1.0))
    ((25, 25), True)
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.shape != (size, size):
        kernel = np.maximum(imresize(kernel, output_shape=(size, size)), 0.0)
    total = kernel.sum()
    if not total > 0:
        return delta_kernel(size)
    return center_kernel(kernel / total)


def kernel_border_mass(kernel, width=1):
    """Share of the kernel's mass in its outer ring of ``width`` pixels.

    Parameters
    ----------
    kernel : array_like of shape (m, m)
        Non-negative kernel.
    width : int, optional
        Width of the ring in pixels.

    Returns
    -------
    float
        In [0, 1]; 0 for a kernel without mass.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.kernels import kernel_border_mass
    >>> kernel_border_mass(np.ones((3, 3)))
    0.8888888888888888
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    total = kernel.sum()
    if not total > 0:
        return 0.0
    inner = kernel[width:-width, width:-width].sum()
    return float((total - inner) / total)


def sharpen_kernel(kernel, sigma, *, regularisation=1e-3):
    """Deconvolve a kernel with a small Gaussian (paper §6, 33 px network).

    A Wiener quotient in the Fourier domain on a grid twice the kernel's
    size (so nothing wraps around), then negative values set to zero and
    the sum normalised to 1.

    Parameters
    ----------
    kernel : array_like of shape (m, m)
        Non-negative kernel that sums to 1.
    sigma : float
        Standard deviation of the Gaussian in px; ``<= 0`` returns the
        kernel unchanged.
    regularisation : float, optional
        Added to the Gaussian's power spectrum in the Wiener quotient.

    Returns
    -------
    ndarray of shape (m, m)
        float64, non-negative, sums to 1 (the input if nothing positive
        is left).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.ndimage import gaussian_filter
    >>> from refdeblur.kernels import delta_kernel, sharpen_kernel
    >>> blurred = gaussian_filter(delta_kernel(9), 0.5)
    >>> bool(sharpen_kernel(blurred, 0.5).max() > blurred.max())
    True
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if sigma <= 0:
        return kernel
    size = kernel.shape[0]
    grid = 2 * size
    gaussian = gaussian_filter(delta_kernel(size), sigma, mode="constant")
    gaussian /= gaussian.sum()

    def transfer(small):
        padded = np.zeros((grid, grid))
        padded[:size, :size] = small
        return np.fft.rfft2(np.roll(padded, (-(size // 2), -(size // 2)), (0, 1)))

    g_hat = transfer(gaussian)
    quotient = transfer(kernel) * np.conj(g_hat) / (np.abs(g_hat) ** 2 + regularisation)
    sharp = np.roll(np.fft.irfft2(quotient, s=(grid, grid)),
                    (size // 2, size // 2), (0, 1))[:size, :size]
    sharp = np.maximum(sharp, 0.0)
    total = sharp.sum()
    return sharp / total if total > 0 else kernel
