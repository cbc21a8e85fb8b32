"""Report title, the cohort at a glance, and how phase stays ended.

Everything here is counts and summaries of the selection (a clinic and/or a
period) set against all clinics, through the small-cell rule.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stepanalytics.qi.suppression import (
    SUPPRESSED_MARK,
    protect_frame,
    small_cells,
    suppress_table,
)
from stepanalytics.reports.clinic_parts import category_counts
from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section, keyfacts_html, note_html, table_html
from stepanalytics.reports.sections.common import protected_crosstab_html
from stepanalytics.reports.sections.descriptors import (
    hide_zeros_beside_hidden,
    shared_median,
    shared_range,
)

REPORT_TITLES = {
    "qi": "Quality improvement report",
    "benchmark": "Clinic benchmark",
    "explorer": "Cohort explorer",
}
CASE_MIX_COLUMNS = {
    "age_band": "Age band",
    "sex": "Sex",
    "primary_condition": "Primary condition",
    "employment": "Employment",
    "compensation_claim": "Compensation claim",
}
OTHER_CLINICS = "other clinics"
NO_COMPARISON_NOTE = (
    "The other clinics together have too few patients in this period to be shown beside "
    "this clinic (their numbers would be all clinics minus this one), so this report shows "
    "no all-clinics columns."
)
ALL_CLINICS = "all clinics"
EXIT_ORDER = ("progressed", "completed", "stepped_down", "paused", "dropped_out", "ongoing")
EXIT_COLOURS = {
    "progressed": "#3b7dbf",
    "completed": "#2e9d6a",
    "stepped_down": "#e0a030",
    "paused": "#9b7fc0",
    "dropped_out": "#c0504d",
    "ongoing": "#b8c2cc",
}


def _count(value: int, threshold: int | None) -> str:
    if threshold is not None and small_cells([value], threshold=threshold)[0]:
        return SUPPRESSED_MARK
    return f"{value:,}"


def section_title(context: ReportContext, kind: str = "qi") -> Section:
    """The report's title, what it covers, and its headline numbers.

    Examples
    --------
    >>> section_title(context, "qi")  # doctest: +SKIP
    """
    selection = context.selection
    patients = selection.patients
    months = patients["enrolled_month"].astype(str)
    section = Section(
        f"{REPORT_TITLES.get(kind, 'Report')}: {context.label}",
        level=1,
        subtitle=(
            f"{context.period.describe().capitalize() if context.period else 'All patients'}"
            f"{' at clinic ' + context.clinic if context.clinic else ' at every clinic'}, "
            "followed up to the data extract. Time is counted in weeks since enrolment."
        ),
    )
    threshold = context.threshold
    facts = [
        ("patients", _count(len(patients), threshold)),
        ("clinics", f"{patients['clinic_id'].nunique()}"),
        # Range ends and medians describe individuals unless enough patients share them.
        ("enrolment months", shared_range(months, threshold=threshold)),
        (
            "median follow-up (weeks)",
            shared_median(patients["last_contact_day"], threshold=threshold, scale=7.0),
        ),
        ("instruments", f"{len(context.reported_instruments)}"),
    ]
    section.add_html(keyfacts_html(facts))
    if threshold is None:
        section.add_text(
            "A research report: counts and curves are shown in full. It never shows a "
            "patient id; do not pass it to a committee (render the QI report instead)."
        )
    else:
        section.add_text(
            "No patient is identified in this report. Counts from 1 to "
            f"{threshold} are hidden (marked {SUPPRESSED_MARK}) to protect privacy, together "
            "with any value that would let a hidden count be worked out."
        )
    return section


def _case_mix_table(context: ReportContext, column: str) -> pd.DataFrame:
    """Patients per category: the clinic's column and, beside it, the other clinics'.

    The "all clinics" column a report shows is the sum of the two, so the
    other clinics' counts (all minus this clinic) are protected as cells.
    """
    here = f"clinic {context.clinic}" if context.clinic else "all clinics"
    frame = category_counts(context.selection.patients[column]).rename(here).to_frame()
    if context.clinic and context.compare_with_all:
        everyone = context.peers.category_totals(column)
        frame = frame.join(everyone.rename(OTHER_CLINICS), how="outer").fillna(0)
        frame[OTHER_CLINICS] -= frame[here]
    return frame.fillna(0).astype(int).sort_index()


def section_cohort_overview(context: ReportContext) -> Section:
    """Who the patients are: case mix at enrolment and baseline severity.

    The clinic's patients are shown beside all clinics' so that differences
    in case mix, which the risk-adjusted comparisons later account for, are
    visible.
    """
    section = Section("Who the patients are")
    threshold = context.threshold
    section.add_text(
        "Case mix at enrolment. Percentages are of the patients in each column; "
        "a different mix from the other clinics is not a quality problem, but it is "
        "why comparisons later in this report are risk-adjusted."
    )
    if not context.compare_with_all:
        section.add_note(NO_COMPARISON_NOTE)
    for column, label in CASE_MIX_COLUMNS.items():
        if column not in context.selection.patients.columns:
            continue
        counts = _case_mix_table(context, column)
        counts.index.name = label
        section.add_html(_counts_with_percent(counts, threshold=threshold, caption=label))
    section.add_html(_baseline_table(context))
    return section


def _counts_with_percent(counts: pd.DataFrame, *, threshold: int | None, caption: str) -> str:
    """Counts and column percentages, small cells and their complements hidden.

    With a clinic, ``counts`` holds the clinic's and the other clinics'
    columns; the table shows the clinic's and their sum, "all clinics"
    (the other clinics' column is protected but not shown).  In a column
    with a hidden cell the zeros are hidden too, and a percentage is shown
    only beside a shown column total.
    """
    with_others = OTHER_CLINICS in counts.columns
    protected = suppress_table(
        counts, threshold=threshold or 1, row_totals=with_others, column_totals=True
    )
    table = protected.table
    hidden = protected.hidden & (threshold is not None)
    if threshold is None:
        table = counts.copy()
        if with_others:
            table["total"] = counts.sum(axis=1)
        table.loc["total"] = table.sum(axis=0)
    if with_others:
        table = table.drop(columns=OTHER_CLINICS).rename(columns={"total": ALL_CLINICS})
        hidden = hidden.drop(columns=OTHER_CLINICS).rename(columns={"total": ALL_CLINICS})
    if threshold is not None:
        interior = [row for row in table.index if row != "total"]
        hidden.loc[interior] = hide_zeros_beside_hidden(
            table.loc[interior], hidden.loc[interior], axis="columns"
        )
    shown = pd.DataFrame(index=table.index)
    for column in table.columns:
        total_hidden = bool(hidden.loc["total", column])
        total = float(table.loc["total", column]) if not total_hidden else np.nan
        cells = []
        for row in table.index:
            if hidden.loc[row, column]:
                cells.append(SUPPRESSED_MARK)
                continue
            value = int(table.loc[row, column])
            if row == "total" or not np.isfinite(total) or total == 0:
                cells.append(f"{value:,}")
            else:
                cells.append(f"{value:,} ({100.0 * value / total:.0f}%)")
        shown[column] = cells
    shown.index.name = counts.index.name
    return table_html(shown.reset_index(), caption=f"{caption}: patients (column %).")


def _baseline_table(context: ReportContext) -> str:
    baselines = context.selection.baselines
    wanted = context.reported_instruments
    rows = []
    for code in wanted:
        scores = baselines.loc[baselines["instrument"] == code, "baseline_score"]
        if scores.empty:
            continue
        rows.append(
            {
                "instrument": code,
                "patients": int(scores.size),
                "median": float(scores.median()),
                "lower quartile": float(scores.quantile(0.25)),
                "upper quartile": float(scores.quantile(0.75)),
            }
        )
    if not rows:
        return table_html(pd.DataFrame({"instrument": [], "patients": []}))
    frame = pd.DataFrame(rows)
    caption = (
        "Baseline scores (first score within the baseline window after enrolment): "
        "patients with a baseline, median and quartiles."
    )
    threshold = context.threshold
    if threshold is None:
        return table_html(frame, caption=caption, digits=1)
    # Every patient is due a baseline, and the completeness section publishes how many
    # were due: "patients" is protected as a part of them, so that due minus patients
    # (those without a baseline, hidden there when few) is not given back here.
    due = frame.assign(due=len(context.selection.patients))
    protected = protect_frame(
        due, counts=["patients", "due"], parts=[("patients", "due")], totals=False,
        threshold=threshold,
    )  # fmt: skip
    hidden = protected.hidden.drop(columns="due")
    # A median of more than `threshold` scores describes no one; only a small group hides it.
    few = small_cells(frame["patients"].to_numpy(), threshold=threshold)
    for column in ("median", "lower quartile", "upper quartile"):
        hidden[column] = few
    shown = frame.round(1).astype(object).where(~hidden, SUPPRESSED_MARK)
    html = table_html(shown, caption=caption)
    if bool(hidden.to_numpy().any()):
        html += note_html(
            f"{SUPPRESSED_MARK} hidden to protect privacy: counts from 1 to {threshold}, and "
            "counts whose difference from the patients due (in the completeness section) is "
            "that small, are not shown."
        )
    return html


def section_phase_flow(context: ReportContext) -> Section:
    """How stays in each phase ended: progressed, stepped down, dropped out, ...

    One bar per phase; segments are shares of the stays in that phase, with
    the small cells the privacy rule hides pooled into one grey segment.
    """
    section = Section("How patients moved through the phases")
    phases = context.selection.phases
    if phases.empty:
        section.add_note("No phase stays in this selection.", kind="note")
        return section
    names = context.selection.phase_names()
    counts = pd.crosstab(phases["phase"], phases["exit_reason"])
    # Every way of ending a stay gets a column, even when nobody ended that way: a table
    # whose columns depend on the data says which exits the clinic's patients took.
    extra = [c for c in counts.columns if c not in EXIT_ORDER]
    counts = counts.reindex(columns=[*EXIT_ORDER, *extra], fill_value=0)
    counts.index = [f"{p} {names.get(int(p), '')}".strip() for p in counts.index]
    counts.index.name = "phase"
    threshold = context.threshold
    hidden = pd.DataFrame(False, index=counts.index, columns=counts.columns)
    if threshold is not None:
        hidden = suppress_table(counts, threshold=threshold).hidden.loc[
            hidden.index, counts.columns
        ]
        hidden = hide_zeros_beside_hidden(counts, hidden, axis="rows")
    section.add_figure(
        _phase_flow_axes(counts, hidden),
        "Each bar is one phase; the segments show how the stays in that phase ended, as a "
        "share of all stays in it (a patient who stepped down and came back has two stays). "
        "Longer blue segments mean more patients moved up; red segments are dropouts; grey "
        "segments are still ongoing at the extract. Hatched segments pool small counts "
        "hidden for privacy.",
    )
    section.add_html(
        protected_crosstab_html(
            counts,
            threshold=threshold,
            caption="Phase stays by how they ended (counts).",
            index_name="phase",
            zeros_beside_hidden="rows",
        )
    )
    return section


def _phase_flow_axes(counts: pd.DataFrame, hidden: pd.DataFrame) -> plt.Axes:
    _fig, ax = plt.subplots(figsize=(8, 0.6 * len(counts) + 1.4))
    totals = counts.sum(axis=1).to_numpy(dtype=float)
    left = np.zeros(len(counts))
    y = np.arange(len(counts))[::-1]
    for column in counts.columns:
        shown = np.where(hidden[column].to_numpy(), 0.0, counts[column].to_numpy(dtype=float))
        share = np.divide(shown, totals, out=np.zeros_like(shown), where=totals > 0)
        ax.barh(y, share, left=left, color=EXIT_COLOURS.get(column, "#888"), label=column)
        left += share
    pooled = np.clip(1.0 - left, 0.0, 1.0)
    if (pooled > 1e-9).any():
        ax.barh(y, pooled, left=left, color="#dddddd", hatch="///", label="hidden (small)")
    ax.set_yticks(y, list(counts.index))
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel("share of stays in the phase")
    ax.legend(ncol=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return ax
