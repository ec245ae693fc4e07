"""Image and kernel quality measures with Levin et al.'s protocol.

A blind deblurring method recovers the image and the kernel only up to a
common translation: shifting the kernel by ``t`` and the image by ``-t``
explains the blurred image equally well. Levin, Weiss, Durand and Freeman
("Understanding and evaluating blind deconvolution algorithms", CVPR 2009)
therefore score a result after aligning it with the ground truth. Their
MATLAB function ``comp_upto_shift.m`` (reproduced in SelfDeblur's
``statistic/comp_upto_shift.m``) does the following, and so does
:func:`align_up_to_shift`:

1. crop ``crop = 15`` pixels from every border of the ground truth;
2. resample the estimate with **bilinear** interpolation at every sub-pixel
   shift ``(dy, dx)`` of a grid over ``[-max_shift, max_shift]`` with step
   ``0.25`` (41 x 41 = 1681 shifts for ``max_shift = 5``);
3. keep the shift with the least sum of squared differences (SSD) over the
   cropped region.

PSNR and SSIM are then evaluated at that shift on the cropped region, and the
*error ratio* of a blind method is its SSD divided by the SSD of the same
non-blind deconvolution run with the true kernel.

Sign convention
---------------
A shift ``(dy, dx)`` means that the content of the estimate is displaced by
``(+dy, +dx)`` with respect to the truth: the aligned estimate is sampled at
``estimate(p + (dy, dx))`` (exactly Levin's ``interp2(gx, gy, I1, gx0 + s,
gy0 + s)``). So ``estimate = scipy.ndimage.shift(truth, (dy, dx))`` is
recovered as ``shift == (dy, dx)``. Rows (``dy``) come first.

See ``derivations/metrics.md`` for the protocol stated precisely, the fast
search and the deliberate differences from the MATLAB code.
"""

import math
from dataclasses import dataclass

import numpy as np
from skimage.metrics import structural_similarity

__all__ = [
    "ShiftAlignment",
    "align_up_to_shift",
    "ssd_up_to_shift",
    "psnr_up_to_shift",
    "ssim_up_to_shift",
    "kernel_error_up_to_shift",
    "error_ratio",
]

# Shifts within this distance of an integer are snapped to it, so that a grid
# such as ``0.1 * k`` samples integer shifts exactly (no tiny blend weight).
_SNAP = 1e-9


@dataclass(frozen=True)
class ShiftAlignment:
    """Result of :func:`align_up_to_shift`.

    Attributes
    ----------
    shift : tuple of float
        The best shift ``(dy, dx)``: the estimate's content is displaced by
        ``(+dy, +dx)`` with respect to the truth.
    aligned : ndarray
        The estimate resampled at ``shift`` over the cropped region,
        ``aligned[i, j] = estimate(crop + i + dy, crop + j + dx)`` with
        bilinear interpolation; shape ``(H - 2 crop, W - 2 crop)``.
    truth : ndarray
        The cropped ground truth ``truth[crop:H - crop, crop:W - crop]``.
    ssd : float
        ``sum((aligned - truth) ** 2)``, computed directly from ``aligned``.
    shifts : ndarray
        The 1-D grid of candidate shifts (the same for rows and columns).
    ssd_grid : ndarray
        The SSD of every candidate, ``ssd_grid[a, b]`` for
        ``(dy, dx) = (shifts[a], shifts[b])``, evaluated with the Gram
        expansion of the search (exact up to rounding; clipped at 0).
    """

    shift: tuple
    aligned: np.ndarray
    truth: np.ndarray
    ssd: float
    shifts: np.ndarray
    ssd_grid: np.ndarray


# --------------------------------------------------------------------------
# validation helpers

def _as_float_image(image, name, *, ndim=2):
    """Return ``image`` as a float64 array after checking dtype, rank, NaN."""
    arr = np.asarray(image)
    if np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"{name} has integer dtype {arr.dtype}; convert it to float "
            f"first (e.g. skimage.util.img_as_float) so that the data range "
            f"is explicit")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(
            f"{name} must be a real floating-point array, got dtype "
            f"{arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s)")
    return arr.astype(np.float64, copy=False)


