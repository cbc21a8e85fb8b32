"""Time to progression, dropout and step-down; the multi-state view of the programme.

Competing outcomes are estimated as cumulative incidence (Aalen-Johansen,
:func:`stepanalytics.progression.phase_exit_incidence`), not as one minus
Kaplan-Meier, which would overstate each outcome when the others remove
patients from the phase.  First entries into a phase are analysed;
re-entries after a step-down behave differently and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section, table_html
from stepanalytics.reports.sections.common import (
    optional_function,
    protect_text,
    protected_table_html,
    unavailable,
)

#: Weeks at which the cumulative incidence is reported.
REPORT_WEEKS = (4, 8, 12, 16)
OUTCOME_LABELS = {
    "progressed": "moved up",
    "completed": "completed the programme",
    "stepped_down": "stepped down",
    "dropped_out": "dropped out",
    "paused": "paused",
}
CIF_CAPTION = (
    "One panel per phase, for patients entering it for the first time: the coloured layers "
    "show the share who had moved up, stepped down, dropped out or completed by each day "
    "since entering the phase; the top layer is the share still in it. Shares are estimated "
    "with the patients still followed up (competing-risks cumulative incidence), so short "
    "follow-up does not bias them. In committee reports a phase is drawn only when none of "
    "its counts is small."
)


def _incidence_rows(fit: object, phase: int, name: str, episodes: pd.DataFrame) -> list[dict]:
    counts = episodes["outcome"].value_counts()
    at = fit.at_times  # type: ignore[attr-defined]
    rows = []
    for outcome, label in OUTCOME_LABELS.items():
        events = int(counts.get(outcome, 0))
        if events == 0:
            continue
        row: dict[str, object] = {
            "phase": f"{phase} {name}".strip(),
            "outcome": label,
            "episodes": len(episodes),
            "events": events,
        }
        here = at[at["outcome"] == outcome]
        for week in REPORT_WEEKS:
            value = here.loc[here["time"] == 7 * week, "estimate"].to_numpy(dtype=float)
            row[f"by week {week} %"] = 100.0 * value[0] if value.size else np.nan
        rows.append(row)
    return rows


def section_time_to_events(context: ReportContext) -> Section:
    """How soon patients move up, step down or drop out of each phase."""
    from stepanalytics.progression import build_stays, phase_exit_incidence, select_stays

    section = Section("Time to progression, step-down and dropout")
    section.add_text(
        "For each phase, the share of patients who had moved up, stepped down or dropped out "
        f"by {', '.join(str(w) for w in REPORT_WEEKS)} weeks after entering it. Moving up "
        "too early and too late are both concerns; compare with the protocol's expected time "
        "in each phase."
    )
    threshold = context.threshold
    stays = build_stays(context.selection)
    names = context.selection.phase_names()
    rows: list[dict] = []
    fits = {}
    for phase in sorted(int(p) for p in stays["phase"].unique()):
        try:
            episodes = select_stays(stays, phase=phase)
            fit = phase_exit_incidence(stays, phase=phase, at=[7 * w for w in REPORT_WEEKS])
        except AnalysisError as err:
            section.add_note(protect_text(str(err), threshold=threshold), kind="unavailable")
            continue
        phase_rows = _incidence_rows(fit, phase, names.get(phase, ""), episodes)
        rows.extend(phase_rows)
        if _drawable(phase_rows, threshold):
            fits[phase] = fit
    if not rows:
        section.add_note("No phase episode ended in this selection yet.")
        return section
    table = pd.DataFrame(rows)
    estimates = [c for c in table.columns if c.startswith("by week")]
    section.add_html(
        protected_table_html(
            table,
            counts=["episodes", "events"],
            derived={column: ["events", "episodes"] for column in estimates},
            parts=[("events", "episodes")],
            totals=False,
            threshold=threshold,
            caption=(
                "Cumulative incidence (%) of each way of leaving the phase, first entries "
                "into each phase. Episodes: patients who entered the phase; events: how many "
                "left it that way during follow-up."
            ),
        )
    )
    plot = optional_function("stepanalytics.plots.progression", "plot_cumulative_incidence")
    if plot is not None and fits:
        section.add_figure(_panels(plot, fits), CIF_CAPTION)
    return section


def _panels(plot: object, fits: Mapping[int, object]) -> plt.Figure:
    n = len(fits)
    columns = min(n, 2)
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.4 * rows), squeeze=False)
    for ax, (phase, fit) in zip(axes.ravel(), fits.items(), strict=False):
        plot(fit, ax=ax)  # type: ignore[operator]
        ax.set_title(f"phase {phase}", fontsize=10)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _drawable(rows: list[dict], threshold: int | None) -> bool:
    """Whether a phase's curves may be drawn: no count of the phase is a small cell.

    A cumulative-incidence curve shows every event as a step, so for a
    committee it is drawn only when the table would hide nothing in that phase.
    """
    if threshold is None:
        return True
    for row in rows:
        events, episodes = int(row["events"]), int(row["episodes"])
        for value in (events, episodes, episodes - events):
            if 1 <= value <= threshold:
                return False
    return bool(rows)


def section_progression_models(
    context: ReportContext, covariates: tuple[str, ...] = ("compensation_claim", "age_band")
) -> Section:
    """Explorer: Kaplan-Meier medians, Cox models of progression, the multi-state model."""
    from stepanalytics.progression import (
        add_baselines,
        build_stays,
        fit_progression_cox,
        time_to_progression,
    )

    section = Section("Progression models")
    stays = build_stays(context.selection)
    phases = sorted(int(p) for p in stays["phase"].unique())
    medians = []
    for phase in phases:
        try:
            km = time_to_progression(stays, phase=phase)
        except AnalysisError:
            continue
        medians.append(km.medians.assign(phase=phase))
    if medians:
        table = pd.concat(medians, ignore_index=True).drop(columns=["group"], errors="ignore")
        section.add_html(
            table_html(
                table[["phase", *[c for c in table.columns if c != "phase"]]],
                caption=(
                    "Kaplan-Meier median days to moving up (first entries), other exits "
                    "censored: the time to progression if nobody left otherwise."
                ),
            )
        )
    codes = context.reported_instruments[:2]
    with_baselines = add_baselines(stays, context.selection, codes)
    terms = [f"baseline_{c}" for c in codes] + [
        c for c in covariates if c in with_baselines.columns
    ]
    for phase in phases[:-1]:  # nobody moves up out of the last phase
        try:
            cox = fit_progression_cox(with_baselines, phase=phase, covariates=terms)
        except (AnalysisError, UsageError) as err:
            unavailable(section, f"The Cox model of phase {phase}", str(err))
            continue
        section.add_html(
            table_html(
                cox.to_frame(),
                caption=(
                    f"Cox model of moving up out of phase {phase} (first entries; Efron ties; "
                    "clinic as clusters). A hazard ratio above 1 means faster progression."
                ),
                digits=4,
            )
        )
        for warning in cox.warnings:
            section.add_note(warning, kind="warning")
    _multistate(section, context)
    return section


def _multistate(section: Section, context: ReportContext) -> None:
    from stepanalytics.progression import fit_multistate

    try:
        model = fit_multistate(context.selection, n_boot=100)
    except (AnalysisError, UsageError) as err:
        unavailable(section, "The multi-state model", str(err))
        return
    section.add_heading("The programme as a multi-state model")
    plot = optional_function("stepanalytics.plots.progression", "plot_state_occupation")
    if plot is not None:
        section.add_figure(
            plot(model),
            "The stacked layers show, for each day since enrolment, the share of patients in "
            "each phase, paused, completed or dropped out (Aalen-Johansen estimate of the "
            "Markov multi-state model). Read a vertical slice as 'where the patients are'.",
        )
    section.add_html(
        table_html(
            model.time_in_state,
            caption=f"Expected days in each state within the first {model.horizon:g} days.",
        )
    )
    section.add_html(table_html(model.transitions, caption="Transitions observed."))
    for warning in model.warnings:
        section.add_note(warning, kind="warning")
