"""Minimise the profiled criterion: bounded L-BFGS-B, boundary escape, Newton polish.

Two things make a plain gradient method unreliable here, and both are
handled:

* A diagonal element of ``Lam`` sitting on its bound 0 can be a stationary
  point only by symmetry (flipping the sign of a column of ``Lam`` leaves
  the model unchanged), so L-BFGS-B may stop there although the criterion
  falls when the element moves back inside.  After every run the criterion
  is probed at small positive values of each such element and the run
  restarts from the best probe if it is lower.
* L-BFGS-B's stopping rules are loose relative to the agreement we want
  with lme4 (1e-5 on standard deviations).  A few Newton steps with a
  Hessian from central differences of the exact gradient take the
  parameters to the optimum to near machine precision.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

from stepanalytics.lmm.criterion import Criterion
from stepanalytics.lmm.start import theta_units

Array = NDArray[np.floating[Any]]

#: A diagonal element below this counts as on the boundary (lme4's isSingular tol).
BOUNDARY_TOL = 1e-4
_PROBES = (1e-3, 1e-2, 1e-1, 0.5)


@dataclass(frozen=True)
class Optimum:
    """Where the optimiser stopped, and how it got there."""

    theta: Array
    deviance: float
    gradient: Array
    n_evaluations: int
    converged: bool
    message: str
    attempts: tuple[dict[str, Any], ...]


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with OpenBLAS limited to one thread, when threadpoolctl is installed.

    scipy >= 1.15's L-BFGS-B calls BLAS on vectors of a handful of elements;
    with a multi-threaded OpenBLAS each call pays a thread hand-off that can
    cost milliseconds (scipy issues #22438, #23191), which dominated small
    fits (0.3 s instead of 0.06 s for 2,000 patients).  The engine's own
    products are far too small to gain from threads.
    """
    controller = _blas_controller()
    if controller is None:  # pragma: no cover - optional speed-up
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


_CONTROLLER: list[Any] = []


def _blas_controller() -> Any:
    """threadpoolctl's controller, made once: finding the libraries reads /proc/self/maps,
    which costs more than a whole small fit."""
    if not _CONTROLLER:
        try:
            module = importlib.import_module("threadpoolctl")
        except ImportError:  # pragma: no cover - optional speed-up
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(module.ThreadpoolController())
    return _CONTROLLER[0]


class _Counted:
    """Wrap the objective to count evaluations."""

    def __init__(self, criterion: Criterion) -> None:
        self.criterion = criterion
        self.calls = 0

    def __call__(self, theta: Array) -> tuple[float, Array]:
        self.calls += 1
        return self.criterion.objective(theta)


def numerical_jacobian(
    func: Callable[[Array], Array], x: Array, *, rel_step: float = 1e-4, richardson: bool = True
) -> Array:
    """Central-difference Jacobian, by default with one Richardson extrapolation.

    The error is O(h^4) with extrapolation (four evaluations per parameter)
    and O(h^2) without (two).  The derivative along ``x[k]`` is ``result[k]``.
    """
    rows = []
    for k in range(x.size):
        h = rel_step * max(abs(float(x[k])), 0.1)
        estimates = []
        for step in (h, h / 2) if richardson else (h,):
            e = np.zeros_like(x)
            e[k] = step
            estimates.append((np.asarray(func(x + e)) - np.asarray(func(x - e))) / (2 * step))
        rows.append((4 * estimates[1] - estimates[0]) / 3 if richardson else estimates[0])
    return np.array(rows)


def minimise_criterion(criterion: Criterion, starts: Sequence[tuple[str, Array]]) -> Optimum:
    """Run the optimiser from each named start and keep the lowest criterion.

    A later start whose path enters a small neighbourhood of an optimum
    already found (parameters within 1e-3 relative, criterion within 1e-3)
    is stopped there: it has confirmed that optimum, and finishing the run
    would only repeat the polishing.  Its attempt reports the optimum's value.
    """
    counted = _Counted(criterion)
    lower = np.where(criterion.diagonal, 0.0, -np.inf)
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    best: tuple[float, Array, Array, bool, str] | None = None
    attempts = []
    for name, start in starts:
        clock, calls = time.perf_counter(), counted.calls
        target = None if best is None else (best[0], best[1])
        theta, value, grad, ok, message = _run_from(
            counted, np.asarray(start, float), bounds, join=target
        )
        if message != _JOINED:
            theta, value, grad, escaped = _escape_boundary(
                counted, theta, value, grad, bounds, lower, join=target
            )
            message = escaped or message
        if best is not None and message == _JOINED:
            value, converged = best[0], best[3]
        else:
            theta, value, grad, polished = _newton_polish(counted, theta, value, grad, lower)
            converged = ok or polished
            if best is None or value < best[0]:
                best = (value, theta, grad, converged, message)
        at = best[1] if message == _JOINED and best is not None else theta
        attempts.append(
            {
                "start": name,
                "optimizer": "L-BFGS-B + Newton",
                "converged": converged,
                "boundary": bool(np.any((lower == 0.0) & (at < BOUNDARY_TOL))),
                "deviance": value,
                "evaluations": counted.calls - calls,
                "seconds": time.perf_counter() - clock,
                "note": message,
            }
        )
    if best is None:
        raise ValueError("minimise_criterion needs at least one start")
    value, theta, grad, converged, message = best
    return Optimum(
        theta=theta,
        deviance=value,
        gradient=grad,
        n_evaluations=counted.calls,
        converged=converged,
        message=message,
        attempts=tuple(attempts),
    )


