"""Synthetic camera-shake blur kernels sampled from a Gaussian process.

Schuler et al., "Learning to Deblur", TPAMI 2016, §3.3, Eq. 6 and Fig. 6:
the x and y coordinates of a camera trajectory are drawn independently from a
Gaussian process with a Matérn covariance (length scale 0.3, signal standard
deviation 1/4), scaled to the kernel size, rasterised as the time spent at
every pixel and shifted so that the centre of mass is in the middle of the
kernel.

The maths, the choices where the paper is silent and the differences from
the public Python port of the sampler are in ``derivations/camera_shake.md``
(equations G1 to G16, cited in the code as ``# (G6)``).

Public functions
----------------
matern_covariance
    The Matérn covariance k(t, t') (G1 to G4).
sample_trajectory
    One 2-D trajectory on [0, 1] drawn from the GP (G5, G6).
rasterize_trajectory
    Gap-free rasterisation of a trajectory given in pixel coordinates (G9 to G11).
sample_kernel, sample_kernels
    Complete kernels: draw, scale, reject, centre, rasterise, smooth (G7 to G13).
check_rng, check_kernel_size
    The argument checks of the sampler, shared with the training data.
"""

import functools
import numbers

import numpy as np
from scipy import special

from ._engine.camera_shake import lower_triangular_product
from ._engine.threads import one_blas_thread

__all__ = [
    "check_kernel_size",
    "check_rng",
    "matern_covariance",
    "sample_trajectory",
    "rasterize_trajectory",
    "sample_kernel",
    "sample_kernels",
]

# Defaults of the paper (§3.3) and of the port (time grid, mean).
LENGTH_SCALE = 0.3
SIGNAL_STD = 0.25
NU = 1.5
N_SAMPLES = 1000
MEAN = 0.5
SMOOTHING_SIGMA = 0.3
MAX_STEP = 0.5
MAX_ATTEMPTS = 1000

# Relative jitter added to the covariance diagonal only if the plain
# Cholesky factorisation fails (it does not for any ν ≤ 5/2 with the paper's
# l and 1000 points; very smooth kernels or finer grids can need it).
_JITTERS = (0.0, 1e-12, 1e-10, 1e-8, 1e-6)


# --------------------------------------------------------------------------
# Covariance and trajectories
# --------------------------------------------------------------------------

def _check_positive(name, value):
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def matern_covariance(t1, t2, *, length_scale=LENGTH_SCALE,
                      signal_std=SIGNAL_STD, nu=NU):
    r"""Matérn covariance between time points (element-wise, broadcasting).

    Parameters
    ----------
    t1, t2 : array_like
        Time points; broadcast against each other. Pass ``t[:, None]`` and
        ``t[None, :]`` to get the full covariance matrix of a grid ``t``.
    length_scale : float, optional
        Length scale :math:`l` (paper: 0.3).
    signal_std : float, optional
        Signal standard deviation :math:`\sigma_f` (paper: 1/4), so that
        ``k(t, t) = signal_std**2``.
    nu : float, optional
        Smoothness :math:`\nu > 0`. 1/2, 3/2 and 5/2 use the closed forms;
        any other positive value uses the general Bessel-function form.
        Default 3/2, the value the paper names in its text (see Notes).

    Returns
    -------
    numpy.ndarray
        ``k(t1, t2)`` with the broadcast shape of the inputs, float64.

    Notes
    -----
    With :math:`r = |t - t'|` (derivations/camera_shake.md, G1 to G4):

    .. math::

        k_\nu(r) &= \sigma_f^2 \frac{2^{1-\nu}}{\Gamma(\nu)} z^\nu K_\nu(z),
                    \quad z = \sqrt{2\nu}\, r / l \\
        k_{1/2}(r) &= \sigma_f^2 \exp(-r/l) \\
        k_{3/2}(r) &= \sigma_f^2 (1 + \sqrt{3} r/l) \exp(-\sqrt{3} r/l) \\
        k_{5/2}(r) &= \sigma_f^2 (1 + \sqrt{5} r/l + 5r^2/(3l^2))
                       \exp(-\sqrt{5} r/l)

    The paper's text (§3.3) says :math:`\nu = 3/2` but its Eq. 6 prints the
    :math:`\nu = 5/2` formula; the public port of the sampler uses 3/2 (GPML
    ``covMaterniso`` with d = 3), and so does this default
    (derivations/camera_shake.md, "Which ν").

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.camera_shake import matern_covariance
    >>> float(matern_covariance(0.0, 0.0))
    0.0625
    >>> t = np.linspace(0, 1, 5)
    >>> matern_covariance(t[:, None], t[None, :]).shape
    (5, 5)
    """
    length_scale = _check_positive("length_scale", length_scale)
    signal_std = _check_positive("signal_std", signal_std)
    nu = _check_positive("nu", nu)
    r = np.abs(np.asarray(t1, dtype=np.float64) - np.asarray(t2, dtype=np.float64))
    var = signal_std ** 2
    if nu == 0.5:                                               # (G2)
        return var * np.exp(-r / length_scale)
    if nu == 1.5:                                               # (G3)
        z = np.sqrt(3.0) * r / length_scale
        return var * (1.0 + z) * np.exp(-z)
    if nu == 2.5:                                               # (G4)
        z = np.sqrt(5.0) * r / length_scale
        return var * (1.0 + z + z * z / 3.0) * np.exp(-z)
    # General ν (G1): at z = 0, K_ν is infinite; the limit of the product is 1.
    z = np.sqrt(2.0 * nu) * r / length_scale
    with np.errstate(invalid="ignore", over="ignore"):
        log_coef = (1.0 - nu) * np.log(2.0) - special.gammaln(nu)
        val = np.exp(log_coef) * z ** nu * special.kv(nu, z)
    val = np.where(z > 0, val, 1.0)
    # For large z, kv underflows to 0 and z**nu may overflow: the limit is 0.
    val = np.where(np.isfinite(val), val, 0.0)
    return var * val


