"""A multi-state model of the whole programme: hazards, state occupation, time in state.

Notes
-----
R equivalent: ``survfit(Surv(tstart, tstop, to) ~ 1, data = rows, id =
patient_id, istate = from_state)`` (``~ group`` with ``by=``) (survival >= 3.0) for the occupation
probabilities and their standard errors, ``fit$cumhaz`` for the
Nelson-Aalen transition hazards and ``print(fit, rmean = horizon)`` for
the expected time in each state.  The model is Markov in time since
enrolment; state occupation is the Aalen-Johansen product integral
(Andersen et al. 1993; Putter, Fiocco & Geskus 2007; de Wreede, Fiocco &
Putter 2011 for the R package mstate).  Percentile bootstrap intervals
resample patients with replacement (seeded, so reproducible) and refit
everything, including the expected time in each state.  The Nelson-Aalen
standard error is Aalen's, ``sqrt(sum dN / Y^2)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression.confidence import check_conf
from stepanalytics.progression.multistate_data import (
    ENTRY_START,
    MSM_COLUMNS,
    multistate_data,
    state_order,
)
from stepanalytics.progression.multistate_fit import StateFit, fit_states, restricted_mean
from stepanalytics.progression.results import MultiStateModel

FEW_TRANSITIONS = 5


def fit_multistate(
    data: Any,
    *,
    by: str | None = None,
    at: Sequence[float] = (),
    pauses: Literal["state", "merge"] = "state",
    horizon: float = 365.0,
    n_boot: int = 200,
    seed: int = 20240601,
    conf_type: str = "log",
    conf_level: float = 0.95,
    title: str | None = None,
) -> MultiStateModel:
    """Fit the multi-state model of the programme, for the whole cohort or per group.

    Parameters
    ----------
    data : Cohort or DataFrame
        A cohort, or counting-process rows from :func:`multistate_data`
        (columns patient_id, tstart, tstop, from_state, to_state, and the
        ``by`` column).
    by : str, optional
        A patient column (clinic_id, protocol, compensation_claim, ...): one
        fit per group, on the same states, stacked with a ``group`` column.
    at : sequence of float
        Days since enrolment at which to report the state occupation
        (``at_times``; also :meth:`MultiStateModel.occupation_at`).
    pauses : {"state", "merge"}
        How safety pauses enter the model when ``data`` is a cohort.
    horizon : float
        Days since enrolment up to which the expected time in each state
        (restricted mean) is computed.
    n_boot : int
        Bootstrap replicates for percentile intervals; 0 to skip.  With
        ``by``, patients are resampled within each group.
    seed : int
        Seed of the bootstrap.
    conf_type, conf_level
        Pointwise limits from the infinitesimal-jackknife standard errors (as
        R survfit); the bootstrap intervals use ``conf_level`` too.

    Returns
    -------
    MultiStateModel

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> cohort = synthesize_cohort(n_patients=80, n_clinics=2, seed=4)
    >>> model = fit_multistate(cohort, n_boot=20, horizon=180)
    >>> occupied = model.occupation_at([180]).groupby("day")["estimate"].sum()
    >>> bool(np.isclose(occupied.iloc[0], 1.0))
    True
    >>> by_claim = fit_multistate(cohort, by="compensation_claim", n_boot=0, horizon=180)
    >>> days = by_claim.time_in_state.groupby("group")["estimate"].sum()
    >>> bool(np.allclose(days, 180.0))
    True
    """
    check_conf(conf_type, conf_level)
    if n_boot < 0 or horizon <= 0:
        raise UsageError("n_boot must be >= 0 and horizon > 0")
    notes: list[str] = []
    if isinstance(data, pd.DataFrame):
        rows = _checked_rows(data)
    else:
        rows, adjusted = multistate_data(data, pauses=pauses)
        notes.extend(adjusted)
    states = _states(rows)
    options: dict[str, Any] = {"horizon": horizon, "n_boot": n_boot, "conf_type": conf_type,
                               "conf_level": conf_level}  # fmt: skip
    if by is None:
        fitted = fit_states(rows, states, rng=np.random.default_rng(seed), **options)
        _note_short_follow_up(fitted, horizon, "", notes)
        transitions = _transition_counts(rows, notes)
        model: Any = fitted.fit
        parts = [fitted.occupation, fitted.time_in_state, fitted.hazards]
    else:
        groups = _grouped(rows, by)
        transient = sorted(set(rows.loc[rows["to_state"].notna(), "from_state"]), key=states.index)
        fits: dict[Any, StateFit] = {}
        for number, (group, part) in enumerate(groups):
            rng = np.random.default_rng([seed, number])
            fits[group] = fit_states(part, states, rng=rng, **options)
            label = f"{by} = {group}: "
            _note_short_follow_up(fits[group], horizon, label, notes)
            _note_small_group(part, transient, label, notes)
        transitions = _stack({g: _transition_counts(p, []) for g, p in groups})
        model = {group: fitted.fit for group, fitted in fits.items()}
        parts = [_stack({g: getattr(f, name) for g, f in fits.items()})
                 for name in ("occupation", "time_in_state", "hazards")]  # fmt: skip
    result = MultiStateModel(
        table=parts[0],
        warnings=tuple(notes),
        model=model,
        title=title or _title(by),
        hazards=parts[2],
        time_in_state=parts[1],
        transitions=transitions,
        states=tuple(states),
        horizon=float(horizon),
        n_boot=n_boot,
        by=by,
    )
    if len(at):
        result = result.with_days(at)
    return result


def _title(by: str | None) -> str:
    title = "Multi-state model of the programme (Aalen-Johansen)"
    return title if by is None else f"{title} by {by}"


def _checked_rows(rows: pd.DataFrame) -> pd.DataFrame:
    missing = [
        c for c in MSM_COLUMNS if c not in rows.columns and c not in ("clinic_id", "protocol")
    ]
    if missing:
        raise UsageError(f"the rows lack column(s) {', '.join(missing)}; build them with "
                         "multistate_data(cohort)")  # fmt: skip
    if rows.empty:
        raise AnalysisError("there are no rows to analyse")
    bad = rows["tstop"] <= rows["tstart"]
    if bad.any():
        raise AnalysisError(
            f"{int(bad.sum())} rows have tstop <= tstart (rows "
            f"{', '.join(str(i) for i in rows.index[bad][:10])}); every interval must have "
            "positive length"
        )
    return rows


def _grouped(rows: pd.DataFrame, by: str) -> list[tuple[Any, pd.DataFrame]]:
    """Split the rows by a patient column, refusing missing or changing values."""
    if by not in rows.columns:
        raise UsageError(f"column {by!r} is not in the rows; have {list(rows.columns)}. "
                         "Pass a patient column such as clinic_id or protocol")  # fmt: skip
    missing = rows[by].isna()
    if missing.any():
        patients = rows.loc[missing, "patient_id"].drop_duplicates()
        raise AnalysisError(
            f"{len(patients)} patients have no value in {by!r} (rows "
            f"{', '.join(str(i) for i in rows.index[missing][:10])}); give them a group "
            "(e.g. 'unknown') or leave them out before the analysis"
        )
    changing = rows.groupby("patient_id", sort=False)[by].nunique() > 1
    if changing.any():
        raise AnalysisError(
            f"{int(changing.sum())} patients change {by!r} during follow-up; by= needs a "
            "patient column (one value per patient), e.g. the clinic at enrolment"
        )
    levels = sorted(rows[by].unique().tolist(), key=str)
    return [(level, rows[rows[by] == level]) for level in levels]


def _stack(frames: dict[Any, pd.DataFrame]) -> pd.DataFrame:
    pieces = [frame.assign(group=group) for group, frame in frames.items() if not frame.empty]
    if not pieces:
        return pd.DataFrame()
    stacked = pd.concat(pieces, ignore_index=True)
    return stacked[["group", *[c for c in stacked.columns if c != "group"]]]


def _states(rows: pd.DataFrame) -> list[str]:
    present = set(rows["from_state"]) | set(rows["to_state"].dropna())
    phases = [s for s in present if s.startswith("phase ")]
    n_phases = max((int(s.split()[1]) for s in phases), default=0)
    ordered = state_order(n_phases, with_pause="paused" in present)
    others = sorted(present - set(ordered))
    return [s for s in ordered if s in present or s.startswith("phase ")] + others


def _note_short_follow_up(fitted: StateFit, horizon: float, label: str, notes: list[str]) -> None:
    if fitted.last_time < horizon:
        notes.append(
            f"{label}follow-up ends at day {fitted.last_time:g}, before the horizon of "
            f"{horizon:g} days: the expected time in each state assumes nothing changes after it"
        )


def _note_small_group(
    part: pd.DataFrame, transient: list[str], label: str, notes: list[str]
) -> None:
    """Warn when a group has few moves out of a state its patients occupy."""
    occupied = set(part["from_state"])
    moves = part.dropna(subset=["to_state"])["from_state"].value_counts()
    few = [(s, int(moves.get(s, 0))) for s in transient if s in occupied]
    few = [(s, n) for s, n in few if n < FEW_TRANSITIONS]
    if not few:
        return
    listed = ", ".join(f"{s} ({n})" for s, n in few)
    notes.append(
        f"{label}too few patients leave some states in this group "
        f"({part['patient_id'].nunique()} patients; moves out of {listed}). What follows "
        "those states (the chances of being in each state and the days per state) rests on "
        "a handful of patients and is imprecise"
        + (" (a state nobody left keeps its patients for good in this group)"
           if any(n == 0 for _, n in few) else "")
        + "; compare this group with care, or pool it with similar groups"
    )  # fmt: skip


def _transition_counts(rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    moved = rows.dropna(subset=["to_state"])
    counts = moved.groupby(["from_state", "to_state"]).size().rename("n").reset_index()
    rare = counts[counts["n"] < FEW_TRANSITIONS]
    if not rare.empty:
        notes.append(
            "few transitions observed for "
            + ", ".join(f"{a} -> {b} ({n})" for a, b, n in rare.itertuples(index=False))
            + ": their hazards are imprecise"
        )
    return counts


__all__ = ["ENTRY_START", "fit_multistate", "restricted_mean"]
