"""Finite-difference and adjoint checks for hand-written gradients.

These are the helpers refdeblur's own tests use. They are public so that
people porting the network to another framework can check their gradients
against the same yardstick.

Three levels of checks, from cheapest to most local:

* :func:`adjoint_mismatch` -- the dot-product test
  ``<A u, v> = <u, A^T v>`` for a linear operator and its adjoint.
* :func:`check_vjp` -- a vector-Jacobian product against central differences
  along random directions. With a random output weight ``C`` the scalar
  ``L(x) = <C, f(x)>`` has gradient ``vjp(C)``; its derivative along a random
  direction ``u`` is ``<vjp(C), u>``, which must equal
  ``(L(x + h u) - L(x - h u)) / (2 h)``. Two evaluations of ``f`` test the
  whole Jacobian.
* :func:`numerical_gradient` -- the element-wise central-difference gradient,
  for tiny inputs, to find *which* entry is wrong.

All checks should run in float64: in float32 the rounding error of a central
difference is of order ``1e-7 / h`` and swamps the truncation error.

Conventions
-----------
The inner product of real arrays is ``<a, b> = sum(a * b)`` over all
entries. Relative errors are symmetric:
``|a - b| / max(|a|, |b|)`` (a norm for arrays, an absolute value for scalars).
"""

import numpy as np

__all__ = [
    "relative_error",
    "inner",
    "directional_derivative",
    "stable_directional_derivative",
    "numerical_gradient",
    "check_vjp",
    "adjoint_mismatch",
]


def inner(a, b):
    """Real inner product ``sum(a * b)`` of two arrays of equal shape.

    Parameters
    ----------
    a, b : ndarray
        Arrays of the same shape.

    Returns
    -------
    float
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"inner product of shapes {a.shape} and {b.shape}")
    return float(np.sum(a * b))


def relative_error(actual, expected):
    """Symmetric relative error between two arrays or scalars.

    Parameters
    ----------
    actual, expected : array_like
        Values to compare, of equal shape.

    Returns
    -------
    float
        ``||actual - expected|| / max(||actual||, ||expected||)`` with the
        Euclidean norm; 0 when both are exactly zero.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} and {expected.shape}")
    scale = max(np.linalg.norm(actual), np.linalg.norm(expected))
    if scale == 0.0:
        return 0.0
    return float(np.linalg.norm(actual - expected) / scale)


def directional_derivative(loss, x, direction, h=1e-6, *, order=2):
    """Central-difference derivative of a scalar function along a direction.

    Parameters
    ----------
    loss : callable
        ``loss(x) -> float``. Must not modify ``x``.
    x : ndarray
        Point of evaluation.
    direction : ndarray
        Direction, same shape as ``x``.
    h : float, optional
        Step length.
    order : {2, 4}, optional
        Order of the central stencil. 2: ``(L(x + h d) - L(x - h d)) / 2h``,
        truncation error ``O(h**2)``. 4: the five-point stencil
        ``(8 [L(x + h d) - L(x - h d)] - [L(x + 2h d) - L(x - 2h d)]) / 12h``,
        truncation error ``O(h**4)``; it allows a larger ``h`` and so a
        smaller rounding error ``~ eps |L| / h``, which matters where a
        parameter's derivative is many orders below the loss itself (e.g.
        the coarse scale of a multi-scale network).

    Returns
    -------
    float
    """
    x = np.asarray(x)

    def difference(step):
        return loss(x + step * direction) - loss(x - step * direction)

    if order == 2:
        return difference(h) / (2.0 * h)
    if order == 4:
        return (8.0 * difference(h) - difference(2.0 * h)) / (12.0 * h)
    raise ValueError(f"order must be 2 or 4, got {order}")


def stable_directional_derivative(loss, x, direction, *, steps=None,
                                  order=4, is_smooth=None):
    """Directional derivative with the step chosen for stability.

    For deep, strongly non-linear compositions no single step suits every
    parameter: a large step suffers truncation error (and may cross a kink
    such as the kernel threshold ``max(k, 0)``), a small one suffers rounding
    error ``~ eps |L| / h``, which dominates where a parameter's derivative
    is many orders of magnitude below the loss. This evaluates the central
    difference on a geometric ladder of steps and returns the estimate that
    agrees best with its neighbour on the ladder (the classical stability
    criterion of numerical differentiation).

    Parameters
    ----------
    loss : callable
        ``loss(x) -> float``.
    x, direction : ndarray
        Point and direction.
    steps : sequence of float, optional
        Decreasing step lengths; default ``1e-2, 10**-2.5, ..., 1e-7``.
    order : {2, 4}, optional
        Stencil order, see :func:`directional_derivative`.
    is_smooth : callable, optional
        ``is_smooth(h) -> bool``: whether ``loss`` is smooth on
        ``[x - 2h d, x + 2h d]`` (e.g. no kink crossed). Steps for which it
        returns False are skipped.

    Returns
    -------
    estimate : float
    step : float
        The step of the chosen estimate.
    """
    if steps is None:
        steps = 10.0 ** -np.arange(2.0, 7.01, 0.5)
    estimates = []
    for h in steps:
        if is_smooth is not None and not is_smooth(h):
            continue
        estimates.append((h, directional_derivative(loss, x, direction, h,
                                                    order=order)))
    if not estimates:
        raise ValueError("no step length gave a smooth stencil")
    if len(estimates) == 1:
        return estimates[0][1], estimates[0][0]
    best = min(range(len(estimates) - 1),
               key=lambda i: abs(estimates[i][1] - estimates[i + 1][1]))
    return estimates[best + 1][1], estimates[best + 1][0]


