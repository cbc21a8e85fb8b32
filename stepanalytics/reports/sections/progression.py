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
from stepanalytics.qi.suppression import SUPPRESSED_MARK, protect_frame
from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section, note_html, table_html
from stepanalytics.reports.sections.common import (
    optional_function,
    protect_text,
    unavailable,
)
from stepanalytics.reports.sections.incidence_cells import (
    PhaseEvents,
    count_phase_events,
    curve_steps_safe,
    hide_for_remainder,
    shown_percentages,
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
    "follow-up does not bias them."
)
CIF_COMMITTEE_NOTE = (
    "In this committee report a phase's curves are drawn only up to week {weeks}, and only "
    "when every step of them rests on more patients than the small-cell threshold "
    "({threshold}): each step of a curve is the patients who left the phase on one day."
)
TABLE_CAPTION = (
    "Cumulative incidence (%) of each way of leaving the phase, first entries into each "
    "phase. Episodes: patients who entered the phase; events: how many left it that way "
    "during follow-up."
)


def _incidence_rows(
    fit: object, phase: int, name: str, episodes: pd.DataFrame
) -> tuple[list[dict], PhaseEvents]:
    """Table rows of one phase, and the counts behind them for the privacy rule."""
    counts = episodes["outcome"].value_counts()
    at = fit.at_times  # type: ignore[attr-defined]
    days = [7 * week for week in REPORT_WEEKS]
    by_week = count_phase_events(episodes, list(OUTCOME_LABELS), days)
    rows = []
    events: dict[str, int] = {}
    estimates: dict[str, list[float]] = {}
    for outcome, label in OUTCOME_LABELS.items():
        total = int(counts.get(outcome, 0))
        if total == 0:
            continue
        events[outcome] = total
        row: dict[str, object] = {
            "phase": f"{phase} {name}".strip(),
            "outcome": label,
            "episodes": len(episodes),
            "events": total,
        }
        here = at[at["outcome"] == outcome]
        estimates[outcome] = []
        for week, day in zip(REPORT_WEEKS, days, strict=True):
            value = here.loc[here["time"] == day, "estimate"].to_numpy(dtype=float)
            share = float(value[0]) if value.size else np.nan
            estimates[outcome].append(share)
            row[f"by week {week} %"] = 100.0 * share
        rows.append(row)
    counted = PhaseEvents(
        episodes=len(episodes),
        events=events,
        by_week={o: by_week[o] for o in events},
        estimate=estimates,
    )
    return rows, counted


def section_time_to_events(context: ReportContext) -> Section:
    """How soon patients move up, step down or drop out of each phase.

    For a committee, every percentage is protected as the count it stands
    for (:mod:`stepanalytics.reports.sections.incidence_cells`), and a
    phase's curves are drawn only when each of their steps rests on more
    patients than the small-cell threshold.
    """
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
    phases: list[tuple[int, object, pd.DataFrame, PhaseEvents, int]] = []
    for phase in sorted(int(p) for p in stays["phase"].unique()):
        try:
            episodes = select_stays(stays, phase=phase)
            fit = phase_exit_incidence(stays, phase=phase, at=[7 * w for w in REPORT_WEEKS])
        except AnalysisError as err:
            section.add_note(protect_text(str(err), threshold=threshold), kind="unavailable")
            continue
        phase_rows, counted = _incidence_rows(fit, phase, names.get(phase, ""), episodes)
        phases.append((phase, fit, episodes, counted, len(rows)))
        rows.extend(phase_rows)
    if not rows:
        section.add_note("No phase episode ended in this selection yet.")
        return section
    table = pd.DataFrame(rows)
    hidden = _hidden_cells(table, phases, threshold)
    section.add_html(_table_html(table, hidden, threshold))
    plot = optional_function("stepanalytics.plots.progression", "plot_cumulative_incidence")
    if plot is None:
        return section
    until = 7.0 * max(REPORT_WEEKS)
    drawable = {
        phase: fit
        for phase, fit, episodes, counted, first in phases
        if threshold is None
        or (
            not hidden.iloc[first : first + len(counted.events)].to_numpy().any()
            and curve_steps_safe(
                episodes["duration_days"], episodes["outcome"], threshold=threshold, until=until
            )
        )
    }
    if drawable:
        section.add_figure(
            _panels(plot, drawable, until=None if threshold is None else until), CIF_CAPTION
        )
    if threshold is not None:
        weeks = max(REPORT_WEEKS)
        missing = [str(p) for p, *_ in phases if p not in drawable]
        note = CIF_COMMITTEE_NOTE.format(weeks=weeks, threshold=threshold)
        if missing:
            note += f" Not drawn for phase(s) {', '.join(missing)}: some steps are smaller."
        section.add_note(note)
    return section


def _hidden_cells(
    table: pd.DataFrame,
    phases: list[tuple[int, object, pd.DataFrame, PhaseEvents, int]],
    threshold: int | None,
) -> pd.DataFrame:
    """Which cells of the time-to-event table a committee may not see."""
    estimates = [c for c in table.columns if c.startswith("by week")]
    if threshold is None:
        return pd.DataFrame(False, index=table.index, columns=table.columns)
    protected = protect_frame(
        table,
        counts=["episodes", "events"],
        derived={column: ["events", "episodes"] for column in estimates},
        parts=[("events", "episodes")],
        totals=False,
        threshold=threshold,
    )
    hidden = protected.hidden.copy()
    for _, _, _, counted, first in phases:
        outcomes = list(counted.events)
        index = table.index[first : first + len(outcomes)]
        row_of = dict(zip(outcomes, index, strict=True))
        visible = {
            o: not (hidden.at[row_of[o], "events"] or hidden.at[row_of[o], "episodes"])
            for o in outcomes
        }
        visible = hide_for_remainder(counted.episodes, counted.events, visible, threshold)
        weekly = shown_percentages(counted, shown_rows=visible, threshold=threshold)
        for outcome in outcomes:
            row = row_of[outcome]
            if not visible[outcome]:
                hidden.at[row, "events"] = True
            for column, shown in zip(estimates, weekly[outcome], strict=True):
                hidden.at[row, column] = not shown
    return hidden


def _table_html(table: pd.DataFrame, hidden: pd.DataFrame, threshold: int | None) -> str:
    shown = table.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].round(1)
    blank = shown.isna()
    cells = shown.astype(object).where(~hidden | blank, SUPPRESSED_MARK)
    html = table_html(cells, caption=TABLE_CAPTION)
    if threshold is not None and bool(hidden.to_numpy().any()):
        html += note_html(
            f"{SUPPRESSED_MARK} hidden to protect privacy: a percentage stands for the patients "
            f"who had left the phase by that week, so it is hidden when that number, the number "
            f"who had not, or the number between two shown weeks, is from 1 to {threshold}."
        )
    return html


def _panels(plot: object, fits: Mapping[int, object], *, until: float | None) -> plt.Figure:
    n = len(fits)
    columns = min(n, 2)
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.4 * rows), squeeze=False)
    for ax, (phase, fit) in zip(axes.ravel(), fits.items(), strict=False):
        plot(fit, ax=ax)  # type: ignore[operator]
        if until is not None:  # the end of a curve is one patient's time in the phase
            ax.set_xlim(0, until)
        ax.set_title(f"phase {phase}", fontsize=10)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


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
