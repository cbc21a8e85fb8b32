"""The analysis table of phase stays: one row per episode in a phase.

Every time-to-event analysis of the programme starts here.  An *episode* is
a continuous spell in one phase: a stay, or (by default) several stays in
the same phase joined by safety pauses.  Each episode says how long it
lasted, how it ended (``outcome``) and whether it was censored at the
patient's last contact because it had not ended by the extract.

First episodes in a phase and re-entries (a patient coming back to a phase
after a step-down) are labelled and kept apart by the analyses unless asked
otherwise: a re-entry is a different clinical situation, and a patient's
episodes are not independent.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError

PauseHandling = Literal["merge", "split"]

#: Outcomes of an episode; ``censored`` replaces ``ongoing`` (and an
#: unresolved pause when pauses are merged).
OUTCOMES = ("progressed", "completed", "stepped_down", "dropped_out", "paused", "censored")

STAY_COLUMNS = (
    "patient_id", "clinic_id", "protocol", "phase", "episode", "entry", "entered_from",
    "previous_phase", "start_day", "end_day", "exit_day", "duration_days", "outcome",
    "censored", "next_phase", "n_pauses", "days_paused", "exit_reason", "last_contact_day",
)  # fmt: skip

_ENTERED_FROM = {
    "progressed": "progression",
    "stepped_down": "step_down",
    "paused": "pause",
}


def build_stays(cohort: Any, *, pauses: PauseHandling = "merge") -> pd.DataFrame:
    """Turn a cohort's phase stays into episodes ready for survival analysis.

    Parameters
    ----------
    cohort : Cohort
        A validated cohort (``cohort.phases`` and ``cohort.patients`` are used).
    pauses : {"merge", "split"}, keyword-only
        ``"merge"`` (default): a safety pause followed by a stay in the same
        phase does not end the episode; the clock keeps running through the
        pause (``days_paused`` says how long it was).  A pause after which
        the patient resumes in a lower phase ends the episode as
        ``stepped_down`` on the day of resumption, and a pause with no
        resumption before the extract is censored at the last contact.
        ``"split"``: every stay is its own episode and ``paused`` is an
        outcome like any other.

    Returns
    -------
    DataFrame
        One row per episode, sorted by patient and start day, with columns
        patient_id, clinic_id, protocol, phase, episode (1, 2, ... per patient),
        entry (``first`` or ``re-entry`` in that phase), entered_from
        (``enrolment``, ``progression``, ``step_down``, ``pause``),
        previous_phase, start_day, end_day (<NA> when censored), exit_day
        (end, or last contact when censored), duration_days, outcome (one of
        :data:`OUTCOMES`), censored, next_phase, n_pauses, days_paused,
        exit_reason (of the episode's last stay), last_contact_day, and every
        other patient column (case mix) after them.

    Notes
    -----
    Censoring follows the data contract: an ongoing stay is followed up to
    ``last_contact_day``.  Time is in whole days since the episode began, as
    in R ``Surv(duration_days, outcome == "progressed")``.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> stays = build_stays(synthesize_cohort(n_patients=60, n_clinics=3, seed=1))
    >>> sorted(stays["entry"].unique())
    ['first', 're-entry']
    >>> bool((stays["duration_days"] >= 0).all())
    True
    """
    if pauses not in ("merge", "split"):
        raise UsageError(f"pauses must be 'merge' or 'split', not {pauses!r}")
    phases = _required(cohort, "phases", ("patient_id", "phase", "start_day", "end_day",
                                          "exit_reason"))  # fmt: skip
    patients = _required(cohort, "patients", ("patient_id", "clinic_id", "last_contact_day"))
    stays = phases.sort_values(["patient_id", "start_day"], kind="stable").reset_index(drop=True)
    stays = stays.merge(patients[["patient_id", "last_contact_day"]], on="patient_id", how="left")
    episodes = _episodes(stays, merge_pauses=pauses == "merge")
    extra = [c for c in patients.columns if c not in ("patient_id", "last_contact_day")]
    out = episodes.merge(patients[["patient_id", *extra]], on="patient_id", how="left")
    if "protocol" not in out.columns:
        out["protocol"] = "default"
    ordered = [*STAY_COLUMNS, *[c for c in extra if c not in STAY_COLUMNS]]
    return out[ordered].reset_index(drop=True)


def _required(cohort: Any, table: str, columns: tuple[str, ...]) -> pd.DataFrame:
    frame = getattr(cohort, table, None)
    if not isinstance(frame, pd.DataFrame):
        raise UsageError(
            f"build_stays needs a Cohort (with a '{table}' table); got {type(cohort).__name__}. "
            "Load one with stepanalytics.load_cohort(path)."
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UsageError(
            f"the {table} table lacks column(s) {', '.join(missing)}; "
            "load the data with stepanalytics.load_cohort so that it is validated"
        )
    return frame


def _episodes(stays: pd.DataFrame, *, merge_pauses: bool) -> pd.DataFrame:
    """Group stays into episodes and describe each one."""
    pid = stays["patient_id"].to_numpy()
    phase = stays["phase"].to_numpy(dtype=np.int64)
    start = stays["start_day"].to_numpy(dtype=np.int64)
    end = stays["end_day"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    reason = stays["exit_reason"].to_numpy(dtype=object)
    same_patient_before = np.r_[False, pid[1:] == pid[:-1]]
    continues = np.zeros(len(stays), dtype=bool)
    if merge_pauses:
        continues[1:] = (
            same_patient_before[1:] & (reason[:-1] == "paused") & (phase[1:] == phase[:-1])
        )
    episode_key = np.cumsum(~continues)  # one number per episode, over all patients
    first_row = np.flatnonzero(~continues)
    last_row = np.r_[first_row[1:] - 1, len(stays) - 1]
    gap = np.where(continues, start - np.r_[np.nan, end[:-1]], 0.0)
    days_paused = np.bincount(episode_key - 1, weights=gap)
    n_pauses = np.bincount(episode_key - 1, weights=continues.astype(float)).astype(np.int64)

    ep_pid = pid[first_row]
    ep_phase = phase[first_row]
    ep_reason = reason[last_row]
    ep_end = end[last_row]
    last_contact = stays["last_contact_day"].to_numpy(dtype=np.int64)[last_row]
    has_next = np.r_[ep_pid[1:] == ep_pid[:-1], False]
    next_phase = np.r_[ep_phase[1:], 0].astype(float)
    next_start = np.r_[start[first_row][1:], 0].astype(float)
    next_phase[~has_next] = np.nan

    outcome = ep_reason.copy()
    exit_day = ep_end.copy()
    censored = ep_reason == "ongoing"
    if merge_pauses:
        # A pause ends the episode only when the patient resumes elsewhere
        # (a lower phase: a step-down on the day of resumption) or not at all
        # before the extract (still in this phase, on pause: censored).
        paused = ep_reason == "paused"
        lower = paused & has_next & (next_phase < ep_phase)
        outcome[lower] = "stepped_down"
        exit_day[lower] = next_start[lower]
        censored |= paused & ~has_next
    outcome[censored] = "censored"
    exit_day[censored] = last_contact[censored]
    end_day = np.where(censored, np.nan, exit_day)
    if merge_pauses:
        # Days between the pause and the resumption in a lower phase also count as paused.
        lower_gap = (ep_reason == "paused") & (outcome == "stepped_down")
        days_paused = days_paused + np.where(lower_gap, exit_day - ep_end, 0.0)
        n_pauses = n_pauses + lower_gap.astype(np.int64)

    frame = pd.DataFrame(
        {
            "patient_id": ep_pid,
            "phase": ep_phase,
            "start_day": start[first_row],
            "end_day": pd.Series(end_day).astype("Int64").to_numpy(),
            "exit_day": exit_day.astype(np.int64),
            "outcome": outcome,
            "censored": censored,
            "next_phase": pd.Series(next_phase).astype("Int64").to_numpy(),
            "n_pauses": n_pauses,
            "days_paused": days_paused.astype(np.int64),
            "exit_reason": ep_reason,
            "last_contact_day": last_contact,
        }
    )
    frame["duration_days"] = frame["exit_day"] - frame["start_day"]
    frame["episode"] = frame.groupby("patient_id").cumcount().astype(np.int64) + 1
    seen_before = frame.duplicated(["patient_id", "phase"], keep="first").to_numpy()
    frame["entry"] = np.where(seen_before, "re-entry", "first")
    previous_outcome = frame.groupby("patient_id")["outcome"].shift(1)
    frame["entered_from"] = previous_outcome.map(_ENTERED_FROM).fillna("enrolment")
    frame["previous_phase"] = frame.groupby("patient_id")["phase"].shift(1).astype("Int64")
    return frame
