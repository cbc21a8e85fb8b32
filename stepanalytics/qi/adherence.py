"""Protocol adherence: premature escalation, delayed progression, stalling.

Each phase stay is compared with the progression rule of the patient's
protocol (``protocol.yaml``): at least ``min_days_in_phase`` days in the
phase, every score criterion met on the latest score taken in the stay (e.g.
PSEQ >= 30), and no flare-up in the last ``within_days`` days.

``premature``
    the patient moved up although the rule was not met on the day of
    progression;
``delayed``
    the rule was met on some day ``d`` but the patient had not moved up by
    ``d + delay_days`` (still in the phase, or left it otherwise);
``stalled``
    over the last ``stall_weeks`` weeks of the stay the criterion
    instrument improved by less than its MCID.

Scores count for a stay when taken from its first day up to the day in
question (a score on the day of moving up counts for the decision); a
flare-up counts when it falls within ``within_days`` days before that day,
inclusive.  Clinics see their own patients (:meth:`Adherence.worklist`);
committees see counts only (:meth:`Adherence.committee_table`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError
from stepanalytics.qi.intervals import wilson_interval
from stepanalytics.qi.suppression import DEFAULT_THRESHOLD, ProtectedFrame, protect_frame
from stepanalytics.results import AnalysisResult

_RATES = (
    ("premature", "progressions"),
    ("delayed", "met_criteria"),
    ("stalled", "stall_checked"),
)


@dataclass(frozen=True)
class Adherence(AnalysisResult):
    """Adherence to the progression rules, by clinic and phase.

    ``table`` (counts only): ``clinic_id``, ``phase``, ``stays``,
    ``progressions``, ``premature``, ``met_criteria``, ``delayed``,
    ``stall_checked``, ``stalled`` and for each of premature / delayed /
    stalled the percentage with a Wilson interval (``pct_*``, ``*_lower``,
    ``*_upper``).  ``stays`` holds one row per phase stay with patient ids:
    for the clinic worklist only.
    """

    stays: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    delay_days: int = 14
    stall_weeks: int = 8

    def worklist(self, clinic_id: str) -> pd.DataFrame:
        """Ongoing stays of one clinic that are delayed or stalled (for that clinic only).

        The ``patient_id`` shown is the data contract's pseudonymous id, which
        only the clinic can link to a person.
        """
        stays = self.stays
        if clinic_id not in set(stays["clinic_id"]):
            raise UsageError(f"No stays for clinic {clinic_id!r} in this analysis.")
        mine = stays[(stays["clinic_id"] == clinic_id) & (stays["exit_reason"] == "ongoing")]
        flagged = mine[mine["delayed"].fillna(False) | mine["stalled"].fillna(False)].copy()
        flagged["issue"] = np.where(
            flagged["delayed"].fillna(False) & flagged["stalled"].fillna(False),
            "delayed and stalled",
            np.where(flagged["delayed"].fillna(False), "delayed progression", "stalled"),
        )
        columns = ["patient_id", "phase", "start_day", "criteria_met_day", "days_waiting", "issue"]
        return flagged[columns].sort_values(["phase", "patient_id"]).reset_index(drop=True)

    def committee_table(self, *, threshold: int = DEFAULT_THRESHOLD) -> ProtectedFrame:
        """Counts and rates by clinic and phase with small cells hidden.

        The table is protected against the all-clinics total of each phase
        and against each clinic's total over phases (the adherence figure
        pools a clinic's phases), so no hidden cell follows from either;
        :meth:`ProtectedFrame.totals` gives those totals as publishable
        (``by=("phase",)`` or ``by=("clinic_id",)``).  A rate and its
        interval are hidden with either of their counts.
        """
        counts = ["stays", "progressions", "premature", "met_criteria", "delayed"]
        counts += ["stall_checked", "stalled"]
        derived = {}
        for event, base in _RATES:
            for column in (f"pct_{event}", f"{event}_lower", f"{event}_upper"):
                derived[column] = [event, base]
        parts = [(event, base) for event, base in _RATES]
        return protect_frame(
            self.table,
            counts=counts,
            derived=derived,
            parts=parts,
            margins=[("phase",), ("clinic_id",)],
            threshold=threshold,
        )


def protocol_adherence(
    cohort: Any,
    *,
    delay_days: int = 14,
    stall_weeks: int = 8,
    level: float = 0.95,
) -> Adherence:
    """Check every phase stay against its protocol's progression rule.

    Parameters
    ----------
    cohort : Cohort
    delay_days : int, keyword-only
        Days after the rule is met within which moving up is timely.
    stall_weeks : int, keyword-only
        Length of the window over which improvement is judged.
    level : float
        Coverage of the Wilson intervals.

    Returns
    -------
    Adherence

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> c = synthesize_cohort(n_patients=80, n_clinics=2, seed=3)
    >>> res = protocol_adherence(c)
    >>> "patient_id" in res.committee_table().table.columns
    False
    """
    from stepanalytics.instruments import get_registry

    registry = get_registry()
    stays = cohort.phases.merge(
        cohort.patients[["patient_id", "clinic_id", "protocol", "last_contact_day"]],
        on="patient_id",
        how="left",
    )
    scores = _score_arrays(cohort.assessments)
    flares: dict[str, dict[str, np.ndarray]] = {}
    if not cohort.events.empty:
        for (pid, kind), (days,) in _grouped(cohort.events, "event", ["day"]).items():
            flares.setdefault(pid, {})[kind] = days
    records = []
    for stay in stays.itertuples(index=False):
        protocol = cohort.protocols[stay.protocol]
        rule = protocol.progression.get(int(stay.phase))
        own = scores.get(stay.patient_id, {})
        end = float(stay.last_contact_day) if pd.isna(stay.end_day) else float(stay.end_day)
        check = _StayCheck(rule, own, flares.get(stay.patient_id, {}), float(stay.start_day))
        met_day = check.first_met(end) if rule is not None else None
        progressed = stay.exit_reason == "progressed"
        premature = (not check.met_on(end)) if (rule is not None and progressed) else None
        delayed, waiting = _delay(met_day, end, progressed, stay.exit_reason, delay_days)
        stalled = _stalled(rule, own, float(stay.start_day), end, stall_weeks, registry)
        records.append(
            {
                "patient_id": stay.patient_id,
                "clinic_id": stay.clinic_id,
                "protocol": stay.protocol,
                "phase": int(stay.phase),
                "stay_number": int(stay.stay_number),
                "start_day": int(stay.start_day),
                "end_day": stay.end_day,
                "exit_reason": stay.exit_reason,
                "criteria_met_day": met_day,
                "premature": premature,
                "delayed": delayed,
                "days_waiting": waiting,
                "stalled": stalled,
            }
        )
    per_stay = pd.DataFrame(records)
    for column in ("premature", "delayed", "stalled"):
        per_stay[column] = per_stay[column].astype("boolean")
    per_stay["criteria_met_day"] = per_stay["criteria_met_day"].astype("Float64").astype("Int64")
    table = _summarise(per_stay, level)
    return Adherence(
        table=table,
        title="Protocol adherence by clinic and phase",
        stays=per_stay,
        delay_days=delay_days,
        stall_weeks=stall_weeks,
    )


Series = tuple[np.ndarray, np.ndarray]


def _grouped(
    frame: pd.DataFrame, kind: str, columns: list[str]
) -> dict[tuple[str, str], tuple[np.ndarray, ...]]:
    """Day-sorted arrays of ``columns`` per (patient_id, ``kind``) without a groupby loop."""
    ordered = frame.sort_values(["patient_id", kind, "day"], kind="stable")
    keys = ordered[["patient_id", kind]].to_numpy(dtype=object)
    values = [ordered[c].to_numpy(dtype=float) for c in columns]
    out: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}
    if len(keys) == 0:
        return out
    change = np.flatnonzero((keys[1:] != keys[:-1]).any(axis=1)) + 1
    bounds = np.concatenate(([0], change, [len(keys)]))
    for a, b in itertools.pairwise(bounds):
        pid, code = keys[a]
        out[(str(pid), str(code))] = tuple(v[a:b] for v in values)
    return out


def _score_arrays(assessments: pd.DataFrame) -> dict[str, dict[str, Series]]:
    """Scores as sorted (days, values) arrays by patient and instrument."""
    out: dict[str, dict[str, Series]] = {}
    for (pid, code), (days, values) in _grouped(
        assessments, "instrument", ["day", "score"]
    ).items():
        out.setdefault(pid, {})[code] = (days, values)
    return out


def _window(series: Series | None, first: float, last: float) -> Series:
    if series is None:
        return np.array([]), np.array([])
    days, values = series
    keep = (days >= first) & (days <= last)
    return days[keep], values[keep]


class _StayCheck:
    """Evaluate one progression rule on one stay at any day."""

    def __init__(
        self, rule: Any, scores: dict[str, Series], events: dict[str, np.ndarray], start: float
    ) -> None:
        self.rule = rule
        self.start = start
        self.series: list[tuple[Any, np.ndarray, np.ndarray]] = []
        if rule is None:
            return
        for criterion in rule.criteria:
            days, values = _window(scores.get(criterion.instrument), start, np.inf)
            self.series.append((criterion, days, values))
        self.blocking = events.get(rule.no_event, np.array([])) if rule.no_event else np.array([])

    def met_on(self, day: float) -> bool:
        rule = self.rule
        if day - self.start < rule.min_days_in_phase:
            return False
        for criterion, days, values in self.series:
            taken = np.flatnonzero(days <= day)
            if taken.size == 0 or not criterion.is_met(values[taken[-1]]):
                return False
        if self.blocking.size and rule.no_event_within_days is not None:
            recent = (self.blocking <= day) & (self.blocking >= day - rule.no_event_within_days)
            if recent.any():
                return False
        return True

    def first_met(self, end: float) -> float | None:
        earliest = self.start + self.rule.min_days_in_phase
        if earliest > end:
            return None
        candidates = {earliest}
        for _, days, _ in self.series:
            candidates.update(days[(days >= earliest) & (days <= end)].tolist())
        if self.blocking.size and self.rule.no_event_within_days is not None:
            clear = self.blocking + self.rule.no_event_within_days + 1
            candidates.update(clear[(clear >= earliest) & (clear <= end)].tolist())
        for day in sorted(candidates):
            if self.met_on(day):
                return day
        return None


def _delay(
    met_day: float | None, end: float, progressed: bool, exit_reason: str, delay_days: int
) -> tuple[bool | None, float | None]:
    if met_day is None:
        return None, None
    due = met_day + delay_days
    if progressed:
        return end > due, end - met_day
    if end <= due:
        # Still within the grace period (ongoing) or left early: not judged.
        return None, end - met_day
    return True, end - met_day


def _stalled(
    rule: Any,
    scores: dict[str, Series],
    start: float,
    end: float,
    stall_weeks: int,
    registry: Any,
) -> bool | None:
    if rule is None or not rule.criteria:
        return None
    code = rule.criteria[0].instrument
    spec = registry.get(code)
    days, values = _window(scores.get(code), start, end)
    if days.size < 2:
        return None
    earlier = np.flatnonzero(days <= days[-1] - 7 * stall_weeks)
    if earlier.size == 0:
        return None
    before, after = values[earlier[-1]], values[-1]
    gain = (after - before) * spec.direction
    if spec.mcid_points is not None:
        return bool(gain < spec.mcid_points)
    if spec.mcid_percent is not None and before != 0:
        return bool(gain / abs(before) * 100.0 < spec.mcid_percent)
    return None


def _summarise(stays: pd.DataFrame, level: float) -> pd.DataFrame:
    grouped = stays.groupby(["clinic_id", "phase"], sort=True)
    table = pd.DataFrame(
        {
            "stays": grouped.size(),
            "progressions": grouped["premature"].count(),
            "premature": grouped["premature"].sum(),
            "met_criteria": grouped["delayed"].count(),
            "delayed": grouped["delayed"].sum(),
            "stall_checked": grouped["stalled"].count(),
            "stalled": grouped["stalled"].sum(),
        }
    ).reset_index()
    for event, base in _RATES:
        table[event] = table[event].astype("int64")
        lower, upper = wilson_interval(table[event], table[base], level=level)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(table[base] > 0, table[event] / table[base], np.nan)
        table[f"pct_{event}"] = 100.0 * share
        table[f"{event}_lower"] = 100.0 * lower
        table[f"{event}_upper"] = 100.0 * upper
    return table
