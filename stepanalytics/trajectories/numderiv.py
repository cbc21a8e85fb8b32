"""Accurate numerical derivatives by central differences with Richardson extrapolation.

The Satterthwaite degrees of freedom need the Jacobian of cov(beta) and the
Hessian of the deviance with respect to the variance parameters.  lmerTest
gets both from R's numDeriv (Richardson method); this module follows the same
recipe - a central difference at a starting step, the step halved ``r - 1``
times, and the error terms of order h^2, h^4, ... cancelled by Richardson
extrapolation - so the two agree to many digits on smooth functions.

Starting steps follow numDeriv's defaults: ``d * |x|`` (plus ``eps`` where
``x`` is near zero), with d = 1e-4 for first derivatives and d = 0.1 for the
Hessian.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ZERO_TOL = float(np.sqrt(np.finfo(float).eps / 7e-7))


def _initial_steps(x: np.ndarray, d: float, eps: float) -> np.ndarray:
    return np.abs(d * x) + eps * (np.abs(x) < ZERO_TOL)


def _extrapolate(estimates: list[np.ndarray]) -> np.ndarray:
    """Richardson extrapolation of estimates made with steps h, h/2, h/4, ..."""
    table = [np.asarray(e, dtype=float) for e in estimates]
    for m in range(1, len(table)):
        factor = 4.0**m
        table = [(factor * table[k + 1] - table[k]) / (factor - 1.0) for k in range(len(table) - 1)]
    return table[0]


def jacobian(
    func: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    *,
    d: float = 1e-4,
    eps: float = 1e-4,
    r: int = 4,
) -> np.ndarray:
    """Derivative of an array-valued ``func`` with respect to each element of ``x``.

    Returns an array of shape ``(len(x),) + func(x).shape``.

    Examples
    --------
    >>> import numpy as np
    >>> jac = jacobian(lambda v: np.array([v[0] ** 2, v[0] * v[1]]), np.array([1.0, 2.0]))
    >>> np.round(jac, 8).tolist()
    [[2.0, 2.0], [0.0, 1.0]]
    """
    x = np.asarray(x, dtype=float)
    steps = _initial_steps(x, d, eps)
    out = []
    for i in range(x.size):
        estimates = []
        h = steps[i]
        for _ in range(r):
            up, down = x.copy(), x.copy()
            up[i] += h
            down[i] -= h
            estimates.append((np.asarray(func(up)) - np.asarray(func(down))) / (2.0 * h))
            h /= 2.0
        out.append(_extrapolate(estimates))
    return np.stack(out)


def hessian(
    func: Callable[[np.ndarray], float],
    x: np.ndarray,
    *,
    d: float = 0.1,
    eps: float = 1e-4,
    r: int = 4,
) -> np.ndarray:
    """Second derivatives of a scalar ``func`` at ``x``.

    Diagonal: (f(x+h) - 2 f(x) + f(x-h)) / h^2; off-diagonal: the four-point
    mixed difference (f(++) - f(+-) - f(-+) + f(--)) / (4 h_i h_j); both
    extrapolated over halved steps.

    Examples
    --------
    >>> import numpy as np
    >>> h = hessian(lambda v: v[0] ** 2 * v[1] + np.exp(v[1]), np.array([1.0, 0.5]))
    >>> np.round(h, 6).tolist()
    [[1.0, 2.0], [2.0, 1.648721]]
    """
    x = np.asarray(x, dtype=float)
    k = x.size
    f0 = float(func(x))
    steps0 = _initial_steps(x, d, eps)
    hess = np.zeros((k, k))

    def at(shift: np.ndarray) -> float:
        return float(func(x + shift))

    for i in range(k):
        for j in range(i + 1):
            estimates = []
            steps = steps0.copy()
            for _ in range(r):
                ei = np.zeros(k)
                ej = np.zeros(k)
                ei[i] = steps[i]
                ej[j] = steps[j]
                if i == j:
                    value = (at(ei) - 2.0 * f0 + at(-ei)) / steps[i] ** 2
                else:
                    value = (at(ei + ej) - at(ei - ej) - at(-ei + ej) + at(-ei - ej)) / (
                        4.0 * steps[i] * steps[j]
                    )
                estimates.append(np.array(value))
                steps = steps / 2.0
            hess[i, j] = hess[j, i] = float(_extrapolate(estimates))
    return hess
