"""Variance components and the fit problems worth telling people about, in plain words."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stepanalytics.trajectories import likelihood as lik
from stepanalytics.trajectories.engines import POLISH_START, EngineFit, MixedProblem
from stepanalytics.trajectories.satterthwaite import SatterthwaiteState

#: lme4's isSingular() tolerance: a diagonal element of the relative factor below it.
SINGULAR_TOL = 1e-4
#: Attempts whose log-likelihood falls short of the best by more than this "disagree".
DISAGREEMENT = 0.01


def patient_lambda(fit: EngineFit, problem: MixedProblem) -> np.ndarray:
    """The patient block of the relative covariance factor, whatever its structure."""
    theta = np.asarray(fit.theta, dtype=float)[: problem.n_patient_theta]
    return lik.structured_lambda(theta, problem.n_random, problem.covariance)


def random_covariance(fit: EngineFit, problem: MixedProblem) -> np.ndarray:
    """Covariance matrix of the patient random effects, sigma^2 Lambda Lambda'."""
    lam = patient_lambda(fit, problem)
    return float(fit.sigma) ** 2 * (lam @ lam.T)


def variance_components_frame(
    fit: EngineFit, problem: MixedProblem, groups: str, *, outer: str | None = None
) -> pd.DataFrame:
    """SDs of the random effects, their correlations, the outer (clinic) SD and the residual SD.

    Notes
    -----
    R equivalent: ``as.data.frame(VarCorr(fit))`` (column ``sdcor``); with a
    clinic random intercept its SD is sigma times the last element of theta.
    """
    q = problem.n_random
    cov = random_covariance(fit, problem)
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    rows = [
        {"group": groups, "term": name, "kind": "sd", "estimate": sd[i]}
        for i, name in enumerate(problem.random_names)
    ]
    # Uncorrelated random effects (lme4's ||) have no correlations to report.
    for j in range(q if problem.covariance == "unstructured" else 0):
        for i in range(j + 1, q):
            denominator = sd[i] * sd[j]
            corr = cov[i, j] / denominator if denominator > 0 else np.nan
            rows.append(
                {
                    "group": groups,
                    "term": f"{problem.random_names[j]}, {problem.random_names[i]}",
                    "kind": "corr",
                    "estimate": corr,
                }
            )
    if problem.clinic_codes is not None:
        rows.append(
            {
                "group": outer or "clinic",
                "term": "Intercept",
                "kind": "sd",
                "estimate": outer_sd(fit, problem),
            }
        )
    rows.append({"group": "Residual", "term": "", "kind": "sd", "estimate": float(fit.sigma)})
    return pd.DataFrame(rows, columns=["group", "term", "kind", "estimate"])


def outer_sd(fit: EngineFit, problem: MixedProblem) -> float:
    """SD of the clinic (outer) random intercept: sigma |theta_clinic|; NaN without one."""
    n_patient = problem.n_patient_theta
    if problem.clinic_codes is None or np.size(fit.theta) <= n_patient:
        return float("nan")
    return float(fit.sigma) * abs(float(np.asarray(fit.theta)[n_patient]))


def singular_warning(fit: EngineFit, problem: MixedProblem) -> str | None:
    """A plain-language warning when the random-effects covariance is singular.

    Checks the patient factor's relative covariance factor and, when fitted,
    the clinic random intercept (lme4's ``isSingular``).
    """
    diag = np.abs(np.diag(patient_lambda(fit, problem)))
    outer_flat = problem.clinic_codes is not None and outer_sd(fit, problem) < (
        SINGULAR_TOL * float(fit.sigma)
    )
    patient_flat = bool(np.any(diag < SINGULAR_TOL))
    if outer_flat and not patient_flat:
        return (
            "The fit is singular: the clinics hardly differ in their average level once the "
            "patients' own levels and slopes are allowed for (the clinic SD is estimated at "
            "zero). The fixed effects are still usable; the clinic random intercept can be "
            "dropped."
        )
    if not patient_flat:
        return None
    cov = random_covariance(fit, problem)
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    tiny = SINGULAR_TOL * fit.sigma
    flat = [n for n, s in zip(problem.random_names, sd, strict=True) if s < tiny]
    if flat:
        detail = f"the patients hardly differ in {', '.join(flat)} (the SD is estimated at zero)"
    else:
        detail = "two random effects are estimated as perfectly correlated (+1 or -1)"
    if outer_flat:
        detail += ", and the clinics hardly differ in their average level (clinic SD zero)"
    return (
        f"The fit is singular: {detail}. The data do not support this many random effects; "
        "the fixed effects are still usable, but consider a simpler random-effects part "
        "(re_formula='1' for a random intercept only)."
    )


def hessian_warnings(state: SatterthwaiteState, *, singular: bool = False) -> list[str]:
    """Warnings from the curvature of the deviance at the optimum (as lmerTest gives them).

    At a singular optimum the curvature is not informative (the optimum sits on
    a bound, not at a peak), so one sentence about the df replaces the warnings.
    """
    out = []
    negative = state.n_negative_eigenvalues
    zero = state.n_zero_eigenvalues
    if singular:
        if negative or zero:
            out.append(
                "Because the fit is singular, the Satterthwaite degrees of freedom are "
                "approximate (the likelihood has no curvature to use in every direction)."
            )
        return out
    if negative:
        out.append(
            f"The log-likelihood curves upwards in {negative} direction(s) at the reported "
            "optimum (the Hessian of the variance parameters is not positive definite), so "
            "the optimizers may not have found a maximum. Treat the estimates with caution "
            "and try a simpler random-effects part."
        )
    if zero:
        out.append(
            f"The log-likelihood is flat in {zero} direction(s) of the variance parameters "
            "(a Hessian eigenvalue is zero): some variance components are not identified by "
            "these data; their standard errors and the Satterthwaite df lean on the rest."
        )
    return out


def convergence_messages(fit: EngineFit) -> tuple[list[str], list[str]]:
    """(notes, warnings) about how the optimizers fared."""
    notes: list[str] = []
    warnings: list[str] = []
    attempts = fit.attempts
    if not fit.converged:
        warnings.append(
            "No optimizer reported convergence; the estimates may not be the maximum "
            "likelihood estimates. Simplify the model or check the data for extreme values."
        )
    if attempts.empty or "loglik" not in attempts:
        return notes, warnings
    # Every search of its own counts (statsmodels' optimizers from the default start,
    # the fast engine's two starts); a polish only refines the best of them.
    independent = attempts[attempts["start"] != POLISH_START]
    best = float(np.nanmax(attempts["loglik"]))
    behind = independent[independent["loglik"] < best - DISAGREEMENT]
    if len(behind):
        chosen = attempts.loc[attempts["chosen"]].iloc[0]
        details = ", ".join(
            f"{_run_name(r.optimizer, r.start)} stopped at {r.loglik:.2f}"
            for r in behind.itertuples()
        )
        notes.append(
            f"The optimizers did not all reach the same optimum ({details}; best "
            f"{best:.2f} via {_run_name(chosen['optimizer'], chosen['start'])}). The highest "
            "log-likelihood was kept; see `attempts`."
        )
    return notes, warnings


def _run_name(optimizer: str, start: str) -> str:
    """The optimizer alone for statsmodels' runs (its starts say nothing new), else with
    the start, which tells the fast engine's two searches apart."""
    if start in ("default", POLISH_START):
        return str(optimizer)
    return f"{optimizer} from the {start} start"
