"""Outcome indicators per clinic, period and phase.

For each instrument and group: mean change from baseline with its
t interval, the share of patients reaching the MCID, the share reliably
deteriorated and the share moving from the clinical into the normal range,
each with a Wilson interval.  The patient-level change comes from
:func:`stepanalytics.instruments.change.measure_change`, so MCID, reliable
change and cut-offs are those of the instrument registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError
from stepanalytics.qi.intervals import mean_interval, wilson_interval
from stepanalytics.qi.suppression import DEFAULT_THRESHOLD, ProtectedFrame, protect_frame
from stepanalytics.results import AnalysisResult

_SHARES = (
    ("responders", "responder_flag", "n"),
    ("deteriorated", "deteriorated_flag", "n_rci"),
    ("crossed", "crossed_flag", "n_clinical"),
)

#: Columns of the indicator table after the grouping columns.
_COLUMNS_AFTER_KEYS = [
    "n",
    "mean_change",
    "std_error",
    "ci_lower",
    "ci_upper",
    "responders",
    "pct_responders",
    "responders_lower",
    "responders_upper",
    "n_rci",
    "deteriorated",
    "pct_deteriorated",
    "deteriorated_lower",
    "deteriorated_upper",
    "n_clinical",
    "crossed",
    "pct_crossed",
    "crossed_lower",
    "crossed_upper",
]


@dataclass(frozen=True)
class OutcomeIndicators(AnalysisResult):
    """Outcome indicators, one row per group and instrument (counts only).

    Columns: the grouping columns, ``instrument``, ``n`` (patients with a
    baseline and a follow-up), ``mean_change``, ``std_error``, ``ci_lower``,
    ``ci_upper``; ``responders`` with ``pct_responders`` and its interval
    (``responders_lower``, ``responders_upper``); ``n_rci`` (patients with a
    reliable change index), ``deteriorated`` with ``pct_deteriorated`` and
    interval; ``n_clinical`` (baseline in the clinical range), ``crossed``
    into the normal range with ``pct_crossed`` and interval.  Percentages and
    their intervals are on the 0-100 scale.
    """

    by: tuple[str, ...] = ("clinic_id",)
    follow_up: str = "last"

    def committee_table(self, *, threshold: int = DEFAULT_THRESHOLD) -> ProtectedFrame:
        """Indicators with small counts, and every value that gives them back, hidden.

        The mean change, its standard error and interval are hidden with
        ``n`` (a mean of a few patients describes them; the interval width
        over the standard error is a t quantile, which gives n back); each
        share and its interval with its count or denominator.  A count whose
        complement in its denominator is small is hidden too, and so is a
        denominator (``n_rci``, ``n_clinical``) that falls short of ``n`` by a
        small number.  By clinic, the all-clinics count of each group (period,
        phase, instrument) is treated as published.
        """
        counts = ["n", "responders", "n_rci", "deteriorated", "n_clinical", "crossed"]
        derived: dict[str, list[str]] = {
            c: ["n"] for c in ("mean_change", "std_error", "ci_lower", "ci_upper")
        }
        parts = [("n_rci", "n"), ("n_clinical", "n")]
        for name, _, denominator in _SHARES:
            for column in (f"pct_{name}", f"{name}_lower", f"{name}_upper"):
                derived[column] = [name, denominator]
            parts.append((name, denominator))
        others = [c for c in self.by if c != "clinic_id"]
        margins = [(*others, "instrument")] if "clinic_id" in self.by else []
        return protect_frame(
            self.table,
            counts=counts,
            derived=derived,
            parts=parts,
            totals=bool(margins),
            margins=margins or None,
            threshold=threshold,
        )


def add_period(frame: pd.DataFrame, *, period: str, month: str = "enrolled_month") -> pd.Series:
    """Label each row with its enrolment ``month`` (``YYYY-MM``) or ``quarter`` (``YYYYQn``).

    Examples
    --------
    >>> add_period(pd.DataFrame({"enrolled_month": ["2025-11"]}), period="quarter").tolist()
    ['2025Q4']
    """
    months = frame[month].astype(str)
    if period == "month":
        return months
    if period == "quarter":
        year = months.str.slice(0, 4)
        quarter = (months.str.slice(5, 7).astype(int) - 1) // 3 + 1
        return year + "Q" + quarter.astype(str)
    raise UsageError(f"period must be 'month' or 'quarter'; got {period!r}.")


def outcome_indicators(
    cohort: Any,
    *,
    instruments: Sequence[str] | None = None,
    by: Sequence[str] = ("clinic_id",),
    follow_up: str | int = "last",
    period: str | None = None,
    level: float = 0.95,
) -> OutcomeIndicators:
    """Change, MCID, deterioration and recovery shares by group.

    Parameters
    ----------
    cohort : Cohort
    instruments : sequence of str, optional
        Default: every instrument with scores.
    by : sequence of str, keyword-only
        Columns of ``patients`` to group by (default ``("clinic_id",)``).
        With ``follow_up="phase_end"`` the phase is added automatically.
    follow_up : {"last", "phase_end"} or int
        Follow-up point, see :func:`~stepanalytics.instruments.change.measure_change`.
    period : {"month", "quarter"}, optional
        Add the enrolment month or quarter (column ``period``) to the groups,
        for charts over time.
    level : float

    Returns
    -------
    OutcomeIndicators

    Notes
    -----
    Shares use Wilson intervals (R ``prop.test(correct = FALSE)``), mean
    change a t interval (R ``t.test``).  The denominator of the deterioration
    share is patients with a reliable change index; of the recovery share,
    patients whose baseline lay in the clinical range.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> c = synthesize_cohort(n_patients=120, n_clinics=2, seed=4)
    >>> res = outcome_indicators(c, instruments=["odi"], by=())
    >>> bool(res.table["mean_change"].iloc[0] < 0)
    True
    """
    from stepanalytics.instruments.change import measure_change

    change = measure_change(cohort, follow_up=follow_up, instruments=instruments)
    return indicators_from_change(
        change.patients,
        cohort.patients,
        by=by,
        follow_up=follow_up,
        period=period,
        level=level,
        warnings=change.warnings,
        title=f"Outcome indicators ({change.title.lower()})",
    )


def indicators_from_change(
    pairs: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    by: Sequence[str] = ("clinic_id",),
    follow_up: str | int = "last",
    period: str | None = None,
    level: float = 0.95,
    warnings: Sequence[str] = (),
    title: str = "Outcome indicators",
) -> OutcomeIndicators:
    """Outcome indicators from measured change (the second half of :func:`outcome_indicators`).

    Parameters
    ----------
    pairs : DataFrame
        The ``patients`` frame of :func:`~stepanalytics.instruments.measure_change`
        (or of :func:`~stepanalytics.instruments.change_parts.rescore_change` for a
        cohort measured in parts).
    patients : DataFrame
        The cohort's patients table (for the grouping columns).
    by, follow_up, period, level
        As in :func:`outcome_indicators`.
    warnings : sequence of str
        Warnings of the change measurement, carried over.
    title : str

    Returns
    -------
    OutcomeIndicators

    Examples
    --------
    >>> from stepanalytics.instruments import measure_change
    >>> from stepanalytics.synth import synthesize_cohort
    >>> c = synthesize_cohort(n_patients=120, n_clinics=2, seed=4)
    >>> change = measure_change(c, instruments=["odi"])
    >>> res = indicators_from_change(change.patients, c.patients, by=())
    >>> res.table.equals(outcome_indicators(c, instruments=["odi"], by=()).table)
    True
    """
    warnings = list(warnings)
    if not (pairs["status"] == "complete").any():
        warnings.append(_why_no_pairs(pairs))
    pairs = pairs[pairs["status"] == "complete"].copy()
    wanted = [c for c in by if c != "phase"]
    unknown = [c for c in wanted if c not in patients.columns]
    if unknown:
        raise UsageError(f"Cannot group by {unknown}: not columns of the patients table.")
    extra = [c for c in {*wanted, "enrolled_month"} if c != "patient_id"]
    frame = pairs.merge(patients[["patient_id", *extra]], on="patient_id", how="left")
    keys = list(wanted)
    if period is not None:
        frame["period"] = add_period(frame, period=period)
        keys.append("period")
    if follow_up == "phase_end" or "phase" in by:
        keys.append("phase")
    frame["responder_flag"] = frame["responder"].astype("Float64")
    rci_known = frame["category"].notna()
    frame["deteriorated_flag"] = (
        (frame["category"] == "deteriorated").astype(float).where(rci_known)
    )
    frame["crossed_flag"] = _crossed_among_clinical(frame)
    table = _summarise(frame, [*keys, "instrument"], level)
    return OutcomeIndicators(
        table=table,
        warnings=tuple(warnings),
        title=title,
        by=tuple(keys),
        follow_up=str(follow_up),
    )


def _why_no_pairs(pairs: pd.DataFrame) -> str:
    """Plain reason why no patient has a change from baseline."""
    if pairs.empty:
        return "No scores for these instruments in this cohort: no outcome indicators."
    if (pairs["status"] == "no_baseline").all():
        return (
            "No patient has a baseline score (a score early in care), so change cannot be "
            "measured: no outcome indicators."
        )
    return (
        "No patient has a follow-up score after the baseline yet, so change cannot be "
        "measured: no outcome indicators."
    )


def _crossed_among_clinical(frame: pd.DataFrame) -> pd.Series:
    """1/0 for patients whose baseline was in the clinical range, <NA> for the others."""
    from stepanalytics.instruments import get_registry

    registry = get_registry()
    out = pd.Series(np.nan, index=frame.index, dtype=float)
    for code, group in frame.groupby("instrument"):
        spec = registry.get(str(code))
        if spec.clinical_cutoff is None:
            continue
        clinical = ~spec.is_normal(group["baseline_score"].to_numpy(dtype=float))
        crossed = group["crossed_cutoff"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        out.loc[group.index] = np.where(clinical, crossed, np.nan)
    return out


def _summarise(frame: pd.DataFrame, keys: list[str], level: float) -> pd.DataFrame:
    rows = []
    groups = frame.groupby(keys, sort=True, dropna=False) if keys else [((), frame)]
    for key, group in groups:
        values = group["change"].to_numpy(dtype=float)
        mean, se, lo, hi, n = mean_interval(values[~np.isnan(values)], level=level)
        row: dict[str, Any] = dict(
            zip(keys, key if isinstance(key, tuple) else (key,), strict=True)
        )
        row.update(n=n, mean_change=mean, std_error=se, ci_lower=lo, ci_upper=hi)
        for name, flag, denominator in _SHARES:
            known = group[flag].dropna().astype(float)
            row[denominator] = int(known.size)
            row[name] = int(known.sum())
        rows.append(row)
    if not rows:
        # Nobody with a baseline and a follow-up: an empty table with the usual columns.
        counts = {"n", *(c for share in _SHARES for c in (share[0], share[2]))}
        return pd.DataFrame(
            {
                c: pd.Series(dtype="int64" if c in counts else object if c in keys else float)
                for c in [*keys, *_COLUMNS_AFTER_KEYS]
            }
        )
    table = pd.DataFrame(rows)
    for name, _, denominator in _SHARES:
        lower, upper = wilson_interval(table[name], table[denominator], level=level)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(table[denominator] > 0, table[name] / table[denominator], np.nan)
        table[f"pct_{name}"] = 100.0 * share
        table[f"{name}_lower"] = 100.0 * lower
        table[f"{name}_upper"] = 100.0 * upper
    return table[[*keys, *_COLUMNS_AFTER_KEYS]]
