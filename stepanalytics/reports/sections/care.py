"""Protocol adherence and safety: how care followed the protocol, and what went wrong.

Adherence compares what happened with the progression criteria of
``protocol.yaml``: progressions before the criteria were met (premature),
patients who met them and waited (delayed), and patients without meaningful
improvement for weeks (stalled).  Safety shows flare-ups, red flags
(including PHQ-9 item 9), pauses and adverse events per 100 patient-weeks
in care, with U-chart limits across clinics.  Tables are the analyses'
committee tables (small cells hidden); a clinic's own worklist of patients
is never part of a committee report.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from stepanalytics.qi.suppression import SUPPRESSED_MARK
from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section, note_html, table_html
from stepanalytics.reports.sections.common import optional_function, phase_labels, protect_text

ADHERENCE_CAPTION = (
    "For each clinic, the share of progressions made before the protocol's criteria were met "
    "(premature), of patients who met the criteria but were not moved up within the allowed "
    "days (delayed), and of patients checked for progress who showed no meaningful "
    "improvement over the stall window (stalled), with 95% intervals. Lower is better for "
    "all three. Bars resting on small counts are not drawn."
)
_ADHERENCE_COLUMNS = {
    "phase": "phase",
    "stays": "stays",
    "progressions": "progressions",
    "premature": "premature",
    "pct_premature": "premature %",
    "met_criteria": "met criteria",
    "delayed": "delayed",
    "pct_delayed": "delayed %",
    "stall_checked": "checked for stall",
    "stalled": "stalled",
    "pct_stalled": "stalled %",
}
_SAFETY_COLUMNS = {
    "phase": "phase",
    "event": "event",
    "events": "events",
    "patient_weeks": "patient-weeks",
    "rate": "per 100 patient-weeks",
    "ci_lower": "CI lower",
    "ci_upper": "CI upper",
    "centre": "all clinics",
    "signal": "signal",
}


def _display(
    protected: Any, columns: dict[str, str], rows: pd.Series | None, names: dict[int, str]
) -> pd.DataFrame:
    """A committee table's rows of interest, rounded, hidden cells marked."""
    table = protected.table if rows is None else protected.table[rows.to_numpy()]
    table = table.assign(phase=phase_labels(table["phase"], names))
    hidden = protected.hidden if rows is None else protected.hidden[rows.to_numpy()]
    shown = pd.DataFrame(index=table.index)
    for column, label in columns.items():
        if column not in table.columns:
            continue
        values = table[column]
        if pd.api.types.is_float_dtype(values):
            values = values.round(1)
        shown[label] = values.astype(object).where(~hidden[column], SUPPRESSED_MARK)
    return shown.where(shown.notna(), "")


def section_adherence(context: ReportContext) -> Section:
    """Premature, delayed and stalled progression by phase, against the protocol."""
    section = Section("Protocol adherence")
    result = context.peers.adherence
    section.add_text(
        f"Delayed: criteria met but no move up within {result.delay_days} days. Stalled: no "
        f"meaningful improvement over {result.stall_weeks} weeks. Neither premature escalation "
        "nor needless delay serves patients; both are worth discussing case by case within the "
        "clinic (its own worklist, not part of this report)."
    )
    threshold = context.suppression_threshold
    protected = result.committee_table(threshold=threshold)
    rows = None
    if context.clinic:
        rows = result.table["clinic_id"].astype(str) == context.clinic
    columns = (
        _ADHERENCE_COLUMNS if context.clinic else {"clinic_id": "clinic", **_ADHERENCE_COLUMNS}
    )
    section.add_html(
        table_html(
            _display(protected, columns, rows, context.selection.phase_names()),
            caption=(
                "Progression rules by phase. Percentages have as denominator the column to "
                f"their left. {SUPPRESSED_MARK}: hidden to protect privacy."
            ),
        )
    )
    plot = optional_function("stepanalytics.plots.qi", "plot_adherence")
    if plot is not None:
        section.add_figure(plot(result, threshold=threshold), ADHERENCE_CAPTION)
    for warning in result.warnings:
        section.add_note(protect_text(warning, threshold=threshold))
    return section


def section_safety(context: ReportContext) -> Section:
    """Safety events per 100 patient-weeks by phase, flagged against all clinics."""
    section = Section("Safety")
    section.add_text(
        "Events per 100 patient-weeks in care, so that clinics keeping patients longer are not "
        "penalised. 'All clinics' is the pooled rate of the phase; the signal column marks a "
        "rate above (or below) the U-chart limits around it, that is more (or fewer) events "
        "than chance explains."
    )
    result = context.peers.safety
    threshold = context.suppression_threshold
    protected = result.committee_table(threshold=threshold)
    rows = None
    if context.clinic:
        rows = result.table["clinic_id"].astype(str) == context.clinic
    columns = _SAFETY_COLUMNS if context.clinic else {"clinic_id": "clinic", **_SAFETY_COLUMNS}
    shown = _display(protected, columns, rows, context.selection.phase_names())
    section.add_html(
        table_html(
            shown,
            caption=(
                "Safety events by phase. phq9_item9: a PHQ-9 answer above 0 on item 9 "
                f"(thoughts of self-harm), found while scoring. {SUPPRESSED_MARK}: hidden."
            ),
        )
    )
    if "signal" in shown.columns and shown["signal"].isin(["above"]).any():
        section.add_html(
            note_html(
                "At least one safety rate lies above its limit: review these events with the "
                "clinic's safety lead.",
                kind="warning",
            )
        )
    for warning in result.warnings:
        section.add_note(protect_text(warning, threshold=threshold))
    return section
