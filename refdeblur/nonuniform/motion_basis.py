"""The camera-motion basis of non-uniform blur and the projection of Eq. 9.

Paper §6.3 (Eq. 9), following Hirsch et al., "Fast removal of non-uniform
camera shake" (ICCV 2011): the camera moves through poses (in-plane
translations and rotations about the image centre); a pose moves the centre
of patch ``r`` to a new point, and the local kernel of the patch is the
time-weighted sum of these displacements, drawn with bilinear weights.
``B^(r)`` is the linear map from the pose weights ``mu`` to that kernel.
Local kernels estimated patch by patch (Eq. 8) are projected onto the set of
kernels that one camera motion can produce by
``k_est^(r) = B^(r) T_eta(sum_r B^(r)^T k_direct^(r))``.

Derivation: derivations/motion_basis.md; the code cites its equations
``(B1)``, ``(B2)``, ...

Conventions: pixel coordinates are ``(row, col)`` array indices, the image
centre is ``((H - 1) / 2, (W - 1) / 2)``; a pose is ``(tx, ty, phi)`` with
``tx`` along columns and ``ty`` along rows in pixels and ``phi`` in radians;
kernels follow ``y = scipy.signal.convolve2d(x, k, 'valid')`` with their
centre at ``(m // 2, m // 2)``, so a point moved by ``(dr, dc)`` puts its
mass at kernel index ``(m // 2 + dr, m // 2 + dc)`` (B4).

Public functions
----------------
pose_grid
    The grid of camera poses for an image and kernel size (B7, B8).
pose_displacements
    How far each pose moves each patch centre (B1, B3).
motion_basis
    The sparse matrices ``B^(r)`` (B5, B6).
threshold_pose_weights
    The hard threshold ``T_eta`` (B10).
project_kernels
    Eq. 9 (B9 to B11), or its non-negative least-squares variant (B12, B13).
"""

import math
import numbers

import numpy as np
from scipy import sparse

from ..camera_shake import check_kernel_size

__all__ = [
    "PROJECTION_METHODS",
    "motion_basis",
    "pose_displacements",
    "pose_grid",
    "project_kernels",
    "threshold_pose_weights",
]

#: The ways :func:`project_kernels` finds the pose weights: ``"adjoint"`` is
#: the paper's Eq. 9, ``"nnls"`` the non-negative least-squares fit (B12).
PROJECTION_METHODS = ("adjoint", "nnls")


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------

def _check_image_shape(image_shape):
    shape = tuple(image_shape)
    if (len(shape) != 2 or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                   and s >= 1 for s in shape)):
        raise ValueError(f"image_shape must be two positive integers (rows, cols), "
                         f"got {image_shape!r}")
    return int(shape[0]), int(shape[1])


def _check_points(name, values, width):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != width or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be a finite array of shape (n, {width}), "
                         f"got shape {values.shape}")
    return values


