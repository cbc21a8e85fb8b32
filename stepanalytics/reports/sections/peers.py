"""The clinic among its peers: risk-adjusted outcomes, funnel and caterpillar plots.

The numbers come from :class:`~stepanalytics.reports.shared.PeerResults`
(computed once per batch).  Tables pass through each comparison's
``committee_table`` (the small-cell rule with complementary suppression);
figures are drawn from the same protected table, so a clinic whose counts
are hidden is not drawn either (its position on the plot would give the
count back).  Clinics are listed by id, never ranked.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from stepanalytics.qi.suppression import SUPPRESSED_MARK
from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section, table_html
from stepanalytics.reports.sections.common import optional_function, protect_text, unavailable
from stepanalytics.reports.shared import OutcomeComparison

FUNNEL_CAPTION = (
    "Each dot is a clinic: across, how many patients it had for this outcome; up, its "
    "risk-adjusted share. The funnel lines are the range expected from chance alone around "
    "the overall share (inner 95%, outer 99.8%), widened for the variation real clinics show. "
    "A dot outside the outer lines is unlikely to be chance and worth a closer look; inside "
    "means no evidence of a difference. Clinics with hidden (small) counts are not drawn."
)
CATERPILLAR_CAPTION = (
    "Each line is a clinic's risk-adjusted share after borrowing strength from the other "
    "clinics (empirical Bayes), with its 95% interval; the vertical line is the overall "
    "share. Small clinics are pulled towards the overall share because their own data say "
    "little. Clinics are sorted by estimate only to ease reading: this is not a ranking, and "
    "overlapping intervals mean the data cannot tell the clinics apart. Clinics with hidden "
    "(small) counts are not drawn."
)
_SHOWN_COLUMNS = {
    "clinic_id": "clinic",
    "n": "patients",
    "observed": "observed",
    "expected": "expected",
    "oe_ratio": "observed / expected",
    "crude": "crude %",
    "risk_adjusted": "risk-adjusted %",
    "shrunken": "shrunken %",
    "position": "funnel position",
}
_PERCENT_COLUMNS = ("crude", "risk_adjusted", "shrunken")


def _display_table(comparison: OutcomeComparison, threshold: int) -> pd.DataFrame:
    """The committee table of one comparison, formatted for people."""
    result = comparison.result
    protected = result.committee_table(threshold=threshold)
    table = protected.table
    hidden = protected.hidden
    shown = pd.DataFrame(index=table.index)
    binary = result.kind == "binary"
    for column, label in _SHOWN_COLUMNS.items():
        if column not in table.columns:
            continue
        values = table[column]
        if column in ("n", "observed") and (binary or column == "n"):
            text = values.map(lambda v: "" if pd.isna(v) else f"{round(float(v)):,}")
        elif column in _PERCENT_COLUMNS and binary:
            text = values.map(lambda v: "" if pd.isna(v) else f"{100 * float(v):.0f}%")
        elif column in ("expected", "oe_ratio") or pd.api.types.is_float_dtype(values):
            text = values.map(lambda v: "" if pd.isna(v) else f"{float(v):.2f}")
        else:
            text = values.map(lambda v: "" if pd.isna(v) else str(v))
        if not binary and column in _PERCENT_COLUMNS:
            label = label.replace(" %", " mean")
        shown[label] = text.where(~hidden[column], SUPPRESSED_MARK)
    return shown


def _visible(result: Any, threshold: int) -> tuple[Any, list[str]]:
    """The comparison restricted to clinics whose counts may be shown."""
    protected = result.committee_table(threshold=threshold)
    count_columns = [c for c in ("n", "observed") if c in protected.hidden.columns]
    hidden_rows = protected.hidden[count_columns].any(axis=1).to_numpy()
    unit = result.unit
    keep = set(result.table.loc[~hidden_rows, unit].astype(str))
    dropped = sorted(set(result.table[unit].astype(str)) - keep)
    return keep, dropped


def _funnel_figure(section: Section, result: Any, clinic: str | None, threshold: int) -> None:
    plot = optional_function("stepanalytics.plots.qi", "plot_funnel")
    if plot is None or result.funnel is None:
        unavailable(section, "The funnel plot", "the QI plotting functions are not available.")
        return
    keep, _ = _visible(result, threshold)
    if not keep:
        section.add_note(
            "No clinic has counts large enough to be drawn on the funnel plot without "
            "revealing small numbers."
        )
        return
    ax = plot(result, threshold=threshold)
    if clinic is not None and clinic in keep:
        _highlight(ax, result.funnel, clinic)
    section.add_figure(ax, FUNNEL_CAPTION)


def _highlight(ax: Any, funnel: Any, clinic: str) -> None:
    """Ring the report's own clinic on a funnel plot and name it."""
    row = funnel.table[funnel.table[funnel.unit].astype(str) == clinic]
    if row.empty:
        return
    x, y = float(row["precision"].iat[0]), float(row["estimate"].iat[0])
    ax.scatter([x], [y], s=160, facecolors="none", edgecolors="#d9a13b", linewidths=2, zorder=4)
    ax.annotate(clinic, (x, y), xytext=(6, -12), textcoords="offset points", fontsize=9)


