"""Tests of the camera-motion basis and the projection of Eq. 9
(refdeblur.nonuniform.motion_basis, derivations/motion_basis.md)."""

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import convolve2d

from refdeblur.nonuniform.motion_basis import (
    motion_basis,
    pose_displacements,
    pose_grid,
    project_kernels,
    threshold_pose_weights,
)
from refdeblur.nonuniform.render import true_local_kernels

SHAPE = (96, 128)
SIZE = 9
HALF = SIZE // 2


def grid_centres(shape, n_rows, n_cols):
    rows = (np.arange(n_rows) + 0.5) * shape[0] / n_rows
    cols = (np.arange(n_cols) + 0.5) * shape[1] / n_cols
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)


def kernels_of(basis, mu):
    return np.stack([(b @ mu).reshape(SIZE, SIZE) for b in basis])


def relative_errors(estimate, truth):
    diff = np.linalg.norm((estimate - truth).reshape(len(truth), -1), axis=1)
    return diff / np.linalg.norm(truth.reshape(len(truth), -1), axis=1)


# --------------------------------------------------------------------------
# Poses (B7, B8)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("size, count", [(17, 4913), (25, 15625), (33, 35937)])
@pytest.mark.parametrize("side", [512, 1024])
def test_pose_counts(size, count, side):
    assert pose_grid((side, side), size).shape == (count, 3)


