"""Aalen-Johansen product integration for multi-state data in counting-process form.

This is the numerical engine under :func:`cumulative_incidence` (competing
risks out of one phase) and :func:`fit_multistate` (the whole programme).
Rows are intervals ``(entry, exit]`` spent by one subject in ``from_state``;
``to_state`` is the state entered at ``exit`` or ``-1`` when the row is
censored there.

Everything is deterministic: tied times are handled exactly by the product
integral (all transitions at a time enter one step ``I + dA(t)``), never by
random jitter as lifelines' ``AalenJohansenFitter`` does.

Notes
-----
R equivalent: ``survival::survfit(Surv(entry, exit, to_state) ~ 1, id=id,
istate=from_state)`` (survival >= 3.0).  The point estimates are the
Aalen-Johansen estimator (Aalen & Johansen 1978; Andersen, Borgan, Gill &
Keiding 1993, ch. IV.4).  Standard errors are the infinitesimal-jackknife
(IJ) ones that ``survfit`` reports for multi-state curves: the influence of
each subject on ``P(t)`` is carried forward by the same product integral and
the variance is the sum of squared influences per subject (Therneau,
"The survival package: multi-state models" vignette).  As in ``survfit``'s
default, the uncertainty of the starting distribution ``p0`` is not added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class CountingData:
    """Intervals of subjects in states, prepared for product integration.

    Build it with :func:`prepare_counting_data`; the fields are index arrays
    into the time grid so that fits with other weights (bootstrap) reuse them.
    """

    n_states: int
    n_ids: int
    times: FloatArray  # grid: sorted unique exit times (events and censorings)
    row_id: IntArray  # subject index of each row
    row_from: IntArray  # state code of each row
    row_to: IntArray  # state entered at exit, -1 when censored
    first_index: IntArray  # first grid index at which the row is at risk
    last_index: IntArray  # last grid index at which the row is at risk (its exit)
    transitions: IntArray  # (L, 2) observed (from, to) pairs
    row_transition: IntArray  # index into transitions, -1 when censored
    initial_rows: IntArray  # rows at risk at the first event time (define p0)


def prepare_counting_data(
    entry: npt.ArrayLike,
    exit: npt.ArrayLike,
    from_state: npt.ArrayLike,
    to_state: npt.ArrayLike,
    ids: npt.ArrayLike,
    n_states: int,
) -> CountingData:
    """Index the intervals on the grid of exit times.

    Parameters
    ----------
    entry, exit : array of float
        Interval ``(entry, exit]``; ``exit > entry`` is required.
    from_state, to_state : array of int
        State codes ``0 .. n_states-1``; ``to_state`` is -1 for a censored row.
    ids : array of int
        Subject codes ``0 .. n_ids-1``; a subject's intervals must not overlap.
    n_states : int
        Number of states.
    """
    entry = np.asarray(entry, dtype=float)
    exit = np.asarray(exit, dtype=float)
    from_state = np.asarray(from_state, dtype=np.int64)
    to_state = np.asarray(to_state, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    if np.any(exit <= entry):
        # Internal callers build the rows; reaching this is a programming error.
        raise ValueError("every interval needs exit > entry")
    times = np.unique(exit)
    # At risk at grid time t when entry < t <= exit.
    first_index = np.searchsorted(times, entry, side="right").astype(np.int64)
    last_index = np.searchsorted(times, exit, side="left").astype(np.int64)
    moved = to_state >= 0
    pairs = np.unique(np.column_stack([from_state[moved], to_state[moved]]), axis=0)
    pairs = pairs.reshape(-1, 2).astype(np.int64)
    row_transition = np.full(len(entry), -1, dtype=np.int64)
    if len(pairs):
        codes = from_state * n_states + to_state
        pair_codes = pairs[:, 0] * n_states + pairs[:, 1]
        row_transition[moved] = np.searchsorted(pair_codes, codes[moved])
    event_times = exit[moved]
    t0 = event_times.min() if event_times.size else exit.max()
    initial_rows = np.flatnonzero((entry < t0) & (exit >= t0)).astype(np.int64)
    return CountingData(
        n_states=n_states,
        n_ids=int(ids.max()) + 1 if ids.size else 0,
        times=times,
        row_id=ids,
        row_from=from_state,
        row_to=to_state,
        first_index=first_index,
        last_index=last_index,
        transitions=pairs,
        row_transition=row_transition,
        initial_rows=initial_rows,
    )


@dataclass(frozen=True)
class ProductLimit:
    """Aalen-Johansen fit on the time grid (one or several weightings).

    Arrays have a leading replicate axis ``B`` (1 for the plain fit).
    """

    times: FloatArray  # (T,)
    p0: FloatArray  # (B, S) starting distribution
    pstate: FloatArray  # (B, T, S) state occupation just after each grid time
    n_risk: FloatArray  # (B, T, S)
    n_event: FloatArray  # (B, T, L) transitions per observed (from, to) pair
    n_censor: FloatArray  # (B, T, S) censorings by state
    cumhaz: FloatArray  # (B, T, L) Nelson-Aalen cumulative hazard per transition
    std_err: FloatArray | None  # (T, S) IJ standard error, plain fit only
    # (S,) IJ standard error of the time in each state up to ``horizon`` (plain fit only)
    rmean_std_err: FloatArray | None = None


def weighted_counts(
    data: CountingData, weights: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """At-risk, event and censoring weights on the grid for each weighting.

    ``weights`` has shape (B, n_rows).  Returns ``n_risk`` (B, T, S),
    ``n_event`` (B, T, L) and ``n_censor`` (B, T, S).
    """
    n_rep = weights.shape[0]
    n_times, n_states = len(data.times), data.n_states
    n_trans = len(data.transitions)
    # Difference array over the grid: +w where a row starts being at risk,
    # -w just after its last grid index; a cumulative sum gives n_risk.
    diff = np.zeros((n_rep, (n_times + 1) * n_states))
    start_slot = data.first_index * n_states + data.row_from
    stop_slot = (data.last_index + 1) * n_states + data.row_from
    for rep in range(n_rep):
        w = weights[rep]
        diff[rep] += np.bincount(start_slot, w, minlength=diff.shape[1])
        diff[rep] -= np.bincount(stop_slot, w, minlength=diff.shape[1])
    n_risk = np.cumsum(diff.reshape(n_rep, n_times + 1, n_states), axis=1)[:, :n_times, :]
    moved = data.row_transition >= 0
    event_slot = data.last_index[moved] * max(n_trans, 1) + data.row_transition[moved]
    censor_slot = data.last_index[~moved] * n_states + data.row_from[~moved]
    n_event = np.zeros((n_rep, n_times, n_trans))
    n_censor = np.zeros((n_rep, n_times, n_states))
    for rep in range(n_rep):
        if n_trans:
            counts = np.bincount(event_slot, weights[rep][moved], minlength=n_times * n_trans)
            n_event[rep] = counts.reshape(n_times, n_trans)
        counts = np.bincount(censor_slot, weights[rep][~moved], minlength=n_times * n_states)
        n_censor[rep] = counts.reshape(n_times, n_states)
    return n_risk, n_event, n_censor


def _initial_distribution(data: CountingData, weights: FloatArray) -> FloatArray:
    rows = data.initial_rows
    p0 = np.zeros((weights.shape[0], data.n_states))
    for rep in range(weights.shape[0]):
        p0[rep] = np.bincount(data.row_from[rows], weights[rep][rows], minlength=data.n_states)
    total = p0.sum(axis=1, keepdims=True)
    return np.divide(p0, total, out=np.zeros_like(p0), where=total > 0)


def fit_product_limit(
    data: CountingData,
    weights: FloatArray | None = None,
    *,
    std_err: bool = True,
    horizon: float | None = None,
) -> ProductLimit:
    """Aalen-Johansen state occupation, Nelson-Aalen hazards and IJ standard errors.

    Parameters
    ----------
    data : CountingData
        From :func:`prepare_counting_data`.
    weights : array (B, n_rows), optional
        One row of weights per replicate (bootstrap: how often each row's
        subject was drawn).  Default: one replicate of unit weights.
    std_err : bool
        Compute the infinitesimal-jackknife standard errors (plain fit only).
    horizon : float, optional
        With ``std_err``, also the IJ standard error of the time spent in
        each state from 0 to ``horizon``: each subject's influence on P(t)
        is integrated over time and the squares summed (R: ``se(rmean)`` of
        ``summary(survfit(..., influence = TRUE), rmean = horizon)``).
    """
    n_rows = len(data.row_id)
    plain = weights is None
    w = np.ones((1, n_rows)) if weights is None else np.asarray(weights, dtype=float)
    n_risk, n_event, n_censor = weighted_counts(data, w)
    n_rep, n_times, n_states = n_risk.shape
    src = data.transitions[:, 0]
    risk_from = n_risk[:, :, src]  # (B, T, L)
    hazard = np.divide(n_event, risk_from, out=np.zeros_like(n_event), where=risk_from > 0)
    p0 = _initial_distribution(data, w)
    pstate = np.empty((n_rep, n_times, n_states))
    p = p0.copy()
    event_index = np.flatnonzero(n_event.sum(axis=(0, 2)) > 0)
    last = 0
    for k in event_index.tolist():
        pstate[:, last:k, :] = p[:, None, :]
        # P(t) = P(t-) (I + dA(t)): all transitions at a tied time in one step.
        p = p + np.einsum("bs,bst->bt", p, hazard_matrix(data, hazard[:, k, :]))
        last = k
    pstate[:, last:, :] = p[:, None, :]
    cumhaz = np.cumsum(hazard, axis=1)
    se = rmean_se = None
    if plain and std_err:
        se, rmean_se = _ij_std_err(
            data, hazard[0], pstate[0], p0[0], n_risk[0], event_index, horizon
        )
    return ProductLimit(
        times=data.times,
        p0=p0,
        pstate=pstate,
        n_risk=n_risk,
        n_event=n_event,
        n_censor=n_censor,
        cumhaz=cumhaz,
        std_err=se,
        rmean_std_err=rmean_se,
    )


def hazard_matrix(data: CountingData, increments: FloatArray) -> FloatArray:
    """Hazard increments (B, L) as matrices dA (B, S, S) with rows summing to zero."""
    n_states = data.n_states
    src, dst = data.transitions[:, 0], data.transitions[:, 1]
    matrix = np.zeros((increments.shape[0], n_states, n_states))
    matrix[:, src, dst] = increments
    leaving = increments @ np.eye(n_states)[src]  # (B, S): total hazard out of each state
    diagonal = np.arange(n_states)
    matrix[:, diagonal, diagonal] = -leaving
    return matrix


def _ij_std_err(
    data: CountingData,
    hazard: FloatArray,
    pstate: FloatArray,
    p0: FloatArray,
    n_risk: FloatArray,
    event_index: IntArray,
    horizon: float | None = None,
) -> tuple[FloatArray, FloatArray | None]:
    """Infinitesimal-jackknife standard errors of the state occupation.

    The influence U_i(t) of subject i on P(t) follows
    U_i(t) = U_i(t-) (I + dA(t)) + P(t-) dA_i(t), where dA_i(t) is i's
    influence on the hazard matrix: for i at risk in h,
    (dN_i,h.(t) - dA_h.(t)) / Y_h(t) on row h.  With a ``horizon``, the
    step function U_i(t) is also integrated up to it: the influence on the
    expected time in each state (zero before the first event time).
    """
    n_states = data.n_states
    influence = np.zeros((data.n_ids, n_states))
    variance = np.zeros((len(data.times), n_states))
    current_state = np.full(data.n_ids, -1, dtype=np.int64)
    by_first = np.argsort(data.first_index, kind="stable")
    by_last = np.argsort(data.last_index, kind="stable")
    # Rows that end in a transition, grouped by the grid index of that transition.
    moving = np.flatnonzero(data.row_to >= 0)
    moving = moving[np.argsort(data.last_index[moving], kind="stable")]
    moving_index = data.last_index[moving]
    next_in = next_out = 0
    previous = p0
    last = 0
    area = np.zeros((data.n_ids, n_states)) if horizon is not None else None
    for k in event_index.tolist():
        variance[last:k] = (influence**2).sum(axis=0)
        if area is not None and horizon is not None:
            # U_i holds from the previous event time up to this one.
            area += influence * max(min(data.times[k], horizon) - min(data.times[last], horizon), 0)
        # Rows whose last grid index is before k are no longer at risk.
        while next_out < len(by_last) and data.last_index[by_last[next_out]] < k:
            current_state[data.row_id[by_last[next_out]]] = -1
            next_out += 1
        while next_in < len(by_first) and data.first_index[by_first[next_in]] <= k:
            row = by_first[next_in]
            if data.last_index[row] >= k:
                current_state[data.row_id[row]] = data.row_from[row]
            next_in += 1
        step_hazard = hazard_matrix(data, hazard[k][None, :])[0]
        influence = influence + influence @ step_hazard
        at_risk = np.flatnonzero(current_state >= 0)
        states = current_state[at_risk]
        risk = n_risk[k, states]
        scale = np.divide(previous[states], risk, out=np.zeros_like(risk), where=risk > 0)
        # -dA_h. for every subject at risk in h ...
        contribution = -step_hazard[states]
        # ... plus its own transition at k, if any.
        lo, hi = np.searchsorted(moving_index, [k, k + 1])
        for row in moving[lo:hi]:
            position = np.searchsorted(at_risk, data.row_id[row])
            contribution[position, data.row_from[row]] -= 1.0
            contribution[position, data.row_to[row]] += 1.0
        influence[at_risk] += scale[:, None] * contribution
        previous = pstate[k]
        last = k
    variance[last:] = (influence**2).sum(axis=0)
    rmean_se = None
    if area is not None and horizon is not None:
        area += influence * max(horizon - data.times[last], 0.0)
        rmean_se = np.sqrt((area**2).sum(axis=0))
    return np.sqrt(variance), rmean_se
