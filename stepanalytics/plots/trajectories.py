"""Figures for trajectory models: spaghetti with the mean, the course by phase, by clinic.

Every function takes a fitted :class:`~stepanalytics.trajectories.TrajectoryResult`
first and ``ax=None``, draws, and returns the Axes; nothing is saved here.
Predictions come from :func:`~stepanalytics.trajectories.predict_trajectory`
(pass one in to reuse it).  Patient lines are drawn without ids; a curve by
clinic is left out when the clinic has 1..``threshold`` patients in the fit,
as tables do (pass ``threshold=None`` for an analyst's view).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from stepanalytics.errors import UsageError
from stepanalytics.qi.suppression import DEFAULT_THRESHOLD, small_cells
from stepanalytics.trajectories import (
    TrajectoryPrediction,
    TrajectoryResult,
    patient_curves,
    predict_trajectory,
)

_MEAN = "#2c3e50"
_PATIENT = "#95a5a6"


def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    return ax


def _labels(ax: Axes, result: TrajectoryResult, prediction: TrajectoryPrediction) -> None:
    ax.set_xlabel(prediction.time)
    name = result.instrument or prediction.response
    if result.higher_is_better is not None:
        name += " (higher is better)" if result.higher_is_better else " (lower is better)"
    ax.set_ylabel(name)


def _band(ax: Axes, frame: pd.DataFrame, time: str, color: str, label: str | None) -> None:
    ax.fill_between(frame[time], frame["ci_lower"], frame["ci_upper"], color=color, alpha=0.2)
    ax.plot(frame[time], frame["estimate"], color=color, linewidth=2.2, label=label)


def plot_spaghetti(
    result: TrajectoryResult,
    *,
    n_patients: int = 30,
    seed: int = 0,
    show: str = "observed",
    prediction: TrajectoryPrediction | None = None,
    ax: Axes | None = None,
) -> Axes:
    """A random sample of patients' courses behind the mean trajectory and its band.

    Parameters
    ----------
    result : TrajectoryResult
    n_patients : int, default 30
        Size of the (seeded) random sample of patients drawn.
    seed : int, default 0
    show : {"observed", "fitted"}
        Patients' measured scores, or their model-fitted curves.
    prediction : TrajectoryPrediction, optional
        The mean trajectory (default: ``predict_trajectory(result)``).
    ax : Axes, optional

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.trajectories import fit_trajectory
    >>> fit = fit_trajectory(synthesize_cohort(n_patients=40, n_clinics=2, seed=3), "odi")
    >>> ax = plot_spaghetti(fit, n_patients=10)
    """
    if show not in ("observed", "fitted"):
        raise UsageError("show must be 'observed' or 'fitted'.")
    ax = _axes(ax)
    prediction = prediction or predict_trajectory(result)
    curves = patient_curves(result, n=n_patients, seed=seed)
    groups = result.design.groups if result.design is not None else "patient_id"
    for _, one in curves.groupby(groups, sort=False):
        ax.plot(one[prediction.time], one[show], color=_PATIENT, linewidth=0.8, alpha=0.6)
    _band(ax, prediction.table, prediction.time, _MEAN, "mean (95% CI)")
    ax.plot([], [], color=_PATIENT, linewidth=0.8, label=f"{curves[groups].nunique()} patients")
    _labels(ax, result, prediction)
    ax.legend(loc="best", frameon=False, fontsize=8)
    ax.set_title(result.title)
    return ax


def plot_trajectory_by_phase(
    result: TrajectoryResult,
    *,
    prediction: TrajectoryPrediction | None = None,
    ax: Axes | None = None,
) -> Axes:
    """The mean trajectory along the typical phase path, one colour per phase.

    Phase starts are marked; in a piecewise model the slope changes there.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.trajectories import fit_trajectory
    >>> fit = fit_trajectory(synthesize_cohort(n_patients=40, n_clinics=2, seed=3), "odi",
    ...                      piecewise=True)
    >>> ax = plot_trajectory_by_phase(fit)
    """
    ax = _axes(ax)
    prediction = prediction or predict_trajectory(result, by="phase")
    table = prediction.table
    if "phase" not in table.columns or prediction.phase_path is None:
        raise UsageError("The prediction has no phase path; use predict_trajectory(by='phase').")
    path = prediction.phase_path
    palette = sns.color_palette("viridis", n_colors=len(path.phases))
    for color, phase in zip(palette, path.phases, strict=False):
        part = table[table["phase"] == phase]
        if part.empty:
            continue
        # Start each segment at the previous one's last point so the curve is unbroken.
        before = table[table[prediction.time] < part[prediction.time].min()].tail(1)
        _band(ax, pd.concat([before, part]), prediction.time, color, path.label(phase))
        start = path.start_weeks[phase]
        if start > table[prediction.time].min():
            ax.axvline(start, color=color, linestyle=":", linewidth=1)
    _labels(ax, result, prediction)
    ax.legend(title="phase", loc="best", frameon=False, fontsize=8)
    ax.set_title(f"{result.title}: by phase (typical path)")
    return ax


def plot_trajectory_by_clinic(
    result: TrajectoryResult,
    *,
    by: str = "clinic_id",
    prediction: TrajectoryPrediction | None = None,
    threshold: int | None = DEFAULT_THRESHOLD,
    ax: Axes | None = None,
) -> Axes:
    """One case-mix-standardised mean trajectory per clinic (or covariate level).

    Parameters
    ----------
    result : TrajectoryResult
        A model with ``by`` in it (e.g. ``fit_trajectory(..., compare="clinic")``).
    by : str, default ``"clinic_id"``
    prediction : TrajectoryPrediction, optional
    threshold : int or None
        Levels with 1..threshold patients in the fit are not drawn.
    ax : Axes, optional

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.trajectories import fit_trajectory
    >>> fit = fit_trajectory(synthesize_cohort(n_patients=60, n_clinics=3, seed=3), "odi",
    ...                      compare="clinic")
    >>> ax = plot_trajectory_by_clinic(fit, threshold=None)
    """
    ax = _axes(ax)
    prediction = prediction or predict_trajectory(result, by=by)
    if prediction.by != by:
        raise UsageError(f"The prediction is by {prediction.by!r}, not by {by!r}.")
    design = result.design
    if design is None:
        raise UsageError("This result carries no fitted model.")
    patients = design.frame.drop_duplicates(design.groups)[by].value_counts()
    levels = list(dict.fromkeys(prediction.table[by]))
    counts = np.array([int(patients.get(level, 0)) for level in levels])
    hidden = small_cells(counts, threshold=threshold) if threshold is not None else counts < 0
    palette = sns.color_palette("tab10", n_colors=max(len(levels), 1))
    for color, level, hide in zip(palette, levels, hidden, strict=False):
        if hide:
            continue
        part = prediction.table[prediction.table[by] == level]
        _band(ax, part, prediction.time, color, str(level))
    if hidden.any():
        ax.text(
            0.01,
            0.01,
            f"{int(hidden.sum())} level(s) with 1-{threshold} patients not shown",
            transform=ax.transAxes,
            fontsize=8,
            color=_PATIENT,
            va="bottom",
        )
    _labels(ax, result, prediction)
    ax.legend(title=by, loc="best", frameon=False, fontsize=8)
    ax.set_title(f"{result.title}: by {by}, standardised to the case mix")
    return ax
