"""Refinement of the network's kernel by alternating minimisation (step 6b).

The network's kernels are blob-like: an L2-trained regressor answers the
conditional mean, which smears the thin trajectory of a camera shake
(``refdeblur/models/README.md``). This module sharpens such an estimate
with the classical alternating scheme of Cho and Lee (SIGGRAPH Asia 2009)
and Xu and Jia (ECCV 2010), started from the network's kernel and confined
to the neighbourhood of its support:

1. latent image: non-blind deconvolution with the current kernel, with a
   quadratic gradient prior (one Fourier-domain solve) in the first
   alternations and the sparse hyper-Laplacian prior in the last (A1);
2. edge selection: keep only the strongest gradients of that image (A2);
3. kernel: regularised least squares between the selected sharp gradients
   and the blurry image's gradients, over the pixels whose blur is fully
   observed ('valid' convolution, A3 to A6), one m² x m² solve split in
   two by the kernel's point symmetry (A9);
4. projection: non-negative, small values and mass outside the network's
   (dilated) support removed, sum 1, centred (A7).

For the multi-scale networks (25 and 33 px), :func:`refine_coarse_to_fine`
runs these alternations at every scale of the network's pyramid, coarse to
fine, each scale starting from the refined kernel of the one below (A8).

This step is not in the paper: ``derivations/kernel_refinement.md`` derives
it, says why it was added and gives the measurements that chose its
parameters (synthetic held-out pairs, then Levin et al.'s benchmark).
"""

import numpy as np
import scipy.linalg
from numpy.lib.stride_tricks import as_strided
from scipy.ndimage import binary_dilation

from .._engine.fft import fast_length, irfft2, irfft2_rows, rfft2
from .._engine.threads import one_blas_thread
from ..deconvolution import PaddedImage
from ..kernels import center_kernel, resize_kernel
from ..layers.resample import imresize
from ..network import pyramid_shapes
from .preparation import textured_window

__all__ = ["refine_kernel", "refine_coarse_to_fine", "refinement_mode", "refinement_window",
           "solve_kernel",
           "gradient_gram", "gradients", "ValidConvolution", "REFINEMENT_DEFAULTS"]

#: Defaults of :func:`refine_kernel` (derivations/kernel_refinement.md, §4).
REFINEMENT_DEFAULTS = {
    "n_iter": 3,
    "n_sparse": 1,
    "quadratic_updates": 2,
    "edge_fraction": 0.05,
    "regularisation": 1e-3,
    "threshold": 0.05,
    "support_threshold": 0.05,
    "support_dilation": 1,
    "noise_std": 0.01,
    "max_window": "auto",
}

#: Sides of the refinement's window, the smallest holding ``WINDOW_WIDTHS``
#: kernel widths (derivations/kernel_refinement.md, §3).
WINDOW_SIDES = (256, 512)
WINDOW_WIDTHS = 15


def refinement_window(kernel_size):
    """Default side of the refinement's window for a kernel of this side (§3).

    The smallest of :data:`WINDOW_SIDES` that holds :data:`WINDOW_WIDTHS`
    kernel widths, else the largest: 256 px for 17 px kernels, 512 px for
    25 and 33 px. The cost of an alternation grows with the window's area;
    the kernel needs more observations the more pixels it has.

    Examples
    --------
    >>> from refdeblur.inference.refinement import refinement_window
    >>> [refinement_window(m) for m in (13, 17, 25, 33, 65)]
    [256, 256, 512, 512, 512]
    """
    wanted = WINDOW_WIDTHS * int(kernel_size)
    return next((side for side in WINDOW_SIDES if side >= wanted), WINDOW_SIDES[-1])


def _window_side(max_window, kernel_size):
    """``max_window`` as given, or :func:`refinement_window` for ``'auto'``."""
    if isinstance(max_window, str):
        if max_window != "auto":
            raise ValueError(f"max_window must be an int, None or 'auto', got {max_window!r}")
        return refinement_window(kernel_size)
    return max_window


