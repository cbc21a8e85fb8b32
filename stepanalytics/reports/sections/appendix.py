"""The data-quality appendix: what the data held, what was scored, what is missing.

A committee trusts numbers it can trace.  This appendix lists, for the
selection, how many scores each instrument has and from how many patients,
how questionnaires answered item by item were scored (and how many could
not be), which events were recorded, and the notes the loader made while
reading the data.  Counts pass through the small-cell rule.
"""

from __future__ import annotations

import pandas as pd

from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section
from stepanalytics.reports.sections.common import ENROLLED, protected_table_html


def _of_enrolled(*columns: str) -> list[tuple[str, str]]:
    return [(column, ENROLLED) for column in columns]


def section_data_quality(context: ReportContext) -> Section:
    """Appendix: data held, scoring outcomes, recorded events and loader notes."""
    section = Section("Appendix: data quality")
    selection = context.selection
    threshold = context.threshold
    # Every count of patients here is a part of the patients in the report, whose number
    # the title shows: the patients enrolled minus a count (e.g. without a baseline, which
    # the completeness section hides when few) must not be small either.
    enrolled = len(selection.patients)
    section.add_text(
        f"Source: {selection.source}. Patients in this report: the selection described at "
        "the top. Counts are of scores and patients in the selection."
    )
    assessments = selection.assessments
    if not assessments.empty:
        by_instrument = (
            assessments.groupby("instrument")
            .agg(scores=("score", "size"), patients=("patient_id", "nunique"))
            .reset_index()
        )
        baselines = selection.baselines.groupby("instrument")["patient_id"].nunique()
        by_instrument["with baseline"] = (
            by_instrument["instrument"].map(baselines).fillna(0).astype(int)
        )
        section.add_html(
            protected_table_html(
                by_instrument,
                counts=["scores", "patients", "with baseline"],
                parts=[("with baseline", "patients"), *_of_enrolled("patients", "with baseline")],
                enrolled=enrolled,
                totals=False,  # patients overlap across instruments: no total is published
                threshold=threshold,
                caption=(
                    "Scores held per instrument, the patients they come from, and the "
                    "patients with a baseline score (within the baseline window)."
                ),
            )
        )
    scoring = selection.scoring
    if not scoring.empty and {"instrument", "status"} <= set(scoring.columns):
        wanted = scoring[scoring["patient_id"].isin(selection.patients["patient_id"])]
        table = pd.crosstab(wanted["instrument"], wanted["status"]).reset_index()
        table.columns.name = None
        statuses = [c for c in table.columns if c != "instrument"]
        section.add_html(
            protected_table_html(
                table,
                counts=statuses,
                threshold=threshold,
                caption=(
                    "Questionnaires answered item by item and how they were scored: "
                    "'scored' (all items answered), 'scored_with_rule' (the instrument's "
                    "published missing-item rule applied), 'not_scorable' (too many items "
                    "missing; no score was guessed)."
                ),
            )
        )
    events = selection.events
    if not events.empty:
        counts = (
            events.groupby("event")
            .agg(events=("day", "size"), patients=("patient_id", "nunique"))
            .reset_index()
        )
        section.add_html(
            protected_table_html(
                counts,
                counts=["events", "patients"],
                parts=_of_enrolled("patients"),
                enrolled=enrolled,
                totals=False,  # patients overlap across event types
                threshold=threshold,
                caption="Events recorded, and the patients they concern.",
            )
        )
    without_scores = int(
        (~selection.patients["patient_id"].isin(assessments["patient_id"])).sum()
        if not assessments.empty
        else len(selection.patients)
    )
    section.add_html(
        protected_table_html(
            pd.DataFrame({"check": ["patients without any score"], "patients": [without_scores]}),
            counts=["patients"],
            parts=_of_enrolled("patients"),
            enrolled=enrolled,
            totals=False,
            threshold=threshold,
        )
    )
    if selection.notes:
        section.add_heading("Notes made while loading the data")
        for note in selection.notes:
            section.add_text(note)
    return section
