"""The programme as a multi-state process: counting-process rows per patient.

States: ``phase 1`` .. ``phase K``, ``paused`` (safety pause, when pauses
are a state), and the absorbing ``completed`` and ``dropped_out``.  The
clock is time since enrolment (days).  Each row is an interval
``(tstart, tstop]`` that a patient spent in ``from_state``, ending with a
move to ``to_state`` or censored (``to_state`` empty) at the last contact.

Choices, documented because they shape the answers:

* Step-downs are ordinary transitions to the lower phase; a re-entered
  phase is the same state (Markov: the future depends on the current state
  and time since enrolment, not on the path).
* Pauses: ``pauses="state"`` (default) makes the time between a stay ending
  ``paused`` and the next stay a stay in the state ``paused``; a patient
  whose pause has not ended by the last contact is censored in it.
  ``pauses="merge"`` keeps the patient in the phase through the pause.
* A stay's phase starts when the previous one ends (a gap after a
  progression or step-down counts in the new phase).
* The first interval starts at day -0.5 so that events on day 0 are
  counted; a stay that lasts 0 days later on is passed through at once: the
  patient moves straight to the state after it (noted in the result).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError
from stepanalytics.progression.stays import build_stays

PAUSED, COMPLETED, DROPPED_OUT = "paused", "completed", "dropped_out"
#: Start of every patient's first interval (just before day 0).
ENTRY_START = -0.5

MSM_COLUMNS = ("patient_id", "clinic_id", "protocol", "tstart", "tstop", "from_state",
               "to_state")  # fmt: skip


def phase_state(phase: int) -> str:
    """Name of the state for a phase number."""
    return f"phase {phase}"


def state_order(n_phases: int, *, with_pause: bool) -> list[str]:
    """States in display order: phases, paused, completed, dropped_out."""
    return [
        *(phase_state(p) for p in range(1, n_phases + 1)),
        *([PAUSED] if with_pause else []),
        COMPLETED,
        DROPPED_OUT,
    ]


def multistate_data(
    cohort: Any, *, pauses: Literal["state", "merge"] = "state"
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Counting-process rows of the whole programme, and notes on what was adjusted.

    Parameters
    ----------
    cohort : Cohort
        A validated cohort.
    pauses : {"state", "merge"}
        Pauses as a state of their own, or time spent in the phase.

    Returns
    -------
    rows : DataFrame
        Columns patient_id, clinic_id, protocol, tstart, tstop, from_state,
        to_state (None when the row is censored), then the other patient
        columns.  R: ``survfit(Surv(tstart, tstop, to) ~ 1, id = patient_id,
        istate = from_state)`` with ``to`` a factor whose first level means
        censored.
    notes : tuple of str
        What was adjusted (stays of 0 days passed through, step-downs with
        no later stay).

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> rows, notes = multistate_data(synthesize_cohort(n_patients=40, n_clinics=2, seed=3))
    >>> bool(rows.groupby("patient_id")["tstart"].min().eq(-0.5).all())
    True
    """
    if pauses not in ("state", "merge"):
        raise UsageError(f"pauses must be 'state' or 'merge', not {pauses!r}")
    stays = build_stays(cohort, pauses="split" if pauses == "state" else "merge")
    notes: list[str] = []
    pid = stays["patient_id"].to_numpy(dtype=object)
    phase = stays["phase"].to_numpy(dtype=np.int64)
    outcome = stays["outcome"].to_numpy(dtype=object)
    exit_day = stays["exit_day"].to_numpy(dtype=float)
    last_contact = stays["last_contact_day"].to_numpy(dtype=float)
    next_phase = stays["next_phase"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    next_start = np.r_[stays["start_day"].to_numpy(dtype=float)[1:], np.nan]
    has_next = np.r_[pid[1:] == pid[:-1], False]

    target = np.full(len(stays), None, dtype=object)
    for kind, state in ((COMPLETED, COMPLETED), (DROPPED_OUT, DROPPED_OUT), ("paused", PAUSED)):
        target[outcome == kind] = state
    progressed = outcome == "progressed"
    target[progressed] = [phase_state(p + 1) for p in phase[progressed]]
    down = outcome == "stepped_down"
    known = down & ~np.isnan(next_phase)
    target[known] = [phase_state(int(p)) for p in next_phase[known]]
    lost = down & np.isnan(next_phase)
    if lost.any():
        notes.append(
            f"{int(lost.sum())} step-downs have no later stay: the patients are censored "
            "on the day of the step-down"
        )
    rows = pd.DataFrame(
        {
            "patient_id": pid,
            "tstop": exit_day,
            "from_state": [phase_state(p) for p in phase],
            "to_state": target,
        }
    )
    # Extra rows after a move whose next state has no stay of its own: the
    # pause until the next stay (or last contact), the next phase after a
    # progression that is the patient's last stay.
    extra_pause = (outcome == "paused") & (has_next | (last_contact > exit_day))
    pause_rows = pd.DataFrame(
        {
            "patient_id": pid[extra_pause],
            "tstop": np.where(has_next, next_start, last_contact)[extra_pause],
            "from_state": PAUSED,
            "to_state": [
                phase_state(int(p)) if has and not np.isnan(p) else None
                for has, p in zip(has_next[extra_pause], next_phase[extra_pause], strict=True)
            ],
        }
    )  # fmt: skip
    dangling = progressed & ~has_next & (last_contact > exit_day)
    next_rows = pd.DataFrame(
        {
            "patient_id": pid[dangling],
            "tstop": last_contact[dangling],
            "from_state": [phase_state(p + 1) for p in phase[dangling]],
            "to_state": None,
        }
    )
    order = np.arange(len(stays), dtype=float)
    rows["_order"] = order
    pause_rows["_order"] = order[extra_pause] + 0.5
    next_rows["_order"] = order[dangling] + 0.5
    rows = pd.concat([rows, pause_rows, next_rows], ignore_index=True)
    rows = rows.sort_values("_order", kind="stable").drop(columns="_order")
    rows = rows.reset_index(drop=True)
    rows["to_state"] = rows["to_state"].astype(object).where(rows["to_state"].notna(), None)
    rows = _chain(rows, notes)
    patients = cohort.patients
    extra = [c for c in patients.columns if c not in ("patient_id", "last_contact_day")]
    out = rows.merge(patients[["patient_id", *extra]], on="patient_id", how="left")
    if "protocol" not in out.columns:
        out["protocol"] = "default"
    ordered = [*MSM_COLUMNS, *[c for c in extra if c not in MSM_COLUMNS]]
    return out[ordered].reset_index(drop=True), tuple(notes)


def _chain(rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Make each patient's rows contiguous and remove intervals of length 0."""
    first = np.r_[True, rows["patient_id"].to_numpy()[1:] != rows["patient_id"].to_numpy()[:-1]]
    stop = rows["tstop"].to_numpy(dtype=float)
    start = np.r_[np.nan, stop[:-1]]
    start[first] = ENTRY_START
    rows = rows.assign(tstart=start)
    empty = np.flatnonzero(rows["tstop"].to_numpy() <= rows["tstart"].to_numpy())
    if empty.size == 0:
        return rows
    to_state = rows["to_state"].to_numpy(dtype=object).copy()
    passed = 0
    drop = np.zeros(len(rows), dtype=bool)
    # From the last one back, so that a run of 0-day stays collapses fully.
    for index in empty[::-1]:
        if to_state[index] is not None:
            to_state[index - 1] = to_state[index]
            passed += 1
        drop[index] = True
    if passed:
        notes.append(
            f"{passed} stays lasted 0 days: the patients passed through them at once "
            "(counted as one move from the state before to the state after)"
        )
    rows = rows.assign(to_state=to_state)[~drop].reset_index(drop=True)
    return _join_self_moves(rows)


def _join_self_moves(rows: pd.DataFrame) -> pd.DataFrame:
    """Join a row that 'moves' to its own state (after a 0-day pause) with the next row."""
    same = np.flatnonzero(rows["to_state"].to_numpy(dtype=object) == rows["from_state"].to_numpy())
    if same.size == 0:
        return rows
    stop = rows["tstop"].to_numpy(dtype=float).copy()
    to_state = rows["to_state"].to_numpy(dtype=object).copy()
    patient = rows["patient_id"].to_numpy(dtype=object)
    drop = np.zeros(len(rows), dtype=bool)
    for index in same[::-1]:
        # The next row belongs to the same patient: a move always has a row after it
        # unless the patient is censored on entry, in which case the move just ends.
        follows = index + 1 < len(rows) and patient[index + 1] == patient[index]
        if follows:
            stop[index] = stop[index + 1]
            to_state[index] = to_state[index + 1]
            drop[index + 1] = True
        else:
            to_state[index] = None
    return rows.assign(tstop=stop, to_state=to_state)[~drop].reset_index(drop=True)
