"""Completeness of measurement and the attrition check.

Outcome figures are only as good as the share of patients they describe.
The completeness funnel counts, per clinic and instrument, how many patients
were due a measurement at each stage and how many had one:

``enrolled``
    every patient (the top of the funnel);
``baseline``
    a score within the baseline window (days 0..14 by default);
``phase_<k>_end``
    patients whose first stay in phase k ended: a score in the last
    ``window_days`` of that stay;
``end_of_care``
    patients whose care ended (completed or dropped out): a score within
    ``window_days`` of the last day of care;
``follow_up``
    patients who completed the programme: a score after completion.

The attrition check then asks whether those followed up differ at baseline
from those lost; if they do, outcome figures describe a selected group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.qi.intervals import wilson_interval
from stepanalytics.qi.suppression import DEFAULT_THRESHOLD, ProtectedFrame, protect_frame
from stepanalytics.results import AnalysisResult

#: Standardised difference above which groups are called imbalanced (Austin 2009).
IMBALANCE = 0.1


@dataclass(frozen=True)
class Completeness(AnalysisResult):
    """Completeness funnel: one row per group, instrument and stage (counts only).

    Columns: the ``by`` columns, ``instrument``, ``stage``, ``stage_order``,
    ``eligible``, ``measured``, ``percent``, ``ci_lower``, ``ci_upper``
    (Wilson, in percent).
    """

    by: tuple[str, ...] = ("clinic_id",)

    def committee_table(self, *, threshold: int = DEFAULT_THRESHOLD) -> ProtectedFrame:
        """Due and measured counts with small cells, and what gives them back, hidden.

        ``measured`` is hidden where it or the number not measured is small;
        the percentage and its interval go with either count.  By clinic,
        the all-clinics count of each instrument and stage is treated as
        published (the report shows the all-clinics funnel), so no clinic's
        hidden count follows from it.
        """
        derived = {c: ["measured", "eligible"] for c in ("percent", "ci_lower", "ci_upper")}
        others = [c for c in self.by if c != "clinic_id"]
        margins = [(*others, "instrument", "stage")] if "clinic_id" in self.by else []
        return protect_frame(
            self.table,
            counts=["eligible", "measured"],
            derived=derived,
            parts=[("measured", "eligible")],
            totals=bool(margins),
            margins=margins or None,
            threshold=threshold,
        )


def measurement_stages(
    cohort: Any, *, instruments: Sequence[str] | None = None, window_days: int = 14
) -> pd.DataFrame:
    """Patient-level flags: was each patient due, and measured, at each stage.

    Returns one row per patient, instrument and stage with ``eligible`` and
    ``measured`` (bool).  Carries patient ids: for analysts only.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> c = synthesize_cohort(n_patients=40, n_clinics=2, seed=1)
    >>> flags = measurement_stages(c, instruments=["odi"])
    >>> sorted(flags["stage"].unique())[:2]
    ['baseline', 'end_of_care']
    """
    m = cohort.measurements
    codes, _ = _instrument_codes(cohort, instruments)
    patients = cohort.patients[["patient_id", "clinic_id"]]
    stays = cohort.phases
    scores = m.loc[m["instrument"].isin(codes), ["patient_id", "instrument", "day"]]
    base = m.loc[m["instrument"].isin(codes) & (m["day"] == m["baseline_day"])]
    rows = []
    for code in codes:
        grid = patients.assign(instrument=code)
        has_base = set(base.loc[base["instrument"] == code, "patient_id"])
        rows.append(grid.assign(stage="enrolled", order=0, eligible=True, measured=True))
        rows.append(
            grid.assign(
                stage="baseline", order=1, eligible=True, measured=grid["patient_id"].isin(has_base)
            )
        )
        own = scores[scores["instrument"] == code]
        for k in sorted(stays["phase"].unique()):
            first = stays[stays["phase"] == k].drop_duplicates("patient_id", keep="first")
            ended = first[first["end_day"].notna()]
            hit = _scored_between(own, ended, ended["end_day"] - window_days, ended["end_day"])
            rows.append(_stage(grid, f"phase_{k}_end", 1 + int(k), ended, hit))
        last = stays.drop_duplicates("patient_id", keep="last")
        ended = last[last["exit_reason"].isin(["completed", "dropped_out"])]
        hit = _scored_between(
            own, ended, ended["end_day"] - window_days, ended["end_day"] + window_days
        )
        rows.append(_stage(grid, "end_of_care", 90, ended, hit))
        done = last[last["exit_reason"] == "completed"]
        hit = _scored_between(own, done, done["end_day"] + 1, pd.Series(np.inf, index=done.index))
        rows.append(_stage(grid, "follow_up", 91, done, hit))
    out = pd.concat(rows, ignore_index=True)
    return out.rename(columns={"order": "stage_order"})


def _instrument_codes(
    cohort: Any, instruments: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """The instruments to count, and warnings for those nobody was measured with.

    An instrument of the registry without a single score is a real answer
    (nobody was measured: 0%), so it is counted; a code neither scored nor
    known is a typo and refused.
    """
    from stepanalytics.instruments import get_registry

    scored = list(cohort.instruments)
    if instruments is None:
        if not scored:
            raise AnalysisError(
                "This cohort has no scores at all (the assessments table is empty), so there "
                "is no measurement to count. Pass instruments=[...] to count the patients "
                "due each measurement, every one of them not measured."
            )
        return scored, []
    codes = list(dict.fromkeys(instruments))
    registry = get_registry()
    unknown = sorted(c for c in codes if c not in scored and c not in registry)
    if unknown:
        raise UsageError(
            f"No scores for instrument(s) {unknown} in this cohort, and the instrument "
            "registry does not know them; check the spelling."
        )
    unscored = [c for c in codes if c not in scored]
    warnings = [
        f"{code}: no patient has a score in this cohort; every patient due is counted as "
        "not measured."
        for code in unscored
    ]
    return codes, warnings


def _scored_between(
    scores: pd.DataFrame, stays: pd.DataFrame, first: pd.Series, last: pd.Series
) -> set[str]:
    window = pd.DataFrame(
        {
            "patient_id": stays["patient_id"].to_numpy(),
            "first": first.astype(float).to_numpy(),
            "last": last.astype(float).to_numpy(),
        }
    )
    joined = scores.merge(window, on="patient_id", how="inner")
    inside = (joined["day"] >= joined["first"]) & (joined["day"] <= joined["last"])
    return set(joined.loc[inside, "patient_id"])


def _stage(
    grid: pd.DataFrame, name: str, order: int, due: pd.DataFrame, measured: set[str]
) -> pd.DataFrame:
    eligible = grid["patient_id"].isin(set(due["patient_id"]))
    return grid.assign(
        stage=name,
        order=order,
        eligible=eligible,
        measured=eligible & grid["patient_id"].isin(measured),
    )


def completeness_funnel(
    cohort: Any,
    *,
    instruments: Sequence[str] | None = None,
    by: Sequence[str] = ("clinic_id",),
    window_days: int = 14,
    level: float = 0.95,
) -> Completeness:
    """How many patients were measured at each stage, per clinic and instrument.

    Parameters
    ----------
    cohort : Cohort
    instruments : sequence of str, optional
        Default: every instrument with scores.
    by : sequence of str, keyword-only
        Grouping: ``("clinic_id",)`` (default), ``()`` for the whole cohort.
    window_days : int, keyword-only
        Window before a phase end (and around the end of care) in which a
        score counts.
    level : float
        Coverage of the Wilson intervals.

    Returns
    -------
    Completeness

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> c = synthesize_cohort(n_patients=60, n_clinics=3, seed=1)
    >>> res = completeness_funnel(c, instruments=["odi"], by=())
    >>> first = res.table.iloc[0]
    >>> first["stage"], int(first["eligible"]), int(first["measured"])
    ('enrolled', 60, 60)
    """
    _, warnings = _instrument_codes(cohort, instruments)
    flags = measurement_stages(cohort, instruments=instruments, window_days=window_days)
    keys = [*by, "instrument", "stage_order", "stage"]
    bad = [c for c in by if c not in flags.columns]
    if bad:
        raise UsageError(f"completeness_funnel can group by clinic_id only; got {bad}.")
    counts = (
        flags.groupby(keys, sort=True)
        .agg(eligible=("eligible", "sum"), measured=("measured", "sum"))
        .reset_index()
    )
    return completeness_from_counts(counts, by=by, level=level, warnings=warnings)


def completeness_from_counts(
    counts: pd.DataFrame,
    *,
    by: Sequence[str] = ("clinic_id",),
    level: float = 0.95,
    warnings: Sequence[str] = (),
) -> Completeness:
    """The funnel from its counts: percentages and Wilson intervals added.

    ``counts`` has the ``by`` columns, ``instrument``, ``stage_order``,
    ``stage``, ``eligible`` and ``measured``, e.g. the counts of several
    parts of a cohort counted apart (clinic by clinic) and put together.

    Examples
    --------
    >>> counts = pd.DataFrame({"instrument": ["odi"], "stage_order": [1],
    ...                        "stage": ["baseline"], "eligible": [40], "measured": [30]})
    >>> float(completeness_from_counts(counts, by=()).table["percent"].iloc[0])
    75.0
    """
    keys = [*by, "instrument", "stage_order", "stage"]
    table = counts.sort_values(keys, kind="stable").reset_index(drop=True)
    lower, upper = wilson_interval(table["measured"], table["eligible"], level=level)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["percent"] = np.where(
            table["eligible"] > 0, 100.0 * table["measured"] / table["eligible"], np.nan
        )
    table["ci_lower"], table["ci_upper"] = 100.0 * lower, 100.0 * upper
    return Completeness(
        table=table,
        warnings=tuple(warnings),
        title="Completeness of measurement (percent of patients due)",
        by=tuple(by),
    )


@dataclass(frozen=True)
class AttritionCheck(AnalysisResult):
    """Baseline scores of patients followed up versus lost, per instrument.

    Columns: ``instrument``, ``n_followed``, ``mean_followed``,
    ``sd_followed``, ``n_lost``, ``mean_lost``, ``sd_lost``,
    ``std_difference`` and ``imbalanced`` (|d| > 0.1).
    """

    stage: str = "follow_up"


def attrition_check(
    cohort: Any,
    *,
    instruments: Sequence[str] | None = None,
    stage: str = "follow_up",
    window_days: int = 14,
) -> AttritionCheck:
    """Compare baseline scores of those measured at a stage with those lost.

    Parameters
    ----------
    cohort : Cohort
    instruments : sequence of str, optional
    stage : str, keyword-only
        A stage of :func:`completeness_funnel` (``follow_up``,
        ``end_of_care``, ``phase_1_end``, ...).  Patients due at that stage
        with a baseline score are split into followed (measured) and lost.

    Returns
    -------
    AttritionCheck

    Notes
    -----
    Standardised difference ``(m1 - m0) / sqrt((s1^2 + s0^2) / 2)``
    (Austin 2009, Stat Med 28:3083); |d| > 0.1 is called imbalanced.  Unlike
    a p-value it does not grow with sample size.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> c = synthesize_cohort(n_patients=200, n_clinics=3, seed=1)
    >>> res = attrition_check(c, instruments=["odi"], stage="end_of_care")
    >>> list(res.table.columns[:3])
    ['instrument', 'n_followed', 'mean_followed']
    """
    flags = measurement_stages(cohort, instruments=instruments, window_days=window_days)
    if stage not in set(flags["stage"]) - {"enrolled", "baseline"}:
        raise UsageError(f"Unknown stage {stage!r}; use e.g. 'follow_up' or 'end_of_care'.")
    due = flags[(flags["stage"] == stage) & flags["eligible"]]
    base = cohort.baselines[["patient_id", "instrument", "baseline_score"]]
    due = due.merge(base, on=["patient_id", "instrument"], how="inner")
    rows = []
    for code, group in due.groupby("instrument", sort=True):
        followed = group.loc[group["measured"], "baseline_score"].to_numpy(dtype=float)
        lost = group.loc[~group["measured"], "baseline_score"].to_numpy(dtype=float)
        rows.append(
            {
                "instrument": code,
                **_describe("followed", followed),
                **_describe("lost", lost),
                "std_difference": standardised_difference(followed, lost),
            }
        )
    columns = ["instrument", "n_followed", "mean_followed", "sd_followed"]
    columns += ["n_lost", "mean_lost", "sd_lost", "std_difference"]
    table = pd.DataFrame(rows, columns=columns)
    table["imbalanced"] = table["std_difference"].abs() > IMBALANCE
    warnings = []
    if not table.empty:
        for _, row in table[table["imbalanced"]].iterrows():
            warnings.append(
                f"{row['instrument']}: patients lost at {stage} differed at baseline from those "
                f"followed (standardised difference {row['std_difference']:.2f}); outcome "
                "figures may describe a selected group."
            )
    return AttritionCheck(
        table=table,
        warnings=tuple(warnings),
        title=f"Attrition check: baseline of patients followed vs lost at {stage}",
        stage=stage,
    )


def standardised_difference(group1: npt.ArrayLike, group0: npt.ArrayLike) -> float:
    """``(mean1 - mean0) / sqrt((var1 + var0) / 2)``; NaN with fewer than 2 per group.

    Examples
    --------
    >>> round(standardised_difference([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]), 3)
    -1.0
    """
    a = np.asarray(group1, dtype=float)
    b = np.asarray(group0, dtype=float)
    if a.size < 2 or b.size < 2:
        return float("nan")
    pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2.0)
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("nan")


def _describe(label: str, values: np.ndarray) -> dict[str, float | int]:
    return {
        f"n_{label}": int(values.size),
        f"mean_{label}": float(values.mean()) if values.size else float("nan"),
        f"sd_{label}": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
    }
