"""A multi-state model of the whole programme: hazards, state occupation, time in state.

Notes
-----
R equivalent: ``survfit(Surv(tstart, tstop, to) ~ 1, data = rows, id =
patient_id, istate = from_state)`` (survival >= 3.0) for the occupation
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

from typing import Any, Literal

import numpy as np
import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression.aalen_johansen import (
    CountingData,
    fit_product_limit,
    prepare_counting_data,
)
from stepanalytics.progression.confidence import check_conf, confidence_limits
from stepanalytics.progression.multistate_data import (
    ENTRY_START,
    MSM_COLUMNS,
    multistate_data,
    state_order,
)
from stepanalytics.progression.results import MultiStateModel

#: Bootstrap replicates fitted together (bounds memory: B x times x states).
BOOT_CHUNK = 50
FEW_TRANSITIONS = 5


def fit_multistate(
    data: Any,
    *,
    pauses: Literal["state", "merge"] = "state",
    horizon: float = 365.0,
    n_boot: int = 200,
    seed: int = 20240601,
    conf_type: str = "log",
    conf_level: float = 0.95,
    title: str | None = None,
) -> MultiStateModel:
    """Fit the multi-state model of the programme.

    Parameters
    ----------
    data : Cohort or DataFrame
        A cohort, or counting-process rows from :func:`multistate_data`
        (columns patient_id, tstart, tstop, from_state, to_state).
    pauses : {"state", "merge"}
        How safety pauses enter the model when ``data`` is a cohort.
    horizon : float
        Days since enrolment up to which the expected time in each state
        (restricted mean) is computed.
    n_boot : int
        Bootstrap replicates for percentile intervals; 0 to skip.
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
    >>> model = fit_multistate(synthesize_cohort(n_patients=80, n_clinics=2, seed=4),
    ...                        n_boot=20, horizon=180)
    >>> occupied = model.occupation_at([180]).groupby("day")["estimate"].sum()
    >>> bool(np.isclose(occupied.iloc[0], 1.0))
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
    counting = _counting_data(rows, states)
    fit = fit_product_limit(counting)
    assert fit.std_err is not None  # plain fit
    occupation = _occupation_table(fit.times, fit.pstate[0], fit.std_err, states,
                                   conf_type, conf_level)  # fmt: skip
    rmean = restricted_mean(fit.times, fit.pstate[0], fit.p0[0], horizon)
    time_in_state = pd.DataFrame({"state": states, "estimate": rmean, "horizon": horizon})
    if n_boot:
        low, high, boot_rmean = _bootstrap(counting, n_boot, seed, conf_level, horizon)
        occupation["boot_lower"] = low.reshape(-1)
        occupation["boot_upper"] = high.reshape(-1)
        alpha = (1 - conf_level) / 2
        time_in_state["boot_lower"] = np.quantile(boot_rmean, alpha, axis=0)
        time_in_state["boot_upper"] = np.quantile(boot_rmean, 1 - alpha, axis=0)
    if float(rows["tstop"].max()) < horizon:
        notes.append(
            f"follow-up ends at day {rows['tstop'].max():g}, before the horizon of {horizon:g} "
            "days: the expected time in each state assumes nothing changes after it"
        )
    hazards = _hazard_table(fit, counting, states)
    transitions = _transition_counts(rows, notes)
    return MultiStateModel(
        table=occupation,
        warnings=tuple(notes),
        model=fit,
        title=title or "Multi-state model of the programme (Aalen-Johansen)",
        hazards=hazards,
        time_in_state=time_in_state,
        transitions=transitions,
        states=tuple(states),
        horizon=float(horizon),
        n_boot=n_boot,
    )


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


def _states(rows: pd.DataFrame) -> list[str]:
    present = set(rows["from_state"]) | set(rows["to_state"].dropna())
    phases = [s for s in present if s.startswith("phase ")]
    n_phases = max((int(s.split()[1]) for s in phases), default=0)
    ordered = state_order(n_phases, with_pause="paused" in present)
    others = sorted(present - set(ordered))
    return [s for s in ordered if s in present or s.startswith("phase ")] + others