@functools.lru_cache(maxsize=16)
@one_blas_thread()
def _cholesky_factor(n_samples, length_scale, signal_std, nu):
    """Lower Cholesky factor of the GP covariance on ``linspace(0, 1, n)``.

    Cached because the factorisation (O(n³), ~30 ms for n = 1000) dominates
    the cost of a kernel otherwise; the returned array is read-only so that
    no caller can corrupt the cache. Computed with BLAS on one thread: a
    multi-threaded factorisation rounds differently, and the sampled kernels
    must not depend on the thread settings of the first call. The
    covariance is ill-conditioned, so BLAS kernels tuned for different
    processors give factors, and kernels, that agree to about 1e-9
    relative rather than bit for bit.
    """
    t = np.linspace(0.0, 1.0, n_samples)
    cov = matern_covariance(t[:, None], t[None, :], length_scale=length_scale,
                            signal_std=signal_std, nu=nu)
    for jitter in _JITTERS:
        try:
            chol = np.linalg.cholesky(
                cov + (jitter * signal_std ** 2) * np.eye(n_samples))
        except np.linalg.LinAlgError:
            continue
        chol.setflags(write=False)
        return chol
    raise np.linalg.LinAlgError(
        f"covariance (n_samples={n_samples}, length_scale={length_scale}, "
        f"nu={nu}) is not positive definite even with relative jitter "
        f"{_JITTERS[-1]:g}")


