"""Non-blind deconvolution under the Efficient Filter Flow model (paper §6.3).

The same objective as the uniform path (:mod:`refdeblur.deconvolution`), a
data term and a hyper-Laplacian prior on the gradients, with the uniform
convolution replaced by the EFF blur ``A`` of :mod:`refdeblur.nonuniform.eff`:

    min_x  lam/2 ||M (A x - y)||^2 + sum |D_x x|^alpha + |D_y x|^alpha

``x`` lives on a periodic grid larger than the image, ``M`` keeps the
observed pixels (the unknown-boundary model of the uniform path), and the
problem is solved by the same half-quadratic splitting. Its w-step is the
uniform one; its x-step has no closed form, because ``A^T A`` is not
diagonal in the Fourier domain (the kernels change across the image), and
is solved by preconditioned conjugate gradients, warm-started from the
previous step.

Derivation: derivations/eff.md §4, equations (F10) to (F14).
"""

import math

import numpy as np

from .._engine.deconvolution import shrink_divergence
from .._engine.fft import fast_length, irfft2, rfft2
from ..deconvolution import (MODEL_ERROR_STD, default_lam, estimate_noise_std,
                             shrink_threshold)
from ..image_io import as_float_image
from .eff import EffOperator, PatchGrid, patch_grid

__all__ = ["PRECONDITIONERS", "deconvolve_nonuniform"]

#: Preconditioners of the conjugate-gradient x-step (F13): ``"patch"``, one
#: Fourier solve per patch with its own kernel; ``"mean"``, one Fourier solve
#: of the whole grid with the mean kernel; ``None``, none.
PRECONDITIONERS = ("patch", "mean", None)


def _gradient_symbol(n):
    """``4 sin^2(pi w / n)``, the symbol of ``D^T D`` along an axis of ``n`` (D9)."""
    return 4.0 * np.sin(np.pi * np.arange(n) / n) ** 2


def _laplacian(x):
    """``D^T D x`` for circular forward differences (F11)."""
    out = 4.0 * x
    for axis in (0, 1):
        out -= np.roll(x, 1, axis=axis)
        out -= np.roll(x, -1, axis=axis)
    return out


