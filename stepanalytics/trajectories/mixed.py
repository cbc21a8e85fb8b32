"""Fit a linear mixed model to a long DataFrame: formulas in, a TrajectoryResult out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError
from stepanalytics.lmm.result import check_level
from stepanalytics.trajectories import diagnostics
from stepanalytics.trajectories.design import Design, build_design
from stepanalytics.trajectories.engines import (
    MixedModelEngine,
    check_optimizers,
    engine_description,
    select_engine,
    single_threaded_blas,
)
from stepanalytics.trajectories.phase_time import PhasePath
from stepanalytics.trajectories.result import FitOptions, TrajectoryResult
from stepanalytics.trajectories.satterthwaite import (
    contrast_table,
    satterthwaite_state,
    state_from_derivatives,
)


def fit_mixed_model(
    data: pd.DataFrame,
    *,
    formula: str,
    re_formula: str = "1",
    groups: str = "patient_id",
    outer_groups: str | None = None,
    re_covariance: str = "unstructured",
    time: str | None = "weeks",
    reml: bool = True,
    engine: str | MixedModelEngine = "auto",
    optimizers: Sequence[str] | None = None,
    level: float = 0.95,
    missing: str = "raise",
    phase_path: PhasePath | None = None,
    title: str | None = None,
) -> TrajectoryResult:
    """Fit a linear mixed model with random effects per group to long-format data.

    Parameters
    ----------
    data : DataFrame
        One row per measurement.
    formula : str
        Fixed effects, patsy syntax: ``"score ~ weeks + C(sex)"``.
    re_formula : str, default ``"1"``
        Random effects per group: ``"1"`` (intercept), ``"~weeks"`` (intercept
        and slope, correlated).
    groups : str, default ``"patient_id"``
        The grouping column.
    outer_groups : str, optional
        A column whose levels get a random intercept each, with ``groups``
        nested in them: ``outer_groups="clinic_id"`` is lme4's
        ``(1 | clinic_id) + (re | patient_id)``.  Only the fast engine fits it.
    re_covariance : {"unstructured", "diagonal"}
        Correlated random effects (lme4's ``(weeks | patient_id)``, the
        default) or uncorrelated ones (``(weeks || patient_id)``).  Only the
        statsmodels engine fits uncorrelated ones (``engine="auto"`` picks it).
    time : str or None, default ``"weeks"``
        The time column, used to order rows and by :func:`predict_trajectory`
        (``None`` when the data have no time axis; a missing ``weeks`` column
        is then fine too).
    reml : bool, default True
        REML (as lme4's default) or maximum likelihood.
    engine : {"auto", "fast", "statsmodels"} or callable
        Who fits the model (see :mod:`stepanalytics.trajectories.engines`).
        ``"auto"`` uses the fast engine (:mod:`stepanalytics.lmm`) for models
        in its class and statsmodels otherwise; the result's notes, summary
        and ``fit_statistics["engine"]`` say which ran.
    optimizers : sequence of str, optional
        For the statsmodels engine: any of lbfgs, bfgs, cg, powell (default all,
        each from the default start; the highest log-likelihood is kept).
        Giving them with ``engine="auto"`` selects statsmodels.
    level : float, default 0.95
        Confidence level of the intervals.
    missing : {"raise", "drop"}
        What to do with rows that have missing values in model columns.
    phase_path : PhasePath, optional
        A typical course through the phases, for predictions by phase.
    title : str, optional

    Returns
    -------
    TrajectoryResult

    Notes
    -----
    R equivalent: ``lmerTest::lmer(score ~ weeks + (weeks | patient_id), data)``
    with ``summary()`` (Satterthwaite df; Kuznetsova et al. 2017, J Stat Softw
    82(13)); ``outer_groups="clinic_id"`` adds ``+ (1 | clinic_id)`` and
    ``re_covariance="diagonal"`` reads ``(weeks || patient_id)``.  Standard
    errors are model-based; nothing is dropped silently.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> pid = np.repeat(np.arange(30), 5)
    >>> weeks = np.tile(np.arange(0, 20, 4.0), 30)
    >>> score = 50 - 0.5 * weeks + rng.normal(0, 6, 30)[pid] + rng.normal(0, 3, 150)
    >>> df = pd.DataFrame({"patient_id": pid, "weeks": weeks, "score": score})
    >>> fit = fit_mixed_model(df, formula="score ~ weeks", re_formula="~weeks")
    >>> fit.to_frame()["term"].tolist()
    ['Intercept', 'weeks']
    >>> fit.fit_statistics["engine"].iat[0]
    'fast'
    """
    if isinstance(data, pd.DataFrame) and time == "weeks" and "weeks" not in data.columns:
        time = None  # the default time column is optional
    design = build_design(
        data,
        formula=formula,
        re_formula=re_formula,
        groups=groups,
        outer_groups=outer_groups,
        re_covariance=re_covariance,
        time=time,
        missing=missing,
    )
    options = FitOptions(
        reml=reml,
        engine=engine,
        optimizers=None if optimizers is None else check_optimizers(optimizers),
        level=_check_level(level),
    )
    return fit_design(design, options, phase_path=phase_path, title=title)


def fit_design(
    design: Design,
    options: FitOptions,
    *,
    phase_path: PhasePath | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
    instrument: str | None = None,
    higher_is_better: bool | None = None,
) -> TrajectoryResult:
    """Fit a prepared :class:`Design` (used by every entry point and for ML refits)."""
    problem = design.problem
    choice = select_engine(options.engine, problem, optimizers=options.optimizers)
    with single_threaded_blas():
        fit = choice.engine(problem, reml=options.reml, optimizers=options.optimizers)
        if fit.derivatives is not None:
            state = state_from_derivatives(
                fit.derivatives.hessian, fit.derivatives.cov_beta_jacobian, fit.cov_beta, fit.varpar
            )
        else:
            state = satterthwaite_state(fit.deviance_function, fit.cov_beta_function, fit.varpar)
    engine_name = fit.engine or choice.name
    table = contrast_table(
        state,
        fit.beta,
        np.eye(problem.n_fixed),
        level=options.level,
        names=list(problem.fixed_names),
    )
    n_params = problem.n_fixed + int(np.size(fit.theta)) + 1
    deviance = -2.0 * fit.loglik
    fit_statistics = pd.DataFrame(
        [
            {
                "n_obs": problem.n_obs,
                "n_patients": problem.n_patients,
                "n_params": n_params,
                "criterion": "REML" if options.reml else "ML",
                "loglik": fit.loglik,
                "deviance": deviance,
                "aic": deviance + 2 * n_params,
                "bic": deviance + np.log(problem.n_obs) * n_params,
                "engine": engine_name,
                "converged": fit.converged,
                "n_rows_left_out": design.n_dropped_rows,
            }
        ]
    )
    run_notes, run_warnings = diagnostics.convergence_messages(fit)
    warnings = [*design.warnings, *run_warnings]
    singular = diagnostics.singular_warning(fit, problem)
    if singular:
        warnings.append(singular)
    warnings.extend(diagnostics.hessian_warnings(state, singular=singular is not None))
    ran = f"Fitted by {engine_description(engine_name)}."
    all_notes = [ran, *choice.notes, *design.notes, *notes, *fit.notes, *run_notes]
    return TrajectoryResult(
        table=table,
        warnings=tuple(warnings),
        model=fit.raw,
        title=title or f"Linear mixed model: {design.lme4_formula()}",
        variance_components=diagnostics.variance_components_frame(
            fit, problem, design.groups, outer=design.outer_groups
        ),
        fit_statistics=fit_statistics,
        attempts=fit.attempts,
        notes=tuple(all_notes),
        fit=fit,
        design=design,
        satterthwaite=state,
        options=options,
        phase_path=phase_path,
        instrument=instrument,
        higher_is_better=higher_is_better,
    )


def refit(result: TrajectoryResult, *, reml: bool) -> TrajectoryResult:
    """The same model fitted again by REML or ML (e.g. ML for a likelihood-ratio test)."""
    if result.design is None:
        raise UsageError("This result carries no design to refit.")
    if result.options.reml == reml:
        return result
    return fit_design(
        result.design,
        replace(result.options, reml=reml),
        phase_path=result.phase_path,
        title=result.title,
        instrument=result.instrument,
        higher_is_better=result.higher_is_better,
    )


def _check_level(level: float) -> float:
    return check_level(level)
