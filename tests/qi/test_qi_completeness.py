"""Completeness funnel and attrition check on the hand-worked cohort."""

from __future__ import annotations

import numpy as np
import pytest

from stepanalytics.errors import UsageError
from stepanalytics.qi.completeness import (
    attrition_check,
    completeness_funnel,
    standardised_difference,
)


def test_funnel_counts_worked_by_hand(handmade_cohort):
    """ODI: baseline P1, P2, P4; phase-1 end only P1 (day 35); P2 at dropout (day 100)."""
    res = completeness_funnel(handmade_cohort, instruments=["odi"])
    t = res.table.set_index(["clinic_id", "stage"])
    expected = {
        ("A", "enrolled"): (3, 3),
        ("A", "baseline"): (3, 2),
        ("A", "phase_1_end"): (3, 1),
        ("A", "phase_2_end"): (1, 1),
        ("A", "end_of_care"): (1, 1),
        ("A", "follow_up"): (0, 0),
        ("B", "baseline"): (2, 1),
        ("B", "phase_1_end"): (1, 0),
        ("B", "phase_2_end"): (0, 0),
    }
    for key, (eligible, measured) in expected.items():
        assert (t.loc[key, "eligible"], t.loc[key, "measured"]) == (eligible, measured), key
    assert t.loc[("A", "baseline"), "percent"] == pytest.approx(200 / 3)
    assert np.isnan(t.loc[("A", "follow_up"), "percent"])
    stages = res.table[res.table["clinic_id"] == "A"]["stage"].tolist()
    assert stages == [
        "enrolled", "baseline", "phase_1_end", "phase_2_end", "end_of_care", "follow_up"
    ]  # fmt: skip


def test_whole_cohort_and_unknown_instrument(handmade_cohort):
    whole = completeness_funnel(handmade_cohort, instruments=["odi"], by=())
    row = whole.table.set_index("stage").loc["baseline"]
    assert (row["eligible"], row["measured"]) == (5, 3)
    with pytest.raises(UsageError, match="whodas"):
        completeness_funnel(handmade_cohort, instruments=["whodas"])
    # A registry instrument nobody was measured with is a real answer: 0 of 5 at baseline.
    unscored = completeness_funnel(handmade_cohort, instruments=["gad7"], by=())
    row = unscored.table.set_index("stage").loc["baseline"]
    assert (row["eligible"], row["measured"]) == (5, 0)
    assert "gad7: no patient has a score" in unscored.warnings[0]


def test_standardised_difference_by_hand():
    # means 2 and 3, both SDs 1 -> d = -1
    assert standardised_difference([1, 2, 3], [2, 3, 4]) == pytest.approx(-1.0)
    assert np.isnan(standardised_difference([1.0], [2.0, 3.0]))


def test_attrition_flags_selective_loss(synthetic_cohort):
    res = attrition_check(synthetic_cohort, instruments=["odi", "phq9"], stage="end_of_care")
    assert set(res.table["instrument"]) == {"odi", "phq9"}
    row = res.table.set_index("instrument").loc["odi"]
    assert row["n_followed"] + row["n_lost"] > 0
    assert row["imbalanced"] == (abs(row["std_difference"]) > 0.1)
    assert len(res.warnings) == int(res.table["imbalanced"].sum())
    with pytest.raises(UsageError, match="stage"):
        attrition_check(synthetic_cohort, stage="baseline")