class _Problem:
    """The padded grid, the EFF operator on it, and the x-step's pieces (F10)-(F13)."""

    def __init__(self, grid, kernels, pad, dtype, preconditioner):
        kernels = np.asarray(kernels, dtype=np.float64)
        height, width = grid.shape
        self.offset = (pad, pad)
        self.shape = (fast_length(height + 2 * pad), fast_length(width + 2 * pad))
        self.inside = (slice(pad, pad + height), slice(pad, pad + width))
        self.dtype = dtype
        self.operator = EffOperator(grid.embedded(self.offset, self.shape), kernels,
                                    dtype=dtype)  # (F7)
        self.preconditioner = preconditioner
        if preconditioner == "mean":
            mean = kernels.mean(axis=0)
            m1, m2 = mean.shape
            placed = np.zeros(self.shape)
            placed[:m1, :m2] = mean
            placed = np.roll(placed, (-(m1 // 2), -(m2 // 2)), axis=(0, 1))
            self.power = np.abs(rfft2(placed)) ** 2       # |K_mean|^2, (Hp, Wp//2+1)
            self.symbol = (_gradient_symbol(self.shape[0])[:, None]
                           + _gradient_symbol(self.shape[1])[None, : self.shape[1] // 2 + 1])
        elif preconditioner == "patch":
            fft_shape = self.operator.fft_shape
            self.power = np.abs(self.operator.spectra) ** 2  # |K_r|^2, (R, Fh, Fw//2+1)
            self.symbol = (_gradient_symbol(fft_shape[0])[:, None]
                           + _gradient_symbol(fft_shape[1])[None, : fft_shape[1] // 2 + 1])

    def data(self, x):
        """``A^T A x`` (F11)."""
        return self.operator.adjoint(self.operator.forward(x))

    def observations(self, y, x):
        """``A^T u`` with ``u = y`` on the image and ``A x`` in the band (F10)."""
        blurred = self.operator.forward(x)
        blurred[self.inside] = y
        return self.operator.adjoint(blurred)

    def precondition(self, residual, gamma):
        """``P r``, an approximate inverse of the x-step's matrix (F13)."""
        if self.preconditioner is None:
            return residual
        denominator = self.power + gamma * self.symbol
        if self.preconditioner == "mean":
            return irfft2(rfft2(residual) / denominator, self.shape).astype(self.dtype)
        grid = self.operator.grid
        fft_shape = self.operator.fft_shape
        spectra = rfft2(grid.windowed_patches(residual, self.dtype, power=0.5,
                                              shape=fft_shape))
        spectra /= denominator
        return grid.overlap_add(irfft2(spectra, fft_shape), windowed=True, power=0.5)


def _conjugate_gradients(problem, x, rhs, gamma, iterations, tolerance):
    """Solve ``(A^T A + gamma D^T D) x = rhs`` from ``x`` in place (F12)."""
    def matrix(v):
        return problem.data(v) + gamma * _laplacian(v)

    def inner(a, b):
        # einsum's own loop (BLAS dot products stall when the cores are busy),
        # summed in float64 for float32 images too
        return float(np.einsum("ij,ij->", a, b, dtype=np.float64))

    residual = rhs - matrix(x)
    goal = tolerance ** 2 * inner(rhs, rhs)
    z = problem.precondition(residual, gamma)
    direction = z.copy()
    rz = inner(residual, z)
    for _ in range(iterations):
        if inner(residual, residual) <= goal:
            break
        product = matrix(direction)
        step = rz / inner(direction, product)
        x += step * direction
        residual -= step * product
        z = problem.precondition(residual, gamma)
        rz, rz_old = inner(residual, z), rz
        direction *= rz / rz_old
        direction += z
    return x


def _initial_estimate(y, problem):
    """The observed image, mirrored into the band (only a starting point)."""
    height, width = y.shape
    top, left = problem.offset
    return np.pad(y, ((top, problem.shape[0] - height - top),
                      (left, problem.shape[1] - width - left)),
                  mode="symmetric").astype(problem.dtype)


def _hyper_laplacian(y, problem, *, lam, alpha, beta_init, beta_rate, beta_max,
                     cg_iterations, cg_tolerance):
    """Half-quadratic splitting with a conjugate-gradient x-step (F11)-(F12)."""
    x = _initial_estimate(y, problem)     # (Hp, Wp)
    scratch = np.empty_like(x)
    divergence = np.empty_like(x)         # D^T w
    beta = float(beta_init)
    while beta < beta_max:                # continuation, as (D10)
        gamma = beta / lam
        shrink_divergence(x, beta, alpha, shrink_threshold(beta, alpha), scratch,
                          divergence)     # w-step (D10), D^T w (D8)
        rhs = problem.observations(y, x) + gamma * divergence   # (F10), (F11)
        _conjugate_gradients(problem, x, rhs, gamma, cg_iterations, cg_tolerance)
        beta *= beta_rate
    return x[problem.inside]


def _check_options(alpha, lam, beta_init, beta_rate, beta_max, cg_iterations,
                   cg_tolerance, preconditioner):
    alpha = float(alpha)
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if lam is not None and not float(lam) > 0:
        raise ValueError(f"lam must be positive, got {lam}")
    if not (beta_init > 0 and beta_rate > 1 and beta_max > beta_init):
        raise ValueError(f"need beta_init > 0, beta_rate > 1 and beta_max > "
                         f"beta_init, got {beta_init}, {beta_rate}, {beta_max}")
    if int(cg_iterations) < 1:
        raise ValueError(f"cg_iterations must be >= 1, got {cg_iterations}")
    if not cg_tolerance >= 0:
        raise ValueError(f"cg_tolerance must be >= 0, got {cg_tolerance}")
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"unknown preconditioner {preconditioner!r}; choose one of "
                         f"{PRECONDITIONERS}")


def _noise_levels(planes, noise_std, model_error_std):
    """One effective noise level per channel, as the uniform path (D18)."""
    n_channels = planes.shape[0]
    if noise_std is None:
        estimates = np.array([estimate_noise_std(p) for p in planes])
        return np.sqrt(estimates ** 2 + float(model_error_std) ** 2)
    sigmas = np.asarray(noise_std, dtype=np.float64)
    if sigmas.ndim > 1 or sigmas.size not in (1, n_channels):
        raise ValueError(f"noise_std must be a scalar or one value per channel "
                         f"({n_channels}), got {noise_std}")
    if not (np.all(np.isfinite(sigmas)) and np.all(sigmas >= 0)):
        raise ValueError(f"noise_std must be finite and >= 0, got {noise_std}")
    return np.broadcast_to(sigmas.reshape(-1), (n_channels,))


def deconvolve_nonuniform(image, kernels, grid, *, noise_std=None, channel_axis=None,
                          alpha=2 / 3, lam=None, beta_init=1.0,
                          beta_rate=2 * math.sqrt(2), beta_max=2.0 ** 12,
                          cg_iterations=10, cg_tolerance=1e-4, preconditioner="patch",
                          pad=None, clip=False, model_error_std=MODEL_ERROR_STD):
    """Non-blind deconvolution of a spatially-varying blur (EFF model).

    Parameters
    ----------
    image : ndarray
        Blurry image, ``(H, W)``, or 3-D with the colours on ``channel_axis``;
        integer images are converted by :func:`refdeblur.image_io.as_float_image`.
    kernels : ndarray, shape (R, m1, m2)
        One kernel per patch (row-major order), odd sides, centre at
        ``(m1 // 2, m2 // 2)``, convolution convention, each summing to 1.
    grid : PatchGrid or tuple of int
        The patches: a :class:`~refdeblur.nonuniform.eff.PatchGrid` of the
        image's ``(H, W)``, or ``(rows, cols)`` for
        ``patch_grid((H, W), (rows, cols), kernel_size=max(m1, m2))``.
    noise_std : float or sequence of float, optional
        Effective noise standard deviation on the [0, 1] scale, one value or
        one per channel; estimated per channel (plus ``model_error_std`` in
        quadrature) if omitted, as :func:`refdeblur.deconvolve` does.
    channel_axis : int, optional
        Axis of the colour channels, deconvolved one after the other with the
        same kernels.
    alpha : float, optional
        Exponent of the hyper-Laplacian prior (2/3).
    lam : float, optional
        Data weight; default :func:`refdeblur.deconvolution.default_lam`.
    beta_init, beta_rate, beta_max : float, optional
        Continuation of the splitting weight, as the uniform path (1,
        2 sqrt 2, 2**12).
    cg_iterations : int, optional
        Most conjugate-gradient iterations per x-step (10).
    cg_tolerance : float, optional
        An x-step stops when its residual falls below this fraction of its
        right-hand side (1e-4).
    preconditioner : {'patch', 'mean', None}, optional
        Of the conjugate gradients (F13): ``'patch'`` (default) solves each
        patch's uniform problem with its own kernel in the Fourier domain and
        blends them with square-root windows; ``'mean'`` solves the whole
        grid with the mean kernel.
    pad : int, optional
        Band of unknown pixels around the image (default: the kernel size,
        at least its half).
    clip : bool, optional
        Clip the result to [0, 1].
    model_error_std : float, optional
        Added in quadrature to an estimated noise level (0.007).

    Returns
    -------
    ndarray
        Deblurred image, shape of ``image``; float32 for float32 input, else
        float64.

    Raises
    ------
    ValueError
        For NaN or Inf, kernels that do not match the grid, a grid that does
        not fit the image or the kernels, a wrong number of dimensions or an
        invalid option.

    Notes
    -----
    Memory: per channel about ten arrays of the padded grid
    (``(H + 2 pad) x (W + 2 pad)`` rounded up to fast FFT lengths), plus
    four arrays of ``R`` patches (windowed patches, their spectra, the
    kernels' spectra, the preconditioner's powers); the patches cover the
    image about four times. Time: every conjugate-gradient iteration applies
    the EFF blur and its adjoint, about four batched FFTs of the patches,
    plus the preconditioner; see derivations/eff.md §5 for measurements.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.nonuniform.eff import eff_blur, patch_grid
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((64, 64))
    >>> g = patch_grid(x.shape, (2, 2), kernel_size=5)
    >>> k = np.full((4, 5, 5), 1 / 25)
    >>> deconvolve_nonuniform(eff_blur(x, k, g), k, g, noise_std=0.01).shape
    (64, 64)
    """
    image = as_float_image(image)
    expected = 2 if channel_axis is None else 3
    if image.ndim != expected:
        layout = "(H, W)" if channel_axis is None else "3-D with channel_axis"
        raise ValueError(f"image must be {expected}-D {layout}, got shape {image.shape}")
    planes = image[None] if channel_axis is None else np.moveaxis(image, channel_axis, 0)
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or Inf")
    kernels = np.asarray(kernels)
    if kernels.ndim != 3:
        raise ValueError(f"kernels must have shape (R, m, m), got {kernels.shape}")
    if not isinstance(grid, PatchGrid):
        grid = patch_grid(planes.shape[1:], grid, kernel_size=max(kernels.shape[1:]))
    if grid.shape != planes.shape[1:]:
        raise ValueError(f"the grid covers {grid.shape}, the image is {planes.shape[1:]}")
    _check_options(alpha, lam, beta_init, beta_rate, beta_max, cg_iterations,
                   cg_tolerance, preconditioner)
    half = max(kernels.shape[1:]) // 2
    pad = max(kernels.shape[1:]) if pad is None else int(pad)
    if pad < half:
        raise ValueError(f"pad must be >= kernel size // 2 = {half}, got {pad}")
    sigmas = _noise_levels(planes, noise_std, model_error_std)
    dtype = np.float32 if image.dtype == np.float32 else np.float64
    problem = _Problem(grid, kernels, pad, dtype, preconditioner)
    out = np.empty(planes.shape, dtype=dtype)
    for c, plane in enumerate(planes):   # one channel at a time: bounded memory
        weight = default_lam(sigmas[c], alpha) if lam is None else float(lam)  # (F14)
        out[c] = _hyper_laplacian(plane, problem, lam=weight, alpha=alpha,
                                  beta_init=beta_init, beta_rate=beta_rate,
                                  beta_max=beta_max, cg_iterations=int(cg_iterations),
                                  cg_tolerance=float(cg_tolerance))
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out[0] if channel_axis is None else np.moveaxis(out, 0, channel_axis)