def numerical_gradient(loss, x, h=1e-6):
    """Element-wise central-difference gradient of a scalar function.

    Costs two evaluations of ``loss`` per entry of ``x``: use tiny inputs.

    Parameters
    ----------
    loss : callable
        ``loss(x) -> float``. Must not keep a reference to ``x``.
    x : ndarray
        Point of evaluation (float64). It is perturbed in place and restored.
    h : float, optional
        Step length.

    Returns
    -------
    ndarray
        Gradient, same shape as ``x``.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)
    flat_grad = grad.reshape(-1)
    for index in range(flat_x.size):
        saved = flat_x[index]
        flat_x[index] = saved + h
        loss_plus = loss(x)
        flat_x[index] = saved - h
        loss_minus = loss(x)
        flat_x[index] = saved
        flat_grad[index] = (loss_plus - loss_minus) / (2.0 * h)
    return grad


def check_vjp(function, inputs, vjp, *, rng, h=1e-6, order=2, n_directions=2,
              output_weight=None):
    """Check a vector-Jacobian product against central differences.

    Parameters
    ----------
    function : callable
        ``function(*inputs) -> ndarray`` (or a float). It must be a pure
        function of its inputs.
    inputs : sequence of ndarray
        The point of evaluation, float64.
    vjp : callable
        ``vjp(output_weight) -> sequence of ndarray``: the gradient of
        ``<output_weight, function(*inputs)>`` with respect to each input,
        at ``inputs``. An entry may be ``None`` for an input that is not
        differentiated; it is then skipped.
    rng : numpy.random.Generator
        Source of the random output weight and directions.
    h : float, optional
        Finite-difference step.
    order : {2, 4}, optional
        Stencil order, see :func:`directional_derivative`.
    n_directions : int, optional
        Random directions tried per input; the worst error is reported.
    output_weight : ndarray, optional
        Fixed output weight ``C``; random standard normal when omitted.

    Returns
    -------
    list of float
        The worst relative error per input (``nan`` for skipped inputs).

    Notes
    -----
    For input ``i`` and direction ``u`` the analytic value is
    ``<g_i, u>`` and the numerical value is
    ``(L(.., x_i + h u, ..) - L(.., x_i - h u, ..)) / (2 h)`` with
    ``L = <C, function(*inputs)>``. The relative error is
    ``|analytic - numeric| / max(|analytic|, |numeric|)``.
    """
    inputs = [np.asarray(x) for x in inputs]
    output = np.asarray(function(*inputs))
    if output_weight is None:
        output_weight = rng.standard_normal(output.shape)
    grads = vjp(output_weight)
    if len(grads) != len(inputs):
        raise ValueError(f"vjp returned {len(grads)} gradients for "
                         f"{len(inputs)} inputs")
    errors = []
    for index, (x, grad) in enumerate(zip(inputs, grads)):
        if grad is None:
            errors.append(float("nan"))
            continue
        if np.shape(grad) != x.shape:
            raise ValueError(f"gradient {index} has shape {np.shape(grad)}, "
                             f"input has {x.shape}")

        def loss(x_perturbed, index=index):
            args = list(inputs)
            args[index] = x_perturbed
            return inner(output_weight, np.asarray(function(*args)))

        worst = 0.0
        for _ in range(n_directions):
            direction = rng.standard_normal(x.shape)
            analytic = inner(grad, direction)
            numeric = directional_derivative(loss, x, direction, h,
                                             order=order)
            worst = max(worst, relative_error(analytic, numeric))
        errors.append(worst)
    return errors


def adjoint_mismatch(operator, adjoint, input_shape, output_shape, *, rng):
    """Dot-product test of a linear operator against its adjoint.

    Parameters
    ----------
    operator : callable
        ``operator(u) -> v``, linear, ``u`` of ``input_shape``.
    adjoint : callable
        ``adjoint(v) -> u``, the claimed transpose.
    input_shape, output_shape : tuple of int
        Shapes of ``u`` and ``v``.
    rng : numpy.random.Generator
        Source of the random test vectors.

    Returns
    -------
    float
        ``|<A u, v> - <u, A^T v>| / max(|<A u, v>|, |<u, A^T v>|)``. About
        ``1e-15`` for a correct float64 adjoint.
    """
    u = rng.standard_normal(input_shape)
    v = rng.standard_normal(output_shape)
    forward_value = inner(np.asarray(operator(u)), v)
    adjoint_value = inner(u, np.asarray(adjoint(v)))
    return relative_error(forward_value, adjoint_value)
