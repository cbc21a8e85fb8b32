"""Protocol adherence on the hand-worked cohort of tests/qi/conftest.py."""

from __future__ import annotations

import pandas as pd
import pytest

from stepanalytics.errors import UsageError
from stepanalytics.qi.adherence import protocol_adherence


@pytest.fixture(scope="module")
def adherence(handmade_cohort):
    return protocol_adherence(handmade_cohort)


def _stay(adherence, patient, stay_number):
    stays = adherence.stays.set_index(["patient_id", "stay_number"])
    return stays.loc[(patient, stay_number)]


def test_stay_by_stay_verdicts_match_the_hand_worked_cases(adherence):
    p1 = _stay(adherence, "P1", 1)
    assert (p1["criteria_met_day"], p1["premature"], p1["delayed"]) == (28, False, False)
    assert p1["days_waiting"] == 7
    p2 = _stay(adherence, "P2", 1)
    assert bool(p2["premature"]) and pd.isna(p2["criteria_met_day"])
    p2b = _stay(adherence, "P2", 2)
    assert (p2b["criteria_met_day"], p2b["delayed"], p2b["days_waiting"]) == (70, True, 30)
    assert bool(p2b["stalled"]) and pd.isna(p2b["premature"])
    p3 = _stay(adherence, "P3", 1)
    # The flare-up on day 20 blocks days 20..34; the rule is met on day 35.
    assert (p3["criteria_met_day"], p3["premature"], p3["delayed"]) == (35, False, True)
    p4 = _stay(adherence, "P4", 1)
    assert pd.isna(p4["criteria_met_day"]) and bool(p4["stalled"])
    p5 = _stay(adherence, "P5", 2)
    assert bool(p5["premature"])
    # Phase 4 has no progression rule, nor does a paused stay that did not move up.
    assert pd.isna(_stay(adherence, "P5", 1)["premature"])


def test_rates_by_clinic_and_phase(adherence):
    t = adherence.table.set_index(["clinic_id", "phase"])
    a1 = t.loc[("A", 1)]
    assert (a1["stays"], a1["progressions"], a1["premature"]) == (3, 3, 1)
    assert (a1["met_criteria"], a1["delayed"]) == (2, 1)
    assert a1["pct_premature"] == pytest.approx(100 / 3)
    b1 = t.loc[("B", 1)]
    assert (b1["progressions"], b1["premature"], b1["stall_checked"], b1["stalled"]) == (1, 1, 1, 1)
    assert (b1["premature_lower"], b1["premature_upper"]) == pytest.approx((20.654931, 100.0))


def test_worklist_is_per_clinic_and_lists_ongoing_problems(adherence):
    work = adherence.worklist("B")
    assert work["patient_id"].tolist() == ["P4"]
    assert work["issue"].tolist() == ["stalled"]
    assert adherence.worklist("A").empty  # A's flagged stays have all ended
    with pytest.raises(UsageError, match="No stays"):
        adherence.worklist("Z")


def test_committee_table_has_counts_only_and_hides_small_cells(adherence):
    committee = adherence.committee_table()
    assert "patient_id" not in committee.table.columns
    shown = committee.to_display()
    # Every non-zero count here is between 1 and 10; zeros are published.
    assert (shown["stays"] == "*").all()
    premature = adherence.table["premature"]
    assert (shown["premature"][premature > 0] == "*").all()
    assert (shown["premature"][premature == 0] == 0).all()
    assert committee.notes


def test_runs_on_a_synthetic_cohort(synthetic_cohort):
    res = protocol_adherence(synthetic_cohort, delay_days=7, stall_weeks=6)
    assert set(res.table["clinic_id"]) == set(synthetic_cohort.clinics)
    assert (res.table["premature"] <= res.table["progressions"]).all()
    assert (res.table["delayed"] <= res.table["met_criteria"]).all()
    assert res.stays["criteria_met_day"].dropna().ge(0).all()
