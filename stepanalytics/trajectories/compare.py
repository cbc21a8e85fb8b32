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
from stepanalytics.trajectories.result import TrajectoryResult


@dataclass(frozen=True)
class ModelComparison(AnalysisResult):
    """One row per model (smallest first): criterion, parameters, loglik, AIC, BIC, and the
    chi-square test of each model against the one before it."""

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
        Two or more models, each nested in the next larger one.
    names : list of str, optional
        Labels for the models (default ``model 1``, ...).

    Returns
    -------
    ModelComparison

    Notes
    -----
    R equivalent: ``anova(m0, m1)`` (refit by ML) and ``anova(m0, m1, refit =
    FALSE)``.  A test of a variance component sits on the boundary of the
    parameter space; the chi-square p-value is then conservative (Self & Liang
    1987; Stram & Lee 1994) and is reported as lme4 does.
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
    _check_nested(models)
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
        }
        if i > 0:
            previous = models[i - 1]
            chi2 = max(2.0 * (model.loglik - previous.loglik), 0.0)
            df = model.n_params - previous.n_params
            row.update(chi2=chi2, df=float(df), p_value=float(stats.chi2.sf(chi2, df)))
        rows.append(row)
    random_differ = any(_random_names(m) != _random_names(models[0]) for m in models[1:])
    if random_differ:
        warnings.append(
            "Some models differ in their random effects. A variance cannot be negative, so "
            "the test of an extra variance component is conservative: its true p-value is "
            "about half the one shown (Self & Liang 1987)."
        )
    return ModelComparison(
        table=pd.DataFrame(rows),
        warnings=tuple(warnings),
        title=f"Likelihood-ratio comparison of nested models ({criterion})",
        criterion=criterion,
    )


def _random_names(result: TrajectoryResult) -> tuple[str, ...]:
    return result.design.problem.random_names if result.design else ()


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


def _check_nested(models: list[TrajectoryResult]) -> None:
    for small, large in pairwise(models):
        fixed_ok = set(small.table["term"]) <= set(large.table["term"])
        random_ok = set(_random_names(small)) <= set(_random_names(large))
        if not (fixed_ok and random_ok):
            raise UsageError(
                "The models are not nested: every term of the smaller model must be in the "
                f"larger one. Fixed effects {list(small.table['term'])} vs "
                f"{list(large.table['term'])}; random effects {list(_random_names(small))} vs "
                f"{list(_random_names(large))}."
            )