def _check_pair(estimate, truth):
    est = _as_float_image(estimate, "estimate")
    tru = _as_float_image(truth, "truth")
    if est.shape != tru.shape:
        raise ValueError(
            f"estimate and truth must have the same shape, got {est.shape} "
            f"and {tru.shape}")
    return est, tru


def _shift_grid(max_shift, step):
    """Symmetric grid ``step * k`` for ``|step * k| <= max_shift``."""
    max_shift = float(max_shift)
    step = float(step)
    if not math.isfinite(max_shift) or max_shift < 0:
        raise ValueError(
            f"max_shift must be finite and >= 0, got {max_shift}")
    if not math.isfinite(step) or step <= 0:
        raise ValueError(f"step must be finite and > 0, got {step}")
    n = int(math.floor(max_shift / step + 1e-9))
    shifts = step * np.arange(-n, n + 1, dtype=np.float64)
    nearest = np.round(shifts)
    snap = np.abs(shifts - nearest) < _SNAP
    shifts[snap] = nearest[snap]
    return shifts


def _check_crop(crop, shape, reach):
    if isinstance(crop, bool) or not isinstance(crop, (int, np.integer)):
        raise TypeError(f"crop must be an integer, got {crop!r}")
    crop = int(crop)
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    if reach > crop:
        raise ValueError(
            f"the shift search reaches {reach} px beyond the cropped region "
            f"but crop is only {crop} px; use crop >= ceil(max_shift)")
    if min(shape) <= 2 * crop:
        raise ValueError(
            f"images of shape {shape} are too small for crop={crop}: each "
            f"side must exceed 2 * crop = {2 * crop}")
    return crop


# --------------------------------------------------------------------------
# the shift search

def _dot(a, b):
    """Inner product of two 1-D arrays without BLAS.

    ``np.dot`` would call a multithreaded BLAS ``ddot``, which on a busy
    machine can be a thousand times slower than this single-threaded loop
    for arrays of ~50k elements.
    """
    return float(np.einsum("i,i->", a, b))


def _split(shifts):
    """Integer part and bilinear weights of each shift.

    ``s = i + f`` with ``i = floor(s)``, ``f = s - i`` in ``[0, 1)``; the
    sample at ``p + s`` is ``(1 - f) E[p + i] + f E[p + i + 1]``.
    """
    base = np.floor(shifts).astype(np.int64)
    frac = shifts - base
    return base, 1.0 - frac, frac


def _gram_tables(est, tru, crop, reach):
    """Inner products of the residuals of neighbouring integer shifts.

    With ``D[k, l] = est[crop + k : crop + k + n1, crop + l : crop + l + n2]
    - tru_cropped`` for ``-reach <= k, l <= reach`` returns, indexed by
    ``(k + reach, l + reach)`` in arrays of side ``2 reach + 2`` whose last
    row and column (the offset ``reach + 1``, outside the search) are 0::

        Q = <D[k, l], D[k, l]>          H = <D[k, l], D[k, l + 1]>
        V = <D[k, l], D[k + 1, l]>      P = <D[k, l], D[k + 1, l + 1]>
        M = <D[k, l + 1], D[k + 1, l]>

    The zero entries only ever meet zero bilinear weights (see
    derivations/metrics.md, eq. M4).
    """
    n1 = tru.shape[0] - 2 * crop
    n2 = tru.shape[1] - 2 * crop
    t = np.ascontiguousarray(tru[crop:crop + n1, crop:crop + n2]).ravel()
    side = 2 * reach + 1
    Q, H, V, P, M = (np.zeros((side + 1, side + 1)) for _ in range(5))

    def row(k):
        r0 = crop + k
        out = []
        for l in range(-reach, reach + 1):
            c0 = crop + l
            d = est[r0:r0 + n1, c0:c0 + n2] - t.reshape(n1, n2)
            out.append(d.ravel())
        return out

    prev = None
    for a, k in enumerate(range(-reach, reach + 1)):
        cur = row(k)
        for b in range(side):
            Q[a, b] = _dot(cur[b], cur[b])
            if b + 1 < side:
                H[a, b] = _dot(cur[b], cur[b + 1])
        if prev is not None:
            for b in range(side):
                V[a - 1, b] = _dot(prev[b], cur[b])
                if b + 1 < side:
                    P[a - 1, b] = _dot(prev[b], cur[b + 1])
                    M[a - 1, b] = _dot(prev[b + 1], cur[b])
        prev = cur
    return Q, H, V, P, M


