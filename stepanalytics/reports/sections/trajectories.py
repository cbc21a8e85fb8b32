"""Outcome trajectories: linear mixed models of scores over weeks, for researchers.

Each instrument gets the piecewise model of
:func:`stepanalytics.trajectories.fit_trajectory` (one slope per phase, a
random intercept and slope per patient), its fixed-effects table with
Satterthwaite degrees of freedom, the variance components, the fit
statistics, and the predicted mean trajectory along the typical phase path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


#: How the model description names each engine that can fit it.
ENGINE_WORDS = {
    "fast": "fast engine, validated against lme4",
    "statsmodels": "statsmodels MixedLM, several optimizers keeping the best likelihood",
}


def model_description(engines: Sequence[str]) -> str:
    """The plain-language model line, naming the engine(s) that actually ran.

    Examples
    --------
    >>> print(model_description(["fast", "fast"])[:84])
    Model: score ~ weeks in each phase + (weeks | patient), REML (fast engine, validated
    """
    named = [ENGINE_WORDS.get(e, f"{e} engine") for e in dict.fromkeys(engines)]
    how = "; ".join(named) if named else "no model could be fitted"
    return (
        f"Model: score ~ weeks in each phase + (weeks | patient), REML ({how}); t-tests with "
        "Satterthwaite degrees of freedom (as lmerTest)."
    )


def section_trajectories(
    context: ReportContext, instruments: Sequence[str] = ("odi", "pseq")
) -> Section:
    """Mixed-model trajectories of the chosen instruments, with the model tables."""
    from stepanalytics.trajectories import fit_trajectory

    section = Section("Outcome trajectories (linear mixed models)")
    present = set(context.selection.instruments)
    codes = [c for c in instruments if c in present]
    if not codes:
        section.add_text(model_description([]))
        return unavailable(section, "Trajectories", "none of the chosen instruments has scores.")
    fits: dict[str, Any] = {}
    for code in codes:
        try:
            fits[code] = fit_trajectory(context.selection, code, piecewise=True)
        except (AnalysisError, UsageError) as err:
            fits[code] = err
    engines = [
        str(fit.fit_statistics["engine"].iloc[0])
        for fit in fits.values()
        if not isinstance(fit, Exception) and "engine" in fit.fit_statistics.columns
    ]
    section.add_text(model_description(engines))
    for code, fit in fits.items():
        _one_instrument(section, code, fit)
    return section


def _one_instrument(section: Section, code: str, fit: Any) -> None:
    from stepanalytics.trajectories import predict_trajectory

    section.add_heading(code)
    try:
        if isinstance(fit, Exception):
            raise fit
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
