"""Figures for time to progression: Kaplan-Meier with numbers at risk, stacked
cumulative incidence, stacked state occupation.

Every function takes a result first and ``ax=None``, draws, and returns the
Axes; nothing is computed beyond looking values up in the result, and
nothing is saved.  Numbers at risk from 1 to ``threshold`` are printed as
``*`` (the report's small-cell rule); pass ``threshold=None`` for the
analyst's view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from stepanalytics.errors import UsageError
from stepanalytics.progression.results import (
    CumulativeIncidence,
    MultiStateModel,
    SurvivalCurves,
)
from stepanalytics.qi.suppression import DEFAULT_THRESHOLD, SUPPRESSED_MARK

_OUTCOME_COLOURS = {
    "in_phase": "#d5dbdb",
    "progressed": "#27ae60",
    "completed": "#1e8449",
    "stepped_down": "#e67e22",
    "paused": "#f1c40f",
    "dropped_out": "#c0392b",
}
_STATE_COLOURS = ["#aed6f1", "#5dade2", "#2e86c1", "#1b4f72"]


def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    return ax


def plot_survival(
    result: SurvivalCurves,
    *,
    ax: Axes | None = None,
    ci: bool = True,
    at_risk: bool = True,
    at_risk_times: Sequence[float] | None = None,
    threshold: int | None = DEFAULT_THRESHOLD,
    ylabel: str = "Not yet progressed",
) -> Axes:
    """Kaplan-Meier curves (one per group) with confidence bands and numbers at risk.

    Examples
    --------
    >>> import pandas as pd
    >>> from stepanalytics.progression import kaplan_meier
    >>> frame = pd.DataFrame({"t": [3, 5, 5, 8, 10, 12], "e": [1, 1, 0, 1, 0, 1]})
    >>> ax = plot_survival(kaplan_meier(frame, duration="t", event="e"), threshold=None)
    >>> len(ax.lines)
    1
    """
    ax = _axes(ax)
    table = result.table
    groups = list(dict.fromkeys(table["group"]))
    for group in groups:
        curve = table[table["group"] == group]
        x = np.r_[0.0, curve["time"].to_numpy()]
        (line,) = ax.step(x, np.r_[1.0, curve["estimate"].to_numpy()], where="post",
                          label=str(group))  # fmt: skip
        if ci:
            lower = np.r_[1.0, curve["ci_lower"].to_numpy()]
            upper = np.r_[1.0, curve["ci_upper"].to_numpy()]
            ax.fill_between(x, lower, upper, step="post", alpha=0.15, color=line.get_color(),
                            linewidth=0)  # fmt: skip
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel("Days in phase")
    ax.set_ylabel(ylabel)
    ax.set_title(result.title)
    if len(groups) > 1:
        ax.legend(frameon=False)
    if at_risk:
        ticks = list(at_risk_times) if at_risk_times is not None else _ticks(ax)
        ax.set_xticks(ticks)
        _at_risk_rows(ax, table, groups, ticks, threshold)
    return ax


def _ticks(ax: Axes) -> list[float]:
    low, high = ax.get_xlim()
    return [float(t) for t in ax.get_xticks() if low <= t <= high]


def _at_risk_rows(
    ax: Axes, table: pd.DataFrame, groups: list[object], ticks: list[float], threshold: int | None
) -> None:
    """Numbers at risk under the x axis, one row per group."""
    ax.annotate("At risk", xy=(0, 0), xycoords="axes fraction", xytext=(-16, -44),
                textcoords="offset points", ha="right", fontsize=8, weight="bold")  # fmt: skip
    for row, group in enumerate(groups):
        curve = table[table["group"] == group]
        times = curve["time"].to_numpy()
        risk = curve["n_risk"].to_numpy()
        offset = -56 - 11 * row
        ax.annotate(str(group), xy=(0, 0), xycoords="axes fraction", xytext=(-16, offset),
                    textcoords="offset points", ha="right", fontsize=8)  # fmt: skip
        for tick in ticks:
            later = np.searchsorted(times, tick, side="left")
            count = int(risk[later]) if later < len(risk) else 0
            small = threshold is not None and 1 <= count <= threshold
            ax.annotate(SUPPRESSED_MARK if small else str(count), xy=(tick, 0),
                        xycoords=("data", "axes fraction"), xytext=(0, offset),
                        textcoords="offset points", ha="center", fontsize=8)  # fmt: skip


def _stack(ax: Axes, times: np.ndarray, layers: list[tuple[str, np.ndarray, Any]]) -> None:
    """Stacked step areas from the bottom up."""
    bottom = np.zeros(len(times))
    for label, values, colour in layers:
        top = bottom + values
        ax.fill_between(times, bottom, top, step="post", color=colour, label=label, linewidth=0)
        bottom = top


def plot_cumulative_incidence(
    result: CumulativeIncidence,
    *,
    group: object | None = None,
    ax: Axes | None = None,
    outcomes: Sequence[str] | None = None,
) -> Axes:
    """Stacked cumulative incidence of the competing outcomes of one group.

    The remaining band at the top is the probability of still being in the
    phase, so the stack fills [0, 1].

    Examples
    --------
    >>> import pandas as pd
    >>> from stepanalytics.progression import cumulative_incidence
    >>> frame = pd.DataFrame({"t": [2, 3, 3, 5, 8, 9],
    ...                       "what": ["a", "b", "censored", "a", "b", "censored"]})
    >>> ax = plot_cumulative_incidence(cumulative_incidence(frame, duration="t", outcome="what"))
    >>> tuple(float(v) for v in ax.get_ylim())
    (0.0, 1.0)
    """
    ax = _axes(ax)
    table = result.table
    chosen = group if group is not None else table["group"].iloc[0]
    part = table[table["group"] == chosen]
    wide = part.pivot(index="time", columns="outcome", values="estimate")
    order = [o for o in (outcomes or wide.columns) if o != "in_phase"] + ["in_phase"]
    times = np.r_[0.0, wide.index.to_numpy(dtype=float)]
    palette = plt.get_cmap("tab10")
    layers = []
    for number, outcome in enumerate(order):
        values = np.r_[1.0 if outcome == "in_phase" else 0.0, wide[outcome].to_numpy()]
        colour = _OUTCOME_COLOURS.get(outcome, palette(number))
        layers.append((outcome.replace("_", " "), values, colour))
    _stack(ax, times, layers)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("Days in phase")
    ax.set_ylabel("Cumulative probability")
    suffix = "" if chosen == "all" else f" - {chosen}"
    ax.set_title(result.title + suffix)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return ax


def plot_state_occupation(
    result: MultiStateModel,
    *,
    ax: Axes | None = None,
    states: Sequence[str] | None = None,
    until: float | None = None,
    group: Any = None,
) -> Axes:
    """Stacked probability of being in each state over days since enrolment.

    With a model fitted ``by=`` a column, pass the ``group`` to draw (one
    panel per group: call once per Axes).

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.progression import fit_multistate
    >>> cohort = synthesize_cohort(n_patients=60, n_clinics=2, seed=2)
    >>> ax = plot_state_occupation(fit_multistate(cohort, n_boot=0))
    >>> ax.get_xlabel()
    'Days since enrolment'
    >>> by_clinic = fit_multistate(cohort, by="clinic_id", n_boot=0)
    >>> plot_state_occupation(by_clinic, group="C01").get_title().endswith("clinic_id = C01")
    True
    """
    ax = _axes(ax)
    table, fit, suffix = _occupation_of_group(result, group)
    wide = table.pivot(index="time", columns="state", values="estimate")
    order = list(states) if states is not None else list(result.states)
    first = fit.p0[0] if fit is not None else None
    times = np.r_[0.0, np.maximum(wide.index.to_numpy(dtype=float), 0.0)]
    layers = []
    phase_number = 0
    for number, state in enumerate(order):
        start = float(first[number]) if first is not None and states is None else np.nan
        values = np.r_[start, wide[state].to_numpy()]
        if np.isnan(values[0]):
            values[0] = values[1]
        if state.startswith("phase "):
            colour = _STATE_COLOURS[phase_number % len(_STATE_COLOURS)]
            phase_number += 1
        else:
            colour = _OUTCOME_COLOURS.get(state, "#95a5a6")
        layers.append((state.replace("_", " "), values, colour))
    _stack(ax, times, layers)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlim(0, until if until is not None else times.max())
    ax.set_xlabel("Days since enrolment")
    ax.set_ylabel("Share of patients")
    ax.set_title(result.title + suffix)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return ax


def _occupation_of_group(result: MultiStateModel, group: Any) -> tuple[pd.DataFrame, Any, str]:
    """The occupation table, fit and title suffix of one group (or of the one fit)."""
    if result.by is None:
        if group is not None:
            raise UsageError("group= needs a model fitted with fit_multistate(..., by=column)")
        return result.table, result.model, ""
    if group is None or group not in result.model:
        raise UsageError(
            f"the model compares groups of {result.by!r}: pass group= one of "
            f"{', '.join(map(str, result.model))}"
        )
    table = result.table[result.table["group"] == group].drop(columns="group")
    return table, result.model[group], f": {result.by} = {group}"