def _ssd_grid(est, tru, crop, shifts, reach):
    """SSD of every shift on the grid from the Gram tables (eq. M4)."""
    Q, H, V, P, M = _gram_tables(est, tru, crop, reach)
    base, w0, w1 = _split(shifts)
    i = (base + reach)[:, None]          # row offset index
    j = (base + reach)[None, :]          # column offset index
    u0, u1 = w0[:, None], w1[:, None]    # row weights
    v0, v1 = w0[None, :], w1[None, :]    # column weights
    ssd = (u0 * u0 * v0 * v0 * Q[i, j]
           + u0 * u0 * v1 * v1 * Q[i, j + 1]
           + u1 * u1 * v0 * v0 * Q[i + 1, j]
           + u1 * u1 * v1 * v1 * Q[i + 1, j + 1]
           + 2 * u0 * u0 * v0 * v1 * H[i, j]
           + 2 * u1 * u1 * v0 * v1 * H[i + 1, j]
           + 2 * u0 * u1 * v0 * v0 * V[i, j]
           + 2 * u0 * u1 * v1 * v1 * V[i, j + 1]
           + 2 * u0 * u1 * v0 * v1 * (P[i, j] + M[i, j]))
    return np.maximum(ssd, 0.0)


def _resample(est, crop, n1, n2, dy, dx):
    """Bilinear sample ``est(crop + i + dy, crop + j + dx)`` (eq. M2)."""
    (iy,), (u0,), (u1,) = _split(np.array([dy]))
    (ix,), (v0,), (v1,) = _split(np.array([dx]))
    out = np.zeros((n1, n2))
    for a, u in ((0, u0), (1, u1)):
        for b, v in ((0, v0), (1, v1)):
            w = u * v
            if w == 0.0:      # never touch a slice outside the search
                continue
            r0 = crop + int(iy) + a
            c0 = crop + int(ix) + b
            out += w * est[r0:r0 + n1, c0:c0 + n2]
    return out