def gradients(image):
    """Forward differences along columns and rows, zero in the last column/row (A2).

    Parameters
    ----------
    image : ndarray of shape (H, W)

    Returns
    -------
    along_cols, along_rows : ndarray of shape (H, W)
        ``image[:, j+1] - image[:, j]`` and ``image[i+1] - image[i]``.
    """
    along_cols = np.zeros_like(image)
    along_rows = np.zeros_like(image)
    along_cols[:, :-1] = image[:, 1:] - image[:, :-1]
    along_rows[:-1, :] = image[1:, :] - image[:-1, :]
    return along_cols, along_rows


class ValidConvolution:
    """The linear map ``k -> valid(p * k)`` of an m x m kernel, and its adjoint.

    ``p`` is fixed (a sharp gradient image, ``H x W``); the output has shape
    ``(H - m + 1, W - m + 1)`` and equals
    ``scipy.signal.fftconvolve(p, k, mode="valid")`` (A3). The transform of
    ``p`` is computed once and shared by every application.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        The fixed factor ``p``.
    size : int
        Kernel side ``m`` (``m <= min(H, W)``).
    """

    def __init__(self, image, size):
        image = np.asarray(image, dtype=np.float64)
        self.size = int(size)
        self.image_shape = image.shape
        self.output_shape = (image.shape[0] - self.size + 1, image.shape[1] - self.size + 1)
        # Linear convolution of H x W with m x m fits in H + m - 1 (no wrap).
        self.grid = tuple(fast_length(n + self.size - 1) for n in image.shape)
        self._image_hat = rfft2(image, self.grid)

    def __call__(self, kernel):
        """``valid(p * k)``, shape ``output_shape`` (A3)."""
        m = self.size
        full = irfft2(self._image_hat * rfft2(kernel, self.grid), self.grid)
        return full[m - 1:self.image_shape[0], m - 1:self.image_shape[1]]

    def adjoint(self, residual):
        """``A^T r``: the m x m correlation of ``p`` with ``r`` (A3)."""
        m = self.size
        # corr(s) = sum_i p(i + s) r(i) for s in [0, m-1]^2, then flipped:
        # (A^T r)(j) = corr(m - 1 - j).
        corr = irfft2(np.conj(rfft2(residual, self.grid)) * self._image_hat, self.grid)
        return corr[:m, :m][::-1, ::-1]


def gradient_gram(sharp_gradients, size):
    """Normal matrix of the full convolutions ``k -> p_d * k`` (A5).

    ``G[j, j'] = sum_d sum_u p_d(u) p_d(u + j - j')``: the autocorrelation of
    the sharp gradients at the lags ``j - j'`` of two kernel pixels (row-
    major ``j``), computed once by FFT.

    Returns
    -------
    ndarray of shape (size**2, size**2)
        Symmetric positive semi-definite.
    """
    operators = [ValidConvolution(p, size) for p in sharp_gradients]
    return _gram_from_operators(operators, size)


def _gram_from_operators(operators, size):
    """(A5) from the spectra the operators already hold (no FFT of ``p`` again)."""
    m = size
    grid = operators[0].grid
    power = sum(np.abs(op._image_hat) ** 2 for op in operators)
    circular = irfft2(power, grid)                     # lag 0 at [0, 0]
    lags = np.arange(-(m - 1), m)
    autocorrelation = circular[np.ix_(lags % grid[0], lags % grid[1])]
    rows, cols = np.indices((m, m)).reshape(2, -1)
    return autocorrelation[rows[:, None] - rows[None, :] + m - 1,
                           cols[:, None] - cols[None, :] + m - 1]


