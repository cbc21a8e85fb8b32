"""Likelihood-ratio comparison of nested trajectory models."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy import stats

from stepanalytics.errors import UsageError
from stepanalytics.results import AnalysisResult
from stepanalytics.trajectories.mixed import refit
from stepanalytics.trajectories.nesting import boundary_test, check_nested, mixture_p_value
from stepanalytics.trajectories.result import TrajectoryResult


@dataclass(frozen=True)
class ModelComparison(AnalysisResult):
    """One row per model (smallest first): criterion, parameters, loglik, AIC, BIC, and the
    chi-square test of each model against the one before it.

    Columns ``chi2``, ``df`` and ``p_value`` are those of R's ``anova()``;
    ``null_distribution`` names the distribution the statistic has under the
    null hypothesis, and ``p_value_boundary`` is the p-value from it where a
    random-effect variance is tested (a 50:50 chi-square mixture; see
    :mod:`stepanalytics.trajectories.nesting`), else NaN.
    """

    criterion: str = "ML"


def compare_models(*results: TrajectoryResult, names: list[str] | None = None) -> ModelComparison:
    """Likelihood-ratio tests of nested mixed models fitted to the same rows.

    REML likelihoods are comparable only between models with the same fixed
    effects; when the fixed effects differ, every REML fit is refitted by
    maximum likelihood first (as R's ``anova(m0, m1)`` does) and the result
    says so.  Models that differ only in their random effects are compared
    on their REML fits.

    Parameters
    ----------
    *results : TrajectoryResult
        Two or more models, each nested in the next larger one: its fixed
        effects and random effects lie in the column spaces of the larger
        model's (``weeks`` is nested in the phase clocks, which add up to it).
    names : list of str, optional
        Labels for the models (default ``model 1``, ...).

    Returns
    -------
    ModelComparison

    Notes
    -----
    R equivalent: ``anova(m0, m1)`` (refit by ML) and ``anova(m0, m1, refit =
    FALSE)``.  A test of a variance component sits on the boundary of the
    parameter space, so the chi-square p-value (which lme4 prints) is
    conservative.  When the larger model adds one variance and at most its
    covariances, ``p_value_boundary`` gives the p-value from the right null
    distribution, a 50:50 mixture of chi2(df - 1) and chi2(df) (Self & Liang
    1987; Stram & Lee 1994); other random-effect comparisons get a warning.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.trajectories import fit_trajectory
    >>> cohort = synthesize_cohort(n_patients=80, n_clinics=4, seed=2)
    >>> level_only = fit_trajectory(cohort, "odi", random_slope=False)
    >>> with_slope = fit_trajectory(cohort, "odi")
    >>> table = compare_models(level_only, with_slope).table
    >>> table["null_distribution"].iat[1]
    '50:50 chi2(1), chi2(2)'
    """
    if len(results) < 2:
        raise UsageError("compare_models needs at least two fitted models.")
    labels = names or [f"model {i + 1}" for i in range(len(results))]
    if len(labels) != len(results):
        raise UsageError("Give one name per model.")
    order = np.argsort([r.n_params for r in results], kind="stable")
    models = [results[i] for i in order]
    labels = [labels[i] for i in order]
    _check_same_data(models)
    for small, large in pairwise(models):
        if small.design is not None and large.design is not None:
            check_nested(small.design, large.design)
    fixed_same = all(list(m.table["term"]) == list(models[0].table["term"]) for m in models[1:])
    warnings: list[str] = []
    if any(m.reml for m in models) and not (fixed_same and all(m.reml for m in models)):
        models = [refit(m, reml=False) for m in models]
        why = (
            "the models differ in their fixed effects, so REML log-likelihoods are not comparable"
            if not fixed_same
            else "REML and ML fits cannot be compared"
        )
        warnings.append(
            f"{why[0].upper()}{why[1:]}: all models were refitted by maximum "
            "likelihood for this test."
        )
    criterion = "REML" if all(m.reml for m in models) else "ML"
    rows = []
    for i, (label, model) in enumerate(zip(labels, models, strict=True)):
        row = {
            "model": label,
            "formula": model.design.formula if model.design else "",
            "re_formula": model.design.re_formula if model.design else "",
            "criterion": criterion,
            "n_params": model.n_params,
            "loglik": model.loglik,
            "aic": model.aic,
            "bic": model.bic,
            "chi2": np.nan,
            "df": np.nan,
            "p_value": np.nan,
            "null_distribution": "",
            "p_value_boundary": np.nan,
        }
        if i > 0:
            previous = models[i - 1]
            chi2 = max(2.0 * (model.loglik - previous.loglik), 0.0)
            df = model.n_params - previous.n_params
            test = boundary_test(previous, model, labels=(labels[i - 1], label))
            row.update(
                chi2=chi2,
                df=float(df),
                p_value=float(stats.chi2.sf(chi2, df)),
                null_distribution=test.null_distribution,
            )
            if test.kind == "mixture":
                row["p_value_boundary"] = mixture_p_value(chi2, test.df_low, test.df_high)
            if test.message:
                warnings.append(test.message)
        rows.append(row)
    return ModelComparison(
        table=pd.DataFrame(rows),
        warnings=tuple(warnings),
        title=f"Likelihood-ratio comparison of nested models ({criterion})",
        criterion=criterion,
    )


def _check_same_data(models: list[TrajectoryResult]) -> None:
    designs = [m.design for m in models if m.design is not None]
    if len(designs) != len(models):
        raise UsageError("compare_models needs fitted models (with their data).")
    first = designs[0]
    for design in designs[1:]:
        same = (
            design.problem.n_obs == first.problem.n_obs
            and np.array_equal(design.problem.y, first.problem.y)
            and np.array_equal(design.problem.patient_codes, first.problem.patient_codes)
        )
        if not same:
            raise UsageError(
                "The models were fitted to different rows "
                f"({first.problem.n_obs} and {design.problem.n_obs} measurements); likelihoods "
                "are only comparable on the same data. Use the same rows (e.g. drop rows with "
                "missing covariates before fitting both models)."
            )