def align_up_to_shift(estimate, truth, *, crop=15, max_shift=5.0, step=0.25):
    """Align an estimate to the ground truth by Levin et al.'s shift search.

    Crops ``crop`` pixels from every border of ``truth``, resamples
    ``estimate`` with bilinear interpolation at every shift ``(dy, dx)`` of
    the grid ``step * k``, ``|step * k| <= max_shift`` (in both axes), and
    keeps the shift with the least sum of squared differences (SSD) over the
    cropped region, as ``comp_upto_shift.m`` of Levin et al. (CVPR 2009).

    Parameters
    ----------
    estimate : (H, W) ndarray of float
        The deblurred image to score.
    truth : (H, W) ndarray of float
        The ground-truth sharp image.
    crop : int, optional
        Pixels removed from every border of ``truth`` (Levin: 15). Must be
        at least ``ceil(max_shift)`` so that every sample of the estimate
        lies inside it.
    max_shift : float, optional
        Largest shift searched in each axis, in pixels (Levin: 5; SelfDeblur
        uses 10 for some methods).
    step : float, optional
        Spacing of the shift grid in pixels (Levin: 0.25).

    Returns
    -------
    result : ShiftAlignment
        Best shift, aligned estimate, cropped truth, SSD and the full SSD
        grid. ``result.shift == (dy, dx)`` means the estimate's content is
        displaced by ``(+dy, +dx)`` relative to the truth:
        ``result.aligned[i, j] = estimate(crop + i + dy, crop + j + dx)``.

    Raises
    ------
    TypeError
        If an image is not a floating-point array, or ``crop`` is not an
        integer.
    ValueError
        If the images are not 2-D, differ in shape, contain NaN or inf, are
        not larger than ``2 * crop`` in each axis, or if ``crop <
        ceil(max_shift)``, ``max_shift < 0`` or ``step <= 0``.

    Notes
    -----
    The search does not resample the image 1681 times. The residual at a
    bilinear shift is a weighted sum of the residuals ``D[k, l]`` of the four
    surrounding integer shifts, so its SSD is a quadratic form in the inner
    products of neighbouring ``D`` (derivations/metrics.md, eq. M4); these
    are computed once, ``5 (2 R + 1)^2`` dot products for ``R =
    ceil(max_shift)``, and the SSD of every grid shift follows from them.
    The returned ``ssd`` is recomputed directly from ``aligned``.

    Ties (equal SSD) are broken towards the smallest ``dy**2 + dx**2``, then
    the smallest ``dy``, then the smallest ``dx``.

    References
    ----------
    .. [1] A. Levin, Y. Weiss, F. Durand, W. T. Freeman, "Understanding and
       evaluating blind deconvolution algorithms", CVPR 2009.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> rng = np.random.default_rng(0)
    >>> truth = ndimage.gaussian_filter(rng.random((64, 64)), 2)
    >>> estimate = ndimage.shift(truth, (1.25, -0.5), order=1)
    >>> align_up_to_shift(estimate, truth, crop=8).shift
    (1.25, -0.5)
    """
    est, tru = _check_pair(estimate, truth)
    shifts = _shift_grid(max_shift, step)
    reach = int(math.ceil(np.max(np.abs(shifts)) - _SNAP))
    crop = _check_crop(crop, tru.shape, reach)
    n1 = tru.shape[0] - 2 * crop
    n2 = tru.shape[1] - 2 * crop

    grid = _ssd_grid(est, tru, crop, shifts, reach)          # (M3), (M4)
    best = grid <= grid.min()
    a_idx, b_idx = np.nonzero(best)
    radius = shifts[a_idx] ** 2 + shifts[b_idx] ** 2
    order = np.lexsort((shifts[b_idx], shifts[a_idx], radius))
    a, b = int(a_idx[order[0]]), int(b_idx[order[0]])
    dy, dx = float(shifts[a]), float(shifts[b])

    aligned = _resample(est, crop, n1, n2, dy, dx)
    tru_c = tru[crop:crop + n1, crop:crop + n2].copy()       # (M1)
    diff = (aligned - tru_c).ravel()
    ssd = _dot(diff, diff)
    return ShiftAlignment(shift=(dy, dx), aligned=aligned, truth=tru_c,
                          ssd=ssd, shifts=shifts, ssd_grid=grid)


# --------------------------------------------------------------------------
# image measures

def ssd_up_to_shift(estimate, truth, *, crop=15, max_shift=5.0, step=0.25):
    """Least sum of squared differences over sub-pixel shifts.

    Parameters
    ----------
    estimate, truth : (H, W) ndarray of float
        Deblurred image and ground truth.
    crop, max_shift, step
        As in :func:`align_up_to_shift`.

    Returns
    -------
    ssd : float
        ``sum((aligned - truth_cropped) ** 2)`` at the best shift.
    """
    return align_up_to_shift(estimate, truth, crop=crop, max_shift=max_shift,
                             step=step).ssd


def _check_data_range(data_range):
    data_range = float(data_range)
    if not math.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be finite and > 0, got "
                         f"{data_range}")
    return data_range


