"""Non-blind deconvolution: the final step of the inference path.

Given a blurry image ``y`` and a kernel ``k`` (the network's estimate, or the
true one), recover the sharp image ``x`` of the model ``y = k * x + n``: true
convolution, kernel centre at ``(m // 2, m // 2)`` (``derivations/README.md``).
The paper used EPLL (Zoran and Weiss 2011) for this step (paper §6); this
module provides fast native Fourier-domain solvers instead
(derivations/deconvolution.md says why).

Derivation: derivations/deconvolution.md; the code cites its equations
``(D1)``, ``(D2)``, ...

Methods (:data:`METHODS` maps a name to its solver):

``"hyper_laplacian"``
    Krishnan and Fergus (NIPS 2009): ``min_x lam/2 ||k * x - y||^2 +
    sum |grad x|^alpha`` by half-quadratic splitting with continuation in
    ``beta``; both subproblems are solved exactly.
``"wiener"``
    The quadratic special case (gradient Tikhonov regulariser): one Fourier
    quotient per boundary update.

Boundaries (shared by all methods, ``boundary=`` of :func:`deconvolve`):
the ``H x W`` image is placed at ``[:H, :W]`` of a larger periodic grid
whose extra band gets a smooth, circularly continuous fill (D5); with the
default ``boundary="unknown"`` the band is then treated as unobserved: before
every solve its values are replaced by ``k * x`` of the current estimate
(a majorise-minimise step for the data term restricted to the observed
pixels, D6). The FFT's circular model therefore meets no jump at the image
border and there is no border ringing.

Adding a method (e.g. the network's image quotient): write
``solver(y_padded, problem, *, noise_std, y_hat=None, **options)`` returning
the padded estimate (shape and dtype of ``y_padded``; ``y_hat`` is the
transform of ``y_padded`` where the caller has it), use :func:`band_observations`
for the boundary, and register it in :data:`METHODS`. ``problem`` (a
:class:`Problem`) holds the kernel's transfer function, computed once and
shared by all channels.
"""

import math
from typing import NamedTuple

import numpy as np

from ._engine.deconvolution import (PARALLEL_MIN_SIZE, fourier_solve, shrink_divergence,
                                    shrink_into)
from ._engine.fft import fast_length, irfft2, rfft2, rfft2_of_rows
from .image_io import as_float_image

__all__ = [
    "METHODS",
    "PaddedImage",
    "Problem",
    "band_observations",
    "deconvolve",
    "default_balance",
    "default_lam",
    "estimate_noise_std",
    "shrink",
    "shrink_threshold",
]

# ---------------------------------------------------------------------------
# tuned constants (derivations/deconvolution.md §7)

#: ``lam = c(alpha) / sigma**1.5`` (D15); tuned on synthetic blur, §7.
LAM_CONSTANTS = {0.5: 3.1, 2 / 3: 2.2, 1.0: 0.78}
#: ``balance = c * sigma**1.5`` (D16).
BALANCE_CONSTANT = 17.0
#: Floor of sigma in the default rules (a noiseless input still gets some
#: regularisation).
MIN_NOISE_STD = 1e-3
#: Added in quadrature to an *estimated* noise level (D18): model error of
#: real captures that a white-noise estimator does not see; tuned on Levin.
MODEL_ERROR_STD = 0.007

BOUNDARIES = ("unknown", "fill", "periodic")


# ---------------------------------------------------------------------------
# the shared problem: geometry, kernel transfer function, padding


class Problem(NamedTuple):
    """Everything a solver needs that does not depend on the channel.

    Attributes
    ----------
    shape : tuple of int
        ``(H, W)`` of the observed image; it sits at ``[:H, :W]`` of the grid.
    padded_shape : tuple of int
        ``(Hp, Wp)`` of the periodic grid (fast FFT lengths), ``(H, W)``
        for ``boundary="periodic"``.
    otf : ndarray of complex, shape ``(Hp, Wp // 2 + 1)``
        Half spectrum of the kernel with its centre moved to the origin (D3).
    grad_rows, grad_cols : ndarray, shapes ``(Hp,)`` and ``(Wp // 2 + 1,)``
        ``|D_y|^2`` and ``|D_x|^2``, the symbols of the circular forward
        differences; ``|D|^2 = grad_rows[:, None] + grad_cols`` (D9).
    boundary : str
        ``"unknown"``, ``"fill"`` or ``"periodic"``.
    """

    shape: tuple
    padded_shape: tuple
    otf: np.ndarray
    grad_rows: np.ndarray
    grad_cols: np.ndarray
    boundary: str

    @property
    def refill(self):
        """Whether solvers re-estimate the band from the estimate (D6)."""
        return self.boundary == "unknown" and self.padded_shape != self.shape


