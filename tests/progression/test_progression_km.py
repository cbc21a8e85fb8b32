"""Kaplan-Meier curves, medians and log-rank tests against R survival.

R (reference/survival_reference.R):
    survfit(Surv(futime, death) ~ sex, data = mgus2, conf.type = "log")
    quantile(fit, 0.5); summary(fit, times = c(12, 60, 120, 400)); survdiff(...)
and the same for rossi (weeks, heavy ties, median not reached), a tiny
hand-made data set for the median rules, and phase 2 of the synthetic cohort.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression import build_stays, kaplan_meier, time_to_progression
from stepanalytics.progression.confidence import confidence_limits, survival_quantile

PROB_TOL = 1e-6  # the tolerance for probabilities
CASES = {
    "mgus2_death": ("mgus2", "futime", "death", "sex", [12, 60, 120, 400]),
    "rossi": ("rossi", "week", "arrest", "fin", [10, 26, 52]),
    "tiny": ("tiny", "time", "status", "group", [3, 5]),
}


def _data(name: str, request: pytest.FixtureRequest) -> pd.DataFrame:
    if name == "tiny":
        return request.getfixturevalue("ref").csv("tiny_km.csv")
    return request.getfixturevalue(name)


def _as_float(values: list[object]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


@pytest.mark.parametrize("case", sorted(CASES))
def test_full_curve_matches_survfit(case: str, request: pytest.FixtureRequest, ref: Any) -> None:
    source, duration, event, by, _ = CASES[case]
    fit = kaplan_meier(_data(source, request), duration=duration, event=event, by=by)
    expected = ref.csv(f"reference_km_{case}.csv")
    table = fit.table
    assert len(table) == len(expected)
    np.testing.assert_array_equal(table["time"], expected["time"])
    np.testing.assert_array_equal(table["n_risk"], expected["n_risk"])
    np.testing.assert_array_equal(table["n_event"], expected["n_event"])
    np.testing.assert_array_equal(table["n_censor"], expected["n_censor"])
    np.testing.assert_allclose(table["estimate"], expected["surv"], atol=PROB_TOL, rtol=0)
    # R's std.err is that of log S; ours is that of S.
    se_log = np.where(table["estimate"] > 0, table["std_error"] / table["estimate"], np.inf)
    finite = np.isfinite(expected["std_err_log"])
    np.testing.assert_allclose(se_log[finite], expected["std_err_log"][finite], rtol=1e-9)
    for ours, theirs in (("ci_lower", "lower"), ("ci_upper", "upper")):
        np.testing.assert_array_equal(table[ours].isna(), expected[theirs].isna())
        np.testing.assert_allclose(table[ours], expected[theirs], atol=PROB_TOL, rtol=0)


@pytest.mark.parametrize("conf_type", ["log", "log-log", "plain"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_medians_and_times_match_survfit(
    case: str, conf_type: str, request: pytest.FixtureRequest, ref: Any
) -> None:
    source, duration, event, by, at = CASES[case]
    fit = kaplan_meier(
        _data(source, request), duration=duration, event=event, by=by, at=at, conf_type=conf_type
    )
    expected_km = ref.json("reference_km.json")[case]
    medians = expected_km["medians"][conf_type]
    for ours, theirs in (("median", "median"), ("ci_lower", "lower"), ("ci_upper", "upper")):
        expected = _as_float([v[0] for v in medians[theirs]])
        np.testing.assert_array_equal(fit.medians[ours].to_numpy(), expected)
    at_ref = expected_km["at"][conf_type]
    shown = fit.at_times.dropna(subset=["estimate"])  # R drops times beyond follow-up
    np.testing.assert_allclose(shown["estimate"], at_ref["surv"], atol=PROB_TOL, rtol=0)
    np.testing.assert_allclose(shown["std_error"], at_ref["std_err"], atol=PROB_TOL, rtol=0)
    np.testing.assert_allclose(shown["ci_lower"], _as_float(at_ref["lower"]), atol=PROB_TOL)
    np.testing.assert_allclose(shown["ci_upper"], _as_float(at_ref["upper"]), atol=PROB_TOL)
    assert shown["n_risk"].tolist() == at_ref["n_risk"]


def test_logrank_matches_survdiff(mgus2: pd.DataFrame, rossi: pd.DataFrame, ref: Any) -> None:
    expected = ref.json("reference_km.json")
    two = kaplan_meier(mgus2, duration="futime", event="death", by="sex").logrank
    r_two = expected["mgus2_death"]
    assert two["statistic"].iat[0] == pytest.approx(r_two["logrank_chisq"], rel=1e-9)
    assert two["p_value"].iat[0] == pytest.approx(r_two["logrank_p"], rel=1e-7)
    three = kaplan_meier(rossi, duration="week", event="arrest", by="prio_band").logrank
    assert three["statistic"].iat[0] == pytest.approx(
        expected["rossi"]["logrank_prio_band_chisq"], rel=1e-9
    )
    assert three["df"].iat[0] == 2


def test_synthetic_phase_matches_survfit(ref: Any) -> None:
    """survfit(Surv(duration_days, outcome == "progressed") ~ protocol,
    data = subset(stays, phase == 2 & entry == "first"))"""
    stays = ref.csv("synthetic_stays.csv")
    fit = time_to_progression(stays, phase=2, by="protocol", outcomes=("progressed",))
    expected = ref.csv("reference_synthetic_km_phase2.csv")
    np.testing.assert_allclose(fit.table["estimate"], expected["surv"], atol=PROB_TOL, rtol=0)
    np.testing.assert_allclose(fit.table["ci_lower"], expected["lower"], atol=PROB_TOL, rtol=0)
    np.testing.assert_array_equal(fit.table["n_risk"], expected["n_risk"])
    r_km = ref.json("reference_synthetic.json")["km_phase2"]
    assert fit.medians["median"].tolist() == [v[0] for v in r_km["median"]]
    assert fit.medians["ci_lower"].tolist() == [v[0] for v in r_km["lower"]]
    assert fit.medians["ci_upper"].tolist() == [v[0] for v in r_km["upper"]]
    assert fit.logrank["statistic"].iat[0] == pytest.approx(r_km["logrank_chisq"], rel=1e-9)


def test_median_rules_by_hand() -> None:
    """Uncensored 1..10: S = 0.5 between 5 and 6, median 5.5 (the usual sample median)."""
    times = np.arange(1.0, 11.0)
    assert survival_quantile(times, 1 - times / 10) == 5.5
    # A curve that never reaches 0.5 has no median.
    assert np.isnan(survival_quantile(times, np.full(10, 0.8)))
    # A curve ending exactly at 0.5: midpoint of the time it got there and the last time.
    assert survival_quantile(np.array([1.0, 2.0, 7.0]), np.array([0.75, 0.5, 0.5])) == 4.5


def test_confidence_limits_by_hand() -> None:
    """log: p exp(+-1.96 se/p); log-log and plain from their formulas (Kalbfleisch & Prentice)."""
    z = 1.959963984540054
    lo, hi = confidence_limits(np.array([0.5]), np.array([0.1]), conf_type="log")
    assert lo[0] == pytest.approx(0.5 * np.exp(-z * 0.2))
    assert hi[0] == pytest.approx(0.5 * np.exp(z * 0.2))
    lo, hi = confidence_limits(np.array([0.5]), np.array([0.1]), conf_type="plain")
    assert (lo[0], hi[0]) == pytest.approx((0.5 - z * 0.1, 0.5 + z * 0.1))
    lo, hi = confidence_limits(np.array([0.5]), np.array([0.1]), conf_type="log-log")
    spread = z * 0.2 / np.log(0.5)
    assert lo[0] == pytest.approx(np.exp(-np.exp(np.log(-np.log(0.5)) - spread)))
    assert hi[0] == pytest.approx(np.exp(-np.exp(np.log(-np.log(0.5)) + spread)))


def test_time_to_progression_counts_completion_in_last_phase(synthetic_cohort: object) -> None:
    stays = build_stays(synthetic_cohort)
    fit = time_to_progression(stays, phase=4)
    last = stays[(stays["phase"] == 4) & (stays["entry"] == "first")]
    assert fit.medians["events"].iat[0] == int(last["outcome"].eq("completed").sum())
    assert fit.medians["n"].iat[0] == len(last)


def test_beyond_follow_up_is_nan_with_a_warning() -> None:
    frame = pd.DataFrame({"t": [3, 5, 8], "e": [1, 0, 1]})
    fit = kaplan_meier(frame, duration="t", event="e", at=[4, 100])
    assert np.isnan(fit.at_times["estimate"].iat[1])
    assert any("nobody is followed up to day 100" in w for w in fit.warnings)
    assert any("only 3 subjects" in w for w in fit.warnings)


def test_bad_input_is_refused() -> None:
    frame = pd.DataFrame({"t": [3, -1, 8], "e": [1, 0, 1]})
    with pytest.raises(AnalysisError, match="times >= 0"):
        kaplan_meier(frame, duration="t", event="e")
    with pytest.raises(UsageError, match="not in the data"):
        kaplan_meier(frame, duration="days", event="e")
    with pytest.raises(UsageError, match="conf_type"):
        kaplan_meier(frame.abs(), duration="t", event="e", conf_type="arcsin")
    with pytest.raises(AnalysisError, match="nobody is at risk"):
        time_to_progression(
            pd.DataFrame(
                {"phase": [1], "entry": ["first"], "duration_days": [3], "outcome": ["censored"]}
            ),
            phase=3,
        )