def solve_kernel(sharp_gradients, blurry_gradients, size, regularisation):
    """Least-squares kernel between sharp and blurry gradient images (A4 to A6).

    Solves ``(G + beta I) k = sum_d A_d^T q_d`` (A6): ``A_d k =
    valid(p_d * k)``, ``q_d`` the blurry gradients on the pixels whose blur
    is fully observed, ``G`` the normal matrix of the *full* convolutions
    (:func:`gradient_gram`) and ``beta = regularisation * sum_d ||p_d||^2 /
    m^2`` (A4). ``G`` equals ``sum_d A_d^T A_d`` when the ``p_d`` vanish
    within ``m - 1`` px of the border; otherwise it also asks the blur of
    the border edges to be zero outside the image, a small bias that the
    projection (A7) and normalisation absorb (derivations/kernel_refinement.md, A5).
    ``G`` commutes with the reversal of the kernel, so the system splits
    into two of half the size, one for the kernel's point-symmetric part and
    one for its antisymmetric part (A9): the same solution for a quarter of
    the dense factorisation's work.

    Parameters
    ----------
    sharp_gradients, blurry_gradients : sequence of ndarray (H, W)
        ``p_d`` and ``q_d``, aligned as ``y = k * x`` (true convolution,
        kernel centre at ``(m // 2, m // 2)``).
    size : int
        Kernel side ``m`` (odd).
    regularisation : float
        ``beta`` relative to the sharp gradients' energy per kernel pixel.

    Returns
    -------
    ndarray (m, m)
        The unconstrained minimiser (may have negative values).
    """
    step = _KernelStep(blurry_gradients, size)
    return step.solve(sharp_gradients, regularisation)


class _KernelStep:
    """The kernel update (A4 to A6, A9) against fixed blurry gradients.

    The blurry gradients do not change between alternations, so their
    transforms are computed once here and reused by every :meth:`solve`.
    """

    def __init__(self, blurry_gradients, size):
        self.size = int(size)
        half = self.size // 2
        shape = blurry_gradients[0].shape
        # Linear convolution of H x W with m x m fits in H + m - 1 (no wrap).
        self.grid = tuple(fast_length(n + self.size - 1) for n in shape)
        observed = np.stack([q[half:q.shape[0] - half, half:q.shape[1] - half]
                             for q in blurry_gradients])
        self._blurry_hat = np.conj(rfft2(observed, self.grid))

    def solve(self, sharp_gradients, regularisation):
        """The unconstrained minimiser of (A4) for these sharp gradients, (m, m)."""
        m = self.size
        sharp_hat = rfft2(np.asarray(sharp_gradients), self.grid)
        # One inverse transform gives both the right-hand side (A6), as the
        # correlation of p_d with q_d, and the autocorrelation of (A5); the
        # sums over the directions d are written straight into its input.
        spectra = np.empty((2,) + sharp_hat.shape[1:], dtype=sharp_hat.dtype)
        np.multiply(self._blurry_hat[0], sharp_hat[0], out=spectra[0])
        power = _power(sharp_hat[0])
        for blurry_hat, direction_hat in zip(self._blurry_hat[1:], sharp_hat[1:]):
            spectra[0] += blurry_hat * direction_hat
            power += _power(direction_hat)
        spectra[1] = power
        # Only the lags |l| < m are read: the inverse's last pass runs on
        # those 2m - 1 rows alone (the same values as the whole transform).
        lags = np.arange(-(m - 1), m)
        correlation, circular = irfft2_rows(spectra, self.grid, lags % self.grid[0])
        rhs = correlation[m - 1:, :m][::-1, ::-1]                          # (A6)
        table = circular[:, lags % self.grid[1]]                            # (A5)
        table = 0.5 * (table + table[::-1, ::-1])   # a(l) = a(-l), exactly
        energy = float(table[m - 1, m - 1]) * m ** 2    # trace G = sum_d ||p_d||^2 m^2
        beta = regularisation * energy / m ** 4                              # (A4)
        return _solve_centrosymmetric(table, rhs, max(beta, 1e-12 * energy / m ** 2))


def _power(spectrum):
    """``|z|^2`` of a complex array, as ``z.real ** 2 + z.imag ** 2``."""
    power = np.square(spectrum.real)
    power += np.square(spectrum.imag)
    return power