def test_pose_grid_ranges_and_steps():
    poses = pose_grid(SHAPE, SIZE)
    assert poses.shape == ((2 * HALF + 1) ** 3, 3)
    assert np.array_equal(poses[len(poses) // 2], [0.0, 0.0, 0.0])
    assert set(poses[:, 0]) == set(range(-HALF, HALF + 1))
    assert set(poses[:, 1]) == set(range(-HALF, HALF + 1))
    corner = np.array([[0.0, 0.0], [SHAPE[0] - 1.0, SHAPE[1] - 1.0], [0.0, SHAPE[1] - 1.0]])
    phis = np.unique(poses[:, 2])
    rotations = np.stack([np.zeros_like(phis), np.zeros_like(phis), phis], axis=1)
    moves = np.linalg.norm(pose_displacements(SHAPE, corner, rotations), axis=-1)
    # (B7): the farthest pixel (a corner) moves at most h; the largest angle
    # takes it almost exactly there (the chord is a little shorter than the arc).
    assert moves.max() <= HALF + 1e-12
    assert moves.max() > HALF - 0.01
    # (B8): one step moves the corner at most one pixel.
    steps = np.linalg.norm(np.diff(pose_displacements(SHAPE, corner, rotations), axis=1),
                           axis=-1)
    assert steps.max() <= 1.0 + 1e-12
    assert steps.max() > 0.99


def test_finer_pose_grid():
    poses = pose_grid(SHAPE, SIZE, translation_step_px=0.5)
    assert poses.shape == ((4 * HALF + 1) ** 2 * (2 * HALF + 1), 3)
    assert np.allclose(np.diff(np.unique(poses[:, 0])), 0.5)
    assert np.allclose(np.diff(np.unique(poses[:, 1])), 0.5)
    poses = pose_grid(SHAPE, SIZE, rotation_step_px=0.5)
    assert poses.shape == ((2 * HALF + 1) ** 2 * (4 * HALF + 1), 3)
    assert np.allclose(np.diff(np.unique(poses[:, 2])) * np.hypot(95 / 2, 127 / 2), 0.5)
    with pytest.raises(ValueError, match="translation_step_px"):
        pose_grid(SHAPE, SIZE, translation_step_px=0)
    with pytest.raises(ValueError, match="rotation_step_px"):
        pose_grid(SHAPE, SIZE, rotation_step_px=HALF + 1)
    with pytest.raises(ValueError, match="kernel size"):
        pose_grid(SHAPE, 8)
    with pytest.raises(ValueError, match="image_shape"):
        pose_grid((96, 128, 3), SIZE)


def test_rotation_turns_about_the_image_centre():
    # A rotation leaves the centre in place and moves a point on the row of
    # the centre vertically: positive phi takes +col to +row (B1).
    centre = ((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2)
    right = (centre[0], centre[1] + 50.0)
    d = pose_displacements(SHAPE, [centre, right], [[0.0, 0.0, 0.02]])
    assert np.allclose(d[0, 0], 0.0, atol=1e-12)
    assert np.allclose(d[1, 0], [50 * math.sin(0.02), 50 * (math.cos(0.02) - 1)])


# --------------------------------------------------------------------------
# The basis (B4 to B6)
# --------------------------------------------------------------------------

def test_translation_pose_follows_convolve2d(rng):
    # (B4): a pose moving points by (dr, dc) = (ty, tx) puts the kernel's mass
    # at (h + dr, h + dc), and convolve2d with that kernel moves the image
    # content by (dr, dc): y_valid[i, j] = x[i + h - dr, j + h - dc].
    tx, ty = 3.0, -2.0
    basis = motion_basis(SHAPE, [[20.0, 70.0]], SIZE, [[tx, ty, 0.0]])
    kernel = basis[0].toarray().reshape(SIZE, SIZE)
    assert np.argwhere(kernel).tolist() == [[HALF - 2, HALF + 3]]
    x = rng.random((40, 50))
    y = convolve2d(x, kernel, mode="valid")
    rows, cols = y.shape
    assert np.array_equal(y, x[HALF + 2:HALF + 2 + rows, HALF - 3:HALF - 3 + cols])
    dot = np.zeros((31, 31))
    dot[15, 15] = 1.0
    assert np.argwhere(convolve2d(dot, kernel, mode="same")).tolist() == [[13, 18]]


def test_columns_are_bilinear_splats(rng):
    # (B5), (B6): each column is the bilinear splat of the displacement: mass 1
    # and centre of mass h + d when it lies in the window, less mass outside.
    centres = grid_centres(SHAPE, 2, 3)
    poses = np.column_stack([rng.uniform(-7, 7, 300), rng.uniform(-7, 7, 300),
                             rng.uniform(-0.05, 0.05, 300)])
    basis = motion_basis(SHAPE, centres, SIZE, poses)
    d = pose_displacements(SHAPE, centres, poses)
    index = np.arange(SIZE)
    n_inside = n_outside = 0
    for b, disp in zip(basis, d):
        dense = b.toarray()
        sums = dense.sum(axis=0)
        assert dense.min() >= 0 and sums.max() <= 1 + 1e-12
        inside = np.all(np.abs(disp) <= HALF, axis=1)
        assert np.allclose(sums[inside], 1.0, atol=1e-12)
        assert np.all(sums[np.any(np.abs(disp) >= HALF + 1, axis=1)] == 0)
        assert np.all(sums[~inside] < 1)
        grids = dense[:, inside].reshape(SIZE, SIZE, -1)
        com_row = np.einsum("i,ijk->k", index, grids)
        com_col = np.einsum("j,ijk->k", index, grids)
        assert np.allclose(com_row, HALF + disp[inside, 0], atol=1e-12)
        assert np.allclose(com_col, HALF + disp[inside, 1], atol=1e-12)
        n_inside += inside.sum()
        n_outside += (~inside).sum()
    assert n_inside > 100 and n_outside > 100


def test_basis_adjoint_is_bilinear_interpolation(rng):
    # Dot-product test of B^(r) against an independent adjoint: B^T v reads v
    # at h + d with bilinear interpolation, zero outside the window.
    centres = grid_centres(SHAPE, 2, 2)
    poses = pose_grid(SHAPE, SIZE)
    basis = motion_basis(SHAPE, centres, SIZE, poses)
    d = pose_displacements(SHAPE, centres, poses)
    for b, disp in zip(basis, d):
        u = rng.standard_normal(poses.shape[0])
        v = rng.standard_normal((SIZE, SIZE))
        adjoint = ndimage.map_coordinates(v, (HALF + disp).T, order=1, mode="grid-constant")
        lhs = float(np.dot(b @ u, v.ravel()))
        rhs = float(np.dot(u, adjoint))
        assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1.0)
        assert np.allclose(b.T @ v.ravel(), adjoint, atol=1e-12)


def test_basis_matches_the_rendered_kernels(rng):
    # Two independent codes agree: the basis with the poses of a path and equal
    # weights gives the kernels true_local_kernels splats from the same path
    # (max_step_px large: the path is integrated at its segment midpoints).
    path = np.column_stack([np.linspace(-2.5, 3.0, 12), np.linspace(1.0, -1.7, 12),
                            np.linspace(-0.03, 0.02, 12)])
    centres = np.vstack([grid_centres(SHAPE, 3, 3), rng.uniform(10, 80, (4, 2))])
    truth = true_local_kernels(SHAPE, centres, path, SIZE, max_step_px=1e9)
    midpoints = 0.5 * (path[:-1] + path[1:])
    basis = motion_basis(SHAPE, centres, SIZE, midpoints)
    kernels = kernels_of(basis, np.full(len(midpoints), 1 / len(midpoints)))
    assert np.allclose(kernels, truth, atol=1e-12)


# --------------------------------------------------------------------------
# Eq. 9 and the least-squares variant (B9 to B13)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("eta", [1e-4, 0.0314, 0.1, 0.3, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("n", [1, 10, 729, 4913])
def test_threshold_keeps_exactly_ceil_eta_n(rng, eta, n):
    weights = rng.random(n) + 1e-3
    kept = threshold_pose_weights(weights, eta)
    n_keep = math.ceil(round(eta * n, 9))
    assert np.count_nonzero(kept) == n_keep
    assert np.array_equal(kept[kept > 0], weights[kept > 0])
    if n_keep < n:
        assert kept[kept > 0].min() > weights[kept == 0].max()


def test_threshold_rejects_bad_eta():
    for eta in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="eta"):
            threshold_pose_weights(np.ones(5), eta)


def sparse_motion(rng, poses, n_poses=6):
    """Pose weights on a few poses along a short random walk in the grid."""
    index = {tuple(p): i for i, p in enumerate(np.round(poses, 12))}
    axes = [np.unique(poses[:, k]) for k in range(3)]
    position = np.array([len(a) // 2 for a in axes])
    chosen = []
    while len(chosen) < n_poses:
        pose = tuple(np.round([axes[k][position[k]] for k in range(3)], 12))
        if index[pose] not in chosen:
            chosen.append(index[pose])
        position = np.clip(position + rng.integers(-1, 2, 3), 1, [len(a) - 2 for a in axes])
    mu = np.zeros(len(poses))
    mu[chosen] = rng.uniform(0.5, 1.0, n_poses)
    return mu / mu.sum()


def test_least_squares_projection_recovers_kernels_of_sparse_motion(rng):
    centres = grid_centres(SHAPE, 3, 3)
    poses = pose_grid(SHAPE, SIZE)
    basis = motion_basis(SHAPE, centres, SIZE, poses)
    truth = kernels_of(basis, sparse_motion(rng, poses))
    truth /= truth.sum(axis=(1, 2), keepdims=True)
    fitted, mu = project_kernels(truth, basis, method="nnls", max_iter=2000, tol=1e-9)
    assert np.allclose(fitted.sum(axis=(1, 2)), 1.0)
    assert np.isclose(mu.sum(), 1.0) and mu.min() >= 0
    nnls_error = relative_errors(fitted, truth).max()
    assert nnls_error < 0.02
    # The paper's adjoint projection is a vote, not a fit: much worse here.
    voted, _ = project_kernels(truth, basis, method="adjoint")
    assert relative_errors(voted, truth).mean() > 10 * nnls_error


def test_adjoint_projection_is_eq9(rng):
    # (B9)-(B11) computed independently: each pose's weight is the sum over
    # patches of the kernels read at its displacements (bilinear), then T_eta,
    # then the kernels of the kept weights, normalised.
    centres = grid_centres(SHAPE, 2, 3)
    poses = pose_grid(SHAPE, SIZE)
    basis = motion_basis(SHAPE, centres, SIZE, poses)
    kernels = rng.random((len(centres), SIZE, SIZE))
    d = pose_displacements(SHAPE, centres, poses)
    votes = sum(ndimage.map_coordinates(k, (HALF + disp).T, order=1, mode="grid-constant")
                for k, disp in zip(kernels, d))
    eta = 0.05
    keep = np.argsort(votes)[-math.ceil(eta * len(poses)):]
    mu = np.zeros(len(poses))
    mu[keep] = votes[keep]
    expected = kernels_of(basis, mu)
    expected /= expected.sum(axis=(1, 2), keepdims=True)
    projected, weights = project_kernels(kernels, basis, eta=eta)
    assert np.allclose(projected, expected, atol=1e-12)
    assert np.allclose(weights, mu / mu.sum(), atol=1e-15)


def test_patch_without_kept_poses_keeps_its_kernel():
    # One pose far to the right: its displacement misses the window, so the
    # projection has no mass there and the (normalised) input is returned.
    basis = motion_basis(SHAPE, [[40.0, 60.0]], SIZE, [[20.0, 0.0, 0.0]])
    kernel = np.zeros((1, SIZE, SIZE))
    kernel[0, 2, 3] = 4.0
    projected, mu = project_kernels(kernel, basis)
    assert np.array_equal(projected, kernel / 4.0)
    assert np.array_equal(mu, [0.0])


def test_projection_rejects_mismatched_input():
    basis = motion_basis(SHAPE, grid_centres(SHAPE, 1, 2), SIZE, pose_grid(SHAPE, SIZE))
    with pytest.raises(ValueError, match="2 basis matrices"):
        project_kernels(np.ones((3, SIZE, SIZE)), basis)
    with pytest.raises(ValueError, match="shape"):
        project_kernels(np.ones((2, 7, 7)), basis)
    with pytest.raises(ValueError, match="method"):
        project_kernels(np.ones((2, SIZE, SIZE)), basis, method="pinv")