def _image_centre(shape):
    return np.array([(shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0])


# --------------------------------------------------------------------------
# Poses and displacements
# --------------------------------------------------------------------------

def pose_grid(image_shape, kernel_size, *, translation_step_px=1.0, rotation_step_px=1.0):
    r"""The camera poses of the basis: translations and in-plane rotations.

    Parameters
    ----------
    image_shape : tuple of int
        ``(rows, cols)`` of the image.
    kernel_size : int
        Side ``m`` of the local kernels (odd, at least 3); ``h = m // 2``.
    translation_step_px : float, optional
        Step of the translations in pixels (default 1).
    rotation_step_px : float, optional
        How far the farthest pixel moves per rotation step (default 1).
        Finer steps make the basis larger and the kernels it can draw
        sharper (derivations/motion_basis.md §5).

    Returns
    -------
    ndarray of shape (n_poses, 3)
        Poses ``(tx, ty, phi)``: ``tx`` (columns) and ``ty`` (rows) in
        ``{-J s, ..., J s}`` pixels with ``s = translation_step_px`` and
        ``J = floor(h / s)``; ``phi = j a / rho_max`` radians for
        ``j in {-K, ..., K}``, ``a = rotation_step_px``, ``K = floor(h / a)``,
        with ``rho_max`` the distance from the image centre to a corner
        pixel. ``phi`` varies slowest, then ``ty``, then ``tx``; the identity
        pose is the middle row. ``n_poses = (2J + 1)**2 (2K + 1)``.

    Notes
    -----
    The rotations are bounded so that the farthest pixel moves at most ``h``
    pixels (B7) and spaced so that it moves at most ``rotation_step_px`` per
    step (B8); every other pixel moves less. The count therefore depends on
    the kernel size only: with the default steps 4913, 15625 and 35937
    poses for m = 17, 25 and 33, at any image size.

    Examples
    --------
    >>> from refdeblur.nonuniform.motion_basis import pose_grid
    >>> poses = pose_grid((512, 512), 5)
    >>> poses.shape
    (125, 3)
    >>> poses[62].tolist()
    [0.0, 0.0, 0.0]
    """
    rows, cols = _check_image_shape(image_shape)
    half = check_kernel_size(kernel_size) // 2

    def symmetric_steps(name, step):
        if not (isinstance(step, numbers.Real) and 0 < step <= half):
            raise ValueError(f"{name} must be in (0, {half}], got {step!r}")
        count = math.floor(half / step + 1e-9)
        return step * np.arange(-count, count + 1, dtype=np.float64)

    shifts = symmetric_steps("translation_step_px", translation_step_px)
    arcs = symmetric_steps("rotation_step_px", rotation_step_px)
    rho_max = math.hypot((rows - 1) / 2.0, (cols - 1) / 2.0)
    # A 1x1 image has no lever arm: a rotation moves nothing, so one angle.
    phis = arcs / rho_max if rho_max > 0 else np.zeros(1)              # (B7), (B8)
    phi, ty, tx = np.meshgrid(phis, shifts, shifts, indexing="ij")
    return np.stack([tx.ravel(), ty.ravel(), phi.ravel()], axis=1)


def pose_displacements(image_shape, centres, poses):
    r"""How far every pose moves every patch centre.

    Parameters
    ----------
    image_shape : tuple of int
        ``(rows, cols)`` of the image; rotations are about its centre
        ``((rows - 1) / 2, (cols - 1) / 2)``.
    centres : array_like of shape (R, 2)
        Patch centres ``(row, col)`` in pixel coordinates of the image.
    poses : array_like of shape (n_poses, 3)
        Poses ``(tx, ty, phi)``, see :func:`pose_grid`.

    Returns
    -------
    ndarray of shape (R, n_poses, 2)
        ``d = W(c) - c`` as ``(d_row, d_col)`` (B3), with the warp
        ``W(p) = o + A(phi) (p - o) + (ty, tx)`` of (B1).

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.nonuniform.motion_basis import pose_displacements
    >>> d = pose_displacements((101, 101), [[50, 50], [50, 100]],
    ...                        [[2.0, -1.0, 0.0], [0.0, 0.0, 0.01]])
    >>> np.round(d, 4).tolist()
    [[[-1.0, 2.0], [0.0, 0.0]], [[-1.0, 2.0], [0.5, -0.0025]]]
    """
    shape = _check_image_shape(image_shape)
    centres = _check_points("centres", centres, 2)
    poses = _check_points("poses", poses, 3)
    rel = centres - _image_centre(shape)                                 # c - o
    cos = np.cos(poses[:, 2])
    sin = np.sin(poses[:, 2])
    # (A(phi) - I)(c - o) + t, with A = [[cos, sin], [-sin, cos]] on (row, col)   (B1), (B3)
    d_row = ((cos - 1.0)[None, :] * rel[:, :1] + sin[None, :] * rel[:, 1:]
             + poses[None, :, 1])
    d_col = (-sin[None, :] * rel[:, :1] + (cos - 1.0)[None, :] * rel[:, 1:]
             + poses[None, :, 0])
    return np.stack([d_row, d_col], axis=-1)


# --------------------------------------------------------------------------
# The basis
# --------------------------------------------------------------------------

def _bilinear_taps(positions, size):
    """Flat kernel indices, pose indices and weights of a bilinear splat.

    ``positions`` (n, 2) are (row, col) kernel coordinates; taps outside the
    ``size`` x ``size`` window and taps of weight zero are left out (B5).
    """
    base = np.floor(positions)
    frac = positions - base
    base = base.astype(np.intp)
    pose = np.arange(positions.shape[0])
    rows, cols, weights = [], [], []
    for dr in (0, 1):
        for dc in (0, 1):
            w = ((frac[:, 0] if dr else 1.0 - frac[:, 0])
                 * (frac[:, 1] if dc else 1.0 - frac[:, 1]))
            r = base[:, 0] + dr
            c = base[:, 1] + dc
            keep = (w > 0) & (r >= 0) & (r < size) & (c >= 0) & (c < size)
            rows.append(r[keep] * size + c[keep])
            cols.append(pose[keep])
            weights.append(w[keep])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)