def _caterpillar_figure(section: Section, result: Any, threshold: int) -> None:
    plot = optional_function("stepanalytics.plots.qi", "plot_caterpillar")
    if plot is None or result.shrinkage is None:
        return
    keep, _ = _visible(result, threshold)
    if not keep:
        return
    section.add_figure(plot(result, threshold=threshold), CATERPILLAR_CAPTION)


def _comparisons(context: ReportContext) -> list[OutcomeComparison]:
    wanted = set(context.reported_instruments)
    return [c for c in context.peers.comparisons if c.instrument in wanted]


def section_peer_comparison(context: ReportContext) -> Section:
    """How the clinic's outcomes compare with all clinics', after case-mix adjustment.

    For a clinic: one row per outcome with its observed and expected
    numbers and where it lies on the funnel, then a funnel plot per outcome
    with the clinic highlighted.  For all clinics: the benchmark tables.
    """
    section = Section("Outcomes compared with other clinics (risk-adjusted)")
    peers = context.peers
    section.add_text(
        "Each outcome is whether a patient reached the minimal important change on the "
        f"measure at about {peers.outcome_day // 7} weeks. Expected numbers come from one "
        "case-mix model fitted on all clinics (baseline severity, age band, sex, "
        "compensation claim, pain duration): an observed / expected ratio above 1 means more "
        "patients improved than the clinic's case mix predicts. Clinics are not ranked."
    )
    comparisons = _comparisons(context)
    if not comparisons:
        return unavailable(section, "A comparison with other clinics", "no outcome to compare.")
    if context.clinic is None:
        for comparison in comparisons:
            _benchmark_block(section, comparison, context, highlight=None)
        return section
    rows = []
    for comparison in comparisons:
        if comparison.result is None:
            rows.append({"outcome": comparison.label, "note": comparison.problem or ""})
            continue
        shown = _display_table(comparison, context.suppression_threshold)
        mine = comparison.result.table[comparison.result.unit].astype(str) == context.clinic
        if not mine.any():
            rows.append({"outcome": comparison.label, "note": "no patient with this outcome"})
            continue
        row = shown.loc[mine.to_numpy()].iloc[0].drop(labels=["clinic"]).to_dict()
        rows.append({"outcome": comparison.label, **row})
    section.add_html(
        table_html(
            pd.DataFrame(rows).fillna(""),
            caption=(
                f"Clinic {context.clinic} on each outcome. {SUPPRESSED_MARK}: hidden to "
                "protect privacy (small counts, or values that would reveal them)."
            ),
        )
    )
    for comparison in comparisons:
        if comparison.result is None:
            continue
        section.add_heading(comparison.label)
        _funnel_figure(section, comparison.result, context.clinic, context.suppression_threshold)
    return section


def _benchmark_block(
    section: Section, comparison: OutcomeComparison, context: ReportContext, highlight: str | None
) -> None:
    section.add_heading(comparison.label)
    threshold = context.suppression_threshold
    if comparison.result is None:
        reason = protect_text(comparison.problem or "it could not be made.", threshold=threshold)
        unavailable(section, "This comparison", reason)
        return
    section.add_html(
        table_html(
            _display_table(comparison, threshold),
            caption=(
                "One row per clinic, in id order (not a ranking). Observed and expected are "
                "numbers of patients; the funnel position says whether the clinic lies inside "
                f"the limits expected from chance. {SUPPRESSED_MARK}: hidden to protect privacy."
            ),
        )
    )
    _funnel_figure(section, comparison.result, highlight, threshold)
    _caterpillar_figure(section, comparison.result, threshold)
    for warning in comparison.result.warnings:
        section.add_note(protect_text(warning, threshold=threshold))


def section_benchmark_outcomes(context: ReportContext) -> Section:
    """All clinics side by side on every outcome, risk-adjusted (the benchmark report)."""
    section = Section("Outcomes by clinic (risk-adjusted)")
    peers = context.peers
    section.add_text(
        "For each measure: the share of patients reaching the minimal important change at "
        f"about {peers.outcome_day // 7} weeks, compared across clinics after adjusting for "
        "case mix with one model fitted on all clinics. Read the funnel plot, not the order "
        "of the rows: only a clinic outside the limits differs by more than chance."
    )
    comparisons = _comparisons(context)
    if not comparisons:
        return unavailable(section, "A comparison of clinics", "no outcome to compare.")
    for comparison in comparisons:
        _benchmark_block(section, comparison, context, highlight=context.highlight)
    return section
