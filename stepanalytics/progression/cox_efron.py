"""Risk-set sums of the Cox model under Efron's or Breslow's tie handling, at a given beta.

lifelines fits the model with Efron ties; this module computes what it gets
wrong or lacks (see the notes of :func:`stepanalytics.progression.fit_cox`):

* the whole fit with Breslow ties (Newton-Raphson with step halving, as R
  ``coxph(..., ties = "breslow")``), which lifelines does not offer;

* score residuals and the information matrix with Efron's approximation,
  hence robust (sandwich) and cluster-robust variances that agree with R
  ``coxph(..., cluster=)``;
* the proportional-hazards score test of R ``cox.zph`` (survival >= 3.0).

Notes
-----
Efron (1977): at an event time with d tied events, the risk set is
reduced step by step, ``S0_k = S0 - (k/d) S0_D`` for k = 0..d-1, where
``S0_D`` sums the risk scores of the tied events (likewise for the first
and second moments).  Breslow (1974) keeps the whole risk set at every
step (k/d replaced by 0), so its log partial likelihood is
``sum_events eta_i - sum_t d_t log S0(t)``.  The score residual of subject i (Therneau &
Grambsch 2000, section 4.6) is its event term ``x_i - mean_k xbar_k`` minus
its share of every risk set it was in, where a tied event keeps weight
``1 - k/d`` at step k.  The ``cox.zph`` test (Grambsch & Therneau 1994, in
the form of survival 3.x) is the score test for adding ``g(t) x`` to the
model at ``(beta, 0)``, with ``g`` the left-continuous Kaplan-Meier
transform of time, centred at its mean over events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class EfronSums:
    """Per-event-time quantities of one fit (all strata stacked)."""

    information: FloatArray  # (p, p) observed information at beta
    score_residuals: FloatArray  # (n, p)
    event_time_score: FloatArray  # (T, p) score contribution of each event time
    event_time_information: FloatArray  # (T, p, p)
    event_time: FloatArray  # (T,)
    event_time_stratum: IntArray  # (T,)
    log_likelihood: float = float("nan")  # log partial likelihood at beta


def efron_sums(
    time: FloatArray,
    event: NDArray[np.bool_],
    covariates: FloatArray,
    beta: FloatArray,
    *,
    strata: IntArray | None = None,
    entry: FloatArray | None = None,
    ties: str = "efron",
) -> EfronSums:
    """Score residuals, information and log-likelihood of a Cox model at ``beta``.

    ``ties`` is ``"efron"`` or ``"breslow"``.
    """
    n, p = covariates.shape
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata, np.int64)
    entry = np.full(n, -np.inf) if entry is None else np.asarray(entry, dtype=float)
    residuals = np.zeros((n, p))
    information = np.zeros((p, p))
    scores, infos, times, stratum_of = [], [], [], []
    log_likelihood = 0.0
    for stratum in np.unique(strata):
        rows = np.flatnonzero(strata == stratum)
        part = _one_stratum(
            time[rows], event[rows], covariates[rows], beta, entry[rows], ties == "breslow"
        )
        log_likelihood += part[4]
        residuals[rows] = part[0]
        information += part[2].sum(axis=0)
        scores.append(part[1])
        infos.append(part[2])
        times.append(part[3])
        stratum_of.append(np.full(len(part[3]), stratum, dtype=np.int64))
    return EfronSums(
        information=information,
        score_residuals=residuals,
        event_time_score=np.concatenate(scores) if scores else np.zeros((0, p)),
        event_time_information=np.concatenate(infos) if infos else np.zeros((0, p, p)),
        event_time=np.concatenate(times) if times else np.zeros(0),
        event_time_stratum=np.concatenate(stratum_of) if stratum_of else np.zeros(0, np.int64),
        log_likelihood=log_likelihood,
    )


def _one_stratum(
    time: FloatArray,
    event: NDArray[np.bool_],
    x: FloatArray,
    beta: FloatArray,
    entry: FloatArray,
    breslow: bool = False,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, float]:
    n, p = x.shape
    eta = x @ beta
    shift = eta.max()
    risk = np.exp(eta - shift)  # scale cancels in every ratio below
    death_times, death_index = np.unique(time[event], return_inverse=True)
    n_times = len(death_times)
    if n_times == 0:
        return np.zeros((n, p)), np.zeros((0, p)), np.zeros((0, p, p)), death_times, 0.0
    # Risk-set sums at each death time t: rows with entry < t <= time.
    moments = np.concatenate([risk[:, None], risk[:, None] * x,
                              (risk[:, None, None] * x[:, :, None] * x[:, None, :]).reshape(n, -1)],
                             axis=1)  # fmt: skip
    by_time = np.argsort(time, kind="stable")
    tail = np.vstack([np.cumsum(moments[by_time][::-1], axis=0)[::-1], np.zeros(moments.shape[1])])
    at_or_after = np.searchsorted(time[by_time], death_times, side="left")
    totals = tail[at_or_after]
    if np.isfinite(entry).any():
        by_entry = np.argsort(entry, kind="stable")
        tail_entry = np.vstack(
            [np.cumsum(moments[by_entry][::-1], axis=0)[::-1], np.zeros(moments.shape[1])]
        )
        # Rows that enter at or after t are not yet at risk at t.
        totals = totals - tail_entry[np.searchsorted(entry[by_entry], death_times, side="left")]
    dead = np.flatnonzero(event)
    tied = np.zeros((n_times, moments.shape[1]))
    np.add.at(tied, death_index, moments[dead])
    n_dead = np.bincount(death_index, minlength=n_times)

    # One Efron step per death: (time index, k / d).
    step_time = np.repeat(np.arange(n_times), n_dead)
    first_step = np.r_[0, np.cumsum(n_dead)[:-1]]
    step_k = np.arange(len(step_time)) - np.repeat(first_step, n_dead)
    fraction = np.zeros(len(step_time)) if breslow else step_k / n_dead[step_time]
    reduced = totals[step_time] - fraction[:, None] * tied[step_time]
    s0 = reduced[:, 0]
    xbar = reduced[:, 1 : 1 + p] / s0[:, None]
    second = reduced[:, 1 + p :].reshape(-1, p, p) / s0[:, None, None]
    variance = second - xbar[:, :, None] * xbar[:, None, :]

    def per_time(values: FloatArray) -> FloatArray:
        out = np.zeros((n_times, *values.shape[1:]))
        np.add.at(out, step_time, values)
        return out

    info_t = per_time(variance)
    sum_xbar = per_time(xbar)
    score_t = np.zeros((n_times, p))
    np.add.at(score_t, death_index, x[dead])
    score_t -= sum_xbar
    mean_xbar = sum_xbar / n_dead[:, None]

    # Compensator shares: a subject at risk but not dying at t has weight 1 at
    # every step, a tied death 1 - k/d.
    a_all = per_time(1.0 / s0)
    b_all = per_time(xbar / s0[:, None])
    keep = 1.0 - fraction
    a_dead = per_time(keep / s0)
    b_dead = per_time(keep[:, None] * xbar / s0[:, None])
    cum_a = np.r_[0.0, np.cumsum(a_all)]
    cum_b = np.vstack([np.zeros(p), np.cumsum(b_all, axis=0)])
    upto_exit = np.searchsorted(death_times, time, side="right")
    upto_entry = np.searchsorted(death_times, entry, side="right")
    share_a = cum_a[upto_exit] - cum_a[upto_entry]
    share_b = cum_b[upto_exit] - cum_b[upto_entry]
    own = death_index
    share_a[dead] += a_dead[own] - a_all[own]
    share_b[dead] += b_dead[own] - b_all[own]
    residuals = -risk[:, None] * (x * share_a[:, None] - share_b)
    residuals[dead] += x[dead] - mean_xbar[own]
    log_likelihood = float(eta[dead].sum() - (np.log(s0) + shift).sum())
    return residuals, score_t, info_t, death_times, log_likelihood


def fit_breslow(
    time: FloatArray,
    event: NDArray[np.bool_],
    covariates: FloatArray,
    *,
    strata: IntArray | None = None,
    entry: FloatArray | None = None,
    max_iter: int = 50,
) -> tuple[FloatArray, EfronSums, int]:
    """Maximise the Breslow partial likelihood: (beta, sums at beta, iterations).

    Newton-Raphson from beta = 0 with step halving when the log-likelihood
    falls, as R ``coxph``; iterates to the limit of double precision (R stops
    at a relative change of 1e-9 in the log-likelihood).  Raises
    ``ArithmeticError`` when it does not converge (often separation).
    """
    beta = np.zeros(covariates.shape[1])
    sums = efron_sums(time, event, covariates, beta, strata=strata, entry=entry, ties="breslow")
    for iteration in range(1, max_iter + 1):
        score = sums.event_time_score.sum(axis=0)
        step = np.linalg.solve(sums.information, score)
        trial = efron_sums(
            time, event, covariates, beta + step, strata=strata, entry=entry, ties="breslow"
        )
        halvings = 0
        while not trial.log_likelihood >= sums.log_likelihood - 1e-12 * abs(sums.log_likelihood):
            halvings += 1
            if halvings > 30:
                raise ArithmeticError("the log-likelihood does not increase")
            step = step / 2
            trial = efron_sums(
                time, event, covariates, beta + step, strata=strata, entry=entry, ties="breslow"
            )
        beta, sums = beta + step, trial
        if np.max(np.abs(step)) <= 1e-10 * max(1.0, float(np.max(np.abs(beta)))):
            return beta, sums, iteration
        if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 50:
            break
    raise ArithmeticError(f"no convergence in {max_iter} Newton-Raphson iterations")


def robust_variance(
    score_residuals: FloatArray, model_variance: FloatArray, cluster: IntArray | None = None
) -> FloatArray:
    """Sandwich variance ``D'D`` from dfbeta residuals summed within clusters (R coxph)."""
    dfbeta = score_residuals @ model_variance
    if cluster is not None:
        codes = np.asarray(cluster, dtype=np.int64)
        summed = np.zeros((codes.max() + 1, dfbeta.shape[1]))
        np.add.at(summed, codes, dfbeta)
        dfbeta = summed
    return dfbeta.T @ dfbeta