def psnr_up_to_shift(estimate, truth, *, data_range=1.0, crop=15,
                     max_shift=5.0, step=0.25):
    """Peak signal-to-noise ratio at the best-SSD shift.

    ``PSNR = 10 log10(data_range**2 / MSE)`` with ``MSE = SSD / (n1 n2)``
    over the cropped region of ``n1 x n2`` pixels, evaluated at the shift
    chosen by :func:`align_up_to_shift` (least SSD, hence greatest PSNR).

    Parameters
    ----------
    estimate, truth : (H, W) ndarray of float
        Deblurred image and ground truth.
    data_range : float, optional
        Peak value of the images (1 for images in [0, 1]; Levin's and
        SelfDeblur's scripts use 255 on images scaled to [0, 255], which
        gives the same number).
    crop, max_shift, step
        As in :func:`align_up_to_shift`.

    Returns
    -------
    psnr : float
        In dB; ``inf`` if the aligned images are identical.
    """
    data_range = _check_data_range(data_range)
    res = align_up_to_shift(estimate, truth, crop=crop, max_shift=max_shift,
                            step=step)
    mse = res.ssd / res.truth.size
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range ** 2 / mse)          # (M5)


def ssim_up_to_shift(estimate, truth, *, data_range=1.0, crop=15,
                     max_shift=5.0, step=0.25, gaussian_weights=True,
                     sigma=1.5, use_sample_covariance=False):
    """Structural similarity at the best-SSD shift.

    The estimate is aligned by :func:`align_up_to_shift` (least SSD) and
    :func:`skimage.metrics.structural_similarity` is applied to the aligned
    estimate and the cropped truth.

    Parameters
    ----------
    estimate, truth : (H, W) ndarray of float
        Deblurred image and ground truth.
    data_range : float, optional
        Dynamic range ``L`` of the images (``C1 = (0.01 L)^2``, ``C2 =
        (0.03 L)^2``).
    crop, max_shift, step
        As in :func:`align_up_to_shift`.
    gaussian_weights, sigma, use_sample_covariance : optional
        Passed to :func:`skimage.metrics.structural_similarity`. The defaults
        (11 x 11 Gaussian window, ``sigma = 1.5``, population covariance)
        reproduce Wang et al.'s ``ssim.m`` used by SelfDeblur's
        ``comp_upto_shift.m``; note that they differ from scikit-image's own
        defaults (7 x 7 uniform window, sample covariance).

    Returns
    -------
    ssim : float
        Mean SSIM over the valid part of the cropped region.

    Raises
    ------
    ValueError
        In addition to the cases of :func:`align_up_to_shift`, if the cropped
        region is smaller than the SSIM window.
    """
    data_range = _check_data_range(data_range)
    res = align_up_to_shift(estimate, truth, crop=crop, max_shift=max_shift,
                            step=step)
    if gaussian_weights:
        win = 2 * int(3.5 * sigma + 0.5) + 1   # skimage's truncate = 3.5
    else:
        win = 7
    if min(res.truth.shape) < win:
        raise ValueError(
            f"the cropped region {res.truth.shape} is smaller than the "
            f"{win} x {win} SSIM window")
    return float(structural_similarity(
        res.aligned, res.truth, data_range=data_range,
        gaussian_weights=gaussian_weights, sigma=sigma,
        use_sample_covariance=use_sample_covariance))


def error_ratio(deblurred_with_estimate, deblurred_with_true_kernel, truth,
                *, crop=15, max_shift=5.0, step=0.25):
    """Levin et al.'s error ratio of a blind deconvolution.

    ``ER = SSD(x_est, x) / SSD(x_known, x)``, each SSD taken up to shift by
    :func:`ssd_up_to_shift` (each image aligned separately), where
    ``x_known`` is the non-blind deconvolution of the same blurred image with
    the true kernel and ``x_est`` the same non-blind deconvolution with the
    estimated kernel. Levin et al. report the fraction of cases with
    ``ER <= 2`` (and ``<= 3``).

    Parameters
    ----------
    deblurred_with_estimate : (H, W) ndarray of float
        Deconvolution with the estimated kernel.
    deblurred_with_true_kernel : (H, W) ndarray of float
        The same non-blind deconvolution run with the true kernel.
    truth : (H, W) ndarray of float
        The ground-truth sharp image.
    crop, max_shift, step
        As in :func:`align_up_to_shift`.

    Returns
    -------
    ratio : float
        The ratio of squared errors (not its square root, which SelfDeblur's
        ``statistic_levin.m`` reports). ``1.0`` when both SSDs are 0 and
        ``inf`` when only the denominator is.
    """
    kw = dict(crop=crop, max_shift=max_shift, step=step)
    ssd_est = ssd_up_to_shift(deblurred_with_estimate, truth, **kw)
    ssd_known = ssd_up_to_shift(deblurred_with_true_kernel, truth, **kw)
    if ssd_known == 0.0:
        return 1.0 if ssd_est == 0.0 else math.inf
    return ssd_est / ssd_known                               # (M6)


