"""Teacher forcing: later stages learn from latent images of known quality.

A later stage learns to refine only if its input latent image is worth
refining. Early in training the stage before it returns a blob, so the later
stage sees nothing else and learns to hedge. With teacher forcing a fraction
of the examples of a step replace the kernel of one earlier stage of the
finest scale by the true kernel perturbed by a random mixture of errors;
that stage's image quotient deconvolves with it, and the stages after it
learn to correct errors of every kind, not only those the current earlier
stages make (derivations/training.md, "Teacher forcing";
derivations/network.md (N13)-(N14)).

The perturbations are the errors a blind estimate makes: blur (a kernel too
smooth), a blob of the kernel's extent mixed in (the hedging answer of an L2
loss), another camera-shake kernel mixed in (a wrong path), a shift, a
rotation, a dilation and a down- and upsampling (the answer of a coarser
scale). One to three of them are applied in random order, each at a random
strength.
"""

import numpy as np
from scipy import ndimage

from ..kernels import resize_kernel

__all__ = ["PERTURBATIONS", "perturb_kernel", "forced_positions", "forced_kernels"]

#: The kinds of error :func:`perturb_kernel` mixes.
PERTURBATIONS = ("blur", "blob", "other", "shift", "rotate", "dilate", "coarse")


def _blob(kernel):
    """The isotropic Gaussian with the kernel's centroid and spread."""
    m = kernel.shape[0]
    grid = np.arange(m, dtype=np.float64)
    weight_rows, weight_cols = kernel.sum(axis=1), kernel.sum(axis=0)
    centre_row, centre_col = grid @ weight_rows, grid @ weight_cols
    variance = (((grid - centre_row) ** 2) @ weight_rows
                + ((grid - centre_col) ** 2) @ weight_cols) / 2.0
    variance = max(variance, 0.25)
    rows = np.exp(-(grid - centre_row) ** 2 / (2.0 * variance))
    cols = np.exp(-(grid - centre_col) ** 2 / (2.0 * variance))
    blob = np.outer(rows, cols)
    return blob / blob.sum()


def _apply(kind, kernel, strength, rng, other):
    """One perturbation of strength in [0, 1]; may leave negative values."""
    m = kernel.shape[0]
    centre = (m - 1) / 2.0
    if kind == "blur":
        return ndimage.gaussian_filter(kernel, sigma=0.3 + 2.7 * strength,
                                       mode="constant")
    if kind == "blob":
        return (1.0 - strength) * kernel + strength * _blob(kernel)
    if kind == "other":
        if other is None:
            return kernel
        return (1.0 - strength) * kernel + strength * other
    if kind == "shift":
        angle = rng.uniform(0.0, 2.0 * np.pi)
        distance = strength * m / 6.0
        return ndimage.shift(kernel, (distance * np.sin(angle), distance * np.cos(angle)),
                             order=1, mode="constant")
    if kind == "rotate":
        angle = strength * 90.0 * rng.choice((-1.0, 1.0))
        return ndimage.rotate(kernel, angle, reshape=False, order=1, mode="constant")
    if kind == "dilate":
        factor = np.exp(0.5 * strength * rng.choice((-1.0, 1.0)))
        # output pixel p samples the input at centre + (p - centre) / factor
        return ndimage.affine_transform(kernel, np.eye(2) / factor,
                                        offset=centre - centre / factor,
                                        order=1, mode="constant")
    if kind == "coarse":
        small = max(3, int(round(m * (1.0 - 0.75 * strength))) | 1)
        return resize_kernel(resize_kernel(kernel, small), m)
    raise ValueError(f"unknown perturbation {kind!r}")


