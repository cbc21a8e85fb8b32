"""Outcome trajectories: linear mixed models of scores over weeks, for researchers.

Each instrument gets the piecewise model of
:func:`stepanalytics.trajectories.fit_trajectory` (one slope per phase, a
random intercept and slope per patient), its fixed-effects table with
Satterthwaite degrees of freedom, the variance components, the fit
statistics, and the predicted mean trajectory along the typical phase path.
"""

from __future__ import annotations

from collections.abc import Sequence

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section, table_html
from stepanalytics.reports.sections.common import optional_function, unavailable

#: Weeks at which the predicted mean trajectory is tabulated.
TABLE_WEEKS = (0, 4, 8, 12, 16, 24, 36, 52)
TRAJECTORY_CAPTION = (
    "The line is the model's average score over weeks since enrolment for a patient moving "
    "through the phases at the typical pace, with its 95% confidence band; colours mark the "
    "phase. A steeper fall (or rise, where higher is better) means faster improvement in "
    "that phase."
)


def section_trajectories(
    context: ReportContext, instruments: Sequence[str] = ("odi", "pseq")
) -> Section:
    """Mixed-model trajectories of the chosen instruments, with the model tables."""
    section = Section("Outcome trajectories (linear mixed models)")
    section.add_text(
        "Model: score ~ weeks in each phase + (weeks | patient), REML, fitted with several "
        "optimizers keeping the best likelihood; t-tests with Satterthwaite degrees of "
        "freedom (as lmerTest)."
    )
    present = set(context.selection.instruments)
    codes = [c for c in instruments if c in present]
    if not codes:
        return unavailable(section, "Trajectories", "none of the chosen instruments has scores.")
    for code in codes:
        _one_instrument(section, context, code)
    return section


def _one_instrument(section: Section, context: ReportContext, code: str) -> None:
    from stepanalytics.trajectories import fit_trajectory, predict_trajectory

    section.add_heading(code)
    try:
        fit = fit_trajectory(context.selection, code, piecewise=True)
        prediction = predict_trajectory(fit, by="phase")
    except (AnalysisError, UsageError) as err:
        unavailable(section, f"The {code} trajectory", str(err))
        return
    plot = optional_function("stepanalytics.plots.trajectories", "plot_trajectory_by_phase")
    if plot is not None:
        section.add_figure(plot(fit, prediction=prediction), TRAJECTORY_CAPTION)
    last_week = float(prediction.to_frame()["weeks"].max())
    weeks = [float(w) for w in TABLE_WEEKS if w <= last_week]
    at_weeks = predict_trajectory(fit, weeks=weeks, by="phase").to_frame()
    columns = [c for c in ("weeks", "phase_label", "estimate", "ci_lower", "ci_upper")]
    section.add_html(
        table_html(
            at_weeks[[c for c in columns if c in at_weeks.columns]],
            caption="Predicted mean score with 95% confidence limits at chosen weeks.",
        )
    )
    section.add_html(table_html(fit.to_frame(), caption="Fixed effects.", digits=4))
    section.add_html(
        table_html(
            fit.variance_components,
            caption="Variance components (standard deviations and correlation).",
            digits=4,
        )
    )
    section.add_html(table_html(fit.fit_statistics, caption="Fit statistics.", digits=2))
    for note in (*fit.warnings, *fit.notes):
        section.add_note(note, kind="warning" if note in fit.warnings else "note")
