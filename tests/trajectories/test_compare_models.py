"""compare_models: nesting by column space, and tests of variance components on the boundary.

Reference numbers: ``lrt`` in reference/lme4_reference.json (R's ``anova()``,
and for random-effect tests the 50:50 mixture p-value from R's ``pchisq`` at
anova's statistic).  The mixture's critical values are the published ones
(Stram & Lee 1994; tabulated e.g. in Fitzmaurice, Laird & Ware 2011, Applied
Longitudinal Analysis, 2nd ed.): 2.71 for 0.5 chi2(0) + 0.5 chi2(1), 5.14,
7.05 and 8.76 for 0.5 chi2(q) + 0.5 chi2(q + 1) with q = 1, 2, 3, at 5%.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stepanalytics.errors import UsageError
from stepanalytics.trajectories import TrajectoryResult, compare_models, fit_mixed_model
from stepanalytics.trajectories.nesting import columns_outside, mixture_p_value

SLEEP = {"groups": "Subject", "time": "Days"}
PIECEWISE = (
    "score ~ weeks_phase1 + weeks_phase2 + weeks_phase3 + weeks_phase4 + weeks_outside_phases"
)


def synth_fit(
    data: pd.DataFrame, formula: str = "score ~ weeks", **kwargs: Any
) -> TrajectoryResult:
    kwargs.setdefault("re_formula", "~weeks")
    return fit_mixed_model(data, formula=formula, engine="fast", **kwargs)


@pytest.mark.parametrize(
    ("critical", "df_low", "df_high"),
    [(2.71, 0, 1), (5.14, 1, 2), (7.05, 2, 3), (8.76, 3, 4)],
)
def test_mixture_p_value_at_published_critical_values(
    critical: float, df_low: int, df_high: int
) -> None:
    # Two decimals in the tables: the p-value there is 0.05 to within 1e-3.
    assert mixture_p_value(critical, df_low, df_high) == pytest.approx(0.05, abs=1e-3)
    assert mixture_p_value(0.0, df_low, df_high) == 1.0


def test_testing_the_clinic_random_intercept_warns_and_halves_the_p_value(
    synthetic_long: pd.DataFrame, lme4_reference: dict[str, Any]
) -> None:
    """R: anova(m_default, lmer(... + (1 | clinic_id)), refit = FALSE): one variance added."""
    expected = lme4_reference["lrt"]["synth_clinic_random_reml"]
    plain = synth_fit(synthetic_long)
    nested = synth_fit(synthetic_long, outer_groups="clinic_id")
    comparison = compare_models(plain, nested)
    row = comparison.table.iloc[1]
    assert row["chi2"] == pytest.approx(expected["chisq"], abs=2e-4)
    assert row["p_value"] == pytest.approx(expected["p_value"], rel=1e-3)
    assert row["null_distribution"] == "50:50 chi2(0), chi2(1)"
    assert row["p_value_boundary"] == pytest.approx(expected["p_mixture"], rel=1e-3)
    assert row["p_value_boundary"] == pytest.approx(row["p_value"] / 2, rel=1e-12)
    (warning,) = comparison.warnings
    assert "a random intercept per clinic_id" in warning and "chi2(0) and chi2(1)" in warning


def test_a_correlated_random_slope_is_tested_against_the_chi2_1_2_mixture(
    sleepstudy: pd.DataFrame, lme4_reference: dict[str, Any]
) -> None:
    """R: anova(lmer(Reaction ~ Days + (1 | Subject)), lmer(... + (Days | Subject)),
    refit = FALSE); a variance and a covariance added: not "about half" the p-value."""
    expected = lme4_reference["lrt"]["sleep_random_slope_reml"]
    level = fit_mixed_model(sleepstudy, formula="Reaction ~ Days", re_formula="1", **SLEEP)
    slope = fit_mixed_model(sleepstudy, formula="Reaction ~ Days", re_formula="~Days", **SLEEP)
    comparison = compare_models(slope, level)
    row = comparison.table.iloc[1]
    assert row["df"] == 2
    assert row["null_distribution"] == "50:50 chi2(1), chi2(2)"
    assert row["p_value_boundary"] == pytest.approx(expected["p_mixture"], rel=1e-3)
    assert row["p_value_boundary"] != pytest.approx(row["p_value"] / 2, rel=1e-2)
    (warning,) = comparison.warnings
    assert "one variance and 1 covariance(s) with it" in warning
    assert "chi2(1) and chi2(2)" in warning and "about half" not in warning


def test_an_uncorrelated_random_slope_adds_one_variance_only(sleepstudy: pd.DataFrame) -> None:
    """(1 | Subject) inside (Days || Subject): one variance, 0.5 chi2(0) + 0.5 chi2(1)."""
    level = fit_mixed_model(sleepstudy, formula="Reaction ~ Days", re_formula="1", **SLEEP)
    diagonal = fit_mixed_model(
        sleepstudy, formula="Reaction ~ Days", re_formula="~Days", re_covariance="diagonal", **SLEEP
    )
    row = compare_models(level, diagonal).table.iloc[1]
    assert row["df"] == 1 and row["null_distribution"] == "50:50 chi2(0), chi2(1)"
    assert row["p_value_boundary"] == pytest.approx(row["p_value"] / 2, rel=1e-12)


def test_a_correlation_alone_is_not_on_the_boundary(sleepstudy: pd.DataFrame) -> None:
    """(Days || Subject) inside (Days | Subject): only a covariance added, chi2(1) holds."""
    diagonal = fit_mixed_model(
        sleepstudy, formula="Reaction ~ Days", re_formula="~Days", re_covariance="diagonal", **SLEEP
    )
    full = fit_mixed_model(sleepstudy, formula="Reaction ~ Days", re_formula="~Days", **SLEEP)
    comparison = compare_models(diagonal, full)
    row = comparison.table.iloc[1]
    assert row["null_distribution"] == "chi2" and np.isnan(row["p_value_boundary"])
    assert row["p_value"] == pytest.approx(stats.chi2.sf(row["chi2"], 1))
    assert not comparison.warnings


def test_several_variances_at_once_get_a_plain_caution(synthetic_long: pd.DataFrame) -> None:
    level = synth_fit(synthetic_long, re_formula="1")
    both = synth_fit(synthetic_long, outer_groups="clinic_id")
    comparison = compare_models(level, both)
    row = comparison.table.iloc[1]
    assert row["df"] == 3 and np.isnan(row["p_value_boundary"])
    assert row["null_distribution"] == "chi2 (conservative)"
    (warning,) = comparison.warnings
    assert "conservative" in warning and "2 variances added at once" in warning
    assert "a random intercept per clinic_id and a random effect of weeks" in warning


def test_the_straight_line_is_nested_in_the_piecewise_model(
    synthetic_long: pd.DataFrame, lme4_reference: dict[str, Any]
) -> None:
    """weeks is the sum of the phase clocks. R: anova(m_default, m_piece) (refit by ML)."""
    expected = lme4_reference["lrt"]["synth_piecewise_fixed"]
    straight = synth_fit(synthetic_long)
    piecewise = synth_fit(synthetic_long, PIECEWISE)
    comparison = compare_models(piecewise, straight)
    assert comparison.criterion == "ML"
    row = comparison.table.iloc[1]
    assert row["loglik"] == pytest.approx(expected["loglik_large"], abs=1e-4)
    assert row["chi2"] == pytest.approx(expected["chisq"], abs=2e-4)
    assert row["df"] == expected["df"] == 4
    assert row["p_value"] == pytest.approx(expected["p_value"], rel=1e-3)
    assert row["null_distribution"] == "chi2" and np.isnan(row["p_value_boundary"])


def test_models_that_do_not_nest_are_refused_with_the_reason(sleepstudy: pd.DataFrame) -> None:
    data = sleepstudy.assign(d2=sleepstudy["Days"] ** 2.0, d3=sleepstudy["Days"] ** 3.0)
    slope = fit_mixed_model(data, formula="Reaction ~ Days", re_formula="~Days", **SLEEP)
    # The larger model's random effects are (1, Days^2): Days is not a combination of them.
    curved = fit_mixed_model(data, formula="Reaction ~ Days + d2 + d3", re_formula="~d2", **SLEEP)
    with pytest.raises(UsageError, match=r"not nested: the random effects \['Days'\]"):
        compare_models(slope, curved)
    # Correlated effects are not a special case of uncorrelated ones.
    diagonal = fit_mixed_model(
        data, formula="Reaction ~ Days + d2", re_formula="~Days", re_covariance="diagonal", **SLEEP
    )
    with pytest.raises(UsageError, match="uncorrelated"):
        compare_models(slope, diagonal)


def test_columns_outside_a_column_space() -> None:
    weeks = np.arange(8.0)
    ones = np.ones(8)
    clocks = np.column_stack([ones, np.minimum(weeks, 3), np.maximum(weeks - 3, 0)])
    assert columns_outside(np.column_stack([ones, weeks]), clocks) == []
    assert columns_outside(np.column_stack([ones, weeks, weeks**2]), clocks) == [2]
    # Large offsets and scales do not fool the check.
    assert columns_outside(np.column_stack([1e6 + weeks * 1e-3]), clocks) == []
