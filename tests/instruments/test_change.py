"""Change from baseline: follow-up points, MCID responders, reliable change, categories.

Hand-worked cases in the comments; the ODI cohort case is checked against R
(``reference/odi_change.R``, output in ``reference/odi_change_r_*.csv``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import UsageError
from stepanalytics.instruments import get_registry, measure_change
from stepanalytics.instruments.reliable_change import (
    classify_change,
    is_responder,
    reliable_change_index,
    standard_error_of_difference,
)

REFERENCE = Path(__file__).parent / "reference"


def _scores(rows: list[tuple[str, int, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["patient_id", "day", "instrument", "score"])
    frame["day"] = frame["day"].astype("int64")
    frame["score"] = frame["score"].astype(float)
    return frame


# --- reliable change, responder and category, worked by hand -------------------------------


def test_standard_error_of_difference_by_hand():
    # PHQ-9, SD 5, r = 0.89: sqrt(2) * 5 * sqrt(0.11) = 2.345208
    assert standard_error_of_difference(5.0, 0.89) == pytest.approx(2.3452079, abs=1e-7)
    with pytest.raises(UsageError):
        standard_error_of_difference(5.0, 1.0)


@pytest.mark.parametrize(
    ("code", "base", "later", "sd", "rci", "category"),
    [
        # PHQ-9 18 -> 6: RCI = -12 / 2.345208 = -5.1168; clinical (>= 10) -> normal: recovered
        ("phq9", 18, 6, 5.0, -12 / 2.3452079, "recovered"),
        # PHQ-9 14 -> 10: -4 / 2.3452 = -1.706, inside +-1.96: unchanged
        ("phq9", 14, 10, 5.0, -4 / 2.3452079, "unchanged"),
        # PHQ-9 8 -> 14: +6 / 2.3452 = +2.558: deteriorated
        ("phq9", 8, 14, 5.0, 6 / 2.3452079, "deteriorated"),
        # PHQ-9 22 -> 12: -4.264, reliable but still >= 10: improved, not recovered
        ("phq9", 22, 12, 5.0, -10 / 2.3452079, "improved"),
        # PHQ-9 9 -> 2: reliable improvement but the baseline was already normal: improved
        ("phq9", 9, 2, 5.0, -7 / 2.3452079, "improved"),
        # PSEQ (higher is better), SD 12, r 0.92: S_diff = sqrt(2) * 12 * sqrt(0.08) = 4.8
        ("pseq", 20, 35, 12.0, 15 / 4.8, "improved"),  # 35 < 41, still clinical
        ("pseq", 30, 45, 12.0, 15 / 4.8, "recovered"),  # crosses 41
        ("pseq", 40, 30, 12.0, -10 / 4.8, "deteriorated"),  # -2.083
        ("pseq", 40, 31, 12.0, -9 / 4.8, "unchanged"),  # -1.875
        # TSK-11 has no clinical cut-off: reliable improvement stays 'improved'
        # S_diff = sqrt(2) * 6 * sqrt(0.19) = 3.698648; 40 -> 28: -3.244
        ("tsk11", 40, 28, 6.0, -12 / 3.6986484, "improved"),
    ],
)
def test_rci_and_category_by_hand(code, base, later, sd, rci, category):
    spec = get_registry().get(code)
    got = reliable_change_index(
        np.array([base], float), np.array([later], float), sd_baseline=sd,
        reliability=spec.reliability,
    )  # fmt: skip
    assert got[0] == pytest.approx(rci, abs=1e-6)
    assert classify_change(spec, np.array([base], float), np.array([later], float), got)[0] == (
        category
    )


def test_rci_exactly_at_the_critical_value_is_unchanged():
    spec = get_registry().get("phq9")
    assert classify_change(spec, np.array([12.0]), np.array([10.0]), np.array([-1.96]))[0] == (
        "unchanged"
    )


@pytest.mark.parametrize(
    ("code", "base", "later", "rule", "expected"),
    [
        # ODI 40 -> 32: 8 points (< 10), 20% (< 30)
        ("odi", 40, 32, "points_first", False),
        ("odi", 40, 32, "either", False),
        # ODI 30 -> 20: 10 points (boundary) and 33%
        ("odi", 30, 20, "points", True),
        ("odi", 30, 20, "both", True),
        # ODI 20 -> 14: 6 points, 30% (boundary)
        ("odi", 20, 14, "points_first", False),
        ("odi", 20, 14, "percent", True),
        ("odi", 20, 14, "either", True),
        ("odi", 20, 14, "both", False),
        # PCS has only a percent MCID (38%): 30 -> 18 is 40%, 30 -> 19 is 36.7%
        ("pcs", 30, 18, "points_first", True),
        ("pcs", 30, 19, "points_first", False),
        ("pcs", 30, 18, "points", None),
        # PSEQ higher is better: +11 is a responder, -11 is not
        ("pseq", 20, 31, "points_first", True),
        ("pseq", 31, 20, "points_first", False),
        # Percent change from a baseline of 0 is undefined
        ("nrs_pain", 0, 2, "percent", None),
        ("nrs_pain", 0, 2, "points_first", False),
        # DASS-21 has no MCID in the registry
        ("dass21_stress", 30, 10, "points_first", None),
    ],
)
def test_responder_by_hand(code, base, later, rule, expected):
    spec = get_registry().get(code)
    got = is_responder(spec, np.array([base], float), np.array([later], float), rule=rule)[0]
    assert (None if got is pd.NA else bool(got)) == expected


# --- follow-up points ------------------------------------------------------------------------


def test_last_observation_and_statuses():
    scores = _scores(
        [
            ("a", 0, "phq9", 18), ("a", 40, "phq9", 12), ("a", 90, "phq9", 6),
            ("b", 20, "phq9", 12), ("b", 60, "phq9", 8),  # first score after day 14
            ("c", 5, "phq9", 10),  # baseline only
        ]
    )  # fmt: skip
    result = measure_change(scores, baseline_sd={"phq9": 5.0})
    got = result.patients.set_index("patient_id")
    assert got.loc["a", ["baseline_day", "follow_up_day", "change"]].tolist() == [0, 90, -12]
    assert got["status"].to_dict() == {"a": "complete", "b": "no_baseline", "c": "no_follow_up"}
    assert got.loc["a", "baseline_band"] == "moderately severe"
    assert got.loc["a", "follow_up_band"] == "mild"
    row = result.table.iloc[0]
    assert (row["n"], row["n_no_baseline"], row["n_no_follow_up"]) == (1, 1, 1)


def test_baseline_window_is_configurable():
    scores = _scores([("b", 20, "phq9", 12), ("b", 60, "phq9", 8)])
    wide = measure_change(scores, baseline_window_days=21, baseline_sd={"phq9": 5.0})
    assert wide.patients.loc[0, "status"] == "complete"
    assert wide.patients.loc[0, "change"] == -4


def test_fixed_day_follow_up_takes_the_closest_score_in_the_window():
    scores = _scores(
        [
            ("a", 0, "odi", 50), ("a", 80, "odi", 44), ("a", 95, "odi", 40),  # 95 is closer
            ("b", 0, "odi", 50), ("b", 85, "odi", 30), ("b", 95, "odi", 20),  # tie -> earlier
            ("c", 0, "odi", 50), ("c", 120, "odi", 10),  # outside 90 +- 14
        ]
    )  # fmt: skip
    result = measure_change(scores, follow_up=90, baseline_sd={"odi": 15.0})
    got = result.patients.set_index("patient_id")
    assert got.loc[["a", "b"], "follow_up_day"].tolist() == [95, 85]
    assert pd.isna(got.loc["c", "follow_up_day"])
    assert got["follow_up"].unique().tolist() == ["day_90"]
    assert got.loc["c", "status"] == "no_follow_up"


def test_phase_end_follow_ups_per_stay():
    scores = _scores(
        [
            ("a", 0, "pseq", 20), ("a", 25, "pseq", 28), ("a", 30, "pseq", 29),
            ("a", 58, "pseq", 35), ("a", 75, "pseq", 44),
        ]
    )  # fmt: skip
    phases = pd.DataFrame(
        {
            "patient_id": ["a", "a", "a"],
            "phase": [1, 2, 3],
            "start_day": [0, 30, 60],
            "end_day": pd.array([30, 60, pd.NA], dtype="Int64"),
        }
    )
    result = measure_change(scores, phases=phases, follow_up="phase_end",
                            baseline_sd={"pseq": 12.0})  # fmt: skip
    got = result.patients
    # Phase 1 (0-30): last score in days 16..30 is day 30 (29); phase 2 (30-60): day 58 (35).
    # Phase 3 is ongoing: no end-of-phase row.
    assert got["follow_up"].tolist() == ["phase_1_end", "phase_2_end"]
    assert got["follow_up_day"].tolist() == [30, 58]
    assert got["improvement"].tolist() == [9, 15]
    assert got["stay_number"].tolist() == [1, 2]
    with pytest.raises(UsageError, match="needs the phases table"):
        measure_change(scores, follow_up="phase_end")


def test_cohort_input_uses_its_tables(small_cohort_dir):
    from stepanalytics import load_cohort

    cohort = load_cohort(small_cohort_dir)
    result = measure_change(cohort, follow_up="phase_end", instruments=["phq9", "odi"])
    assert set(result.patients["instrument"]) <= {"phq9", "odi"}
    assert set(result.patients["status"]) <= {"complete", "no_baseline", "no_follow_up"}
    assert not result.table.empty
    assert "patient_id" not in result.to_frame().columns  # the summary carries no ids


# --- against R ----------------------------------------------------------------------------


def test_cohort_summary_matches_r():
    """R: ``t.test(change)``, ``sd(baseline)``; see reference/odi_change.R."""
    pairs = pd.read_csv(REFERENCE / "odi_pairs.csv")
    rows = [(p.patient_id, p.baseline_day, "odi", p.baseline_score) for p in pairs.itertuples()]
    rows += [(p.patient_id, p.follow_up_day, "odi", p.follow_up_score) for p in pairs.itertuples()]
    result = measure_change(_scores(rows))
    r_summary = pd.read_csv(REFERENCE / "odi_change_r_summary.csv").iloc[0]
    r_patients = pd.read_csv(REFERENCE / "odi_change_r_patients.csv")
    row = result.table.iloc[0]
    for column in ("n", "mean_change", "std_error", "ci_lower", "ci_upper"):
        assert row[column] == pytest.approx(r_summary[column], rel=1e-10), column
    thresholds = result.thresholds.iloc[0]
    assert thresholds["sd_baseline"] == pytest.approx(r_summary["sd_baseline"], rel=1e-12)
    assert thresholds["s_diff"] == pytest.approx(r_summary["s_diff"], rel=1e-12)
    got = result.patients.merge(r_patients, on="patient_id", suffixes=("", "_r"))
    assert len(got) == 13
    np.testing.assert_allclose(got["rci"], got["rci_r"], rtol=1e-12)
    assert got["category"].tolist() == got["category_r"].tolist()
    assert got["responder"].astype(bool).tolist() == got["responder_r"].tolist()
    assert row["pct_deteriorated"] == pytest.approx(100 / 13)


def test_registry_sd_and_missing_sd_warn():
    scores = _scores([("a", 0, "six_mwt", 300), ("a", 60, "six_mwt", 420)])
    result = measure_change(scores, baseline_sd="registry")
    # S_diff = sqrt(2) * 93.6 * sqrt(0.11) = 43.902; +120 m -> RCI 2.7333, improved
    assert result.patients.loc[0, "rci"] == pytest.approx(120 / (np.sqrt(2) * 93.6 * np.sqrt(0.11)))
    assert result.patients.loc[0, "category"] == "improved"
    assert result.patients.loc[0, "responder"]  # 120 m >= 86 m
    assert np.isnan(result.table.loc[0, "pct_recovered"])  # no cut-off for the walk test
    single = measure_change(scores)  # one baseline: no SD from the data
    assert single.warnings and "no usable baseline SD" in single.warnings[0]
    assert pd.isna(single.patients.loc[0, "category"])


def test_bad_options_raise_usage_errors():
    scores = _scores([("a", 0, "odi", 30)])
    with pytest.raises(UsageError, match="follow_up must be"):
        measure_change(scores, follow_up="end")
    with pytest.raises(UsageError, match="baseline_sd must be"):
        measure_change(scores, baseline_sd="normative")
    with pytest.raises(UsageError, match="lack the column"):
        measure_change(scores.drop(columns="score"))
    with pytest.raises(KeyError):
        measure_change(scores, instruments=["odj"])
