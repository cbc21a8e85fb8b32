"""One Aalen-Johansen fit of the programme's multi-state model, on one group of patients.

:func:`stepanalytics.progression.fit_multistate` calls :func:`fit_states`
once for the whole cohort, or once per group with ``by=``; every group is
fitted on the same list of states, so the stacked tables line up.

Notes
-----
R equivalent of one group: ``survfit(Surv(tstart, tstop, to) ~ 1, id =
patient_id, istate = from, influence = TRUE)``; ``summary(fit, rmean =
horizon)$table`` gives ``rmean`` and ``se(rmean)``.  The standard error of
the expected time in a state is the infinitesimal jackknife: each patient's
influence on P(t) integrated up to the horizon, squared and summed
(Therneau, survival vignette "Multi-state models and competing risks").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from stepanalytics.progression.aalen_johansen import (
    CountingData,
    ProductLimit,
    fit_product_limit,
    prepare_counting_data,
)
from stepanalytics.progression.confidence import confidence_limits

#: Bootstrap replicates fitted together (bounds memory: B x times x states).
BOOT_CHUNK = 50


@dataclass(frozen=True)
class StateFit:
    """Tables of one fit (one group), before they are stacked."""

    fit: ProductLimit
    occupation: pd.DataFrame  # time, state, estimate, std_error, ci_lower, ci_upper[, boot_*]
    time_in_state: pd.DataFrame  # state, estimate, std_error, ci_lower, ci_upper, horizon[, boot_*]
    hazards: pd.DataFrame  # Nelson-Aalen per transition
    last_time: float  # end of follow-up in this group


def fit_states(
    rows: pd.DataFrame,
    states: list[str],
    *,
    horizon: float,
    n_boot: int,
    rng: np.random.Generator,
    conf_type: str,
    conf_level: float,
) -> StateFit:
    """Fit state occupation, hazards and expected days in each state on ``rows``.

    Parameters
    ----------
    rows : DataFrame
        Counting-process rows (patient_id, tstart, tstop, from_state,
        to_state with None when censored).
    states : list of str
        All states of the model, in display order (may include states that
        nobody in ``rows`` reaches: their occupation is 0).
    horizon : float
        Upper limit of the expected time in each state (days).
    n_boot : int
        Bootstrap replicates (0: none).
    rng : numpy Generator
        Source of the bootstrap draws.
    conf_type, conf_level
        Pointwise limits of the occupation (as R survfit).

    Examples
    --------
    >>> rows = pd.DataFrame({"patient_id": ["a", "b"], "tstart": [0.0, 0.0],
    ...                      "tstop": [2.0, 4.0], "from_state": ["well", "well"],
    ...                      "to_state": ["ill", None]})
    >>> fitted = fit_states(rows, ["well", "ill"], horizon=4.0, n_boot=0,
    ...                     rng=np.random.default_rng(1), conf_type="log", conf_level=0.95)
    >>> fitted.time_in_state[["state", "estimate"]].to_numpy().tolist()
    [['well', 3.0], ['ill', 1.0]]
    """
    counting = counting_data(rows, states)
    fit = fit_product_limit(counting, horizon=horizon)
    assert fit.std_err is not None and fit.rmean_std_err is not None  # plain fit
    occupation = _occupation_table(fit.times, fit.pstate[0], fit.std_err, states,
                                   conf_type, conf_level)  # fmt: skip
    rmean = restricted_mean(fit.times, fit.pstate[0], fit.p0[0], horizon)
    z = norm.ppf(1 - (1 - conf_level) / 2)
    se = fit.rmean_std_err
    time_in_state = pd.DataFrame(
        {
            "state": states,
            "estimate": rmean,
            "std_error": se,
            # Normal limits, kept inside the possible range [0, horizon].
            "ci_lower": np.clip(rmean - z * se, 0.0, horizon),
            "ci_upper": np.clip(rmean + z * se, 0.0, horizon),
            "horizon": horizon,
        }
    )
    if n_boot:
        low, high, boot_rmean = _bootstrap(counting, n_boot, rng, conf_level, horizon)
        occupation["boot_lower"] = low.reshape(-1)
        occupation["boot_upper"] = high.reshape(-1)
        alpha = (1 - conf_level) / 2
        time_in_state["boot_lower"] = np.quantile(boot_rmean, alpha, axis=0)
        time_in_state["boot_upper"] = np.quantile(boot_rmean, 1 - alpha, axis=0)
    return StateFit(
        fit=fit,
        occupation=occupation,
        time_in_state=time_in_state,
        hazards=_hazard_table(fit, counting, states),
        last_time=float(rows["tstop"].max()),
    )


def counting_data(rows: pd.DataFrame, states: list[str]) -> CountingData:
    """Code the rows' states and patients for :func:`fit_product_limit`."""
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
    counting: CountingData,
    n_boot: int,
    rng: np.random.Generator,
    conf_level: float,
    horizon: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _hazard_table(fit: ProductLimit, counting: CountingData, states: list[str]) -> pd.DataFrame:
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
