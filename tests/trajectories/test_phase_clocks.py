"""Time in each phase (the piecewise model's clocks) and the typical phase path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepanalytics.trajectories import PhasePath, add_phase_clocks, typical_path
from stepanalytics.trajectories.phase_time import OUTSIDE_COLUMN


def stays(rows: list[tuple[str, int, int, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["patient_id", "phase", "start_day", "end_day"])


def test_hand_worked_course_with_step_down_pause_and_follow_up() -> None:
    """Phase 1 days 0-14, phase 2 14-35, step down to 1 on 35-49, paused 49-63,
    back in 1 from 63 to 70 (discharged), follow-up on day 84."""
    course = stays([("a", 1, 0, 14), ("a", 2, 14, 35), ("a", 1, 35, 49), ("a", 1, 63, 70)])
    measured = pd.DataFrame({"patient_id": ["a"] * 5, "day": [0, 21, 42, 56, 84]})
    out = add_phase_clocks(measured, course) * 1  # copy
    days = out[["weeks_phase1", "weeks_phase2", OUTSIDE_COLUMN]].to_numpy() * 7
    np.testing.assert_allclose(
        days,
        [
            [0, 0, 0],
            [14, 7, 0],
            [21, 21, 0],  # 14 + 7 back in phase 1
            [28, 21, 7],  # pause counts outside the phases
            [35, 21, 28],  # 14 paused + 14 after discharge
        ],
    )


def test_ongoing_stays_run_to_the_measurement() -> None:
    course = stays([("b", 1, 0, 28), ("b", 2, 28, None)])
    out = add_phase_clocks(pd.DataFrame({"patient_id": ["b"], "day": [70]}), course)
    assert out[["weeks_phase1", "weeks_phase2", OUTSIDE_COLUMN]].iloc[0].tolist() == [4, 6, 0]


@settings(max_examples=60, deadline=None)
@given(
    durations=st.lists(st.integers(1, 60), min_size=1, max_size=6),
    phases=st.lists(st.integers(1, 4), min_size=6, max_size=6),
    gaps=st.lists(st.integers(0, 20), min_size=6, max_size=6),
    day=st.integers(0, 500),
)
def test_clocks_add_up_to_the_time_since_enrolment(
    durations: list[int], phases: list[int], gaps: list[int], day: int
) -> None:
    rows, start = [], 0
    for i, length in enumerate(durations):
        rows.append(("p", phases[i], start, start + length))
        start += length + (gaps[i] if i else 0)
    out = add_phase_clocks(
        pd.DataFrame({"patient_id": ["p"], "day": [day]}), stays(rows), phase_numbers=[1, 2, 3, 4]
    )
    clocks = out[[f"weeks_phase{k}" for k in (1, 2, 3, 4)] + [OUTSIDE_COLUMN]]
    assert clocks.to_numpy().min() >= 0
    assert clocks.to_numpy().sum() * 7 == pytest.approx(day)


def test_typical_path_uses_median_first_entry() -> None:
    course = stays(
        [
            ("a", 1, 0, 14),
            ("a", 2, 14, 40),
            ("a", 3, 40, None),
            ("b", 1, 0, 28),
            ("b", 2, 28, 56),
            ("b", 1, 56, None),
            ("c", 1, 0, 42),
            ("c", 2, 42, None),
        ]
    )
    path = typical_path(course, names={1: "foundation", 2: "building", 3: "independence"})
    assert path.start_weeks == {1: 0.0, 2: 4.0, 3: 40 / 7}
    assert path.label(2) == "2 building"
    clocks = path.clocks([2.0, 5.0, 10.0])
    assert clocks["phase"].tolist() == [1, 2, 3]
    assert clocks["weeks_phase2"].tolist() == pytest.approx([0.0, 1.0, 40 / 7 - 4])
    assert clocks["weeks_in_phase"].tolist() == pytest.approx([2.0, 1.0, 10 - 40 / 7])


def test_phase_path_without_names_labels_by_number() -> None:
    assert PhasePath({1: 0.0}).label(1) == "1"
