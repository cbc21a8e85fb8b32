"""Outcome indicators on the hand-worked cohort (ODI: MCID 10 points, cut-off 21)."""

from __future__ import annotations

import pytest
from scipy import stats

from stepanalytics.errors import UsageError
from stepanalytics.qi.indicators import add_period, outcome_indicators


def test_change_and_shares_by_clinic(handmade_cohort):
    """A: changes -20 (P1) and -15 (P2); B: -2 (P4)."""
    res = outcome_indicators(handmade_cohort, instruments=["odi"])
    t = res.table.set_index("clinic_id")
    a = t.loc["A"]
    assert (a["n"], a["mean_change"]) == (2, -17.5)
    half = stats.t.ppf(0.975, 1) * 2.5  # sd 3.5355 / sqrt(2)
    assert (a["ci_lower"], a["ci_upper"]) == pytest.approx((-17.5 - half, -17.5 + half))
    assert (a["responders"], a["pct_responders"]) == (2, 100.0)
    # All baselines (50, 60, 40) are clinical (>= 21); no follow-up falls below 21.
    assert (a["n_clinical"], a["crossed"]) == (2, 0)
    assert a["deteriorated"] == 0 and a["n_rci"] == 2
    b = t.loc["B"]
    assert (b["n"], b["mean_change"], b["responders"]) == (1, -2.0, 0)


def test_period_and_phase_grouping(handmade_cohort, synthetic_cohort):
    by_quarter = outcome_indicators(handmade_cohort, instruments=["odi"], by=(), period="quarter")
    assert by_quarter.table["period"].tolist() == ["2025Q1"]
    by_phase = outcome_indicators(synthetic_cohort, instruments=["odi"], follow_up="phase_end")
    assert "phase" in by_phase.table.columns
    assert add_period(by_quarter.table.assign(enrolled_month=["2025-07"]), period="month")[0] == (
        "2025-07"
    )
    with pytest.raises(UsageError, match="patients table"):
        outcome_indicators(handmade_cohort, by=("hospital",))
    with pytest.raises(UsageError, match="period"):
        add_period(by_quarter.table.assign(enrolled_month=["2025-07"]), period="week")