def km_time_transform(
    time: FloatArray, event: NDArray[np.bool_], entry: FloatArray | None = None
) -> FloatArray:
    """``1 - S(t-)`` for each row, S the Kaplan-Meier of all rows (cox.zph "km")."""
    entry = np.full(len(time), -np.inf) if entry is None else entry
    grid = np.unique(time)
    at_risk = np.searchsorted(np.sort(time), grid, side="left")
    n_risk = len(time) - at_risk - (len(entry) - np.searchsorted(np.sort(entry), grid, side="left"))
    deaths = np.bincount(np.searchsorted(grid, time[event]), minlength=len(grid))
    with np.errstate(divide="ignore", invalid="ignore"):
        survival = np.cumprod(np.where(n_risk > 0, 1.0 - deaths / n_risk, 1.0))
    before = np.searchsorted(grid, time, side="left")  # number of grid times < t
    return 1.0 - np.r_[1.0, survival][before]


def zph_test(
    sums: EfronSums,
    time: FloatArray,
    event: NDArray[np.bool_],
    terms: dict[str, list[int]],
    *,
    entry: FloatArray | None = None,
) -> list[tuple[str, float, int]]:
    """Proportional-hazards score tests per term and globally: (name, chisq, df).

    As R ``cox.zph(fit, transform = "km", terms = TRUE)``.
    """
    g_rows = km_time_transform(time, event, entry)
    g_rows = g_rows - g_rows[event].mean()
    # g at each event time (identical for tied events).
    lookup = dict(zip(time[event], g_rows[event], strict=False))
    g = np.array([lookup[t] for t in sums.event_time])
    p = sums.information.shape[0]
    score_g = (g[:, None] * sums.event_time_score).sum(axis=0)
    info_bg = (g[:, None, None] * sums.event_time_information).sum(axis=0)
    info_gg = (g[:, None, None] ** 2 * sums.event_time_information).sum(axis=0)
    full = np.block([[sums.information, info_bg], [info_bg.T, info_gg]])
    results = []
    for name, columns in terms.items():
        keep = [*range(p), *(p + c for c in columns)]
        u = np.r_[np.zeros(p), score_g[columns]]
        sub = full[np.ix_(keep, keep)]
        results.append((name, float(u @ np.linalg.solve(sub, u)), len(columns)))
    u = np.r_[np.zeros(p), score_g]
    results.append(("GLOBAL", float(u @ np.linalg.solve(full, u)), p))
    return results