def motion_basis(image_shape, centres, kernel_size, poses):
    r"""The matrices ``B^(r)`` mapping pose weights to local kernels.

    Parameters
    ----------
    image_shape : tuple of int
        ``(rows, cols)`` of the image.
    centres : array_like of shape (R, 2)
        Patch centres ``(row, col)`` in pixel coordinates of the image.
    kernel_size : int
        Side ``m`` of the local kernels (odd, at least 3).
    poses : array_like of shape (n_poses, 3)
        Poses ``(tx, ty, phi)``, usually :func:`pose_grid`.

    Returns
    -------
    list of scipy.sparse.csr_array
        One ``(m * m, n_poses)`` matrix per patch. Column ``j`` of ``B^(r)``
        is the kernel of pose ``j`` alone at patch ``r``: its displacement
        ``d`` drawn with bilinear weights around kernel index
        ``(m // 2 + d_row, m // 2 + d_col)``, flattened row-major (B5).

    Notes
    -----
    Taps that fall outside the ``m x m`` window are dropped, so a column sums
    to 1 when the displaced point lies inside ``[0, m - 1]^2`` and to less
    (down to 0) otherwise (B6): a pose that moves the patch centre out of
    the window does not contribute to that patch's kernel. For a pose
    weight vector ``mu``, ``(B^(r) @ mu).reshape(m, m)`` is the local kernel
    of (B2), (B4).

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.nonuniform.motion_basis import motion_basis
    >>> basis = motion_basis((64, 64), [[10, 20]], 5, [[1.0, 0.0, 0.0]])
    >>> basis[0].toarray().reshape(5, 5)[2]  # one pixel to the right
    array([0., 0., 0., 1., 0.])
    """
    size = check_kernel_size(kernel_size)
    poses = _check_points("poses", poses, 3)
    displacements = pose_displacements(image_shape, centres, poses)
    half = size // 2
    matrices = []
    for d in displacements:
        rows, cols, weights = _bilinear_taps(half + d, size)              # (B5)
        matrices.append(sparse.csr_array((weights, (rows, cols)),
                                         shape=(size * size, poses.shape[0])))
    return matrices


def _stack(basis, n_patches, size):
    """The basis as one ``(R m^2, n_poses)`` CSR matrix, after shape checks."""
    if len(basis) != n_patches:
        raise ValueError(f"{n_patches} kernels but {len(basis)} basis matrices")
    shapes = {b.shape for b in basis}
    if len(shapes) != 1 or next(iter(shapes))[0] != size * size:
        raise ValueError(f"every basis matrix must have shape ({size * size}, n_poses) "
                         f"for {size}x{size} kernels, got {sorted(shapes)}")
    return sparse.csr_array(sparse.vstack(basis, format="csr"))


# --------------------------------------------------------------------------
# Eq. 9 and the least-squares variant
# --------------------------------------------------------------------------