def perturb_kernel(kernel, rng, *, other=None, max_kinds=3, kinds=PERTURBATIONS,
                   strength_power=1.0):
    """The kernel with one to ``max_kinds`` random errors of :data:`PERTURBATIONS`.

    Parameters
    ----------
    kernel : ndarray of shape (m, m)
        A true kernel: non-negative, sum 1.
    rng : numpy.random.Generator
    other : ndarray of shape (m, m), optional
        Another kernel that the ``"other"`` error mixes in (without it that
        error leaves the kernel as it is).
    max_kinds : int, optional
        Most errors applied to one kernel.
    kinds : sequence of str, optional
        The errors to draw from (default all of :data:`PERTURBATIONS`).
    strength_power : float, optional
        Each error's strength is ``u ** strength_power``, ``u`` uniform on
        [0, 1]: 1 spreads the strengths evenly, larger values make most
        errors small.

    Returns
    -------
    ndarray of shape (m, m)
        float64, non-negative, sum 1 (the blob of the kernel where nothing
        positive is left).

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.camera_shake import sample_kernel
    >>> from refdeblur.training.teacher_forcing import perturb_kernel
    >>> kernel = sample_kernel(17, np.random.default_rng(0))
    >>> wrong = perturb_kernel(kernel, np.random.default_rng(1))
    >>> wrong.shape, bool(np.isclose(wrong.sum(), 1.0)), bool(wrong.min() >= 0)
    ((17, 17), True, True)
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    kinds = tuple(kinds)
    unknown = set(kinds) - set(PERTURBATIONS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be taken from {PERTURBATIONS}, got {kinds}")
    n_kinds = int(rng.integers(1, min(max_kinds, len(kinds)) + 1))
    order = rng.permutation(len(kinds))[:n_kinds]
    result = kernel
    for index in order:
        strength = float(rng.uniform(0.0, 1.0)) ** strength_power
        result = np.maximum(_apply(kinds[index], result, strength, rng, other), 0.0)
        total = result.sum()
        result = result / total if total > 0 else _blob(kernel)
    return result


def forced_positions(n_stages, scale_stages):
    """The stages teacher forcing may replace: ``(scale, stage)``, 0-based.

    Every stage of the finest scale before the last one run, and the last
    stage of the next coarser scale, whose latent image the finest scale's
    first stage refines.

    Parameters
    ----------
    n_stages : int
        Stages run at the finest scale.
    scale_stages : sequence of int
        Stages of every scale, coarse to fine (a single-scale network: one
        entry).

    Returns
    -------
    list of tuple
    """
    finest = len(scale_stages) - 1
    positions = []
    if finest > 0:
        positions.append((finest - 1, scale_stages[finest - 1] - 1))
    positions += [(finest, s) for s in range(n_stages - 1)]
    return positions


def forced_kernels(rng, true_kernels, n_stages, probability, *, scale_sizes=None,
                   scale_stages=None, strength_power=1.0):
    """Draw which examples of a step are forced, where, and with what kernel.

    Each example is forced with ``probability``; a forced example replaces
    the kernel of one stage of :func:`forced_positions` (chosen uniformly)
    by :func:`perturb_kernel` of its true kernel, with the next example's
    true kernel as the ``"other"`` kernel; at the coarser scale, that
    kernel resized to the scale's kernel size
    (:func:`refdeblur.kernels.resize_kernel`), as the image is.

    Parameters
    ----------
    rng : numpy.random.Generator
    true_kernels : ndarray of shape (N, m, m)
    n_stages : int
        Stages run at the finest scale this step.
    probability : float
        Fraction of the examples forced, in [0, 1].
    scale_sizes, scale_stages : sequence of int, optional
        Kernel size and stages of every scale, coarse to fine (default: one
        scale of ``m`` px).
    strength_power : float, optional
        As for :func:`perturb_kernel`.

    Returns
    -------
    dict or None
        ``{(scale, stage): (kernels, mask (N,))}`` for
        :meth:`refdeblur.network.Network.forward_with_cache`; None when no
        example is forced (always for a single scale run with one stage).
    """
    true_kernels = np.asarray(true_kernels)
    n, m = len(true_kernels), true_kernels.shape[-1]
    scale_sizes = (m,) if scale_sizes is None else tuple(scale_sizes)
    scale_stages = ((n_stages,) * len(scale_sizes) if scale_stages is None
                    else tuple(scale_stages))
    positions = forced_positions(n_stages, scale_stages)
    if not positions or probability <= 0:
        return None
    forced_mask = rng.random(n) < probability
    chosen = rng.integers(0, len(positions), size=n)
    if not forced_mask.any():
        return None
    perturbed = {}
    for index in np.flatnonzero(forced_mask):
        other = true_kernels[(index + 1) % n] if n > 1 else None
        perturbed[index] = perturb_kernel(true_kernels[index], rng, other=other,
                                          strength_power=strength_power)
    forced = {}
    for choice in np.unique(chosen[forced_mask]):
        j, s = positions[choice]
        size = scale_sizes[j]
        mask = forced_mask & (chosen == choice)
        kernels = np.zeros((n, size, size), dtype=true_kernels.dtype)
        for index in np.flatnonzero(mask):
            kernels[index] = (perturbed[index] if size == m
                              else resize_kernel(perturbed[index], size))
        forced[(int(j), int(s))] = (kernels, mask)
    return forced
