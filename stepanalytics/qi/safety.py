"""Safety: flare-ups, red flags, pauses and adverse events per 100 patient-weeks.

Rates are events divided by time in care, so clinics with longer stays are
not penalised for seeing their patients longer.  Each rate comes with an
exact (Garwood) interval and, across clinics within a phase, U-chart limits
``u ± 3 sqrt(u / exposure)`` around the pooled rate: a clinic above its
upper limit has more events than chance explains.

Event kinds: every ``event`` of the events table that is a safety matter
(``flare_up``, ``red_flag``, ``safety_pause``, ``adverse_event``), PHQ-9
item 9 answers above 0 found while scoring (``phq9_item9``), and phase
stays that ended in a pause (``paused``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stepanalytics.derive import assign_phase
from stepanalytics.errors import UsageError
from stepanalytics.qi.intervals import poisson_rate_interval
from stepanalytics.qi.suppression import DEFAULT_THRESHOLD, ProtectedFrame, protect_frame
from stepanalytics.results import AnalysisResult

SAFETY_EVENTS = ("flare_up", "red_flag", "phq9_item9", "safety_pause", "adverse_event", "paused")
#: Mean days per month, used to place days since enrolment in calendar months.
DAYS_PER_MONTH = 365.25 / 12.0


@dataclass(frozen=True)
class SafetyRates(AnalysisResult):
    """Safety event rates, one row per group and event kind (counts only).

    Columns: grouping columns, ``event``, ``events``, ``patient_weeks``,
    ``patients`` (patients with time in care in the group), ``rate`` (per
    ``per`` patient-weeks), ``ci_lower``, ``ci_upper``, ``centre`` (pooled
    rate of the peers: same phase and event, all clinics), ``lcl``, ``ucl``
    (3-sigma U-chart limits) and ``signal`` (``above`` / ``below`` / ``""``).
    """

    per: float = 100.0
    by: tuple[str, ...] = ("clinic_id", "phase")

    def committee_table(self, *, threshold: int = DEFAULT_THRESHOLD) -> ProtectedFrame:
        """Rates with small counts, and everything that gives them back, hidden.

        * ``events`` from 1 to ``threshold`` are hidden, with the rate and its
          interval;
        * the pooled rate ``centre`` times the shown patient-weeks gives the
          all-clinics event count of its phase and event, so that total is
          treated as published: every (phase, event) group with a hidden
          count has at least two, adding up to more than ``threshold``; where
          the group's total is itself small, ``centre``, ``lcl``, ``ucl`` and
          ``signal`` are hidden for the whole group;
        * patient-weeks describe individuals when few patients contribute
          them: ``patient_weeks`` (and the limits computed from it) are
          hidden where ``patients`` is hidden, i.e. from 1 to ``threshold``
          patients, protected against the group's patient total like a count.
        """
        peers = (*self.by[1:], "event")
        both = ["events", "patients"]
        derived = {c: both for c in ("rate", "ci_lower", "ci_upper", "signal")}
        derived |= {c: ["patients"] for c in ("patient_weeks", "lcl", "ucl")}
        return protect_frame(
            self.table,
            counts=both,
            derived=derived,
            margins=[peers],
            group_values={c: peers for c in ("centre", "lcl", "ucl", "signal")},
            threshold=threshold,
        )


def safety_events(cohort: Any) -> pd.DataFrame:
    """Every safety event with patient, day, clinic and phase (patient-level)."""
    parts = []
    events = cohort.events
    if not events.empty:
        chosen = events[events["event"].isin(SAFETY_EVENTS)]
        parts.append(chosen[["patient_id", "day", "event"]])
    flags = getattr(cohort, "red_flags", pd.DataFrame())
    if not flags.empty:
        item9 = flags[(flags["instrument"] == "phq9") & (flags["item"] == 9) & (flags["value"] > 0)]
        parts.append(item9[["patient_id", "day"]].assign(event="phq9_item9"))
    stays = cohort.phases
    paused = stays[stays["exit_reason"] == "paused"]
    parts.append(
        pd.DataFrame(
            {"patient_id": paused["patient_id"], "day": paused["end_day"].astype("int64")}
        ).assign(event="paused", _phase=paused["phase"].to_numpy())
    )
    out = pd.concat(parts, ignore_index=True)
    out = out.merge(cohort.patients[["patient_id", "clinic_id"]], on="patient_id", how="left")
    placed = assign_phase(out.drop(columns="_phase"), stays)
    # A pause ends its own stay; on that day the next stay may already start.
    placed["phase"] = placed["phase"].where(out["_phase"].isna(), out["_phase"]).astype("Int64")
    return placed[["patient_id", "clinic_id", "day", "event", "phase"]]


def stay_exposure(cohort: Any) -> pd.DataFrame:
    """Days in care of every phase stay (end day, or last contact while ongoing)."""
    stays = cohort.phases.merge(
        cohort.patients[["patient_id", "clinic_id", "last_contact_day"]], on="patient_id"
    )
    end = stays["end_day"].astype("Float64").fillna(stays["last_contact_day"].astype(float))
    stays["days"] = (end - stays["start_day"]).astype(float)
    stays["end"] = end.astype(float)
    return stays


def safety_rates(
    cohort: Any,
    *,
    by: Sequence[str] = ("clinic_id", "phase"),
    events: Sequence[str] = SAFETY_EVENTS,
    per: float = 100.0,
    level: float = 0.95,
) -> SafetyRates:
    """Safety events per ``per`` patient-weeks by clinic and phase, with U-chart limits.

    Parameters
    ----------
    cohort : Cohort
    by : sequence of str, keyword-only
        Any of ``clinic_id`` and ``phase``.  Limits compare the groups of the
        first column within each level of the others.
    events : sequence of str
        Event kinds (default all of :data:`SAFETY_EVENTS`).
    per : float
        Rate unit in patient-weeks (default 100).
    level : float
        Coverage of the exact intervals.

    Returns
    -------
    SafetyRates

    Notes
    -----
    Events after the last day in care (follow-up visits) have no exposure
    and are left out; their number is given in ``warnings``.  R: the
    intervals agree with ``poisson.test(x, T)$conf.int``; the limits are
    those of ``qicharts2::qic(chart = "u")`` with clinics on the x axis.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> c = synthesize_cohort(n_patients=100, n_clinics=2, seed=1)
    >>> res = safety_rates(c, by=("phase",), events=["flare_up"])
    >>> list(res.table["phase"])
    [1, 2, 3, 4]
    """
    counts, after_care = safety_counts(cohort, by=by, events=events)
    return safety_rates_from_counts(
        counts, by=by, per=per, level=level, events_after_care=after_care
    )


def safety_counts(
    cohort: Any,
    *,
    by: Sequence[str] = ("clinic_id", "phase"),
    events: Sequence[str] = SAFETY_EVENTS,
) -> tuple[pd.DataFrame, int]:
    """Events, patient-weeks in care and patients per group and event kind.

    The first half of :func:`safety_rates`: counts that add up over parts of
    a cohort counted apart (clinic by clinic), before the pooled centre and
    limits are computed by :func:`safety_rates_from_counts`.

    Returns
    -------
    DataFrame, int
        ``by`` columns, ``event``, ``events``, ``patient_weeks``,
        ``patients``; and the number of events after the last day in care
        (not counted: no exposure).

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> c = synthesize_cohort(n_patients=100, n_clinics=2, seed=1)
    >>> counts, _ = safety_counts(c, by=("phase",), events=["flare_up"])
    >>> list(counts.columns)
    ['phase', 'event', 'events', 'patient_weeks', 'patients']
    """
    unknown = [e for e in events if e not in SAFETY_EVENTS]
    if unknown:
        raise UsageError(f"Unknown safety event(s) {unknown}; use {SAFETY_EVENTS}.")
    keys = list(by)
    if not keys or any(k not in ("clinic_id", "phase") for k in keys):
        raise UsageError("by must name clinic_id and/or phase.")
    stays = stay_exposure(cohort)
    exposure = stays.groupby(keys)["days"].sum() / 7.0
    found = safety_events(cohort)
    found = found[found["event"].isin(list(events))]
    last_day = stays.groupby("patient_id")["end"].max()
    in_care = found["day"].to_numpy(dtype=float) <= found["patient_id"].map(last_day).to_numpy(
        dtype=float
    )
    found = found[in_care]
    levels = [exposure.index.get_level_values(k).unique() for k in keys]
    grid = pd.MultiIndex.from_product([*levels, list(events)], names=[*keys, "event"])
    counts = found.groupby([*keys, "event"]).size().reindex(grid, fill_value=0)
    table = counts.rename("events").reset_index()
    table = table.merge(exposure.rename("patient_weeks").reset_index(), on=keys, how="inner")
    patients = stays.groupby(keys)["patient_id"].nunique().rename("patients").reset_index()
    table = table.merge(patients, on=keys, how="left")
    return table, int((~in_care).sum())


def safety_rates_from_counts(
    counts: pd.DataFrame,
    *,
    by: Sequence[str] = ("clinic_id", "phase"),
    per: float = 100.0,
    level: float = 0.95,
    events_after_care: int = 0,
) -> SafetyRates:
    """Rates, exact intervals, pooled centre and U-chart limits from :func:`safety_counts`.

    ``counts`` may be the counts of several parts of a cohort put together:
    the centre of each group is pooled over all of them.

    Examples
    --------
    >>> counts = pd.DataFrame({"clinic_id": ["A", "B"], "event": "flare_up",
    ...                        "events": [3, 9], "patient_weeks": [100.0, 100.0],
    ...                        "patients": [20, 20]})
    >>> safety_rates_from_counts(counts, by=("clinic_id",)).table["centre"].tolist()
    [6.0, 6.0]
    """
    keys = list(by)
    warnings = []
    if events_after_care:
        warnings.append(
            f"{events_after_care} events after the last day in care (no exposure) are not counted."
        )
    table = counts.reset_index(drop=True).copy()
    lower, upper = poisson_rate_interval(table["events"], table["patient_weeks"], level=level)
    table["rate"] = per * table["events"] / table["patient_weeks"]
    table["ci_lower"], table["ci_upper"] = per * lower, per * upper
    peers = [*keys[1:], "event"]
    pooled = table.groupby(peers)[["events", "patient_weeks"]].transform("sum")
    centre = pooled["events"] / pooled["patient_weeks"]
    spread = 3.0 * np.sqrt(centre / table["patient_weeks"])
    table["centre"] = per * centre
    table["lcl"] = per * np.maximum(centre - spread, 0.0)
    table["ucl"] = per * (centre + spread)
    table["signal"] = np.where(
        table["rate"] > table["ucl"], "above", np.where(table["rate"] < table["lcl"], "below", "")
    )
    return SafetyRates(
        table=table.sort_values([*keys, "event"], kind="stable").reset_index(drop=True),
        warnings=tuple(warnings),
        title=f"Safety events per {per:g} patient-weeks",
        per=per,
        by=tuple(keys),
    )


def calendar_month(enrolled_month: pd.Series, day: npt.ArrayLike) -> pd.Series:
    """Approximate calendar month ``YYYY-MM`` of a day since enrolment.

    Only the enrolment month is known, so enrolment is placed mid-month and
    months are 30.44 days long; a day is off by at most half a month.

    Examples
    --------
    >>> calendar_month(pd.Series(["2025-11", "2025-11"]), [10, 20]).tolist()
    ['2025-11', '2025-12']
    """
    months = enrolled_month.astype(str)
    index = months.str.slice(0, 4).astype(int) * 12 + months.str.slice(5, 7).astype(int) - 1
    offset = np.floor((np.asarray(day, dtype=float) + 15.0) / DAYS_PER_MONTH).astype(int)
    total = index.to_numpy() + offset
    return pd.Series([f"{t // 12:04d}-{t % 12 + 1:02d}" for t in total], index=enrolled_month.index)


def safety_series(
    cohort: Any,
    *,
    event: str,
    clinic_id: str | None = None,
    per: float = 100.0,
) -> pd.DataFrame:
    """Monthly events and patient-weeks in care, ready for a U chart.

    Parameters
    ----------
    cohort : Cohort
    event : str, keyword-only
        One of :data:`SAFETY_EVENTS`.
    clinic_id : str, optional
        Restrict to one clinic.
    per : float
        Unit of the ``rate`` column.

    Returns
    -------
    DataFrame
        ``month``, ``events``, ``patient_weeks``, ``patients`` (in care for
        at least one day of the month), ``rate``; pass to
        ``control_chart(chart="u", count="events", denominator="patient_weeks",
        multiply=100)``.  For a committee, a month (or a quarter, which has at
        least as many patients as each of its months) whose ``patients`` are
        1 to 10 should not be drawn: its patient-weeks describe those patients.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> c = synthesize_cohort(n_patients=100, n_clinics=2, seed=1)
    >>> s = safety_series(c, event="flare_up")
    >>> list(s.columns)
    ['month', 'events', 'patient_weeks', 'patients', 'rate']
    """
    if event not in SAFETY_EVENTS:
        raise UsageError(f"Unknown safety event {event!r}; use one of {SAFETY_EVENTS}.")
    patients = cohort.patients
    stays = stay_exposure(cohort)
    if clinic_id is not None:
        patients = patients[patients["clinic_id"] == clinic_id]
        stays = stays[stays["clinic_id"] == clinic_id]
    last = stays.groupby("patient_id")["end"].max().reindex(patients["patient_id"]).to_numpy()
    start = patients["enrolled_month"].astype(str)
    base = start.str.slice(0, 4).astype(int) * 12 + start.str.slice(5, 7).astype(int) - 1
    n_months = int(np.floor((np.nanmax(last) + 15.0) / DAYS_PER_MONTH)) + 1
    k = np.arange(n_months)
    first_day = np.maximum(np.ceil(k * DAYS_PER_MONTH - 15.0), 0.0)
    last_day = np.ceil((k + 1) * DAYS_PER_MONTH - 15.0) - 1.0
    days = np.clip(np.minimum(last_day[None, :], last[:, None]) - first_day[None, :] + 1.0, 0, None)
    month_index = base.to_numpy()[:, None] + k[None, :]
    exposure = pd.Series(days.ravel() / 7.0).groupby(month_index.ravel()).sum()
    # Patients in care during the month: a month's patient-weeks describe them.
    present = pd.Series((days > 0).ravel().astype("int64")).groupby(month_index.ravel()).sum()
    found = safety_events(cohort)
    found = found[(found["event"] == event) & found["patient_id"].isin(set(patients["patient_id"]))]
    found = found.merge(patients[["patient_id", "enrolled_month"]], on="patient_id")
    found = found[found["day"] <= found["patient_id"].map(stays.groupby("patient_id")["end"].max())]
    label = calendar_month(found["enrolled_month"], found["day"])
    counts = label.value_counts()
    months = [f"{t // 12:04d}-{t % 12 + 1:02d}" for t in exposure.index]
    out = pd.DataFrame(
        {
            "month": months,
            "patient_weeks": exposure.to_numpy(),
            "patients": present.reindex(exposure.index).to_numpy(),
        }
    )
    out = out[out["patient_weeks"] > 0]
    out["events"] = out["month"].map(counts).fillna(0).astype("int64")
    out["rate"] = per * out["events"] / out["patient_weeks"]
    return out[["month", "events", "patient_weeks", "patients", "rate"]].reset_index(drop=True)