def _counting_data(rows: pd.DataFrame, states: list[str]) -> CountingData:
    code = {s: i for i, s in enumerate(states)}
    to_state = rows["to_state"].map(code).fillna(-1).astype(np.int64).to_numpy()
    return prepare_counting_data(
        rows["tstart"].to_numpy(dtype=float),
        rows["tstop"].to_numpy(dtype=float),
        rows["from_state"].map(code).to_numpy(dtype=np.int64),
        to_state,
        pd.factorize(rows["patient_id"])[0].astype(np.int64),
        len(states),
    )


def _occupation_table(
    times: np.ndarray,
    pstate: np.ndarray,
    std_err: np.ndarray,
    states: list[str],
    conf_type: str,
    conf_level: float,
) -> pd.DataFrame:
    lower, upper = confidence_limits(pstate, std_err, conf_type=conf_type, conf_level=conf_level)
    n_times, n_states = pstate.shape
    return pd.DataFrame(
        {
            "time": np.repeat(times, n_states),
            "state": np.tile(np.array(states, dtype=object), n_times),
            "estimate": pstate.reshape(-1),
            "std_error": std_err.reshape(-1),
            "ci_lower": lower.reshape(-1),
            "ci_upper": upper.reshape(-1),
        }
    )


def restricted_mean(
    times: np.ndarray, pstate: np.ndarray, p0: np.ndarray, horizon: float, start: float = 0.0
) -> np.ndarray:
    """Expected time in each state from ``start`` to ``horizon`` (area under P(t)).

    ``pstate[..., k, :]`` holds just after ``times[k]``; before the first time
    the occupation is ``p0``.  Leading axes (bootstrap replicates) are kept.

    Examples
    --------
    >>> restricted_mean(np.array([2.0]), np.array([[0.0, 1.0]]), np.array([1.0, 0.0]), 5.0)
    array([2., 3.])
    """
    inside = (times > start) & (times < horizon)
    edges = np.r_[start, times[inside], horizon]
    widths = np.diff(edges)
    # Occupation on [edges[i], edges[i+1]): the last value at or before edges[i].
    position = np.searchsorted(times, edges[:-1], side="right") - 1
    values = np.where(
        (position >= 0)[:, None],
        pstate[..., np.maximum(position, 0), :],
        np.broadcast_to(p0[..., None, :], pstate[..., position, :].shape),
    )
    return np.asarray((values * widths[:, None]).sum(axis=-2))


def _bootstrap(
    counting: CountingData, n_boot: int, seed: int, conf_level: float, horizon: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_ids = counting.n_ids
    alpha = (1 - conf_level) / 2
    replicates, rmeans = [], []
    for first in range(0, n_boot, BOOT_CHUNK):
        size = min(BOOT_CHUNK, n_boot - first)
        # Drawing patients with replacement = weighting each by how often it is drawn.
        draws = rng.multinomial(n_ids, np.full(n_ids, 1.0 / n_ids), size=size).astype(float)
        fit = fit_product_limit(counting, draws[:, counting.row_id], std_err=False)
        replicates.append(fit.pstate)
        rmeans.append(restricted_mean(fit.times, fit.pstate, fit.p0, horizon))
    stacked = np.concatenate(replicates)
    low = np.quantile(stacked, alpha, axis=0)
    high = np.quantile(stacked, 1 - alpha, axis=0)
    return low, high, np.concatenate(rmeans)


def _hazard_table(fit: Any, counting: CountingData, states: list[str]) -> pd.DataFrame:
    pieces = []
    for index, (src, dst) in enumerate(counting.transitions):
        events = fit.n_event[0][:, index]
        risk = fit.n_risk[0][:, src]
        happened = events > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = np.cumsum(np.where(risk > 0, events / risk**2, 0.0))
        pieces.append(
            pd.DataFrame(
                {
                    "transition": f"{states[src]} -> {states[dst]}",
                    "from_state": states[src],
                    "to_state": states[dst],
                    "time": fit.times[happened],
                    "n_risk": risk[happened],
                    "n_event": events[happened],
                    "cumulative_hazard": fit.cumhaz[0][:, index][happened],
                    "std_error": np.sqrt(variance[happened]),
                }
            )
        )
    return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()


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
