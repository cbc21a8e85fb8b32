"""Cox models against R survival: coefficients, SEs (model, robust, cluster), cox.zph.

R (reference/survival_reference.R), on the Rossi data:
    coxph(Surv(week, arrest) ~ fin + age + prio, ties = "efron"[, robust = TRUE | cluster = grp])
    coxph(... + strata(wexp), cluster = grp); coxph(... ~ fin + age + prio_band)
    coxph(Surv(entry, week, arrest) ~ fin + age + prio, cluster = grp)   # delayed entry
    cox.zph(fit)                      # transform = "km", terms = TRUE
    residuals(fit, type = "score")
and on phase 1 of the synthetic stays, with clinic as cluster and as strata.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import AnalysisError
from stepanalytics.progression import add_baselines, build_stays, fit_cox, fit_progression_cox
from stepanalytics.progression.cox_efron import efron_sums

COEF_RTOL = 1e-4
BASE = ["fin", "age", "prio"]

MODELS = {
    "plain": {"covariates": BASE},
    "full": {"covariates": ["fin", "age", "race", "wexp", "mar", "paro", "prio"]},
    "robust": {"covariates": BASE, "robust": True},
    "cluster": {"covariates": BASE, "cluster": "grp"},
    "strata_cluster": {"covariates": BASE, "strata": "wexp", "cluster": "grp"},
    "factor": {"covariates": ["fin", "age", "prio_band"]},
    # Delayed entry: R Surv(entry, week, arrest) with entry = floor(week / 3).
    "entry_cluster": {"covariates": BASE, "entry": "entry", "cluster": "grp"},
}


def _r_name(term: str) -> str:
    """prio_band[many] -> prio_bandmany, as R names treatment contrasts."""
    return term.replace("[", "").replace("]", "")


@pytest.mark.parametrize("model", sorted(MODELS))
def test_rossi_matches_coxph(model: str, rossi: pd.DataFrame, ref: Any) -> None:
    expected = ref.json("reference_cox_rossi.json")[model]
    data = rossi.assign(entry=np.floor(rossi["week"] / 3))
    fit = fit_cox(data, duration="week", event="arrest", **MODELS[model])
    table = fit.table
    assert [_r_name(t) for t in table["term"]] == expected["terms"]
    np.testing.assert_allclose(table["estimate"], expected["coef"], rtol=COEF_RTOL)
    if expected["robust_se"]:
        np.testing.assert_allclose(table["std_error"], expected["robust_se"], rtol=COEF_RTOL)
        np.testing.assert_allclose(table["naive_std_error"], expected["se"], rtol=COEF_RTOL)
    else:
        np.testing.assert_allclose(table["std_error"], expected["se"], rtol=COEF_RTOL)
    assert fit.log_likelihood == pytest.approx(expected["loglik"], rel=1e-8)
    assert fit.n_events == expected["n_events"]
    ph = fit.ph_test
    assert ph["term"].tolist() == expected["zph_terms"]
    np.testing.assert_allclose(ph["chisq"], expected["zph_chisq"], rtol=COEF_RTOL)
    np.testing.assert_array_equal(ph["df"], expected["zph_df"])
    np.testing.assert_allclose(ph["p_value"], expected["zph_p"], rtol=COEF_RTOL)


def test_domain_note_figures(rossi: pd.DataFrame) -> None:
    """lifelines' documented rossi fit: fin -0.37942 (0.19138), loglik -658.748."""
    fit = fit_cox(rossi, duration="week", event="arrest", covariates=MODELS["full"]["covariates"])
    row = fit.table.set_index("term").loc["fin"]
    assert (round(row["estimate"], 5), round(row["std_error"], 5)) == (-0.37942, 0.19138)
    assert round(fit.log_likelihood, 3) == -658.748


