"""What real data brings: missing values, single measurements, scales, singular fits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.trajectories import fit_mixed_model

SLEEP = {"formula": "Reaction ~ Days", "re_formula": "~Days", "groups": "Subject", "time": "Days"}


def test_missing_values_are_refused_with_counts_and_a_fix(sleepstudy: pd.DataFrame) -> None:
    data = sleepstudy.copy()
    data.loc[[3, 7, 50], "Reaction"] = np.nan
    with pytest.raises(AnalysisError) as caught:
        fit_mixed_model(data, **SLEEP)
    message = str(caught.value)
    assert "3 of 180 rows" in message and "Reaction: 3 missing" in message
    assert "missing='drop'" in message


def test_missing_values_can_be_dropped_and_are_reported(sleepstudy: pd.DataFrame) -> None:
    data = sleepstudy.copy()
    data.loc[[3, 7, 50], "Reaction"] = np.nan
    result = fit_mixed_model(data, missing="drop", optimizers=["lbfgs"], **SLEEP)
    assert result.fit_statistics["n_obs"].iat[0] == 177
    assert result.fit_statistics["n_rows_left_out"].iat[0] == 3
    assert any("3 rows with missing values were left out" in n for n in result.notes)


def test_unknown_columns_and_bad_formulas_are_usage_errors(sleepstudy: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match="grouping column 'patient_id'"):
        fit_mixed_model(sleepstudy, formula="Reaction ~ Days", time="Days")
    with pytest.raises(UsageError, match="Could not build the model"):
        fit_mixed_model(sleepstudy, formula="Reaction ~ Dayz", groups="Subject", time="Days")
    with pytest.raises(UsageError, match="DataFrame"):
        fit_mixed_model(sleepstudy.to_numpy(), formula="Reaction ~ Days")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="level"):
        fit_mixed_model(sleepstudy, level=95, **SLEEP)


def test_collinear_terms_are_named(sleepstudy: pd.DataFrame) -> None:
    data = sleepstudy.assign(hours=sleepstudy["Days"] * 24.0)
    with pytest.raises(AnalysisError, match="hours"):
        fit_mixed_model(data, formula="Reaction ~ Days + hours", groups="Subject", time="Days")


def test_too_few_groups_and_unidentifiable_slopes(sleepstudy: pd.DataFrame) -> None:
    two = sleepstudy[sleepstudy["Subject"].isin(["308", "309"])]
    with pytest.raises(AnalysisError, match="several groups"):
        fit_mixed_model(two, **SLEEP)
    first_day = sleepstudy[sleepstudy["Days"] == 0]
    with pytest.raises(AnalysisError, match="re_formula='1'"):
        fit_mixed_model(
            first_day.assign(x=1.0),
            formula="Reaction ~ 1",
            re_formula="~Days",
            groups="Subject",
            time="Days",
        )


def test_patients_with_one_measurement_stay_in_the_model(sleepstudy: pd.DataFrame) -> None:
    """Unbalanced visits: six subjects keep only day 0; all 18 are still in the fit."""
    keep = (sleepstudy["Days"] == 0) | ~sleepstudy["Subject"].isin(
        sleepstudy["Subject"].unique()[:6]
    )
    data = sleepstudy[keep]
    result = fit_mixed_model(data, optimizers=["lbfgs"], **SLEEP)
    stats = result.fit_statistics.iloc[0]
    assert (stats["n_obs"], stats["n_patients"]) == (126, 18)
    assert any("6 of 18 patients have a single measurement" in n for n in result.notes)
    assert result.fit.patient_effects.shape == (18, 2)


def test_very_different_scales_give_exactly_rescaled_results(
    sleepstudy: pd.DataFrame, lme4_reference: dict[str, Any]
) -> None:
    """Reaction in microseconds and time in weeks: lme4's numbers, rescaled by algebra.

    y -> 1000 y, t -> t / 7: beta0 x 1000, beta1 x 7000, SDs of intercept x 1000 and
    slope x 7000, residual SD x 1000, ML log-likelihood - n log(1000); df unchanged.
    """
    reference = lme4_reference["models"]["sleep_slope_ml"]
    data = sleepstudy.assign(us=sleepstudy["Reaction"] * 1000.0, weeks=sleepstudy["Days"] / 7.0)
    result = fit_mixed_model(
        data, formula="us ~ weeks", re_formula="~weeks", groups="Subject", reml=False
    )
    fixed = pd.DataFrame(reference["fixed"])
    np.testing.assert_allclose(
        result.table["estimate"], fixed["estimate"] * [1000.0, 7000.0], rtol=1e-4
    )
    np.testing.assert_allclose(result.table["df"], fixed["df"], rtol=1e-2)
    vc = result.variance_components
    sds = [row["sd"] for row in reference["sd"]]
    np.testing.assert_allclose(
        vc["estimate"].iloc[:2], np.multiply(sds, [1000.0, 7000.0]), rtol=1e-3
    )
    assert vc["estimate"].iat[3] == pytest.approx(reference["sigma"] * 1000.0, rel=1e-3)
    assert result.loglik == pytest.approx(reference["loglik"] - 180 * np.log(1000.0), abs=0.01)


def test_a_singular_fit_reaches_the_boundary_as_lme4_does() -> None:
    """Slopes that barely vary: lme4 ends on the boundary (correlation +1, theta_3 = 0).

    R (lme4 1.1-31) on these data: logLik -485.8996, SDs 3.2160 and 0.2263, corr 1.000,
    residual SD 2.0726, "boundary (singular) fit".  statsmodels' runs stop short of the
    bound; the bounded polish lands on it.
    """
    rng = np.random.default_rng(2)
    n, visits = 40, 5
    pid = np.repeat(np.arange(n), visits)
    weeks = np.tile(np.arange(visits, dtype=float), n)
    score = 30 - 1.0 * weeks + rng.normal(0, 4, n)[pid] + rng.normal(0, 2, n * visits)
    data = pd.DataFrame({"patient_id": pid, "weeks": weeks, "score": score})
    result = fit_mixed_model(data, formula="score ~ weeks", re_formula="~weeks")
    assert result.loglik == pytest.approx(-485.8996, abs=0.01)
    np.testing.assert_allclose(
        result.variance_components["estimate"], [3.2160, 0.2263, 1.0, 2.0726], atol=2e-3
    )
    assert any(w.startswith("The fit is singular") for w in result.warnings)
    assert not any("curves upwards" in w for w in result.warnings)
    assert result.attempts["boundary"].iat[-1]


def _sleep_rows(sleepstudy: pd.DataFrame, extra_subject: str | None = None) -> pd.DataFrame:
    """Days 0 and 1 of every subject (36 rows), plus day 2 of one subject if named."""
    keep = sleepstudy["Days"] <= 1
    if extra_subject is not None:
        keep |= (sleepstudy["Days"] == 2) & (sleepstudy["Subject"] == extra_subject)
    return sleepstudy[keep]


@pytest.mark.parametrize("engine", ["auto", "fast", "statsmodels"])
def test_no_more_rows_than_random_effects_is_refused_by_every_engine(
    sleepstudy: pd.DataFrame, engine: str
) -> None:
    """lme4's check.nobs.vs.nRE: R (lme4 1.1-31) refuses these 36 rows with "number of
    observations (=36) <= number of random effects (=36) for term (Days | Subject)", and
    fits 37 (singular).  Every engine refuses in the same words, so engine="auto" never
    errors where another engine would have fitted."""
    with pytest.raises(AnalysisError) as caught:
        fit_mixed_model(_sleep_rows(sleepstudy), engine=engine, **SLEEP)
    message = str(caught.value)
    assert message.startswith(
        "36 measurements cannot support 36 random effects (2 random terms for each of 18 "
        "values of Subject)"
    )
    assert "re_formula='1'" in message and "check.nobs.vs.nRE" in message


def test_the_fast_engine_refuses_in_the_same_words(sleepstudy: pd.DataFrame) -> None:
    from stepanalytics.lmm import fit_lmm

    data = _sleep_rows(sleepstudy)
    x = np.column_stack([np.ones(len(data)), data["Days"].to_numpy(float)])
    with pytest.raises(AnalysisError) as direct:
        fit_lmm(data["Reaction"].to_numpy(float), x, x, data["Subject"].to_numpy())
    with pytest.raises(AnalysisError) as designed:
        fit_mixed_model(data, **SLEEP)
    common = "with no more measurements than random effects"
    assert common in str(direct.value) and common in str(designed.value)


def test_one_more_row_than_random_effects_is_fitted(sleepstudy: pd.DataFrame) -> None:
    """As lme4: 37 rows for 36 random effects fit.

    R (lme4 1.1-31, bobyqa and nloptwrap at tight tolerances) stops on the
    boundary at logLik -167.393111 (theta 1.6588, 0.0976, 0).  Started from the
    fast engine's theta (4.1345, -0.7638, 2.7122), lmer() stays there at
    -167.3683252, a better, interior optimum; the statsmodels engine ends on
    lme4's boundary optimum.
    """
    data = _sleep_rows(sleepstudy, "308")
    fast = fit_mixed_model(data, engine="fast", **SLEEP)
    assert fast.fit_statistics["n_obs"].iat[0] == 37
    assert fast.loglik == pytest.approx(-167.3683252, abs=1e-6)
    np.testing.assert_allclose(fast.fit.theta, [4.1344792, -0.7638198, 2.7121916], rtol=1e-5)
    slow = fit_mixed_model(data, engine="statsmodels", **SLEEP)
    assert slow.loglik == pytest.approx(-167.393111, abs=1e-5)