def _lag_views(table):
    """The blocks of (A9) as strided views of the ``(2m-1)^2`` lag table.

    Kernel pixel ``i`` at row ``r`` and column ``c`` (row-major, ``n = m^2``
    pixels). For the first ``m // 2 + 1`` kernel rows, which hold the first
    half of the pixels and the centre, returns the ``(R, m, R, m)`` views
    ``same[r, c, r', c'] = G[i, i'] = a(r - r', c - c')`` and
    ``mirrored[r, c, r', c'] = G[i, n - 1 - i'] = a(r + r' - (m-1), c + c' -
    (m-1))``: the matrix entries read straight from the table, with no
    index arrays (a Toeplitz and a Hankel pattern in each direction).
    """
    m = (table.shape[0] + 1) // 2
    kept = m // 2 + 1
    row, col = table.strides
    same = as_strided(table[m - 1:, m - 1:], shape=(kept, m, kept, m),
                      strides=(row, col, -row, -col), writeable=False)
    mirrored = as_strided(table, shape=(kept, m, kept, m), strides=(row, col, row, col),
                          writeable=False)
    return same, mirrored


def _solve_centrosymmetric(table, rhs, beta):
    """``(G + beta I) k = b`` for ``G[j, j'] = a(j - j')``, by (A9).

    ``table`` holds ``a`` at the lags ``[-(m-1), m-1]^2`` (``a(l) =
    a(-l)``), ``rhs`` is ``b`` as an m x m image; returns ``k`` (m x m).
    """
    m = rhs.shape[0]
    half = m * m // 2                            # the centre pixel's index
    same, mirrored = _lag_views(table)
    n_kept = same.shape[0] * m                   # pixels of the rows kept
    root_half = np.sqrt(0.5)
    # Symmetric part: basis (e_i + e_{n-1-i}) / sqrt 2 and e_centre.
    blocks = np.add(same, mirrored, out=np.empty(same.shape)).reshape(n_kept, n_kept)
    symmetric = np.ascontiguousarray(blocks[:half + 1, :half + 1])
    symmetric[half, :] *= root_half
    symmetric[:, half] *= root_half
    symmetric[np.diag_indices(half + 1)] += beta
    # Antisymmetric part: basis (e_i - e_{n-1-i}) / sqrt 2.
    blocks = np.subtract(same, mirrored, out=np.empty(same.shape)).reshape(n_kept, n_kept)
    antisymmetric = np.ascontiguousarray(blocks[:half, :half])
    antisymmetric[np.diag_indices(half)] += beta
    b = rhs.ravel()
    b_reversed = b[::-1]
    b_symmetric = (b[:half + 1] + b_reversed[:half + 1]) * root_half
    b_symmetric[half] *= root_half
    b_antisymmetric = (b[:half] - b_reversed[:half]) * root_half
    x_symmetric = _solve_spd(symmetric, b_symmetric)
    x_antisymmetric = _solve_spd(antisymmetric, b_antisymmetric)
    kernel = np.empty(m * m)
    kernel[:half] = (x_symmetric[:half] + x_antisymmetric) * root_half
    kernel[half] = x_symmetric[half]
    kernel[half + 1:] = ((x_symmetric[:half] - x_antisymmetric) * root_half)[::-1]
    return kernel.reshape(m, m)


def _solve_spd(matrix, rhs):
    """Cholesky solve of a symmetric positive definite system (overwrites ``matrix``).

    ``matrix`` is C-contiguous and exactly symmetric, so its transpose is
    the same matrix in the column-major order LAPACK works in: handed over
    as that, it is factorised in place instead of first being copied to
    column-major order (a transposing copy, over a third of the
    factorisation's time at 545 unknowns).
    """
    if matrix.size == 0:
        return np.zeros(0)
    factor = scipy.linalg.cho_factor(matrix.T, overwrite_a=True, check_finite=False)
    return scipy.linalg.cho_solve(factor, rhs, check_finite=False)