def check_rng(rng):
    """Raise unless ``rng`` is a :class:`numpy.random.Generator`.

    Parameters
    ----------
    rng : object
        The candidate source of randomness.

    Raises
    ------
    TypeError
        If ``rng`` is not a ``numpy.random.Generator`` (a seed or the legacy
        ``RandomState`` would make draws depend on hidden global state).

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.camera_shake import check_rng
    >>> check_rng(np.random.default_rng(0))
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator "
                        f"(e.g. numpy.random.default_rng(seed)), got {type(rng).__name__}")


def _gp_params(length_scale, signal_std, nu, n_samples):
    if (not isinstance(n_samples, numbers.Integral) or isinstance(n_samples, bool)
            or n_samples < 2):
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    return (int(n_samples), _check_positive("length_scale", length_scale),
            _check_positive("signal_std", signal_std), _check_positive("nu", nu))


def sample_trajectory(rng, *, n_samples=N_SAMPLES, length_scale=LENGTH_SCALE,
                      signal_std=SIGNAL_STD, nu=NU, mean=MEAN):
    r"""Draw one 2-D camera trajectory from the Gaussian process.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (two blocks of ``n_samples`` standard normals).
    n_samples : int, optional
        Number of equally spaced time points on [0, 1] (default 1000).
    length_scale, signal_std, nu : float, optional
        Covariance parameters, see :func:`matern_covariance`.
    mean : float, optional
        Constant mean of both coordinates (default 0.5, as in the port, so
        that the trajectory lives around the middle of the unit box).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_samples, 2)``, float64; column 0 is x (horizontal), column
        1 is y (vertical), both in units of the kernel box (0 to 1).

    Notes
    -----
    ``f = mean + L z`` with ``L Lᵀ = K`` the Cholesky factor of the
    covariance matrix on the time grid and ``z ~ N(0, I)`` (G5, G6), so that
    ``Cov(f) = K``. The factor is computed once per parameter set and cached.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.camera_shake import sample_trajectory
    >>> sample_trajectory(np.random.default_rng(0)).shape
    (1000, 2)
    """
    check_rng(rng)
    n_samples, length_scale, signal_std, nu = _gp_params(
        length_scale, signal_std, nu, n_samples)
    chol = _cholesky_factor(n_samples, length_scale, signal_std, nu)
    z = rng.standard_normal((n_samples, 2))
    return float(mean) + lower_triangular_product(chol, z)       # (G6)


# --------------------------------------------------------------------------
# Rasterisation
# --------------------------------------------------------------------------

def _densify(points, max_step):
    """Sub-samples of a polyline, at most ``max_step`` px apart, with time weights.

    Every segment between consecutive samples takes the same time, so it
    gets weight 1/(n-1), spread evenly over ``K`` midpoints of ``K`` equal
    sub-segments (G9). Returns ``(positions (M, 2), weights (M,))``.
    """
    seg = np.diff(points, axis=0)
    n_seg = seg.shape[0]
    # Chebyshev length: the bound on |Δrow| and |Δcol| is what connectivity needs.
    length = np.abs(seg).max(axis=1)
    n_sub = np.maximum(1, np.ceil(length / max_step)).astype(np.intp)
    seg_index = np.repeat(np.arange(n_seg), n_sub)
    # Offset of every sub-sample within its segment: (j + 1/2) / K.
    starts = np.cumsum(n_sub) - n_sub
    j = np.arange(seg_index.size) - starts[seg_index]
    frac = (j + 0.5) / n_sub[seg_index]
    pos = points[seg_index] + frac[:, None] * seg[seg_index]
    weights = (1.0 / n_seg) / n_sub[seg_index]
    return pos, weights


def _splat_bilinear(pos, weights, size):
    """Accumulate weighted points into a ``size``² grid with bilinear weights.

    ``pos[:, 0]`` is the column (x), ``pos[:, 1]`` the row (y); all points
    must lie in ``[0, size - 1]``. Bilinear splatting keeps the total mass
    and the centre of mass of the points exactly (G10).
    """
    col, row = pos[:, 0], pos[:, 1]
    # Clip the base index to size-2 so that a point on the last pixel centre
    # gets fraction 1 instead of indexing past the grid.
    c0 = np.minimum(np.floor(col).astype(np.intp), size - 2)
    r0 = np.minimum(np.floor(row).astype(np.intp), size - 2)
    fc = col - c0
    fr = row - r0
    base = r0 * size + c0
    idx = np.concatenate([base, base + 1, base + size, base + size + 1])
    wts = np.concatenate([weights * (1 - fr) * (1 - fc), weights * (1 - fr) * fc,
                          weights * fr * (1 - fc), weights * fr * fc])
    return np.bincount(idx, weights=wts, minlength=size * size).reshape(size, size)


def rasterize_trajectory(points, size, *, max_step=MAX_STEP):
    """Rasterise a trajectory as the time spent at every pixel, without gaps.

    Parameters
    ----------
    points : array_like, shape (n, 2)
        Trajectory in pixel coordinates, column 0 = x (column index), column
        1 = y (row index); consecutive rows are equally spaced in time. All
        points must lie in ``[0, size - 1]`` (pixel centres of the grid).
    size : int
        Side of the square output grid (>= 2).
    max_step : float, optional
        Largest allowed distance (per coordinate, in px) between consecutive
        sub-samples; segments longer than this are subdivided (default 0.5).
        Must be in (0, 1) for the support to be connected.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` float64 histogram of time; sums to 1.

    Notes
    -----
    The piecewise-linear path is sampled at the midpoints of equal
    sub-segments no longer than ``max_step`` (G9) and every sub-sample is
    splatted with bilinear weights (G10). Consecutive sub-samples differ by
    less than one pixel in each coordinate, so their nearest pixels are
    8-neighbours (or equal) and every sub-sample puts at least 1/4 of its
    weight on its nearest pixel: the support is one 8-connected piece
    (G11). The histogram's centre of mass equals the time average of the
    path (trapezoidal rule over the samples), independent of ``max_step``.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.camera_shake import rasterize_trajectory
    >>> line = np.array([[1.0, 2.0], [5.0, 2.0]])  # horizontal, 4 px long
    >>> k = rasterize_trajectory(line, 7)
    >>> bool(np.all(k[2, 1:6] > 0)), float(k.sum())
    (True, 1.0)
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 2:
        raise ValueError(f"points must have shape (n >= 2, 2), got {points.shape}")
    if not isinstance(size, numbers.Integral) or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}")
    if not 0 < max_step < 1:
        raise ValueError(f"max_step must be in (0, 1), got {max_step!r}")
    if not (np.all(np.isfinite(points)) and points.min() >= 0
            and points.max() <= size - 1):
        raise ValueError(f"points must lie in [0, {size - 1}] (pixel centres); "
                         f"got range [{points.min()}, {points.max()}]")
    pos, weights = _densify(points, max_step)
    return _splat_bilinear(pos, weights, int(size))


def _gaussian_smooth3(kernel, sigma):
    """Separable 3×3 Gaussian, zero outside the grid (G12)."""
    g = np.exp(-0.5 * (np.array([-1.0, 0.0, 1.0]) / sigma) ** 2)
    g /= g.sum()
    padded = np.pad(kernel, 1)
    rows = g[0] * padded[:-2] + g[1] * padded[1:-1] + g[2] * padded[2:]
    return g[0] * rows[:, :-2] + g[1] * rows[:, 1:-1] + g[2] * rows[:, 2:]


# --------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------

def check_kernel_size(size):
    """Validate a kernel side: an odd integer of at least 3.

    Parameters
    ----------
    size : int
        The candidate kernel side.

    Returns
    -------
    int
        ``size`` as a Python ``int``.

    Raises
    ------
    ValueError
        If ``size`` is not an integer (``bool`` included), is even or is
        below 3: the kernel needs a centre pixel.

    Examples
    --------
    >>> from refdeblur.camera_shake import check_kernel_size
    >>> check_kernel_size(17)
    17
    """
    if (not isinstance(size, numbers.Integral) or isinstance(size, bool)
            or size < 3 or size % 2 == 0):
        raise ValueError(f"kernel size must be an odd integer >= 3, got {size!r}")
    return int(size)


def _draw_centred_trajectory(size, rng, n_samples, length_scale, signal_std, nu,
                             max_attempts):
    """Draw trajectories until one passes both tests; return it and the count.

    Returns ``(points, attempts)`` with ``points`` centred in pixel
    coordinates (G7, G8).
    """
    scale = size - 1
    centre = size // 2
    for attempt in range(1, max_attempts + 1):
        traj = sample_trajectory(rng, n_samples=n_samples, length_scale=length_scale,
                                 signal_std=signal_std, nu=nu)
        pix = scale * traj                                       # (G7)
        # Box test of the port (its rounded 1-based pixel must be in [1, m]),
        # written for continuous coordinates: stay within the pixel area.
        if pix.min() < -0.5 or pix.max() > scale + 0.5:
            continue
        # Time-averaged position = centre of mass of the rasterised kernel.
        com = 0.5 * (pix[:-1] + pix[1:]).mean(axis=0)            # (G8)
        pix += centre - com
        # After centring the whole path must sit on the pixel-centre grid so
        # that bilinear splatting loses no mass (replaces the port's
        # wrap-around test after its circular shift).
        if pix.min() < 0.0 or pix.max() > scale:
            continue
        return pix, attempt
    raise RuntimeError(
        f"no {size}x{size} camera-shake kernel accepted in {max_attempts} attempts "
        f"(length_scale={length_scale}, signal_std={signal_std}, nu={nu}); the "
        "trajectories leave the kernel box too often: lower signal_std or raise "
        "max_attempts")


def sample_kernel(size, rng, *, length_scale=LENGTH_SCALE, signal_std=SIGNAL_STD,
                  nu=NU, n_samples=N_SAMPLES, smoothing_sigma=SMOOTHING_SIGMA,
                  max_step=MAX_STEP, max_attempts=MAX_ATTEMPTS):
    r"""Sample one camera-shake blur kernel (paper §3.3, Fig. 6).

    Parameters
    ----------
    size : int
        Kernel side ``m``; odd, at least 3.
    rng : numpy.random.Generator
        The only source of randomness; the kernel is a deterministic function
        of the generator state.
    length_scale, signal_std, nu : float, optional
        GP covariance parameters (defaults 0.3, 0.25, 1.5), see
        :func:`matern_covariance`.
    n_samples : int, optional
        Time points per trajectory (default 1000).
    smoothing_sigma : float, optional
        Standard deviation of the final 3×3 Gaussian smoothing in px (default
        0.3); 0 switches the smoothing off.
    max_step : float, optional
        Subdivision step of the rasteriser, see :func:`rasterize_trajectory`.
    max_attempts : int, optional
        Trajectories drawn at most before giving up (default 1000).

    Returns
    -------
    numpy.ndarray
        ``(m, m)`` float64, non-negative, sums to 1, centre of mass at
        ``(m // 2, m // 2)`` (row, column). Convolution convention:
        ``y = k * x``.

    Raises
    ------
    ValueError
        For an even size or a size below 3, or invalid parameters.
    RuntimeError
        If ``max_attempts`` trajectories are all rejected.

    Notes
    -----
    Steps (derivations/camera_shake.md):

    1. draw x(t), y(t) from GP(0.5, k) on 1000 points (G5, G6);
    2. scale by ``m - 1`` to pixel coordinates (G7); reject if the path
       leaves the pixel area ``[-0.5, m - 0.5]²`` (the port's box test);
    3. translate the path so that its time average is the centre pixel
       (G8); reject if it then leaves ``[0, m - 1]²``. This single exact
       sub-pixel shift replaces the port's integer circular shift plus
       bilinear warp and cannot wrap mass around;
    4. rasterise the time spent per pixel without gaps (G9 to G11): the
       centre of mass is exactly the centre;
    5. smooth with a 3×3 Gaussian (σ = 0.3 px) and normalise (G12, G13).
       Mass the smoothing pushes out of the box (only if the path touches
       the border) moves the centre of mass by at most ~0.004 px.

    With the defaults about 2/3 of the trajectories are accepted and a
    17×17 kernel takes about 1 ms.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.camera_shake import sample_kernel
    >>> k = sample_kernel(17, np.random.default_rng(0))
    >>> k.shape, bool(abs(k.sum() - 1) < 1e-12), bool(k.min() >= 0)
    ((17, 17), True, True)
    """
    size = check_kernel_size(size)
    check_rng(rng)
    n_samples, length_scale, signal_std, nu = _gp_params(
        length_scale, signal_std, nu, n_samples)
    if not (np.isfinite(smoothing_sigma) and smoothing_sigma >= 0):
        raise ValueError(f"smoothing_sigma must be >= 0, got {smoothing_sigma!r}")
    if not 0 < max_step < 1:
        raise ValueError(f"max_step must be in (0, 1), got {max_step!r}")
    if not isinstance(max_attempts, numbers.Integral) or max_attempts < 1:
        raise ValueError(f"max_attempts must be a positive integer, got {max_attempts!r}")

    points, _ = _draw_centred_trajectory(size, rng, n_samples, length_scale,
                                         signal_std, nu, max_attempts)
    kernel = rasterize_trajectory(points, size, max_step=max_step)
    if smoothing_sigma > 0:
        kernel = _gaussian_smooth3(kernel, smoothing_sigma)      # (G12)
    return kernel / kernel.sum()                                 # (G13)


def sample_kernels(n, size, rng, **params):
    """Sample ``n`` kernels with :func:`sample_kernel`; returns ``(n, m, m)``.

    Parameters
    ----------
    n : int
        Number of kernels.
    size : int
        Kernel side (odd, >= 3).
    rng : numpy.random.Generator
        Source of randomness; kernels are drawn one after the other, so
        ``sample_kernels(n, ...)`` equals ``n`` consecutive ``sample_kernel``
        calls on the same generator.
    **params
        Keyword arguments of :func:`sample_kernel`.

    Returns
    -------
    numpy.ndarray
        ``(n, m, m)`` float64.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.camera_shake import sample_kernels
    >>> sample_kernels(4, 17, np.random.default_rng(0)).shape
    (4, 17, 17)
    """
    size = check_kernel_size(size)
    if not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    out = np.empty((int(n), size, size))
    for i in range(int(n)):
        out[i] = sample_kernel(size, rng, **params)
    return out
