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

import pandas as pd

from stepanalytics.qi.suppression import SUPPRESSED_MARK, protect_frame
from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section, note_html, table_html
from stepanalytics.reports.sections.common import optional_function, protected_table_html

COMPLETENESS_CAPTION = (
    "Each line is the share of patients due a measurement at each stage who had one "
    "(baseline, the end of each phase, the end of care, follow-up). A steep drop means "
    "outcomes at that stage rest on a selected group of patients. Points resting on small "
    "counts are not drawn."
)


def section_completeness(context: ReportContext) -> Section:
    """Completeness funnel of the outcomes, and the attrition check."""
    from stepanalytics.qi.completeness import attrition_check, completeness_funnel

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
    mine = completeness_funnel(context.selection, instruments=codes, by=())
    label = f"clinic {context.clinic}" if context.clinic else "all clinics"
    shown = mine.table.assign(group=label)
    if context.clinic:
        pooled = completeness_funnel(context.cohort, instruments=codes, by=())
        shown = pd.concat([shown, pooled.table.assign(group="all clinics")], ignore_index=True)
    first = codes[0]
    plot = optional_function("stepanalytics.plots.qi", "plot_completeness")
    if plot is not None:
        figure_data = replace(mine, table=shown, by=("group",))
        section.add_figure(
            plot(figure_data, instrument=first, threshold=threshold),
            f"{first}: " + COMPLETENESS_CAPTION,
        )
    detail = shown[shown["instrument"] == first]
    section.add_html(
        protected_table_html(
            detail[["group", "stage", "eligible", "measured", "percent"]].rename(
                columns={"eligible": "due", "percent": "measured %"}
            ),
            counts=["due", "measured"],
            derived={"measured %": ["measured", "due"]},
            parts=[("measured", "due")],
            totals=False,
            threshold=threshold,
            caption=f"{first}: patients due a measurement at each stage, and measured.",
        )
    )
    if len(codes) > 1:
        section.add_html(_compact(mine.table, codes, threshold, label))
    _attrition(section, attrition_check(context.selection, instruments=codes), threshold)
    return section


def _compact(table: pd.DataFrame, codes: list[str], threshold: int, label: str) -> str:
    """Measured % per stage (rows) and instrument (columns), small cells hidden."""
    protected = protect_frame(
        table[["instrument", "stage", "stage_order", "eligible", "measured", "percent"]],
        counts=["eligible", "measured"],
        derived={"percent": ["measured", "eligible"]},
        parts=[("measured", "eligible")],
        totals=False,
        threshold=threshold,
    )
    cells = protected.table["percent"].round(0).astype(object)
    cells = cells.where(~protected.hidden["percent"], SUPPRESSED_MARK)
    frame = protected.table[["instrument", "stage", "stage_order"]].assign(cell=cells)
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
    table = check.table
    if table.empty:
        return
    shown = table[
        ["instrument", "n_followed", "mean_followed", "n_lost", "mean_lost", "std_difference"]
    ].rename(
        columns={
            "n_followed": "followed up",
            "mean_followed": "baseline mean (followed)",
            "n_lost": "lost",
            "mean_lost": "baseline mean (lost)",
            "std_difference": "standardised difference",
        }
    )
    derived = {
        "baseline mean (followed)": ["followed up"],
        "baseline mean (lost)": ["lost"],
        "standardised difference": ["followed up", "lost"],
    }
    section.add_heading("Were the patients lost to follow-up different?")
    section.add_html(
        protected_table_html(
            shown,
            counts=["followed up", "lost"],
            derived=derived,
            totals=False,
            threshold=threshold,
            caption=(
                "Baseline scores of patients with and without a follow-up score. A "
                "standardised difference beyond ±0.1 means those followed up were not typical "
                "of all patients, so outcome figures may be too good or too bad."
            ),
            digits=2,
        )
    )
    # The analysis' own warnings quote the differences; say the same from the protected
    # table so that a hidden difference is not given away in words.
    hidden = protect_frame(
        shown, counts=["followed up", "lost"], derived=derived, totals=False, threshold=threshold
    ).hidden["standardised difference"]
    imbalanced = table["imbalanced"].astype(bool)
    visible = sorted(table.loc[imbalanced & ~hidden, "instrument"])
    masked = sorted(table.loc[imbalanced & hidden, "instrument"])
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
