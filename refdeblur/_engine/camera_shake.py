"""The lower-triangular product that colours the camera-shake sampler's noise.

:func:`refdeblur.camera_shake.sample_trajectory` computes ``L z`` for the
``(n, n)`` Cholesky factor ``L`` of the trajectory covariance and ``z`` of
shape ``(n, 2)`` (derivations/camera_shake.md, G6). A plain ``L @ z`` goes
through a multithreaded BLAS that, for this memory-bound product with two
columns, gains nothing from threads and is 10 to 30 times slower on a busy
machine (measured 0.7 ms idle, 12 to 16 ms under load on 2 cores); it also
reads the upper triangle of zeros.

Both versions here add ``L[i, 0] z[0], L[i, 1] z[1], ...`` in that order
for every row, without fused multiply-adds, so they give the same bits, and
the sampled kernels do not depend on whether numba is installed:

:func:`lower_triangular_product_kernel`
    the numba loop over the lower triangle (0.4 ms for n = 1000);
:func:`lower_triangular_product_numpy`
    one vector update per column of ``L`` (about 10 ms for n = 1000).
"""

import numpy as np

from . import HAVE_NUMBA, njit, warn_without_numba

__all__ = ["lower_triangular_product", "lower_triangular_product_kernel",
           "lower_triangular_product_numpy"]


@njit(cache=True)
def lower_triangular_product_kernel(chol, z):
    """``chol @ z`` for lower-triangular ``chol`` ``(n, n)`` and ``z`` ``(n, 2)``.

    Reads only the lower triangle; row ``i`` sums its ``i + 1`` products
    from left to right.
    """
    n = chol.shape[0]
    out = np.empty((n, 2))
    for i in range(n):
        a = 0.0
        b = 0.0
        for j in range(i + 1):
            a += chol[i, j] * z[j, 0]
            b += chol[i, j] * z[j, 1]
        out[i, 0] = a
        out[i, 1] = b
    return out


def lower_triangular_product_numpy(chol, z):
    """:func:`lower_triangular_product_kernel` with NumPy, bit for bit.

    Column ``j`` of ``chol`` updates rows ``j`` to ``n - 1`` at once, so
    every row still adds its products from left to right, each product
    rounded before the addition.
    """
    n = chol.shape[0]
    columns = np.ascontiguousarray(chol.T)      # column j of chol as a row
    out = np.zeros((n, 2))
    for j in range(n):
        out[j:] += columns[j, j:, None] * z[j]
    return out


def lower_triangular_product(chol, z):
    """``chol @ z`` for the sampler: the numba kernel, else the NumPy loop.

    Parameters
    ----------
    chol : ndarray of shape (n, n), float64
        Lower triangular; the upper triangle is not read.
    z : ndarray of shape (n, 2), float64

    Returns
    -------
    ndarray of shape (n, 2), float64
        The same bits with and without numba.
    """
    if HAVE_NUMBA:
        return lower_triangular_product_kernel(chol, z)
    warn_without_numba()
    return lower_triangular_product_numpy(chol, z)
