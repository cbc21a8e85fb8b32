"""fit_lmm: the fast linear mixed model engine's entry point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.lmm.criterion import Criterion, Evaluation
from stepanalytics.lmm.optimise import (
    BOUNDARY_TOL,
    Optimum,
    minimise_criterion,
    single_threaded_blas,
)
from stepanalytics.lmm.result import LmmFit, check_level
from stepanalytics.lmm.satterthwaite import satterthwaite_df, varpar_inference
from stepanalytics.lmm.start import default_start, moment_start
from stepanalytics.lmm.stats import GroupStats, group_statistics

Array = NDArray[np.floating[Any]]

#: Above this many random terms per patient the per-patient loops stop paying off.
MAX_RANDOM_TERMS = 8


def fit_lmm(
    y: ArrayLike,
    x: ArrayLike,
    z: ArrayLike,
    groups: ArrayLike,
    *,
    clinic: ArrayLike | None = None,
    reml: bool = True,
    x_names: Sequence[str] | None = None,
    z_names: Sequence[str] | None = None,
    level: float = 0.95,
) -> LmmFit:
    """Fit a linear mixed model with correlated patient effects and an optional clinic intercept.

    The model is ``y = X beta + Z_i b_i + c_j + e`` with patient effects
    ``b_i ~ N(0, Sigma)`` (Sigma unstructured, q x q), clinic intercepts
    ``c_j ~ N(0, tau^2)`` (patients nested in clinics) and ``e ~ N(0, sigma^2)``.

    Parameters
    ----------
    y : array (n,)
        Response.
    x : array or DataFrame (n, p)
        Fixed-effects design (include the intercept column yourself).
    z : array or DataFrame (n, q)
        Patient-level random-effects design, e.g. ``[1, weeks]``.
    groups : array (n,)
        Patient label of each row.
    clinic : array (n,), optional
        Clinic label of each row; adds a clinic random intercept.
    reml : bool, default True
        Optimise the REML criterion (True) or the ML deviance.
    x_names, z_names : sequence of str, optional
        Term names; taken from DataFrame columns when not given.
    level : float, default 0.95
        Confidence level of the intervals in ``table`` (``ci_lower``,
        ``ci_upper``): t intervals with each term's Satterthwaite df.

    Returns
    -------
    LmmFit
        Fixed effects with SEs and Satterthwaite df, variance components,
        BLUPs, fit statistics and optimiser diagnostics.

    Raises
    ------
    AnalysisError
        Missing values, rank-deficient X, too few observations for the random
        effects, patients in more than one clinic.
    UsageError
        Arrays of mismatched length, names of the wrong length, a level
        outside (0, 1).

    Notes
    -----
    R equivalent: ``lmerTest::lmer(y ~ X - 1 + (Z - 1 | patient) + (1 | clinic),
    REML = reml)``; the intervals are those of ``lmerTest::contest(fit, diag(p),
    joint = FALSE, confint = TRUE, level = level)``.  The criterion is lme4's
    profiled deviance (Bates, Maechler, Bolker & Walker 2015, J Stat Softw
    67(1), section 3) evaluated from per-patient sufficient statistics with the
    Woodbury identity at the patient and the clinic level, so one evaluation
    costs O(patients) rather than O(rows).  It is minimised over the relative
    covariance factor with bounded L-BFGS-B and exact gradients from two starts
    (a method-of-moments guess and lme4's identity start with Z scaled to unit
    RMS), with probes off the boundary and Newton polishing; see
    :mod:`stepanalytics.lmm.optimise` and ``fit.attempts``.  Satterthwaite df
    follow lmerTest (Kuznetsova, Brockhoff & Christensen 2017).  Keep time
    variables in small units near zero (weeks since enrolment, not calendar
    days): the cross products lose digits when a column of X or Z has a large
    offset.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> patient = np.repeat(np.arange(30), 6)
    >>> weeks = np.tile(np.arange(6.0), 30)
    >>> y = 20 - weeks + rng.normal(0, 2, 30)[patient] + rng.normal(0, 1, 180)
    >>> design = np.column_stack([np.ones(180), weeks])
    >>> fit = fit_lmm(y, design, design[:, :1], patient,
    ...               x_names=["(Intercept)", "weeks"], z_names=["(Intercept)"])
    >>> fit.fixed_effects.round(2).to_dict()
    {'(Intercept)': 19.8, 'weeks': -1.0}
    >>> narrow = fit_lmm(y, design, design[:, :1], patient, level=0.8)
    >>> bool(narrow.table["ci_upper"].iat[1] < fit.table["ci_upper"].iat[1])
    True
    """
    level = check_level(level)
    x_names = _names(x, x_names, "x")
    z_names = _names(z, z_names, "z")
    group_stats = group_statistics(y, x, z, groups, clinic)
    _check_sizes(group_stats, x_names, z_names)
    criterion = Criterion(group_stats, reml=reml)
    with single_threaded_blas():
        starts = [
            ("method of moments", moment_start(criterion)),
            ("lme4 default, scaled", default_start(criterion)),
        ]
        optimum = minimise_criterion(criterion, starts)
        evaluation = criterion.evaluate(optimum.theta, gradient=True)
        return _assemble(criterion, evaluation, optimum, x_names, z_names, level)


def too_many_random_effects(
    n_obs: int,
    n_random: int,
    n_groups: int,
    groups: str = "patients",
    *,
    simpler: str = "a random intercept only",
) -> str | None:
    """Why ``n_obs`` rows cannot support the random effects (a message), or None if they can.

    lme4 refuses a model whose number of observations is at most the number of
    random effects of a term (levels times terms per level; ``lmerControl``'s
    ``check.nobs.vs.nRE = "stop"``): the random-effect variances and the
    residual variance are then not identifiable.  The fast engine and
    :func:`stepanalytics.trajectories.design.build_design` refuse in the same
    words; ``groups`` names the grouping units, ``simpler`` how to ask for
    fewer random terms.

    Examples
    --------
    >>> too_many_random_effects(40, 2, 18) is None
    True
    >>> too_many_random_effects(36, 2, 18).split(":")[0]
    '36 measurements cannot support 36 random effects (2 random terms for each of 18 patients)'
    """
    total = n_random * n_groups
    if n_obs > total:
        return None
    if n_random == 1:
        # Every group has at least one row, so here each has exactly one.
        return (
            f"{n_obs} measurements cannot support {total} random effects (a random intercept "
            f"for each of {n_groups} {groups}, each measured once): the spread between them "
            "and the residual variance cannot be told apart. A mixed model needs repeated "
            "measurements; use data with follow-up measurements or an ordinary regression. "
            "lme4 refuses this model too (check.nobs.vs.nRE)."
        )
    return (
        f"{n_obs} measurements cannot support {total} random effects ({n_random} random terms "
        f"for each of {n_groups} {groups}): with no more measurements than random effects, "
        "the spread of the random effects and the residual variance cannot be told apart. "
        f"Use fewer random terms ({simpler}) or data with more repeated measurements. "
        "lme4 refuses this model too (check.nobs.vs.nRE)."
    )


def _names(design: ArrayLike, names: Sequence[str] | None, prefix: str) -> list[str]:
    if names is not None:
        return [str(n) for n in names]
    if isinstance(design, pd.DataFrame):
        return [str(c) for c in design.columns]
    width = 1 if np.ndim(design) == 1 else int(np.shape(design)[1])
    return [f"{prefix}{i}" for i in range(width)]


def _check_sizes(st: GroupStats, x_names: list[str], z_names: list[str]) -> None:
    if len(x_names) != st.p:
        raise UsageError(f"x_names has {len(x_names)} names but X has {st.p} columns.")
    if len(z_names) != st.q:
        raise UsageError(f"z_names has {len(z_names)} names but Z has {st.q} columns.")
    if st.q > MAX_RANDOM_TERMS:
        raise UsageError(
            f"The fast engine handles up to {MAX_RANDOM_TERMS} random terms per patient; "
            f"Z has {st.q}. Use engine='statsmodels' for this model."
        )
    if st.n_patients < 2 or (st.clinic_starts is not None and st.n_clinics < 2):
        raise AnalysisError(
            "A random effect needs at least two levels: the data hold "
            f"{st.n_patients} patients and {st.n_clinics} clinics."
        )
    refusal = too_many_random_effects(st.n_obs, st.q, st.n_patients)
    if refusal is not None:
        raise AnalysisError(refusal)


def _assemble(
    criterion: Criterion,
    ev: Evaluation,
    optimum: Optimum,
    x_names: list[str],
    z_names: list[str],
    level: float,
) -> LmmFit:
    st = criterion.stats
    deviance = criterion.deviance(ev)
    sigma = float(np.sqrt(ev.r2 / criterion.n_eff))
    cov_beta = sigma**2 * np.linalg.inv(ev.sxx)
    inference = varpar_inference(criterion, ev.theta, sigma)
    dfs = np.array([satterthwaite_df(inference, cov_beta, row) for row in np.eye(st.p)])
    beta = ev.beta
    table = _fixed_table(beta, cov_beta, dfs, x_names, level)

    lam = criterion.lambda_matrix(ev.theta)
    random_cov = sigma**2 * lam @ lam.T
    clinic_sd = sigma * abs(float(ev.theta[-1])) if criterion.has_clinic else None
    singular = bool(np.any(ev.theta[criterion.diagonal] < BOUNDARY_TOL))
    warnings = _warnings(optimum.converged, singular, inference.warnings)

    n_params = st.p + criterion.n_theta + 1
    patient_effects = pd.DataFrame(
        ev.patient_modes, index=pd.Index(st.patient_labels), columns=z_names
    )
    clinic_effects = None
    if ev.clinic_modes is not None and st.clinic_labels is not None:
        clinic_effects = pd.Series(
            ev.clinic_modes, index=pd.Index(st.clinic_labels), name="(Intercept)"
        )
    return LmmFit(
        table=table,
        warnings=warnings,
        fixed_effects=pd.Series(beta, index=x_names, name="estimate"),
        cov_fixed=pd.DataFrame(cov_beta, index=x_names, columns=x_names),
        df_satterthwaite=pd.Series(dfs, index=x_names, name="df"),
        theta=ev.theta.copy(),
        random_cov=pd.DataFrame(random_cov, index=z_names, columns=z_names),
        variance_components=_variance_components(random_cov, clinic_sd, sigma, z_names),
        clinic_sd=clinic_sd,
        residual_sd=sigma,
        reml=criterion.reml,
        loglik=-deviance / 2.0,
        deviance=deviance,
        reml_criterion=deviance if criterion.reml else None,
        aic=deviance + 2.0 * n_params,
        bic=deviance + np.log(st.n_obs) * n_params,
        n_obs=st.n_obs,
        n_patients=st.n_patients,
        n_clinics=st.n_clinics,
        patient_effects=patient_effects,
        clinic_effects=clinic_effects,
        converged=optimum.converged,
        singular=singular,
        n_evaluations=optimum.n_evaluations,
        inference=inference,
        attempts=_attempts_table(optimum),
        criterion=criterion,
        level=level,
    )


def _attempts_table(optimum: Optimum) -> pd.DataFrame:
    table = pd.DataFrame(list(optimum.attempts))
    table["loglik"] = -table.pop("deviance") / 2.0
    chosen = np.zeros(len(table), dtype=bool)
    chosen[int(np.argmax(table["loglik"].to_numpy()))] = True
    table["chosen"] = chosen
    return table


def _fixed_table(
    beta: Array, cov: Array, dfs: Array, names: list[str], level: float
) -> pd.DataFrame:
    se = np.sqrt(np.diag(cov))
    t_value = beta / se
    half = stats.t.ppf(0.5 + level / 2.0, dfs) * se
    return pd.DataFrame(
        {
            "term": names,
            "estimate": beta,
            "std_error": se,
            "df": dfs,
            "t_value": t_value,
            "p_value": 2 * stats.t.sf(np.abs(t_value), dfs),
            "ci_lower": beta - half,
            "ci_upper": beta + half,
        }
    )


def _variance_components(
    random_cov: Array, clinic_sd: float | None, sigma: float, z_names: list[str]
) -> pd.DataFrame:
    """lme4's ``as.data.frame(VarCorr(fit))`` layout."""
    sds = np.sqrt(np.diag(random_cov))
    rows: list[tuple[str, str | None, str | None, float, float]] = [
        ("patient", z_names[i], None, random_cov[i, i], sds[i]) for i in range(len(z_names))
    ]
    for j in range(len(z_names)):
        for i in range(j + 1, len(z_names)):
            denom = sds[i] * sds[j]
            corr = random_cov[i, j] / denom if denom > 0 else float("nan")
            rows.append(("patient", z_names[j], z_names[i], random_cov[i, j], corr))
    if clinic_sd is not None:
        rows.append(("clinic", "(Intercept)", None, clinic_sd**2, clinic_sd))
    rows.append(("residual", None, None, sigma**2, sigma))
    return pd.DataFrame(rows, columns=["group", "term", "other_term", "variance", "sd_or_corr"])


def _warnings(
    converged: bool, singular: bool, inference_warnings: tuple[str, ...]
) -> tuple[str, ...]:
    notes = []
    if not converged:
        notes.append(
            "The optimiser did not reach a point where the gradient vanishes; treat the "
            "estimates with caution (try rescaling weeks or simplifying the random effects)."
        )
    if singular:
        notes.append(
            "Boundary (singular) fit: a random-effect variance is estimated as zero or the "
            "random effects are perfectly correlated; consider dropping a random term."
        )
    return (*notes, *inference_warnings)