def _latent_image(padded, kernel, noise_std, *, sparse, quadratic_updates):
    """(A1): the latent image under the sparse or the quadratic gradient prior, float64.

    ``padded`` is the blurry window as :class:`~refdeblur.deconvolution.PaddedImage`
    (float32), padded and transformed once for all the alternations.
    """
    if sparse:
        latent = padded.deconvolve(kernel.astype(np.float32), noise_std=noise_std)
    else:
        latent = padded.deconvolve(kernel.astype(np.float32), method="wiener",
                                   noise_std=noise_std, n_iter=int(quadratic_updates))
    return latent.astype(np.float64)


def _select_edges(gradients, fraction):
    """Keep the ``fraction`` of pixels with the largest gradient magnitude (A2).

    The threshold is the ``(1 - fraction)`` quantile of the squared
    magnitude, which orders the pixels as the magnitude does without a
    square root (up to rounding between exactly tied magnitudes). Any value
    between the two order statistics that the quantile interpolates keeps
    the same pixels as the upper one, so that order statistic is used: a
    third of the time of the magnitude's interpolated quantile.

    Returns the two kept gradient images as one ``(2, H, W)`` array.
    """
    along_cols, along_rows = gradients
    power = along_cols * along_cols + along_rows * along_rows
    rank = int(np.ceil((power.size - 1) * (1.0 - fraction)))
    keep = power >= np.partition(power.ravel(), rank)[rank]
    edges = np.empty((2,) + power.shape, dtype=power.dtype)
    np.multiply(along_cols, keep, out=edges[0])
    np.multiply(along_rows, keep, out=edges[1])
    return edges


def _support(kernel, threshold, dilation):
    """Where the refined kernel may put mass: the initial kernel's support, grown (A7)."""
    core = kernel >= threshold * kernel.max()
    if dilation > 0:
        core = binary_dilation(core, iterations=int(dilation))
    return core


def _project(kernel, support, threshold):
    """Non-negative, small values and mass off the support removed, sum 1, centred (A7)."""
    kernel = np.where(support, np.maximum(kernel, 0.0), 0.0)
    peak = kernel.max()
    if not peak > 0:
        return None
    kernel = np.where(kernel >= threshold * peak, kernel, 0.0)
    return center_kernel(kernel / kernel.sum())


