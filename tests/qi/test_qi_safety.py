"""Safety rates per 100 patient-weeks on the hand-worked cohort.

Days in care: A phase 1 = 35 + 20 + 50 = 105 (15 weeks); B phase 1 =
90 + 30 + 50 = 170 days.  Flare-ups: P3 day 20 (A, phase 1), P5 day 25
(B, phase 1); P5's pause on day 30 ends its first phase-1 stay.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import UsageError
from stepanalytics.qi.safety import calendar_month, safety_rates, safety_series


def test_rates_exposure_and_limits_by_hand(handmade_cohort):
    res = safety_rates(handmade_cohort, events=["flare_up", "paused", "safety_pause"])
    t = res.table.set_index(["clinic_id", "phase", "event"])
    a = t.loc[("A", 1, "flare_up")]
    assert a["patient_weeks"] == pytest.approx(15.0)
    assert (a["events"], a["rate"]) == (1, pytest.approx(100 / 15))
    b = t.loc[("B", 1, "flare_up")]
    assert b["patient_weeks"] == pytest.approx(170 / 7)
    u = 2 / (15 + 170 / 7)
    assert a["centre"] == pytest.approx(100 * u)
    assert a["ucl"] == pytest.approx(100 * (u + 3 * np.sqrt(u / 15)))
    assert a["lcl"] == 0.0
    assert t.loc[("B", 1, "paused"), "events"] == 1
    assert t.loc[("B", 1, "safety_pause"), "events"] == 1
    assert t.loc[("A", 2, "flare_up"), "patient_weeks"] == pytest.approx(175 / 7)
    assert (res.table["signal"] == "").all()


def test_committee_table_hides_small_event_counts(handmade_cohort):
    res = safety_rates(handmade_cohort, by=("clinic_id",), events=["flare_up"])
    committee = res.committee_table()
    assert committee.hidden["events"].all() and committee.hidden["rate"].all()


def test_calendar_month_and_series(synthetic_cohort):
    # Enrolment is placed mid-month: day 20 falls in the next month.
    months = calendar_month(pd.Series(["2025-12", "2025-12"]), [0, 20])
    assert months.tolist() == ["2025-12", "2026-01"]
    series = safety_series(synthetic_cohort, event="flare_up")
    assert series["month"].is_monotonic_increasing
    assert (series["patient_weeks"] > 0).all()
    clinic = synthetic_cohort.clinics[0]
    one = safety_series(synthetic_cohort, event="flare_up", clinic_id=clinic)
    assert one["events"].sum() <= series["events"].sum()
    with pytest.raises(UsageError):
        safety_series(synthetic_cohort, event="fall")
    with pytest.raises(UsageError):
        safety_rates(synthetic_cohort, by=("month",))


def test_phq9_item9_red_flags_are_counted(synthetic_cohort):
    res = safety_rates(synthetic_cohort, by=("clinic_id",), events=["phq9_item9"])
    flags = synthetic_cohort.red_flags
    in_care = res.table["events"].sum()
    assert 0 < in_care <= int((flags["item"] == 9).sum())


def test_monthly_patients_in_care_by_hand(handmade_cohort):
    """Months are 30.44 days from mid-month enrolment: day 0-15 the first, 16-45 the next, ...

    P1 (Jan, to day 120) Jan-May; P2 (Jan, to 100) Jan-Apr; P3 (Feb, to 60) Feb-Apr;
    P4 (Feb, to 90) Feb-May; P5 (Mar, to 100) Mar-Jun.
    """
    series = safety_series(handmade_cohort, event="flare_up").set_index("month")
    expected = {"2025-01": 2, "2025-02": 4, "2025-03": 5, "2025-04": 5, "2025-05": 3, "2025-06": 1}
    assert series["patients"].to_dict() == expected