# --------------------------------------------------------------------------
# kernels

def _normalised_kernel(kernel, name):
    k = _as_float_image(kernel, name)
    if k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"{name} must have odd sides, got shape {k.shape}")
    total = float(k.sum())
    if not total > 0:
        raise ValueError(f"{name} must have a positive sum, got {total}")
    return k / total


def kernel_error_up_to_shift(estimate, truth, *, max_shift=None,
                             return_shift=False):
    """Least squared error between two blur kernels over integer shifts.

    Both kernels are normalised to sum 1 and embedded, centred, in a zero
    canvas of side ``max(sizes) + 2 max_shift``; the estimate is translated
    by every integer ``(dy, dx)`` with ``|dy|, |dx| <= max_shift`` (nothing
    is cut off, so the result is the l2 distance between the kernels as
    functions on the integer lattice, up to translation).

    Parameters
    ----------
    estimate, truth : (m1, n1), (m2, n2) ndarray of float
        Kernels with odd sides, centre at the middle element; the sizes may
        differ. Their sums must be positive.
    max_shift : int, optional
        Largest integer shift in each axis. Default ``M // 4`` with ``M`` the
        largest side of either kernel (e.g. 6 for 27 x 27).
    return_shift : bool, optional
        Also return the best shift.

    Returns
    -------
    error : float
        ``min over (dy, dx) of sum((k_est(p + (dy, dx)) - k_true(p)) ** 2)``.
    shift : tuple of int
        Only with ``return_shift``: the best ``(dy, dx)``, the displacement of
        the estimate's mass relative to the truth (same sign convention as
        :func:`align_up_to_shift`). Ties go to the smallest ``dy**2 + dx**2``.
    """
    ke = _normalised_kernel(estimate, "estimate")
    kt = _normalised_kernel(truth, "truth")
    big = max(ke.shape + kt.shape)
    if max_shift is None:
        max_shift = big // 4
    if isinstance(max_shift, bool) or not isinstance(max_shift,
                                                     (int, np.integer)):
        raise TypeError(f"max_shift must be an integer, got {max_shift!r}")
    s = int(max_shift)
    if s < 0:
        raise ValueError(f"max_shift must be >= 0, got {s}")

    hh = max(ke.shape[0], kt.shape[0])
    ww = max(ke.shape[1], kt.shape[1])

    def embed(k, pad):
        out = np.zeros((hh + 2 * pad, ww + 2 * pad))
        r0 = pad + (hh - k.shape[0]) // 2
        c0 = pad + (ww - k.shape[1]) // 2
        out[r0:r0 + k.shape[0], c0:c0 + k.shape[1]] = k
        return out

    # The estimate gets a canvas 2 s wider so that every shifted view
    # est_canvas[s + dy : ..., s + dx : ...] still holds all of its mass.
    ce = embed(ke, 2 * s)
    ct = embed(kt, s)
    h2, w2 = ct.shape
    best = None
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            view = ce[s + dy:s + dy + h2, s + dx:s + dx + w2]
            d = (view - ct).ravel()
            err = _dot(d, d)                                 # (M7)
            key = (err, dy * dy + dx * dx, dy, dx)
            if best is None or key < best:
                best = key
    err, _, dy, dx = best
    if return_shift:
        return err, (dy, dx)
    return err