@one_blas_thread()
def refine_kernel(image, kernel, *, n_iter=3, n_sparse=1, quadratic_updates=2,
                  edge_fraction=0.05, regularisation=1e-3, threshold=0.05,
                  support_threshold=0.05, support_dilation=1, noise_std=0.01,
                  max_window="auto"):
    """Sharpen a kernel estimate by alternating latent-image and kernel updates.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Blurry grey image in [0, 1] (the window the kernel was estimated on).
    kernel : ndarray of shape (m, m)
        Initial estimate (the network's): non-negative, odd side.
    n_iter : int, optional
        Alternations of latent image and kernel (A1 to A7).
    n_sparse : int, optional
        The last ``n_sparse`` alternations compute the latent image with
        the hyper-Laplacian prior; the earlier ones with the quadratic
        gradient prior, a tenth of the cost (A1). ``n_sparse >= n_iter``:
        the sparse prior throughout.
    quadratic_updates : int, optional
        Solves of the quadratic-prior latent image, each after
        re-estimating the unobserved border band (``n_iter`` of
        :func:`refdeblur.deconvolution.deconvolve`'s ``"wiener"`` method).
    edge_fraction : float, optional
        Share of the latent image's pixels whose gradients are kept (A2).
    regularisation : float, optional
        Tikhonov weight on the kernel relative to the edges' energy per
        kernel pixel (A4).
    threshold : float, optional
        Kernel values below this share of the maximum are set to zero (A7).
    support_threshold, support_dilation : float, int, optional
        The refined kernel may only use pixels within ``support_dilation``
        px of where the initial kernel exceeds ``support_threshold`` of its
        maximum (A7): the network decides where the blur is, the
        refinement how it is distributed there.
    noise_std : float, optional
        Noise level given to the latent-image deconvolution (A1).
    max_window : int, None or 'auto', optional
        Refine on the most textured square of at most this side; ``None``:
        the whole image; ``'auto'`` (default): :func:`refinement_window` of
        the kernel's side (256 px for 17 px, 512 px for 25 and 33 px). One
        alternation costs a deconvolution of the window, so this bounds the
        time on large photos (derivations/kernel_refinement.md, §3).

    Returns
    -------
    ndarray of shape (m, m)
        float64, non-negative, sums to 1, centre of mass in the middle. The
        initial kernel (normalised) if the image has no usable edges.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import fftconvolve
    >>> from refdeblur import sample_kernel
    >>> from refdeblur.inference.refinement import refine_kernel
    >>> rng = np.random.default_rng(0)
    >>> sharp = (rng.random((24, 24)) > 0.5).repeat(6, 0).repeat(6, 1) * 1.0
    >>> true = sample_kernel(13, rng)
    >>> blurry = fftconvolve(sharp, true, mode="valid")
    >>> refined = refine_kernel(blurry, np.ones((13, 13)))
    >>> refined.shape, bool(np.isclose(refined.sum(), 1.0))
    ((13, 13), True)
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    size = kernel.shape[0]
    if (image.ndim != 2 or kernel.ndim != 2 or kernel.shape[1] != size
            or size % 2 == 0):
        raise ValueError("refine_kernel needs a grey image and a square, odd kernel")
    if not (np.all(np.isfinite(kernel)) and kernel.min() >= 0 and kernel.sum() > 0):
        raise ValueError("the initial kernel must be finite, non-negative and non-zero")
    if min(image.shape) < 2 * size:
        raise ValueError(f"the image ({image.shape[0]}x{image.shape[1]} px) is too "
                         f"small to refine a {size} px kernel")
    if not 0 < edge_fraction <= 1:
        raise ValueError(f"edge_fraction must be in (0, 1], got {edge_fraction!r}")
    if int(n_iter) < 0 or int(n_sparse) < 0 or int(quadratic_updates) < 1:
        raise ValueError(f"need n_iter >= 0, n_sparse >= 0 and quadratic_updates >= 1, "
                         f"got {n_iter}, {n_sparse} and {quadratic_updates}")
    max_window = _window_side(max_window, size)
    if max_window is not None and max(image.shape) > max_window:
        rows, cols = textured_window(image, max(int(max_window), 2 * size))
        image = image[rows, cols]
    kernel = kernel / kernel.sum()
    support = _support(kernel, support_threshold, support_dilation)
    kernel_step = _KernelStep(gradients(image), size)                     # (A3)
    padded = PaddedImage(image.astype(np.float32), (size, size))
    current = kernel
    n_iter, n_sparse = int(n_iter), int(n_sparse)
    for alternation in range(n_iter):
        latent = _latent_image(padded, current, noise_std,                    # (A1)
                               sparse=alternation >= n_iter - n_sparse,
                               quadratic_updates=quadratic_updates)
        edges = _select_edges(gradients(latent), edge_fraction)           # (A2)
        if not any(np.any(e) for e in edges):
            break
        solved = kernel_step.solve(edges, regularisation)                   # (A4-A6, A9)
        projected = _project(solved, support, threshold)                    # (A7)
        if projected is None:
            break
        current = projected
    return current


@one_blas_thread()
def refine_coarse_to_fine(image, kernel, scale_sizes, *, max_window="auto", finer_n_iter=None,
                          **options):
    """Refine a multi-scale network's kernel from its coarsest scale up (A8).

    Scale ``j`` of the network sees the image resized by ``m_j / m_J``
    (``m_j`` the kernel side of scale ``j``, ``m_J`` the finest; the
    network's pyramid, ``Network.scale_shapes``). The coarsest scale is
    refined from the network's own kernel there (:func:`refine_kernel`);
    every finer scale from the refined kernel of the scale below, resized
    to ``m_j`` px (:func:`resize_kernel`), whose support it then keeps
    (A7). A blur too large to refine reliably at full resolution is a
    small one at the coarse scales, where the refinement does well
    (derivations/kernel_refinement.md, §5). With a single scale this is
    :func:`refine_kernel`.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Blurry grey image in [0, 1] at the finest scale.
    kernel : ndarray of shape (m_0, m_0)
        The network's kernel at its coarsest scale (non-negative).
    scale_sizes : sequence of int
        Kernel sides of the scales, coarse to fine: odd, increasing,
        the first ``m_0``.
    max_window : int, None or 'auto', optional
        Refine on the most textured square of at most this side of the
        finest scale, and on that square resized at the coarser scales;
        ``None``: the whole image; ``'auto'`` (default):
        :func:`refinement_window` of the finest kernel side.
    finer_n_iter : int, optional
        Alternations at every scale but the coarsest, which starts from an
        already refined kernel (default: ``n_iter``, as at the coarsest).
    **options
        Keyword arguments of :func:`refine_kernel` (all but
        ``max_window``), used at every scale.

    Returns
    -------
    ndarray of shape (m_J, m_J)
        float64, non-negative, sums to 1, centre of mass in the middle.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import fftconvolve
    >>> from refdeblur import sample_kernel
    >>> from refdeblur.inference.refinement import refine_coarse_to_fine
    >>> rng = np.random.default_rng(0)
    >>> sharp = (rng.random((30, 30)) > 0.5).repeat(6, 0).repeat(6, 1) * 1.0
    >>> true = sample_kernel(25, rng)
    >>> blurry = fftconvolve(sharp, true, mode="valid")
    >>> refined = refine_coarse_to_fine(blurry, np.ones((17, 17)), (17, 25))
    >>> refined.shape, bool(np.isclose(refined.sum(), 1.0))
    ((25, 25), True)
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    sizes = [int(m) for m in scale_sizes]
    if (image.ndim != 2 or not sizes or kernel.shape != (sizes[0], sizes[0])
            or any(m % 2 == 0 for m in sizes)
            or any(a >= b for a, b in zip(sizes, sizes[1:]))):
        raise ValueError(f"refine_coarse_to_fine needs a grey image, odd increasing "
                         f"scale sizes and a kernel of the first size; got sizes "
                         f"{sizes} and a kernel of shape {kernel.shape}")
    finest = sizes[-1]
    if min(image.shape) < 2 * finest:
        raise ValueError(f"the image ({image.shape[0]}x{image.shape[1]} px) is too "
                         f"small to refine a {finest} px kernel")
    max_window = _window_side(max_window, finest)
    if max_window is not None and max(image.shape) > max_window:
        rows, cols = textured_window(image, max(int(max_window), 2 * finest))
        image = image[rows, cols]
    current = None
    for size, shape in zip(sizes, pyramid_shapes(image.shape, sizes)):    # the network's
        scaled = image if shape == image.shape else imresize(image, output_shape=shape)
        if current is None:
            current = refine_kernel(scaled, kernel, max_window=None, **options)
            continue
        finer = options if finer_n_iter is None else {**options, "n_iter": finer_n_iter}
        current = refine_kernel(scaled, resize_kernel(current, size),          # (A8)
                                max_window=None, **finer)
    return current


def refinement_mode(refine, model):
    """What step 6b does with this model's kernel.

    Parameters
    ----------
    refine : bool, dict or None
        The ``refine`` argument of :func:`refdeblur.estimate_kernel`.
    model : Network
        The network whose kernel is refined.

    Returns
    -------
    {'none', 'single_scale', 'coarse_to_fine'}
        ``'none'`` for ``refine`` False or None; ``'coarse_to_fine'``
        (:func:`refine_coarse_to_fine`) for a multi-scale network unless
        the dict says ``coarse_to_fine=False``; otherwise
        ``'single_scale'`` (:func:`refine_kernel` at the finest scale).
        Images smaller than twice the kernel are not refined whatever this
        says.
    """
    if refine is None or refine is False:
        return "none"
    coarse_to_fine = refine.get("coarse_to_fine", True) if isinstance(refine, dict) else True
    if coarse_to_fine and len(model.architecture.kernel_sizes) > 1:
        return "coarse_to_fine"
    return "single_scale"
