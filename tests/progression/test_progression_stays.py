"""The stays table and the multi-state rows, on hand-made cohorts and random paths."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from stepanalytics.cohort import Cohort
from stepanalytics.errors import UsageError
from stepanalytics.progression import build_stays, multistate_data


def _cohort(stays: list[tuple[str, int, int, int | None, str]], last: dict[str, int]) -> Cohort:
    patients = pd.DataFrame({
        "patient_id": list(last), "clinic_id": "C1", "enrolled_month": "2025-01",
        "last_contact_day": list(last.values()),
    })  # fmt: skip
    phases = pd.DataFrame(stays, columns=["patient_id", "phase", "start_day", "end_day",
                                          "exit_reason"])  # fmt: skip
    phases["end_day"] = phases["end_day"].astype("Int64")
    first = pd.DataFrame({"patient_id": list(last), "day": 0, "instrument": "odi", "score": 40.0})
    return Cohort.from_tables({"patients": patients, "phases": phases, "assessments": first})


@pytest.fixture(scope="module")
def paths() -> Cohort:
    """a: pause in phase 1 and back; progressed; stepped down; re-entry; ongoing.
    b: pause with no return; c: pause, resumes one phase lower; d: a 0-day stay."""
    return _cohort(
        [
            ("a", 1, 0, 10, "paused"), ("a", 1, 20, 40, "progressed"),
            ("a", 2, 40, 70, "stepped_down"), ("a", 1, 70, 90, "progressed"),
            ("a", 2, 90, None, "ongoing"),
            ("b", 1, 0, 30, "progressed"), ("b", 2, 30, 45, "paused"),
            ("c", 1, 0, 30, "progressed"), ("c", 2, 30, 50, "paused"), ("c", 1, 60, 80, "dropped_out"),
            ("d", 1, 0, 30, "progressed"), ("d", 2, 30, 30, "dropped_out"),
        ],
        {"a": 120, "b": 60, "c": 80, "d": 30},
    )  # fmt: skip


def _rows(frame: pd.DataFrame, pid: str, columns: list[str]) -> list[tuple[Any, ...]]:
    part = frame.loc[frame["patient_id"] == pid, columns].astype(object)
    return [tuple(None if pd.isna(v) else v for v in row) for row in part.itertuples(index=False)]


def test_merged_pauses(paths: Cohort) -> None:
    stays = build_stays(paths)
    cols = ["phase", "entry", "entered_from", "start_day", "exit_day", "duration_days",
            "outcome", "censored", "n_pauses", "days_paused"]  # fmt: skip
    assert _rows(stays, "a", cols) == [
        (1, "first", "enrolment", 0, 40, 40, "progressed", False, 1, 10),
        (2, "first", "progression", 40, 70, 30, "stepped_down", False, 0, 0),
        (1, "re-entry", "step_down", 70, 90, 20, "progressed", False, 0, 0),
        (2, "re-entry", "progression", 90, 120, 30, "censored", True, 0, 0),
    ]
    # A pause without return: still in the phase, censored at the last contact.
    assert _rows(stays, "b", cols)[-1] == (2, "first", "progression", 30, 60, 30, "censored",
                                           True, 0, 0)  # fmt: skip
    # A pause that resumes lower: a step-down on the day of resumption.
    assert _rows(stays, "c", cols)[1] == (2, "first", "progression", 30, 60, 30, "stepped_down",
                                          False, 1, 10)  # fmt: skip


def test_split_pauses(paths: Cohort) -> None:
    stays = build_stays(paths, pauses="split")
    assert len(stays) == len(paths.phases)
    cols = ["phase", "entry", "entered_from", "duration_days", "outcome", "censored"]
    assert _rows(stays, "a", cols)[:2] == [
        (1, "first", "enrolment", 10, "paused", False),
        (1, "re-entry", "pause", 20, "progressed", False),
    ]
    assert _rows(stays, "b", cols)[-1] == (2, "first", "progression", 15, "paused", False)


def test_multistate_rows(paths: Cohort) -> None:
    rows, notes = multistate_data(paths)
    cols = ["tstart", "tstop", "from_state", "to_state"]
    assert _rows(rows, "a", cols) == [
        (-0.5, 10.0, "phase 1", "paused"), (10.0, 20.0, "paused", "phase 1"),
        (20.0, 40.0, "phase 1", "phase 2"), (40.0, 70.0, "phase 2", "phase 1"),
        (70.0, 90.0, "phase 1", "phase 2"), (90.0, 120.0, "phase 2", None),
    ]  # fmt: skip
    assert _rows(rows, "b", cols)[-1] == (45.0, 60.0, "paused", None)
    assert _rows(rows, "c", cols)[-2:] == [(50.0, 60.0, "paused", "phase 1"),
                                          (60.0, 80.0, "phase 1", "dropped_out")]  # fmt: skip
    # The 0-day stay in phase 2 is passed through: phase 1 -> dropped_out on day 30.
    assert _rows(rows, "d", cols) == [(-0.5, 30.0, "phase 1", "dropped_out")]
    assert any("1 stays lasted 0 days" in n for n in notes)
    merged, _ = multistate_data(paths, pauses="merge")
    assert _rows(merged, "a", cols)[0] == (-0.5, 40.0, "phase 1", "phase 2")
    assert "paused" not in set(merged["from_state"])


def test_not_a_cohort_is_refused() -> None:
    with pytest.raises(UsageError, match="needs a Cohort"):
        build_stays(pd.DataFrame())
    with pytest.raises(UsageError, match="pauses"):
        build_stays(object(), pauses="ignore")  # type: ignore[arg-type]


@st.composite
def patient_paths(draw: st.DrawFn) -> tuple[list[tuple[str, int, int, int | None, str]], dict]:
    """Valid stays of a few patients: moves up, down, pauses, and a final exit."""
    stays: list[tuple[str, int, int, int | None, str]] = []
    last: dict[str, int] = {}
    for number in range(draw(st.integers(1, 4))):
        pid = f"p{number}"
        phase, day = 1, 0
        for _ in range(draw(st.integers(1, 6))):
            length = draw(st.integers(0, 60))
            moves = ["progressed", "paused", "dropped_out", "ongoing"]
            if phase > 1:
                moves.append("stepped_down")
            if phase == 4:
                moves = [m if m != "progressed" else "completed" for m in moves]
            move = draw(st.sampled_from(moves))
            if move == "ongoing":
                stays.append((pid, phase, day, None, move))
                day += length
                break
            stays.append((pid, phase, day, day + length, move))
            day += length
            if move in ("dropped_out", "completed"):
                break
            if move == "progressed":
                phase += 1
            elif move == "stepped_down":
                phase = draw(st.integers(1, phase - 1))
            else:
                day += draw(st.integers(0, 20))  # the pause
                phase = draw(st.integers(1, phase))
        else:
            # The path ended in a move: a final ongoing stay where the patient went.
            if stays[-1][4] not in ("dropped_out", "completed"):
                stays.append((pid, phase, day, None, "ongoing"))
        last[pid] = day + draw(st.integers(0, 30))
    return stays, last


@settings(max_examples=40, deadline=None)
@given(patient_paths())
def test_invariants_on_random_paths(path: tuple[list, dict]) -> None:
    cohort = _cohort(*path)
    merged = build_stays(cohort)
    split = build_stays(cohort, pauses="split")
    assert len(split) == len(cohort.phases)
    # Every stay belongs to exactly one merged episode; a pause after which the patient
    # resumes lower ends its episode but is counted in n_pauses.
    resumed_lower = merged["exit_reason"].eq("paused") & merged["outcome"].eq("stepped_down")
    assert (merged["n_pauses"] + 1).sum() - resumed_lower.sum() == len(cohort.phases)
    assert (merged["duration_days"] >= 0).all() and (split["duration_days"] >= 0).all()
    assert (merged["exit_day"] <= merged["last_contact_day"]).all()
    for frame in (merged, split):
        # Only a patient's last episode can be censored; censored ones end at last contact.
        last_episode = ~frame["patient_id"].duplicated(keep="last")
        assert not (frame["censored"] & ~last_episode).any()
        censored = frame[frame["censored"]]
        assert (censored["exit_day"] == censored["last_contact_day"]).all()
        firsts = frame[frame["entry"] == "first"]
        assert not firsts.duplicated(["patient_id", "phase"]).any()
    rows, _ = multistate_data(cohort)
    assert (rows["tstop"] > rows["tstart"]).all()
    for _, part in rows.groupby("patient_id"):
        start = part["tstart"].to_numpy()
        stop = part["tstop"].to_numpy()
        assert start[0] == -0.5
        np.testing.assert_array_equal(start[1:], stop[:-1])  # contiguous
        assert all(part["to_state"].iloc[:-1].notna())  # only the last row can be censored