def _make_problem(shape, kernel, boundary, pad, dtype):
    """Grid size (D4), transfer function of the kernel (D3), |D|^2 (D9)."""
    padded = _grid_shape(shape, kernel.shape, boundary, pad)
    grad_rows, grad_cols = _gradient_symbols(padded, dtype)
    return Problem(tuple(shape), padded, _transfer_function(kernel, padded, dtype),
                   grad_rows, grad_cols, boundary)


def _grid_shape(shape, kernel_shape, boundary, pad):
    """The periodic grid (D4): at least ``pad`` px (default the kernel's side)
    per side, enlarged to fast FFT lengths; the image's own for ``"periodic"``."""
    if boundary == "periodic":
        return tuple(shape)
    padded = []
    for n, m in zip(shape, kernel_shape):
        p = m if pad is None else int(pad)
        if p < m // 2:
            raise ValueError(f"pad must be >= kernel size // 2 = {m // 2}, "
                             f"got {p}")
        padded.append(fast_length(n + 2 * p))
    return tuple(padded)


def _transfer_function(kernel, padded_shape, dtype):
    """Half spectrum of the kernel with its centre moved to the origin (D3)."""
    hp, wp = padded_shape
    mh, mw = kernel.shape
    # psf2otf: pixel (i, j) goes to ((i - mh // 2) mod hp, (j - mw // 2) mod wp),
    # where np.roll of the kernel placed at [:mh, :mw] would put it
    rows = (np.arange(mh) - mh // 2) % hp
    placed = np.zeros((hp, wp), dtype=dtype)
    placed[np.ix_(rows, (np.arange(mw) - mw // 2) % wp)] = kernel
    return rfft2_of_rows(placed, rows)  # (Hp, Wp//2+1), equal to rfft2(placed)


def _gradient_symbols(padded_shape, dtype):
    """``|D_y|^2`` per row and ``|D_x|^2`` per half-spectrum column (D9)."""
    hp, wp = padded_shape
    grad_rows = (4.0 * np.sin(np.pi * np.arange(hp) / hp) ** 2).astype(dtype)
    grad_cols = (4.0 * np.sin(np.pi * np.arange(wp // 2 + 1) / wp) ** 2
                 ).astype(dtype)
    return grad_rows, grad_cols


def _extend_axis(a, length, axis):
    """Append a smooth periodic bridge of ``length`` samples along ``axis`` (D5).

    Sample ``t`` of the band blends the mirror image of ``a`` across its last
    sample with the mirror image across its first sample (where the band ends
    on the circle) with a raised-cosine weight.
    """
    if length == 0:
        return a
    n = a.shape[axis]
    after = [(0, 0)] * a.ndim
    before = [(0, 0)] * a.ndim
    after[axis] = (0, length)
    before[axis] = (length, 0)
    index = [slice(None)] * a.ndim
    index[axis] = slice(n, None)
    right = np.pad(a, after, mode="symmetric")[tuple(index)]
    index[axis] = slice(0, length)
    left = np.pad(a, before, mode="symmetric")[tuple(index)]
    t = (np.arange(length) + 0.5) / length
    weight = (0.5 - 0.5 * np.cos(np.pi * t)).astype(a.dtype)
    weight = weight.reshape([length if d == axis else 1 for d in range(a.ndim)])
    band = right * (1 - weight) + left * weight
    return np.concatenate([a, band], axis=axis)


def _pad_plane(plane, problem, dtype):
    """Embed an ``(H, W)`` plane at ``[:H, :W]`` of the periodic grid (D5)."""
    h, w = problem.shape
    hp, wp = problem.padded_shape
    out = _extend_axis(np.asarray(plane, dtype=dtype), wp - w, axis=1)
    out = _extend_axis(out, hp - h, axis=0)
    return np.ascontiguousarray(out)


def band_observations(y_padded, x_hat, problem):
    """Observations for the next solve: ``y`` inside, ``k * x`` in the band (D6).

    Parameters
    ----------
    y_padded : ndarray, shape ``problem.padded_shape``
        The padded observation; only ``[:H, :W]`` is used.
    x_hat : ndarray of complex, shape ``(Hp, Wp // 2 + 1)``
        Half spectrum of the current estimate.
    problem : Problem

    Returns
    -------
    ndarray of complex, shape ``(Hp, Wp // 2 + 1)``
        Half spectrum of the new observations ``u`` (D6).
    """
    h, w = problem.shape
    u = irfft2(x_hat * problem.otf, problem.padded_shape)  # k * x, (Hp, Wp)
    u[:h, :w] = y_padded[:h, :w]
    return rfft2(u)


# ---------------------------------------------------------------------------
# the w-subproblem, public for tests and reuse


def shrink_threshold(beta, alpha):
    """Largest ``|v|`` whose shrinkage is exactly zero (D11).

    Parameters
    ----------
    beta : float
        Weight of the splitting penalty, ``> 0``.
    alpha : float
        Exponent of the prior, ``0 < alpha <= 1``.

    Returns
    -------
    float
        ``tau`` with ``argmin_w |w|^alpha + beta/2 (w - v)^2 = 0`` for
        ``|v| <= tau`` and nonzero above.

    Notes
    -----
    ``tau = (2 (1 - alpha) / beta)^(1 / (2 - alpha)) + (alpha / beta)
    (2 (1 - alpha) / beta)^((alpha - 1) / (2 - alpha))`` (Zuo et al. 2013);
    ``1 / beta`` for ``alpha = 1``. For ``alpha = 1/2`` it is
    ``1.5 beta^(-2/3)``, for ``alpha = 2/3`` it is ``2 (2 / (3 beta))^(3/4)``.

    Examples
    --------
    >>> round(shrink_threshold(1.0, 0.5), 6)
    1.5
    """
    beta = float(beta)
    alpha = float(alpha)
    if alpha == 1.0:
        return 1.0 / beta
    base = 2.0 * (1.0 - alpha) / beta
    return (base ** (1.0 / (2.0 - alpha))
            + alpha / beta * base ** ((alpha - 1.0) / (2.0 - alpha)))


def shrink(v, beta, alpha):
    """Solve the w-subproblem element-wise (D10)-(D14).

    Parameters
    ----------
    v : array_like of float
        Values, e.g. gradients of the current estimate.
    beta : float
        Weight of the splitting penalty, ``> 0``.
    alpha : float
        Exponent, ``0 < alpha <= 1``; 1/2, 2/3 and 1 are solved in closed
        form, other values by Newton's method.

    Returns
    -------
    ndarray
        ``argmin_w |w|^alpha + beta/2 (w - v)^2`` for every element; same
        shape and float dtype as ``v`` (float64 for non-float input).

    Examples
    --------
    >>> shrink([0.5, 3.0], beta=1.0, alpha=1.0)
    array([0., 2.])
    """
    v = np.asarray(v)
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    alpha = _check_alpha(alpha)
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    v = np.ascontiguousarray(v)
    out = np.empty_like(v)
    shrink_into(v, float(beta), alpha, shrink_threshold(beta, alpha), out)
    return out


def _check_alpha(alpha):
    alpha = float(alpha)
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    # snap to the closed-form cases so that 0.6667 etc. are not near-misses
    for exact in (0.5, 2.0 / 3.0, 1.0):
        if abs(alpha - exact) < 1e-9:
            return exact
    return alpha


# ---------------------------------------------------------------------------
# default regularisation


def default_lam(noise_std, alpha=2 / 3):
    """Default data weight ``lam`` of the hyper-Laplacian method (D15).

    Parameters
    ----------
    noise_std : float
        Noise standard deviation on the [0, 1] intensity scale.
    alpha : float, optional
        Exponent of the prior.

    Returns
    -------
    float
        ``lam = c(alpha) / max(noise_std, 1e-3)**1.5`` with ``c = 3.1, 2.2,
        0.78`` for ``alpha = 1/2, 2/3, 1`` (interpolated in between).

    Notes
    -----
    Tuned for the default continuation ``beta_max = 2**12`` on synthetic
    motion blur of natural images with ``sigma`` from 0.005 to 0.04; see
    derivations/deconvolution.md §7.

    Examples
    --------
    >>> round(default_lam(0.01))
    2200
    """
    alpha = _check_alpha(alpha)
    keys = sorted(LAM_CONSTANTS)
    c = float(np.interp(alpha, keys, [LAM_CONSTANTS[k] for k in keys]))
    return c / max(float(noise_std), MIN_NOISE_STD) ** 1.5


def default_balance(noise_std):
    """Default regularisation weight of the Wiener method (D16).

    Parameters
    ----------
    noise_std : float
        Noise standard deviation on the [0, 1] intensity scale.

    Returns
    -------
    float
        ``balance = 17 * max(noise_std, 1e-3)**1.5``.

    Examples
    --------
    >>> round(default_balance(0.01), 3)
    0.017
    """
    return BALANCE_CONSTANT * max(float(noise_std), MIN_NOISE_STD) ** 1.5


# ---------------------------------------------------------------------------
# solvers


def _hyper_laplacian(y_pad, problem, *, noise_std, alpha=2 / 3, lam=None,
                     beta_init=1.0, beta_rate=2 * math.sqrt(2), beta_max=2.0 ** 12,
                     n_inner=1, y_hat=None):
    """Krishnan-Fergus half-quadratic splitting on the padded grid (D7)-(D14)."""
    alpha = _check_alpha(alpha)
    lam = default_lam(noise_std, alpha) if lam is None else float(lam)
    if not lam > 0:
        raise ValueError(f"lam must be positive, got {lam}")
    if not (beta_init > 0 and beta_rate > 1 and beta_max > beta_init):
        raise ValueError(f"need beta_init > 0, beta_rate > 1 and beta_max > "
                         f"beta_init, got {beta_init}, {beta_rate}, {beta_max}")
    if int(n_inner) < 1:
        raise ValueError(f"n_inner must be >= 1, got {n_inner}")
    parallel = y_pad.size >= PARALLEL_MIN_SIZE
    x = y_pad.copy()                   # (Hp, Wp), initial estimate x = y
    scratch = np.empty_like(x)         # one shrunk gradient at a time
    rhs = np.empty_like(x)             # D^T w
    u_hat = rfft2(y_pad) if y_hat is None else y_hat   # of the observations (D6)
    beta = float(beta_init)
    first = True
    while beta < beta_max:             # continuation (D10)
        gamma = beta / lam
        tau = shrink_threshold(beta, alpha)
        for _ in range(int(n_inner)):
            if problem.refill and not first:
                u_hat = band_observations(y_pad, x_hat, problem)  # (D6)
            shrink_divergence(x, beta, alpha, tau, scratch, rhs,
                              parallel=parallel)                     # (D10)
            # At the first, small beta every gradient is usually below tau
            # (D11): the transform of zeros is zeros.
            x_hat = rfft2(rhs) if rhs.any() else np.zeros_like(u_hat)
            fourier_solve(x_hat, u_hat, problem.otf, problem.grad_rows,
                          problem.grad_cols, gamma, parallel=parallel)  # (D9)
            x = irfft2(x_hat, problem.padded_shape)
            first = False
        beta *= beta_rate
    return x


def _wiener(y_pad, problem, *, noise_std, balance=None, n_iter=4, y_hat=None):
    """Gradient-Tikhonov quotient; ``n_iter`` band updates (D16), (D6)."""
    balance = default_balance(noise_std) if balance is None else float(balance)
    if not balance > 0:
        raise ValueError(f"balance must be positive, got {balance}")
    if int(n_iter) < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    u_hat = rfft2(y_pad) if y_hat is None else y_hat
    for it in range(int(n_iter) if problem.refill else 1):
        if it:
            u_hat = band_observations(y_pad, x_hat, problem)  # (D6)
        x_hat = np.zeros_like(u_hat)  # gamma * 0: the plain quotient (D16)
        fourier_solve(x_hat, u_hat, problem.otf, problem.grad_rows, problem.grad_cols,
                      balance, parallel=y_pad.size >= PARALLEL_MIN_SIZE)
    return irfft2(x_hat, problem.padded_shape)


#: Solvers by name: ``solver(y_padded, problem, *, noise_std, y_hat=None,
#: **options)`` returns the padded estimate; ``y_hat``, where given, is
#: ``rfft2(y_padded)``, which the solver then reads and does not compute or
#: write. The image-quotient method goes here too.
METHODS = {
    "hyper_laplacian": _hyper_laplacian,
    "wiener": _wiener,
}


# ---------------------------------------------------------------------------
# public API


def _spatial_planes(image, channel_axis):
    """``(C, H, W)`` view of the image and the normalised channel axis."""
    expected = 2 if channel_axis is None else 3
    if image.ndim != expected:
        layout = "(H, W)" if channel_axis is None else "3-D with channel_axis"
        raise ValueError(f"image must be {expected}-D {layout}, got shape "
                         f"{image.shape}")
    if channel_axis is None:
        return image[None], None
    axis = int(channel_axis)
    if not -3 <= axis < 3:
        raise ValueError(f"channel_axis {channel_axis} out of range for a 3-D "
                         f"image")
    axis %= 3
    return np.moveaxis(image, axis, 0), axis


def _check_kernel(kernel):
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2-D, got shape {kernel.shape}")
    if kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"kernel sides must be odd, got shape {kernel.shape}")
    if not np.all(np.isfinite(kernel)):
        raise ValueError("kernel contains NaN or Inf")
    if not kernel.sum() > 0:
        raise ValueError(f"kernel must have a positive sum, got "
                         f"{kernel.sum()}")
    return kernel


def deconvolve(image, kernel, *, method="hyper_laplacian", noise_std=None,
               channel_axis=None, boundary="unknown", pad=None, clip=False,
               model_error_std=MODEL_ERROR_STD, **options):
    """Non-blind deconvolution of an image with a known blur kernel.

    Parameters
    ----------
    image : ndarray
        Blurry image, ``(H, W)``, or 3-D with the colours on
        ``channel_axis``. Float images are used as they are (intensity scale
        [0, 1] expected by the default regularisation); integer and boolean
        images are converted by :func:`refdeblur.image_io.as_float_image`
        (divided by the maximum of their type).
    kernel : ndarray, shape (m1, m2)
        Blur kernel, odd sides, centre at ``(m1 // 2, m2 // 2)``, convolution
        convention (``y = k * x``). Used as given (not normalised); it should
        sum to 1, which the default regularisation assumes.
    method : str, optional
        A key of :data:`METHODS`: ``"hyper_laplacian"`` (default) or
        ``"wiener"``.
    noise_std : float or sequence of float, optional
        Effective noise standard deviation on the [0, 1] scale, one value or
        one per channel; it sets the default regularisation and is used as
        given. If omitted, each channel's noise is estimated with
        :func:`estimate_noise_std` and ``model_error_std`` is added in
        quadrature.
    channel_axis : int, optional
        Axis of the colour channels. Each channel is deconvolved with the
        same kernel, one after the other; the kernel's transfer function is
        computed once.
    boundary : {'unknown', 'fill', 'periodic'}, optional
        ``'unknown'`` (default): pad to a periodic grid with a smooth fill
        and re-estimate the padding band from the current estimate, i.e.
        only the observed pixels constrain the solution (no border ringing).
        ``'fill'``: the smooth fill only (the band is treated as observed).
        ``'periodic'``: no padding; the image is assumed circularly blurred.
    pad : int, optional
        Minimum padding per side (default: the kernel size); the grid is then
        enlarged to fast FFT lengths.
    clip : bool, optional
        Clip the result to [0, 1]. Off by default: values are not clipped.
    model_error_std : float, optional
        Added in quadrature to an estimated noise level (default 0.007);
        ignored when ``noise_std`` is given.
    **options
        Options of the method.

        ``"hyper_laplacian"``: ``alpha`` (2/3; 1/2 and 1 are closed form,
        other values in (0, 1) use Newton), ``lam`` (data weight, default
        :func:`default_lam`), ``beta_init`` (1), ``beta_rate`` (2 sqrt 2),
        ``beta_max`` (2**12), ``n_inner`` (1).

        ``"wiener"``: ``balance`` (default :func:`default_balance`),
        ``n_iter`` (solves with band updates, 4).

    Returns
    -------
    ndarray
        Deblurred image, same shape and float dtype as ``image`` (float64
        for integer input).

    Raises
    ------
    ValueError
        For NaN or Inf, a kernel that is not 2-D, has an even side or a
        non-positive sum, an image smaller than the kernel, a wrong number of
        dimensions, an unknown method or boundary, or an invalid option value.

    Notes
    -----
    The solve runs in the input's precision: float32 images in float32
    (complex64 spectra; the scalar shrinkage is evaluated in float64),
    float64 images in float64. Memory: about ten arrays of the padded
    grid's size per channel, whatever the number of channels.

    ``"hyper_laplacian"`` minimises ``lam/2 ||k * x - y||^2 + sum_i
    |(D_x x)_i|^alpha + |(D_y x)_i|^alpha`` by half-quadratic splitting
    [1]_: for ``beta = beta_init, beta_init * beta_rate, ... < beta_max``
    it solves the per-pixel w-subproblem exactly and the x-subproblem in
    closed form in the Fourier domain. Krishnan and Fergus stop at
    ``beta_max = 256``; ``2**12`` (two more steps) gains about 0.15 dB.

    The default regularisation (``lam = 2.2 sigma^-1.5`` for
    ``alpha = 2/3``, ``balance = 17 sigma^1.5``) was tuned for PSNR on
    synthetic motion blur of natural images; the derivation document
    (derivations/deconvolution.md) gives the maths and the measurements.

    References
    ----------
    .. [1] D. Krishnan and R. Fergus, "Fast image deconvolution using
       hyper-Laplacian priors", NIPS 2009.
    .. [2] M. S. C. Almeida and M. A. T. Figueiredo, "Deconvolving images
       with unknown boundaries using the alternating direction method of
       multipliers", IEEE TIP 22(8), 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import convolve2d
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((64, 64))
    >>> k = np.full((5, 5), 1 / 25)
    >>> y = convolve2d(x, k, mode="same", boundary="symm")
    >>> deconvolve(y, k, noise_std=0.01).shape
    (64, 64)
    """
    image = as_float_image(image)
    planes, axis = _spatial_planes(image, channel_axis)  # (C, H, W)
    kernel = _check_kernel(kernel)
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or Inf")
    if (planes.shape[1] < kernel.shape[0]
            or planes.shape[2] < kernel.shape[1]):
        raise ValueError(f"image of size {planes.shape[1:]} is smaller than "
                         f"the kernel {kernel.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of "
                         f"{sorted(METHODS)}")
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; choose one of "
                         f"{BOUNDARIES}")
    n_channels = planes.shape[0]
    if noise_std is None:
        estimates = np.array([estimate_noise_std(p) for p in planes])
        sigmas = np.sqrt(estimates ** 2 + float(model_error_std) ** 2)  # (D18)
    else:
        sigmas = np.asarray(noise_std, dtype=np.float64)
        if sigmas.ndim > 1 or sigmas.size not in (1, n_channels):
            raise ValueError(f"noise_std must be a scalar or one value per "
                             f"channel ({n_channels}), got {noise_std}")
        sigmas = np.broadcast_to(sigmas.reshape(-1), (n_channels,))
        if not (np.all(np.isfinite(sigmas)) and np.all(sigmas >= 0)):
            raise ValueError(f"noise_std must be finite and >= 0, got "
                             f"{noise_std}")
    if "y_hat" in options:
        raise TypeError("deconvolve() got an unexpected keyword argument 'y_hat'")
    solver = METHODS[method]
    dtype = image.dtype
    problem = _make_problem(planes.shape[1:], kernel, boundary, pad, dtype)
    h, w = problem.shape
    out = np.empty(planes.shape, dtype=dtype)  # (C, H, W)
    for c in range(n_channels):  # one channel at a time: bounded memory
        y_pad = _pad_plane(planes[c], problem, dtype)  # (Hp, Wp)
        x = solver(y_pad, problem, noise_std=float(sigmas[c]), **options)
        out[c] = x[:h, :w]
        del y_pad, x
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out[0] if axis is None else np.moveaxis(out, 0, axis)


class PaddedImage:
    """A grey image on the periodic grid of :func:`deconvolve`, for several kernels.

    :func:`deconvolve` pads the image (D5) and transforms it at every call.
    A caller that deconvolves one image with many kernels of one shape (the
    alternations of :func:`refdeblur.inference.refinement.refine_kernel`)
    pads and checks it once here, and transforms it once;
    :meth:`deconvolve` then returns what :func:`deconvolve` returns for the
    image and kernel, bit for bit.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Blurry grey image, converted as :func:`deconvolve` converts it
        (float images keep their type, which sets the solve's precision).
    kernel_shape : tuple of int
        ``(m1, m2)``, odd: the shape of every kernel given to
        :meth:`deconvolve`; it sets the grid (D4).
    boundary : {'unknown', 'fill', 'periodic'}, optional
        As for :func:`deconvolve`.
    pad : int, optional
        As for :func:`deconvolve`.

    Raises
    ------
    ValueError
        As :func:`deconvolve` for the image, the boundary and the padding;
        for a kernel shape that is not two odd sides.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import convolve2d
    >>> rng = np.random.default_rng(0)
    >>> y = convolve2d(rng.random((64, 64)), np.full((5, 5), 1 / 25), mode="same")
    >>> padded = PaddedImage(y, (5, 5))
    >>> k = np.full((5, 5), 1 / 25)
    >>> bool(np.array_equal(padded.deconvolve(k, noise_std=0.01),
    ...                     deconvolve(y, k, noise_std=0.01)))
    True
    """

    def __init__(self, image, kernel_shape, *, boundary="unknown", pad=None):
        image = as_float_image(image)
        if image.ndim != 2:
            raise ValueError(f"image must be 2-D (H, W), got shape {image.shape}")
        kernel_shape = tuple(int(m) for m in kernel_shape)
        if len(kernel_shape) != 2 or any(m < 1 or m % 2 == 0 for m in kernel_shape):
            raise ValueError(f"kernel sides must be odd, got shape {kernel_shape}")
        if not np.all(np.isfinite(image)):
            raise ValueError("image contains NaN or Inf")
        if image.shape[0] < kernel_shape[0] or image.shape[1] < kernel_shape[1]:
            raise ValueError(f"image of size {image.shape} is smaller than "
                             f"the kernel {kernel_shape}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"unknown boundary {boundary!r}; choose one of "
                             f"{BOUNDARIES}")
        self.shape = image.shape
        self.kernel_shape = kernel_shape
        self.boundary = boundary
        self.dtype = image.dtype
        self.padded_shape = _grid_shape(image.shape, kernel_shape, boundary, pad)
        self._gradient_symbols = _gradient_symbols(self.padded_shape, self.dtype)
        geometry = Problem(self.shape, self.padded_shape, None, *self._gradient_symbols,
                           boundary)
        self.values = _pad_plane(image, geometry, self.dtype)       # (D5)
        self.spectrum = rfft2(self.values)

    def deconvolve(self, kernel, *, method="hyper_laplacian", noise_std, clip=False,
                   **options):
        """:func:`deconvolve` of the image with ``kernel`` (same result).

        Parameters
        ----------
        kernel : ndarray of shape ``kernel_shape``
            As for :func:`deconvolve`.
        method : str, optional
            A key of :data:`METHODS`.
        noise_std : float
            Effective noise standard deviation on the [0, 1] scale, >= 0.
        clip : bool, optional
            Clip the result to [0, 1].
        **options
            Options of the method, as for :func:`deconvolve`.

        Returns
        -------
        ndarray of shape (H, W)
            In the image's dtype.
        """
        kernel = _check_kernel(kernel)
        if kernel.shape != self.kernel_shape:
            raise ValueError(f"kernel of shape {kernel.shape}; this image was padded "
                             f"for {self.kernel_shape}")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of "
                             f"{sorted(METHODS)}")
        if "y_hat" in options:
            raise TypeError("deconvolve() got an unexpected keyword argument 'y_hat'")
        sigma = float(noise_std)
        if not (np.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"noise_std must be finite and >= 0, got {noise_std}")
        problem = Problem(self.shape, self.padded_shape,
                          _transfer_function(kernel, self.padded_shape, self.dtype),
                          *self._gradient_symbols, self.boundary)
        x = METHODS[method](self.values, problem, noise_std=sigma, y_hat=self.spectrum,
                            **options)
        h, w = self.shape
        out = np.array(x[:h, :w], dtype=self.dtype)
        if clip:
            np.clip(out, 0.0, 1.0, out=out)
        return out


def _immerkaer(a):
    """Immerkaer's estimate: mean |second-difference mask response| (D17)."""
    # The expressions a[:-2] - 2 a[1:-1] + a[2:] along each axis, evaluated
    # in place in that order: the same values with two temporaries, not six.
    rows = np.multiply(a[1:-1], 2.0)                # (H-2, W)
    np.subtract(a[:-2], rows, out=rows)
    rows += a[2:]
    d = np.multiply(rows[:, 1:-1], 2.0)             # (H-2, W-2)
    np.subtract(rows[:, :-2], d, out=d)
    d += rows[:, 2:]
    return math.sqrt(math.pi / 2.0) / 6.0 * float(np.mean(np.abs(d, out=d)))


def _haar_mad(a):
    """Median absolute diagonal Haar detail / 0.6745 (D17)."""
    h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
    d = np.subtract(a[0:h:2, 0:w:2], a[1:h:2, 0:w:2])
    d -= a[0:h:2, 1:w:2]
    d += a[1:h:2, 1:w:2]
    d *= 0.5
    return float(np.median(np.abs(d, out=d), overwrite_input=True) / 0.6744897501960817)


_NOISE_ESTIMATORS = {"immerkaer": _immerkaer, "haar_mad": _haar_mad}


def estimate_noise_std(image, *, channel_axis=None, average_channels=True,
                       estimator="immerkaer"):
    """Estimate the standard deviation of additive white Gaussian noise.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` image, or 3-D with the colours on ``channel_axis``.
    channel_axis : int, optional
        Axis of the colour channels; each channel is estimated separately.
    average_channels : bool, optional
        With ``channel_axis``: return the mean over channels (default) or an
        array with one estimate per channel.
    estimator : {'immerkaer', 'haar_mad'}, optional
        ``'immerkaer'`` (default): Immerkaer's fast method, the mean
        absolute response to the 3x3 mask ``[1 -2 1]^T [1 -2 1]`` times
        ``sqrt(pi / 2) / 6``. ``'haar_mad'``: the median absolute deviation
        of the finest diagonal Haar wavelet coefficients divided by 0.6745
        (Donoho and Johnstone; :func:`skimage.restoration.estimate_sigma`
        with the Haar wavelet, without PyWavelets).

    Returns
    -------
    float or ndarray
        The estimate, on the intensity scale of ``image``.

    Notes
    -----
    Both estimators assume that the image itself has almost no energy in
    their high-pass band, which blur makes very nearly true: on blurred
    natural images (motion kernels of 13 to 31 px) with synthetic noise
    ``sigma = 0.01`` Immerkaer gives 0.0101 on average (range 0.0099 to
    0.0105) and the Haar MAD 0.0103 (0.0100 to 0.0112); with
    ``sigma = 0.02``, 0.0200 and 0.0202. Without added noise both read
    about 0.0006 (residual image detail). On sharp images they overestimate
    (Haar MAD 0.0137 for ``sigma = 0.01``). They measure white noise only,
    not model error (see ``model_error_std`` of :func:`deconvolve`).

    References
    ----------
    .. [1] J. Immerkaer, "Fast noise variance estimation", Computer Vision
       and Image Understanding 64(2), 1996.
    .. [2] D. L. Donoho and I. M. Johnstone, "Ideal spatial adaptation by
       wavelet shrinkage", Biometrika 81(3), 1994.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> noisy = 0.5 + 0.02 * rng.standard_normal((256, 256))
    >>> round(estimate_noise_std(noisy), 2)
    0.02
    """
    if estimator not in _NOISE_ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of "
                         f"{sorted(_NOISE_ESTIMATORS)}")
    image = as_float_image(image)
    planes, _ = _spatial_planes(image, channel_axis)
    if planes.shape[1] < 3 or planes.shape[2] < 3:
        raise ValueError(f"image too small to estimate noise: "
                         f"{image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or Inf")
    fn = _NOISE_ESTIMATORS[estimator]
    sig = np.array([fn(np.asarray(p, dtype=np.float64)) for p in planes])
    if channel_axis is None:
        return float(sig[0])
    return float(sig.mean()) if average_channels else sig
