"""Completeness: who was measured at each stage, and whether those lost differ.

Outcome figures mean little when most patients are not followed up: the
registries this field relies on lose most of their patients between
referral and follow-up.  This section shows the share of patients due a
measurement at each stage (baseline, the end of each phase, the end of
care, follow-up) who had one: in full for the first outcome, the clinic
beside all clinics, and as a compact table for the others; then it compares
the baseline scores of patients followed up with those lost.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from stepanalytics.qi.suppression import SUPPRESSED_MARK, ProtectedFrame, small_cells
from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section, note_html, table_html
from stepanalytics.reports.sections.common import optional_function

COMPLETENESS_CAPTION = (
    "Each line is the share of patients due a measurement at each stage who had one "
    "(baseline, the end of each phase, the end of care, follow-up). A steep drop means "
    "outcomes at that stage rest on a selected group of patients. Points resting on small "
    "counts are not drawn."
)


def section_completeness(context: ReportContext) -> Section:
    """Completeness funnel of the outcomes, and the attrition check."""
    from stepanalytics.qi.completeness import attrition_check

    section = Section("Completeness of measurement")
    section.add_text(
        "Of the patients due a measurement at each stage, how many had one. The report's "
        "outcome figures are only as representative as these shares are high."
    )
    codes = context.reported_instruments
    if not codes:
        section.add_note("No outcome instrument has scores in this selection.")
        return section
    threshold = context.suppression_threshold
    label = f"clinic {context.clinic}" if context.clinic else "all clinics"
    if context.clinic:
        shown, hidden, result = _clinic_beside_all(context, codes, threshold, label)
    else:
        # The all-clinics line of this report is the one every clinic's report shows:
        # the published totals of the protected clinic-by-clinic table.
        result = clinic_funnel(context, codes)
        shown, hidden = _pooled_rows(result, result.committee_table(threshold=threshold))
    first = codes[0]
    plot = optional_function("stepanalytics.plots.qi", "plot_completeness")
    if plot is not None:
        # The figure draws the same protected values as the tables, nothing more.
        drawn = shown.assign(percent=shown["percent"].mask(hidden["percent"]))
        figure_data = replace(result, table=drawn.reset_index(drop=True), by=("group",))
        section.add_figure(
            plot(figure_data, instrument=first, threshold=threshold),
            f"{first}: " + COMPLETENESS_CAPTION,
        )
    is_first = (shown["instrument"] == first).to_numpy()
    section.add_html(
        _detail_html(
            shown[is_first],
            hidden[is_first],
            threshold=threshold,
            caption=f"{first}: patients due a measurement at each stage, and measured.",
        )
    )
    if len(codes) > 1:
        mine = (shown["group"] == label).to_numpy()
        section.add_html(_compact(shown[mine], hidden[mine], codes, label))
    _attrition(section, attrition_check(context.selection, instruments=codes), threshold)
    return section


_FUNNEL_COLUMNS = [
    "group",
    "instrument",
    "stage",
    "stage_order",
    "eligible",
    "measured",
    "percent",
    "ci_lower",
    "ci_upper",
]


def _clinic_beside_all(
    context: ReportContext, codes: list[str], threshold: int, label: str
) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """The clinic's funnel and all clinics', from one protected clinic-by-clinic table.

    All clinics minus the clinic is the other clinics' count; protected
    apart, the two rows could leave that difference small.  So both come
    from the committee table of the funnel split by clinic, protected
    against each (instrument, stage) total over clinics: the clinic's rows
    are its rows there, "all clinics" is that table's published totals
    (withheld ones shown as ``*``), and every report of every clinic shows
    cells of the same protected table.

    Returns the rows shown (``group`` is the clinic's label or "all
    clinics"), which of their ``eligible``, ``measured`` and ``percent``
    are hidden, and the funnel result (for the figure).
    """
    full = clinic_funnel(context, codes)
    protected = full.committee_table(threshold=threshold)
    here = (full.table["clinic_id"] == context.clinic).to_numpy()
    mine = full.table.loc[here].assign(group=label)
    hidden = protected.hidden.loc[here, ["eligible", "measured", "percent"]]
    if not context.compare_with_all:
        return mine[_FUNNEL_COLUMNS].reset_index(drop=True), hidden.reset_index(drop=True), full
    pooled, pooled_hidden = _pooled_rows(full, protected)
    shown = pd.concat([mine[_FUNNEL_COLUMNS], pooled], ignore_index=True)
    hidden = pd.concat([hidden, pooled_hidden], ignore_index=True)
    return shown, hidden, full


def clinic_funnel(context: ReportContext, codes: list[str]) -> Any:
    """The completeness funnel of every clinic (from the peer results), for these outcomes."""
    funnel = context.peers.completeness
    keep = funnel.table["instrument"].isin(codes).to_numpy()
    return replace(funnel, table=funnel.table[keep].reset_index(drop=True))


def _pooled_rows(full: Any, protected: ProtectedFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The "all clinics" funnel: the published totals of the clinic-by-clinic table.

    Both the all-clinics report and every clinic's report show these rows,
    so all clinics minus a clinic is always a difference of cells of one
    protected table.  A withheld total (``<NA>``) is hidden, and so is the
    percentage computed from it.

    Returns the rows (``group`` "all clinics", in the funnel's stage order)
    and which of their ``eligible``, ``measured`` and ``percent`` are hidden.
    """
    totals = protected.totals(("instrument", "stage"))
    order = full.table.drop_duplicates(["instrument", "stage"])[
        ["instrument", "stage", "stage_order"]
    ]
    pooled = order.merge(totals, on=["instrument", "stage"], how="left")
    hidden = pd.DataFrame(
        {
            "eligible": pooled["eligible"].isna().to_numpy(),
            "measured": pooled["measured"].isna().to_numpy(),
        }
    )
    hidden["percent"] = hidden["eligible"] | hidden["measured"]
    eligible = pooled["eligible"].astype("Float64").fillna(0).to_numpy(dtype=float)
    measured = pooled["measured"].astype("Float64").fillna(0).to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = np.where(eligible > 0, 100 * measured / eligible, np.nan)
    pooled = pooled.assign(
        group="all clinics",
        eligible=eligible.astype(np.int64),
        measured=measured.astype(np.int64),
        percent=percent,
        ci_lower=np.nan,  # not shown; the figure's protection needs the columns
        ci_upper=np.nan,
    )
    return pooled[_FUNNEL_COLUMNS].reset_index(drop=True), hidden


def _detail_html(
    detail: pd.DataFrame, hidden: pd.DataFrame, *, threshold: int, caption: str
) -> str:
    """The first outcome's funnel, the clinic beside all clinics, protected.

    ``hidden`` comes from the protection (:func:`_clinic_beside_all`).  As a
    second guard, the all-clinics row minus the clinic's row (the other
    clinics' count) is checked: where that difference is small, the
    clinic's count is hidden too.
    """
    table = detail[["group", "stage", "eligible", "measured", "percent"]].reset_index(drop=True)
    table = table.rename(columns={"eligible": "due", "percent": "measured %"})
    mask = hidden.reset_index(drop=True).rename(
        columns={"eligible": "due", "percent": "measured %"}
    )
    mask = mask.reindex(columns=table.columns, fill_value=False)
    groups = table["group"].unique()
    if len(groups) == 2:
        _hide_other_clinics(table, mask, clinic=str(groups[0]), threshold=threshold)
    mask["measured %"] |= mask["due"] | mask["measured"]
    table["measured %"] = table["measured %"].round(1)
    shown = table.astype(object).where(~mask, SUPPRESSED_MARK)
    html = table_html(shown, caption=caption)
    if bool(mask.to_numpy().any()):
        html += note_html(
            f"{SUPPRESSED_MARK} hidden to protect privacy: counts from 1 to {threshold}, and "
            "values that would let a hidden count be worked out (also as all clinics minus "
            "this clinic), are not shown."
        )
    return html


def _hide_other_clinics(
    detail: pd.DataFrame, hidden: pd.DataFrame, *, clinic: str, threshold: int
) -> None:
    """Hide the clinic's counts where all clinics minus the clinic is a small count."""
    mine = detail["group"] == clinic
    for stage in detail["stage"].unique():
        here = detail.index[mine & (detail["stage"] == stage)]
        there = detail.index[~mine & (detail["stage"] == stage)]
        if len(here) != 1 or len(there) != 1:
            continue
        c, a = here[0], there[0]
        changed = True
        while changed:
            changed = False
            for columns in (("due",), ("measured",), ("due", "measured")):
                if any(hidden.at[row, col] for row in (c, a) for col in columns):
                    continue  # the difference cannot be worked out
                # one column: others' due or measured; both: others' not measured
                value = [float(detail.at[a, col]) - float(detail.at[c, col]) for col in columns]
                other = value[0] if len(value) == 1 else value[0] - value[1]
                if small_cells([other], threshold=threshold)[0]:
                    hidden.at[c, columns[-1]] = True
                    changed = True


def _compact(shown: pd.DataFrame, hidden: pd.DataFrame, codes: list[str], label: str) -> str:
    """Measured % per stage (rows) and instrument (columns), hidden cells as ``*``."""
    cells = shown["percent"].round(0).astype(object).where(~hidden["percent"], SUPPRESSED_MARK)
    frame = shown[["instrument", "stage", "stage_order"]].assign(cell=cells)
    wide = frame.pivot_table(
        index=["stage_order", "stage"], columns="instrument", values="cell", aggfunc="first"
    )
    wide = wide.reindex(columns=codes).reset_index().drop(columns="stage_order")
    wide = wide.where(wide.notna(), "–")
    wide.columns.name = None
    return table_html(
        wide,
        caption=f"Measured % at each stage, every outcome ({label}). {SUPPRESSED_MARK}: hidden.",
    )


def _attrition(section: Section, check: Any, threshold: int) -> None:
    """Baseline of those followed up against those lost, without their counts.

    Those followed up here are the patients measured at follow-up who had a
    baseline, those lost the unmeasured ones with a baseline.  Their counts
    differ from the funnel's (measured, not measured) by the patients
    without a baseline, often a handful: published side by side, the two
    tables would give those few away.  So this table shows no counts (the
    funnel above has them); the means and the standardised difference are
    shown only when both groups hold more than ``threshold`` patients.
    """
    table = check.table
    if table.empty:
        return
    shown = table[["instrument", "mean_followed", "mean_lost", "std_difference"]].rename(
        columns={
            "mean_followed": "baseline mean (followed up)",
            "mean_lost": "baseline mean (lost)",
            "std_difference": "standardised difference",
        }
    )
    followed = table["n_followed"].to_numpy(dtype=float)
    lost = table["n_lost"].to_numpy(dtype=float)
    # 0..threshold: a mean of a few patients, or a "–" beside a hidden mean that says
    # where the few patients are (all lost, none followed), describes individuals.
    few = (followed <= threshold) | (lost <= threshold)
    values = shown.drop(columns="instrument").round(2).astype(object)
    values = values.where(shown.drop(columns="instrument").notna(), "–")
    values[few] = SUPPRESSED_MARK
    section.add_heading("Were the patients lost to follow-up different?")
    section.add_html(
        table_html(
            pd.concat([shown[["instrument"]], values], axis=1),
            caption=(
                "Baseline scores of the patients due a follow-up, with and without a "
                "follow-up score (their numbers are in the funnel above). A standardised "
                "difference beyond ±0.1 means those followed up were not typical of all "
                "patients, so outcome figures may be too good or too bad."
            ),
        )
    )
    if bool(few.any()):
        section.add_html(
            note_html(
                f"{SUPPRESSED_MARK} not shown: {threshold} or fewer patients followed up, or "
                "lost, with a baseline score."
            )
        )
    # The analysis' own warnings quote the differences; say the same from the protected
    # table so that a hidden difference is not given away in words.
    imbalanced = table["imbalanced"].astype(bool).to_numpy()
    visible = sorted(table.loc[imbalanced & ~few, "instrument"])
    masked = sorted(table.loc[imbalanced & few, "instrument"])
    if visible:
        section.add_html(
            note_html(
                f"Patients lost to follow-up differed at baseline from those followed "
                f"({', '.join(visible)}): outcome figures may describe a selected group.",
                kind="warning",
            )
        )
    if masked:
        section.add_html(
            note_html(
                f"For {', '.join(masked)} the patients lost (or followed) are too few to show "
                "the comparison; treat the outcome figures as describing a selected group.",
                kind="warning",
            )
        )