_JOINED = "joined an earlier optimum"


def _run_from(
    counted: _Counted,
    start: Array,
    bounds: list[tuple[float | None, None]],
    *,
    join: tuple[float, Array] | None = None,
) -> tuple[Array, float, Array, bool, str]:
    joined: list[optimize.OptimizeResult] = []

    def stop_near_known_optimum(intermediate_result: optimize.OptimizeResult) -> None:
        if join is None:
            return
        value, theta = join
        size = max(1.0, float(np.max(np.abs(theta))))
        close = np.max(np.abs(intermediate_result.x - theta)) < 1e-3 * size
        if close and intermediate_result.fun - value < 1e-3:
            joined.append(intermediate_result)
            raise StopIteration

    result = optimize.minimize(
        counted,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        callback=stop_near_known_optimum,
        options={"maxiter": 2000, "ftol": 1e-10, "gtol": 1e-9},
    )
    message = _JOINED if joined else str(result.message)
    return result.x, float(result.fun), np.asarray(result.jac), bool(result.success), message


def _escape_boundary(
    counted: _Counted,
    theta: Array,
    value: float,
    grad: Array,
    bounds: list[tuple[float | None, None]],
    lower: Array,
    *,
    join: tuple[float, Array] | None = None,
) -> tuple[Array, float, Array, str]:
    """Probe off the boundary and restart L-BFGS-B from the best probe that is lower.

    Two kinds of probe: each boundary element alone, moved to a few multiples
    of its natural unit; and the whole patient covariance Lam Lam' lifted by
    a fraction of its diagonal and factored again, which also frees
    elements held at zero jointly (a rank-deficient covariance can be a
    stationary point for every single-element move).
    """
    criterion = counted.criterion
    units = theta_units(criterion)
    message = ""
    for _ in range(criterion.n_theta):
        on_bound = np.flatnonzero((lower == 0.0) & (theta < BOUNDARY_TOL))
        if on_bound.size == 0:
            break
        trials = []
        for k in on_bound:
            for probe in _PROBES:
                trial = theta.copy()
                trial[k] = probe * units[k]
                trials.append(trial)
        trials += _lifted_covariance_probes(criterion, theta, units)
        best = (value, theta)
        for trial in trials:
            trial_value, _ = counted(trial)
            if trial_value < best[0] - 1e-10 * abs(best[0]):
                best = (trial_value, trial)
        if best[1] is theta:
            break
        theta, value, grad, _, message = _run_from(counted, best[1], bounds, join=join)
        if message == _JOINED:
            break
    return theta, value, grad, message


def _lifted_covariance_probes(criterion: Criterion, theta: Array, units: Array) -> list[Array]:
    q = criterion.stats.q
    if q == 1:
        return []
    lam = criterion.lambda_matrix(theta)
    cov = lam @ lam.T
    on_diagonal = criterion.tri_rows == criterion.tri_cols
    floor = (units[: criterion.n_patient_theta][on_diagonal] * 1e-2) ** 2
    diagonal = np.maximum(np.diag(cov), floor)
    probes = []
    for fraction in _PROBES[:3]:
        lifted = np.linalg.cholesky(cov + fraction * np.diag(diagonal))
        trial = theta.copy()
        trial[: criterion.n_patient_theta] = lifted[criterion.tri_rows, criterion.tri_cols]
        probes.append(trial)
    return probes


def _newton_polish(
    counted: _Counted, theta: Array, value: float, grad: Array, lower: Array
) -> tuple[Array, float, Array, bool]:
    """Newton steps on the parameters not held at their bound, reusing one Hessian.

    Near the optimum the Hessian hardly changes, so one central-difference
    Hessian serves up to three steps (a chord method); each step must not
    raise the criterion beyond its rounding noise.
    """
    free = ~((theta <= lower) & (grad >= 0.0))
    if not free.any():
        return theta, value, grad, True
    hessian = numerical_jacobian(lambda t: counted(t)[1], theta, rel_step=1e-5, richardson=False)
    sub = 0.5 * (hessian + hessian.T)[np.ix_(free, free)]
    try:
        factor = np.linalg.cholesky(sub)
    except np.linalg.LinAlgError:
        return theta, value, grad, False
    size = max(1.0, float(np.max(np.abs(theta))))
    for _ in range(3):
        step = -np.linalg.solve(factor.T, np.linalg.solve(factor, grad[free]))
        if np.max(np.abs(step)) < 1e-10 * size:
            return theta, value, grad, True
        trial = theta.copy()
        trial[free] += step
        trial = np.maximum(trial, lower)
        trial_value, trial_grad = counted(trial)
        if trial_value > value + 1e-12 * abs(value):
            break
        theta, value, grad = trial, trial_value, trial_grad
        if np.max(np.abs(step)) < 1e-7 * size:
            return theta, value, grad, True
    step = np.linalg.solve(factor.T, np.linalg.solve(factor, grad[free]))
    return theta, value, grad, bool(np.max(np.abs(step)) < 1e-5 * size)
