"""The statsmodels engine: MixedLM fitted by several optimizers, best optimum kept.

statsmodels' default (``method=None``) runs BFGS, then L-BFGS, then CG, each
from where the previous one stopped, and gives up on the chain's last
result.  On random-slope models that can end at a worse optimum than every
optimizer would reach on its own (dietox: log-likelihood -2220.39 instead of
-2217.05).  Here each optimizer starts afresh from statsmodels' default
start, and the highest log-likelihood wins.  Nelder-Mead is never used.

The winner is then polished by L-BFGS-B on the profiled deviance of
:mod:`stepanalytics.trajectories.likelihood`, with lme4's bounds (diagonal
of the relative factor >= 0).  statsmodels' default tolerances leave SDs off
in the 4th digit, and its unconstrained square-root parameters approach a
singular optimum (a variance of zero, a correlation of +-1) only slowly; the
bounded polish lands on it, as lme4 does.  Its convergence is judged as lme4
judges it, by the deviance gradient at the end (below 2e-3, ``check.conv.grad``),
because at ftol 1e-15 L-BFGS-B's line search often stops ("ABNORMAL") at the
optimum itself; the attempt's note says which.

The data are rescaled (y, and every non-constant column of X and Z, to unit
SD) before fitting, which keeps the optimizer's parameters of similar size
whatever the instrument's units; the optimum is mapped back exactly, and
beta, cov(beta), sigma, the log-likelihood and the patient effects are then
computed on the original scale by :mod:`stepanalytics.trajectories.likelihood`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.trajectories import likelihood as lik
from stepanalytics.trajectories.engines import (
    DEFAULT_OPTIMIZERS,
    POLISH_START,
    EngineFit,
    MixedProblem,
    attempts_frame,
    check_optimizers,
    empty_attempts,
)

#: lme4's isSingular() tolerance on the diagonal of the relative factor.
SINGULAR_TOL = 1e-4
POLISH_OPTIONS = {"ftol": 1e-15, "gtol": 1e-9, "maxiter": 1000}
POLISH_NAME = "L-BFGS-B on profiled deviance"
#: lme4's check.conv.grad tolerance on the deviance gradient (lmerControl default).
GRADIENT_TOL = 2e-3
#: Optimizers that ignore statsmodels' ``free`` pattern (and so the uncorrelated structure).
IGNORE_CONSTRAINTS = frozenset({"powell"})


@dataclass
class _Run:
    optimizer: str
    start: str
    result: Any = None
    loglik: float = float("-inf")
    converged: bool = False
    seconds: float = 0.0
    hessian_ok: bool = True
    note: str = ""
    theta: np.ndarray | None = None


@dataclass(frozen=True)
class _Scales:
    y: float
    x: np.ndarray
    z: np.ndarray


def fit_with_statsmodels(
    problem: MixedProblem,
    *,
    reml: bool,
    optimizers: Sequence[str] | None = None,
    rescale: bool = True,
    polish: bool = True,
) -> EngineFit:
    """Fit with statsmodels MixedLM, one independent run per optimizer.

    Parameters
    ----------
    problem : MixedProblem
    reml : bool
    optimizers : sequence of str, optional
        Any of ``lbfgs``, ``bfgs``, ``cg``, ``powell`` (default: all four).
    rescale : bool, default True
        Fit on unit-SD columns and map back (see the module notes).
    polish : bool, default True
        Refine the best optimum by bounded L-BFGS-B on the profiled deviance.

    Returns
    -------
    EngineFit

    Notes
    -----
    R equivalent: ``lme4::lmer`` (then ``allFit`` to compare optimizers).
    """
    if problem.clinic_codes is not None:
        raise UsageError(
            "The statsmodels engine cannot fit a clinic random intercept with patients "
            "nested in clinics. Use engine='fast', or put clinic_id in the fixed effects."
        )
    chosen = check_optimizers(optimizers or DEFAULT_OPTIMIZERS)
    notes: list[str] = []
    free = None
    if problem.covariance == "diagonal":
        chosen, skipped = _constraint_keeping(chosen)
        if skipped:
            notes.append(
                f"{', '.join(skipped)} was not run: it ignores the constraint that the random "
                "effects be uncorrelated."
            )
        # statsmodels keeps the elements marked 0 in ``free`` at their start value (0).
        free = MixedLMParams.from_components(np.ones(problem.n_fixed), np.eye(problem.n_random))
    scales = _scales(problem) if rescale else None
    work = _rescaled(problem, scales) if scales is not None else problem
    model = MixedLM(work.y, work.x, groups=work.patient_codes, exog_re=work.z)
    runs = [_run(model, reml, method, free, problem.covariance) for method in chosen]
    finished = [r for r in runs if np.isfinite(r.loglik)]
    if not finished:
        failures = "; ".join(f"{r.optimizer}: {r.note}" for r in runs)
        raise AnalysisError(
            f"None of the optimizers could fit this model ({failures}). "
            "Try a simpler random-effects structure (re_formula='1') or check the data."
        )
    best = max(finished, key=lambda r: r.loglik)
    if polish:
        polished = _polish(work, best, reml)
        runs.append(polished)
        if np.isfinite(polished.loglik) and polished.loglik >= best.loglik - 1e-10:
            best = polished
    if best.theta is None:  # every finished run has one; guard for type checkers
        raise AnalysisError("The optimizers returned no variance parameters.")
    theta = _unscaled_theta(best.theta, scales, problem.covariance)
    fit = _on_original_scale(problem, theta, reml)
    # Converged: an optimizer reported convergence at (about) the kept optimum, or the
    # bounded polish did (it reaches singular optima the unbounded runs only approach).
    converged = any(
        r.converged and (r.start != "default" or r.loglik >= best.loglik - 1e-3) for r in runs
    )
    attempts = _attempts_table(runs, best, fit.loglik - best.loglik, scales, problem.covariance)
    if scales is not None:
        notes.append(
            "statsmodels fitted the model on rescaled data (unit SD columns); "
            "all numbers are reported on the original scale."
        )
    return replace(
        fit,
        converged=converged,
        attempts=attempts,
        notes=tuple(notes),
        raw=best.result,
    )


def _constraint_keeping(chosen: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    kept = tuple(o for o in chosen if o not in IGNORE_CONSTRAINTS)
    skipped = [o for o in chosen if o in IGNORE_CONSTRAINTS]
    if not kept:
        raise UsageError(
            "Uncorrelated random effects need an optimizer that keeps statsmodels' constraint: "
            "lbfgs, bfgs or cg (powell ignores it)."
        )
    return kept, skipped


def _run(
    model: MixedLM, reml: bool, method: str, free: MixedLMParams | None, covariance: str
) -> _Run:
    run = _Run(optimizer=method, start="default")
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = model.fit(reml=reml, method=[method], free=free)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError, OverflowError) as exc:
            run.seconds = time.perf_counter() - started
            run.note = f"failed: {exc}"
            return run
    run.seconds = time.perf_counter() - started
    messages = [str(w.message) for w in caught]
    run.result = result
    run.loglik = float(result.llf) if np.isfinite(result.llf) else float("-inf")
    run.converged = bool(result.converged)
    run.hessian_ok = not any("not positive definite" in m for m in messages)
    cov_re = np.atleast_2d(np.asarray(result.cov_re_unscaled, dtype=float))
    run.theta = lik.structured_theta(lik.psd_cholesky(cov_re), covariance)
    notes = []
    if not run.converged:
        notes.append("did not report convergence")
    if not run.hessian_ok:
        notes.append("Hessian not positive definite")
    run.note = "; ".join(notes)
    return run


def _polish(work: MixedProblem, best: _Run, reml: bool) -> _Run:
    """Bounded L-BFGS-B from the best run, on the (rescaled) problem the runs saw."""
    run = _Run(optimizer=POLISH_NAME, start=POLISH_START, result=best.result)
    if best.theta is None:
        return run
    cp = lik.cross_products(work.y, work.x, work.z, work.patient_codes)
    q, covariance = work.n_random, work.covariance
    rows, cols = lik.free_positions(q, covariance)
    bounds = [(0.0, None) if r == c else (None, None) for r, c in zip(rows, cols, strict=True)]

    def objective(theta: np.ndarray) -> float:
        return lik.profiled_deviance(cp, lik.full_theta(theta, q, covariance), reml=reml)

    started = time.perf_counter()
    try:
        found = optimize.minimize(
            objective,
            best.theta,
            method="L-BFGS-B",
            jac="3-point",
            bounds=bounds,
            options=POLISH_OPTIONS,
        )
    except (np.linalg.LinAlgError, AnalysisError, FloatingPointError) as exc:
        run.seconds = time.perf_counter() - started
        run.note = f"failed: {exc}"
        return run
    run.seconds = time.perf_counter() - started
    run.theta = np.asarray(found.x, dtype=float)
    run.loglik = -0.5 * float(found.fun)
    gradient = _projected_gradient(np.asarray(found.jac, dtype=float), run.theta, bounds)
    run.converged, run.note = _polish_verdict(
        bool(found.success), str(found.message), gradient, run.loglik >= best.loglik - 1e-10
    )
    run.note = f"refines the best run ({best.optimizer}) with lme4's bounds; {run.note}"
    return run


def _projected_gradient(
    gradient: np.ndarray, theta: np.ndarray, bounds: Sequence[tuple[float | None, None]]
) -> float:
    """Largest deviance gradient component that could still be followed within the bounds.

    An element held at its lower bound with the gradient pushing it further
    down is where a bounded optimum should be, so that component counts as 0.
    """
    free = gradient.copy()
    for k, (lower, _) in enumerate(bounds):
        if lower is not None and theta[k] <= lower and gradient[k] > 0:
            free[k] = 0.0
    return float(np.max(np.abs(free))) if free.size else 0.0


def _polish_verdict(
    success: bool, message: str, gradient: float, not_worse: bool
) -> tuple[bool, str]:
    """(converged, note) for the polish, judged as lme4 judges convergence: by the gradient.

    L-BFGS-B at ftol 1e-15 often ends with "ABNORMAL_TERMINATION_IN_LNSRCH": its
    line search cannot lower the deviance by the relative amount asked, because
    that is below the rounding of the deviance.  At a flat enough point that is
    the optimum; lme4's ``check.conv.grad`` accepts a deviance gradient below 2e-3.
    """
    if not not_worse:
        return False, "ended below the best run, which is kept"
    if success:
        return True, f"converged (gradient {gradient:.1e})"
    stop = message.strip().rstrip(":").strip() or "no reason given"
    if gradient < GRADIENT_TOL:
        return True, (
            f"L-BFGS-B stopped short of its own 1e-15 tolerance ({stop}) at a gradient of "
            f"{gradient:.1e}: converged by lme4's test (gradient < {GRADIENT_TOL:g})"
        )
    return False, (
        f"L-BFGS-B stopped ({stop}) at a gradient of {gradient:.1e}, above lme4's "
        f"convergence tolerance {GRADIENT_TOL:g}"
    )


def _unscaled_theta(
    theta: np.ndarray, scales: _Scales | None, covariance: str = "unstructured"
) -> np.ndarray:
    """Undo the rescaling of Z: Lambda = diag(1 / sd_z) Lambda_scaled (y and X do not matter)."""
    if scales is None:
        return np.asarray(theta, dtype=float)
    lam = lik.structured_lambda(theta, scales.z.size, covariance)
    return lik.structured_theta(lam / scales.z[:, None], covariance)


def _on_original_scale(problem: MixedProblem, theta: np.ndarray, reml: bool) -> EngineFit:
    """Every reported number at ``theta`` (of the problem's structure), on the data's scale."""
    cp = lik.cross_products(problem.y, problem.x, problem.z, problem.patient_codes)
    q, covariance = problem.n_random, problem.covariance
    full = lik.full_theta(theta, q, covariance)
    pieces = lik.profiled_pieces(cp, full)
    sigma = lik.profiled_sigma(cp, pieces, reml=reml)
    return EngineFit(
        theta=np.asarray(theta, dtype=float),
        sigma=sigma,
        beta=pieces.beta,
        cov_beta=sigma**2 * np.linalg.inv(pieces.xtwx),
        loglik=-0.5 * lik.deviance(cp, full, sigma, reml=reml),
        reml=reml,
        patient_effects=lik.patient_effects(cp, full, pieces.beta),
        deviance_function=partial(_deviance_at, cp, reml, q, covariance),
        cov_beta_function=partial(_cov_beta_at, cp, q, covariance),
        converged=True,
        engine="statsmodels",
    )


def _deviance_at(
    cp: lik.CrossProducts, reml: bool, q: int, covariance: str, varpar: np.ndarray
) -> float:
    theta = lik.full_theta(varpar[:-1], q, covariance)
    return lik.deviance(cp, theta, varpar[-1], reml=reml)


def _cov_beta_at(cp: lik.CrossProducts, q: int, covariance: str, varpar: np.ndarray) -> np.ndarray:
    return lik.cov_beta(cp, lik.full_theta(varpar[:-1], q, covariance), varpar[-1])


def _column_sd(values: np.ndarray) -> np.ndarray:
    sd = values.std(axis=0)
    return np.where(sd > 1e-12 * np.maximum(np.abs(values).max(axis=0), 1.0), sd, 1.0)


def _scales(problem: MixedProblem) -> _Scales:
    y_sd = float(problem.y.std())
    return _Scales(
        y=y_sd if y_sd > 0 else 1.0,
        x=_column_sd(problem.x),
        z=_column_sd(problem.z),
    )


def _rescaled(problem: MixedProblem, scales: _Scales) -> MixedProblem:
    return replace(
        problem,
        y=problem.y / scales.y,
        x=problem.x / scales.x,
        z=problem.z / scales.z,
    )


def _attempts_table(
    runs: list[_Run], best: _Run, shift: float, scales: _Scales | None, covariance: str
) -> pd.DataFrame:
    """One row per optimizer run; log-likelihoods shifted to the original scale."""
    if not runs:
        return empty_attempts()
    rows = []
    for run in runs:
        boundary = False
        if run.theta is not None:
            theta = _unscaled_theta(run.theta, scales, covariance)
            q = (
                theta.size
                if covariance == "diagonal"
                else round((np.sqrt(8 * theta.size + 1) - 1) / 2)
            )
            lam = lik.structured_lambda(theta, q, covariance)
            boundary = bool(np.any(np.diag(lam) < SINGULAR_TOL))
        rows.append(
            {
                "optimizer": run.optimizer,
                "start": run.start,
                "converged": run.converged,
                "loglik": run.loglik + shift if np.isfinite(run.loglik) else np.nan,
                "seconds": run.seconds,
                "boundary": boundary,
                "hessian_ok": run.hessian_ok,
                "note": run.note,
                "chosen": run is best,
            }
        )
    return attempts_frame(rows)