def test_efron_score_residuals_match_r(rossi: pd.DataFrame, ref: Any) -> None:
    beta = np.array(ref.json("reference_cox_rossi.json")["plain"]["coef"])
    sums = efron_sums(
        rossi["week"].to_numpy(float),
        rossi["arrest"].to_numpy(bool),
        rossi[BASE].to_numpy(float),
        beta,
    )
    expected = ref.csv("reference_cox_rossi_score.csv")[BASE].to_numpy()
    np.testing.assert_allclose(sums.score_residuals, expected, atol=1e-9)
    # Score residuals add up to the score, which is 0 at the maximum.
    np.testing.assert_allclose(sums.score_residuals.sum(axis=0), 0.0, atol=1e-5)


@pytest.mark.parametrize(("model", "clinic"), [("cox_cluster", "cluster"),
                                                ("cox_strata", "strata")])  # fmt: skip
def test_synthetic_progression_matches_coxph(model: str, clinic: str, ref: Any) -> None:
    expected = ref.json("reference_synthetic.json")[model]
    stays = ref.csv("synthetic_stays.csv")
    covariates = ["compensation_claim", "pain_duration_months"]
    if clinic == "cluster":
        covariates.append("protocol")
    fit = fit_progression_cox(stays, phase=1, covariates=covariates, clinic=clinic,  # type: ignore[arg-type]
                              outcomes=("progressed",))  # fmt: skip
    np.testing.assert_allclose(fit.table["estimate"], expected["coef"], rtol=COEF_RTOL)
    se = expected["robust_se"] or expected["se"]
    np.testing.assert_allclose(fit.table["std_error"], se, rtol=COEF_RTOL)
    np.testing.assert_allclose(fit.ph_test["chisq"], expected["zph_chisq"], rtol=COEF_RTOL)
    if clinic == "cluster":
        assert any("only 6 clusters" in w for w in fit.warnings)


def test_too_few_events_is_refused(rossi: pd.DataFrame) -> None:
    three = rossi.sort_values("arrest").head(50)  # 432 rows, the first 50 sorted: no arrests
    three = pd.concat([three, rossi[rossi["arrest"] == 1].head(3)])
    with pytest.raises(AnalysisError, match="only 3 events"):
        fit_cox(three, duration="week", event="arrest", covariates=["fin"])


def test_few_events_per_coefficient_warns(rossi: pd.DataFrame) -> None:
    part = pd.concat([rossi[rossi["arrest"] == 0], rossi[rossi["arrest"] == 1].head(30)])
    fit = fit_cox(part, duration="week", event="arrest", covariates=MODELS["full"]["covariates"])
    assert any("per coefficient" in w for w in fit.warnings)


def test_constant_covariate_is_refused(rossi: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="does not vary"):
        fit_cox(rossi.assign(one=1.0), duration="week", event="arrest", covariates=["one"])
    with pytest.raises(AnalysisError, match="has one value"):
        fit_cox(rossi.assign(site="A"), duration="week", event="arrest", covariates=["site"])


def test_missing_covariates_are_counted_not_hidden(rossi: pd.DataFrame) -> None:
    holed = rossi.copy()
    holed.loc[holed.index[:7], "age"] = np.nan
    fit = fit_cox(holed, duration="week", event="arrest", covariates=BASE)
    assert fit.n == len(rossi) - 7
    assert any("7 of 432 rows were left out" in w for w in fit.warnings)


def test_progression_cox_with_baseline_scores(synthetic_cohort: Any) -> None:
    stays = add_baselines(build_stays(synthetic_cohort), synthetic_cohort, ["odi", "pseq"])
    fit = fit_progression_cox(stays, phase=1, covariates=["baseline_pseq", "compensation_claim"],
                              clinic="strata")  # fmt: skip
    assert fit.table["term"].tolist() == ["baseline_pseq", "compensation_claim"]
    assert set(fit.ph_test["verdict"]) <= {
        "no evidence against proportional hazards",
        "hazard ratio changes over time",
    }
    assert "Hazard ratios" in fit.summary()