def threshold_pose_weights(weights, eta):
    r"""The hard threshold ``T_eta``: keep the largest fraction ``eta``.

    Parameters
    ----------
    weights : array_like of shape (n,)
        Pose weights.
    eta : float
        Fraction to keep, in (0, 1].

    Returns
    -------
    ndarray of shape (n,)
        A copy in which all but the ``ceil(eta * n)`` largest entries are
        zero (B10); ``eta * n`` is rounded to 12 significant digits first,
        so that e.g. ``0.3 * 10`` keeps 3. Ties at the threshold are broken
        by position, so exactly that many entries are kept.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.nonuniform.motion_basis import threshold_pose_weights
    >>> threshold_pose_weights(np.array([0.1, 0.5, 0.2, 0.4]), 0.5)
    array([0. , 0.5, 0. , 0.4])
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1:
        raise ValueError(f"weights must be one-dimensional, got shape {weights.shape}")
    if not (isinstance(eta, numbers.Real) and 0 < eta <= 1):
        raise ValueError(f"eta must be in (0, 1], got {eta!r}")
    n = weights.size
    n_keep = min(n, math.ceil(float(f"{eta * n:.12g}")))                 # (B10)
    out = np.zeros_like(weights)
    if n_keep == 0:
        return out
    keep = np.argpartition(weights, n - n_keep)[n - n_keep:]
    out[keep] = weights[keep]
    return out


def _largest_eigenvalue_bound(matrix, matrix_t, iterations=30):
    """An upper bound on the largest eigenvalue of ``M^T M`` for ``M >= 0``.

    Power iteration from the ones vector, then the Collatz-Wielandt bound
    ``max_i (G v)_i / v_i`` with ``G = M^T M``: for a non-negative ``G`` and
    a positive ``v`` it bounds the spectral radius from above (B13).
    Columns of ``M`` that are zero are left out (their ``v_i`` is 0).
    """
    v = np.ones(matrix.shape[1])
    for _ in range(iterations):
        g = matrix_t @ (matrix @ v)
        norm = np.linalg.norm(g)
        if norm == 0:
            return 0.0
        v = g / norm
    g = matrix_t @ (matrix @ v)
    positive = v > 0
    return float(np.max(g[positive] / v[positive]))


def _nonnegative_least_squares(matrix, target, *, max_iter, tol):
    """``argmin_{mu >= 0} ||M mu - target||^2`` by FISTA with adaptive restart (B12)."""
    matrix_t = sparse.csr_array(matrix.T)
    lipschitz = _largest_eigenvalue_bound(matrix, matrix_t)
    mu = np.zeros(matrix.shape[1])
    if lipschitz == 0:
        return mu
    z = mu.copy()
    t = 1.0
    for _ in range(max_iter):
        grad = matrix_t @ (matrix @ z - target)
        mu_next = np.maximum(z - grad / lipschitz, 0.0)
        step = mu_next - mu
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        # Restart the momentum when it points uphill (O'Donoghue and Candès 2015).
        if np.dot(z - mu_next, step) > 0:
            t_next = 1.0
            z = mu_next.copy()
        else:
            z = mu_next + ((t - 1.0) / t_next) * step
        mu, t = mu_next, t_next
        if np.linalg.norm(step) <= tol * max(np.linalg.norm(mu), np.finfo(float).tiny):
            break
    return mu


def project_kernels(kernels, basis, *, eta=1.0, method="adjoint", max_iter=200, tol=1e-4):
    r"""Project local kernels onto the kernels one camera motion can produce.

    Parameters
    ----------
    kernels : array_like of shape (R, m, m)
        Local kernels, one per patch (e.g. Eq. 8's ``k_direct^(r)``).
    basis : sequence of scipy.sparse arrays
        The ``R`` matrices of :func:`motion_basis`, in the same patch order.
    eta : float, optional
        Fraction of pose weights kept by the hard threshold ``T_eta`` (B10),
        in (0, 1]; 1 (the default) keeps all. The paper's Fig. 16 uses 1.0
        and 0.0314.
    method : {"adjoint", "nnls"}, optional
        ``"adjoint"`` (default): the paper's Eq. 9, pose weights
        ``mu = sum_r B^(r)^T k^(r)`` (B9). ``"nnls"``: the pose weights that
        fit the kernels best, ``argmin_{mu >= 0} sum_r ||B^(r) mu - k^(r)||^2``
        (B12), solved iteratively.
    max_iter : int, optional
        Iterations of the ``"nnls"`` solver at most (default 200).
    tol : float, optional
        The ``"nnls"`` solver stops when an iteration changes ``mu`` by less
        than ``tol`` relative to its norm (default 1e-4).

    Returns
    -------
    projected : ndarray of shape (R, m, m)
        ``B^(r) T_eta(mu)``, each normalised to unit sum (B11). A patch where
        this has no positive mass (every kept pose moves its centre out of
        the window) keeps its input kernel, normalised to unit sum.
    weights : ndarray of shape (n_poses,)
        ``T_eta(mu)``, scaled to unit sum (the scale of ``mu`` does not
        matter once the kernels are normalised).

    Notes
    -----
    The paper's projection applies the adjoint ``B^T`` where the
    pseudo-inverse belongs: each pose gets the sum over patches of the
    kernel values at its displacements (a vote), which spreads the weight
    over all poses that agree near some patches. ``"nnls"`` solves the
    fitting problem instead; derivations/motion_basis.md §5 compares both.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.nonuniform.motion_basis import (motion_basis, pose_grid,
    ...                                                 project_kernels)
    >>> shape, centres = (64, 64), [[16, 16], [16, 48], [48, 16], [48, 48]]
    >>> basis = motion_basis(shape, centres, 5, pose_grid(shape, 5))
    >>> mu = np.zeros(basis[0].shape[1]); mu[[3, 40, 100]] = [0.5, 0.3, 0.2]
    >>> true = np.stack([(b @ mu).reshape(5, 5) for b in basis])
    >>> fitted, _ = project_kernels(true, basis, method="nnls")
    >>> bool(np.abs(fitted - true / true.sum(axis=(1, 2), keepdims=True)).max() < 1e-3)
    True
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2]:
        raise ValueError(f"kernels must have shape (R, m, m), got {kernels.shape}")
    n_patches, size, _ = kernels.shape
    check_kernel_size(size)
    if method not in PROJECTION_METHODS:
        raise ValueError(f"method must be one of {PROJECTION_METHODS}, got {method!r}")
    if not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    matrix = _stack(basis, n_patches, size)
    target = kernels.reshape(-1)
    if method == "adjoint":
        mu = matrix.T @ target                                           # (B9)
    else:
        mu = _nonnegative_least_squares(matrix, target, max_iter=max_iter,
                                        tol=tol)                         # (B12)
    mu = threshold_pose_weights(mu, eta)                                 # (B10)
    projected = (matrix @ mu).reshape(n_patches, size, size)             # (B11)
    sums = projected.sum(axis=(1, 2))
    fallback = ~(sums > 0)
    projected[~fallback] /= sums[~fallback, None, None]
    for r in np.flatnonzero(fallback):
        total = kernels[r].sum()
        projected[r] = kernels[r] / total if total > 0 else kernels[r]
    total = mu.sum()
    return projected, (mu / total if total > 0 else mu)
