"""Control charts over time: is the clinic stable, improving or drifting?

Statistical process control separates common-cause variation from signals:
points outside 3-sigma limits, and runs breaking the Anhøj rules (a long
run on one side of the centre, too few crossings).  Charts are by calendar
quarter up to the end of the report period, from the patients enrolled so
far (:attr:`ReportContext.history`).

Privacy: a point's rate times its denominator gives back its count, so a
chart is drawn only when every point rests on counts above the small-cell
threshold (or on zero); otherwise the section says so.
"""

from __future__ import annotations

import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.qi.spc import ControlChart
from stepanalytics.qi.suppression import small_cells
from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section
from stepanalytics.reports.sections.common import optional_function

#: Numbers the privacy check reads, and the chart itself.
Built = tuple[pd.DataFrame, ControlChart] | None
SAFETY_EVENT = "flare_up"
CHART_CAPTION = (
    "{what}. Each point is one quarter; the middle line is the average, the outer lines are "
    "the limits expected from chance (they are wider in quarters with fewer patients). Red "
    "points lie outside the limits; a dashed red centre line means a run of points on one "
    "side of it (Anhøj rules): a real shift worth looking into, for better or worse."
)


def _quarter(month: str) -> str:
    return f"{month[:4]}Q{(int(month[5:7]) - 1) // 3 + 1}"


def _safe(
    counts: pd.Series,
    denominators: pd.Series | None,
    threshold: int,
    *,
    patients: pd.Series | None = None,
) -> bool:
    """True when no count (nor denominator minus count, nor patients at risk) is small.

    ``patients`` is, per point, the number of patients the point describes
    (for a rate per patient-week, the most patients in care in any month of
    the quarter): a rate of a few patients describes them even when its
    denominator is time.
    """
    bad = small_cells(counts.to_numpy(dtype=float), threshold=threshold)
    if patients is not None:
        bad |= small_cells(patients.to_numpy(dtype=float), threshold=threshold)
    if denominators is not None:
        rest = denominators.to_numpy(dtype=float) - counts.to_numpy(dtype=float)
        bad |= small_cells(denominators.to_numpy(dtype=float), threshold=threshold)
        bad |= small_cells(rest, threshold=threshold)
    return not bool(bad.any())


def section_control_charts(context: ReportContext) -> Section:
    """Quarterly control charts of flare-ups (U chart) and MCID responders (P chart)."""
    section = Section("Over time: control charts")
    section.add_text(
        "Quarterly charts up to the end of the report period. They show whether the clinic's "
        "results are stable, or have shifted, for example after a change in the protocol."
    )
    plot = optional_function("stepanalytics.plots.qi", "plot_control_chart")
    if plot is None:
        section.add_note("Control charts are not available in this build.", kind="unavailable")
        return section
    threshold = context.suppression_threshold
    for build in (_safety_chart, _responder_chart):
        try:
            built, what = build(context)
        except (AnalysisError, UsageError) as err:
            section.add_note(f"A control chart could not be drawn: {err}", kind="unavailable")
            continue
        if built is None:
            continue
        data, chart = built
        if not _safe(
            data["count"], data.get("denominator"), threshold, patients=data.get("patients")
        ):
            section.add_note(
                f"{what}: too few patients per quarter to draw a chart without revealing "
                "small counts; see the tables above for the period as a whole.",
                kind="unavailable",
            )
            continue
        section.add_figure(plot(chart), CHART_CAPTION.format(what=what))
    return section


def _safety_chart(context: ReportContext) -> tuple[Built, str]:
    from stepanalytics.qi.safety import safety_series
    from stepanalytics.qi.spc import control_chart

    series = safety_series(context.history, event=SAFETY_EVENT, clinic_id=context.clinic)
    if context.period is not None:
        series = series[series["month"] <= context.period.last_month]
    if series.empty:
        return None, ""
    series = series.assign(quarter=series["month"].map(_quarter))
    by_quarter = series.groupby("quarter", sort=True)
    quarterly = by_quarter[["events", "patient_weeks"]].sum().reset_index()
    # Patients in care differ from month to month; the quarter's busiest month is a
    # floor for the patients a point describes (a sum would count them up to 3 times).
    patients = by_quarter["patients"].max().to_numpy()
    what = "Flare-ups per 100 patient-weeks (U chart)"
    chart = control_chart(
        quarterly,
        chart="u",
        count="events",
        denominator="patient_weeks",
        period="quarter",
        multiply=100,
        title=what,
    )
    # exposure is time, not people: the patients behind each point are checked instead
    data = pd.DataFrame({"count": quarterly["events"], "patients": patients})
    return (data, chart), what


def _responder_chart(context: ReportContext) -> tuple[Built, str]:
    from stepanalytics.qi.indicators import outcome_indicators
    from stepanalytics.qi.spc import control_chart

    codes = context.reported_instruments
    if not codes:
        return None, ""
    history = context.history
    if context.clinic:
        history = history.subset(clinics=[context.clinic])
    result = outcome_indicators(history, instruments=codes[:1], by=(), period="quarter")
    table = result.table.sort_values("period")
    if len(table) < 2:
        return None, ""
    what = f"{codes[0]}: % reaching the MCID by enrolment quarter (P chart)"
    chart = control_chart(
        table,
        chart="p",
        count="responders",
        denominator="n",
        period="period",
        multiply=100,
        title=what,
    )
    data = pd.DataFrame({"count": table["responders"], "denominator": table["n"]})
    return (data, chart), what
