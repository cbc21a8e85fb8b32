"""Cumulative incidence of competing outcomes (Aalen-Johansen), deterministic.

Notes
-----
R equivalents: ``survfit(Surv(time, factor(outcome)) ~ group)`` (survival
>= 3.0) for the estimates and, with ``variance="ij"`` (default), the
standard errors; ``cmprsk::cuminc(time, outcome)`` for the estimates and,
with ``variance="aalen"``, its variances.  Estimator: Aalen & Johansen
(1978), here the special case of one transient state; see Putter, Fiocco &
Geskus (2007) for why ``1 - KM`` overstates the incidence when outcomes
compete.  ``"ij"`` is the infinitesimal-jackknife variance (sum of squared
per-subject influences) that R ``survfit`` reports; ``"aalen"`` is Aalen's
(1978) delta-method variance with the binomial correction for tied
outcomes, as computed by ``cmprsk::cuminc``.  The limits use the same
transformations as R ``survfit`` (``conf_type``, default ``"log"``).
Unlike lifelines' ``AalenJohansenFitter`` nothing is jittered: tied times
are handled exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression.aalen_johansen import fit_product_limit, prepare_counting_data
from stepanalytics.progression.confidence import check_conf, confidence_limits
from stepanalytics.progression.gray import gray_table
from stepanalytics.progression.results import CumulativeIncidence

#: Name of the "no outcome yet" state in the result tables.
STILL_IN = "in_phase"
VARIANCES = ("ij", "aalen")


def cumulative_incidence(
    data: pd.DataFrame,
    *,
    duration: str,
    outcome: str,
    censored: str = "censored",
    by: str | None = None,
    cluster: str | None = None,
    at: Sequence[float] = (),
    variance: str = "ij",
    strata: str | None = None,
    rho: float = 0.0,
    conf_type: str = "log",
    conf_level: float = 0.95,
    still_in: str = STILL_IN,
    title: str | None = None,
) -> CumulativeIncidence:
    """Cumulative incidence of each competing outcome over time, per group.

    Parameters
    ----------
    data : DataFrame
        One row per subject (or episode).
    duration : str
        Column of times (>= 0) at which the outcome happened or follow-up ended.
    outcome : str
        Column naming what happened; the value ``censored`` marks rows whose
        follow-up ended without an outcome.
    censored : str
        The value of ``outcome`` that means censored.
    by : str, optional
        Grouping column: one set of curves per group.
    cluster : str, optional
        Column identifying subjects with several rows (e.g. patient_id when
        re-entries are included): their influences are summed, as R
        ``survfit(..., id=)``.  Only used by ``variance="ij"``.
    at : sequence of float
        Times at which to report the incidences.
    variance : {"ij", "aalen"}
        ``"ij"``: R survfit's infinitesimal jackknife; ``"aalen"``: cmprsk's.
    strata : str, optional
        Stratify Gray's test on this column (with ``by``; R ``cuminc(...,
        strata)``).  The curves are not affected.
    rho : float
        Power of the weight ``(1 - F0(t-))^rho`` of Gray's test (0: R's
        default; positive values stress early differences).
    conf_type, conf_level
        Pointwise limits, as :func:`kaplan_meier`.
    still_in : str
        Label of the probability of no outcome yet.

    Returns
    -------
    CumulativeIncidence
        With ``by``, ``tests`` holds Gray's test of equal incidence across
        the groups for each outcome (see :func:`gray_test`).

    Examples
    --------
    >>> frame = pd.DataFrame({"t": [2, 3, 3, 5, 8, 9],
    ...                       "what": ["a", "b", "censored", "a", "b", "censored"]})
    >>> fit = cumulative_incidence(frame, duration="t", outcome="what", at=[4])
    >>> fit.at_times.set_index("outcome")["estimate"].round(4).to_dict()
    {'in_phase': 0.6667, 'a': 0.1667, 'b': 0.1667}
    """
    check_conf(conf_type, conf_level)
    if variance not in VARIANCES:
        raise UsageError(f"variance must be one of {', '.join(VARIANCES)}; got {variance!r}")
    if strata is not None and by is None:
        raise UsageError("strata= stratifies Gray's test between groups: give by= as well")
    frame = _checked(data, duration, outcome, by, cluster, strata)
    kinds = sorted(k for k in frame[outcome].unique() if k != censored)
    if not kinds:
        raise AnalysisError(
            f"no outcome happened (every row of {outcome!r} is {censored!r}): "
            "there is no incidence to estimate"
        )
    warnings: list[str] = []
    groups = ["all"] if by is None else sorted(frame[by].unique().tolist(), key=str)
    tables, counts = [], []
    for group in groups:
        part = frame if by is None else frame[frame[by] == group]
        table = _one_group(part, duration, outcome, censored, cluster, kinds, variance)
        table.insert(0, "group", group)
        tables.append(table)
        tally = part[outcome].value_counts()
        if int(tally.get(censored, 0)) == len(part):
            warnings.append(f"group {group!r} has no outcome yet: its incidences stay at 0")
        counts.append({"group": group, "n": len(part), **{k: int(tally.get(k, 0)) for k in kinds},
                       censored: int(tally.get(censored, 0))})  # fmt: skip
    table = pd.concat(tables, ignore_index=True)
    lower, upper = confidence_limits(
        table["estimate"].to_numpy(), table["std_error"].to_numpy(),
        conf_type=conf_type, conf_level=conf_level,
    )  # fmt: skip
    table["ci_lower"], table["ci_upper"] = lower, upper
    if variance == "aalen" and cluster is not None:
        warnings.append(
            "variance='aalen' treats every row as independent; use variance='ij' to account "
            f"for several rows per {cluster}"
        )
    at_table = _at_times(table, frame, duration, by, at, warnings, conf_type, conf_level)
    tests = pd.DataFrame()
    if by is not None and len(groups) > 1:
        tests = gray_table(frame, duration=duration, outcome=outcome, censored=censored, by=by,
                           strata=strata, rho=rho, kinds=kinds, warnings=warnings)  # fmt: skip
        if cluster is not None and frame[cluster].duplicated().any():
            warnings.append(
                f"Gray's test treats every row as independent, but some {cluster} have several "
                "rows: its p-values are too small; test first stays only"
            )
    return CumulativeIncidence(
        table=table,
        warnings=tuple(warnings),
        title=title or "Cumulative incidence (Aalen-Johansen)",
        at_times=at_table,
        events=pd.DataFrame(counts),
        tests=tests,
        variance=variance,
        conf_type=conf_type,
        conf_level=conf_level,
    )


def _checked(
    data: pd.DataFrame,
    duration: str,
    outcome: str,
    by: str | None,
    cluster: str | None,
    strata: str | None = None,
) -> pd.DataFrame:
    needed = [c for c in (duration, outcome, by, cluster, strata) if c is not None]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise UsageError(
            f"column(s) {', '.join(missing)} not in the data; have {list(data.columns)}"
        )
    frame = data[list(dict.fromkeys(needed))].copy()
    if frame.empty:
        raise AnalysisError("there are no rows to analyse (nobody at risk)")
    times = pd.to_numeric(frame[duration], errors="coerce")
    bad = times.isna() | (times < 0) | frame[outcome].isna()
    if bad.any():
        rows = ", ".join(str(i) for i in frame.index[bad][:10])
        raise AnalysisError(
            f"rows {rows} lack a time >= 0 in {duration!r} or an outcome in {outcome!r}; "
            "fix or remove them before the analysis"
        )
    for column in (by, strata):
        if column is not None and frame[column].isna().any():
            rows = ", ".join(str(i) for i in frame.index[frame[column].isna()][:10])
            raise AnalysisError(
                f"rows {rows} have no value in {column!r}; fill it (e.g. 'unknown') or remove "
                "them before comparing groups"
            )
    frame[duration] = times.astype(float)
    return frame


def _one_group(
    part: pd.DataFrame,
    duration: str,
    outcome: str,
    censored: str,
    cluster: str | None,
    kinds: list[str],
    variance: str,
) -> pd.DataFrame:
    times = part[duration].to_numpy(dtype=float)
    what = part[outcome].to_numpy(dtype=object)
    code = np.full(len(part), -1, dtype=np.int64)
    for number, kind in enumerate(kinds, start=1):
        code[what == kind] = number
    ids = (
        np.arange(len(part)) if cluster is None else pd.factorize(part[cluster])[0].astype(np.int64)
    )
    # Right-censored data: everyone is at risk from before the first time (as R survfit).
    entry = np.full(len(part), min(0.0, float(times.min())) - 1.0)
    data = prepare_counting_data(
        entry, times, np.zeros(len(part), dtype=np.int64), code, ids, len(kinds) + 1
    )
    fit = fit_product_limit(data, std_err=variance == "ij")
    pstate = fit.pstate[0]
    n_risk = fit.n_risk[0][:, 0]
    events = np.zeros((len(fit.times), len(kinds) + 1))
    for index, (_, to) in enumerate(data.transitions):
        events[:, to] = fit.n_event[0][:, index]
    events[:, 0] = events[:, 1:].sum(axis=1)
    if variance == "ij":
        assert fit.std_err is not None  # requested above
        std_error = fit.std_err
    else:
        std_error = _aalen_std_err(n_risk, events, pstate)
    labels = [STILL_IN, *kinds]
    pieces = []
    for column, label in enumerate(labels):
        pieces.append(
            pd.DataFrame(
                {
                    "outcome": label,
                    "time": fit.times,
                    "n_risk": n_risk.astype(np.int64),
                    "n_event": events[:, column].astype(np.int64),
                    "estimate": pstate[:, column],
                    "std_error": std_error[:, column],
                }
            )
        )
    return pd.concat(pieces, ignore_index=True)


def _aalen_std_err(n_risk: np.ndarray, events: np.ndarray, pstate: np.ndarray) -> np.ndarray:
    """Standard errors of cmprsk ``cuminc`` (Aalen 1978 with a correction for ties).

    With S the all-outcome Kaplan-Meier, F_k the incidence of outcome k,
    n_j at risk, d_kj outcomes k and o_j other outcomes at time t_j:
    Var F_k(t) = sum_j S(t_j-)^2 [ c(o_j) ((F_k(t) - F_k(t_j)) / S(t_j))^2
                                + c(d_kj) (1 - (F_k(t) - F_k(t_j)) / S(t_j))^2 ],
    c(d) = d (n_j - d) / (n_j^2 (n_j - 1)) (d / n_j^2 when d <= 1).
    The "still in" column gets Greenwood's standard error of S.
    """
    n = n_risk.astype(float)
    total = events[:, 0]
    survival = pstate[:, 0]
    before = np.r_[1.0, survival[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        std_error = np.zeros_like(pstate)
        terms = np.where(total > 0, total / (n * (n - total)), 0.0)
        log_se = np.sqrt(np.cumsum(terms))
        std_error[:, 0] = np.where(np.isfinite(log_se), survival * np.nan_to_num(log_se), np.nan)

        def weight(d: np.ndarray) -> np.ndarray:
            ties = np.where(d > 1, (n - d) / np.where(n > 1, n - 1, 1.0), 1.0)
            return np.where(d > 0, before**2 * ties * d / n**2, 0.0)

        alive = survival > 0
        inv_s = np.where(alive, 1.0 / np.where(alive, survival, 1.0), 0.0)
        for k in range(1, events.shape[1]):
            f = pstate[:, k]
            other = total - events[:, k]
            c_other = np.where(alive, weight(other), 0.0)
            c_own = weight(events[:, k])
            # Each term is c (alpha + beta F(t))^2; accumulate the three sums.
            alpha_o, beta_o = f * inv_s, -inv_s
            alpha_k, beta_k = 1.0 + f * inv_s, -inv_s
            a = np.cumsum(c_other * alpha_o**2 + c_own * alpha_k**2)
            b = np.cumsum(c_other * alpha_o * beta_o + c_own * alpha_k * beta_k)
            c = np.cumsum(c_other * beta_o**2 + c_own * beta_k**2)
            std_error[:, k] = np.sqrt(np.maximum(a + 2 * f * b + f**2 * c, 0.0))
    return std_error


def _at_times(
    table: pd.DataFrame,
    frame: pd.DataFrame,
    duration: str,
    by: str | None,
    at: Sequence[float],
    warnings: list[str],
    conf_type: str,
    conf_level: float,
) -> pd.DataFrame:
    if not len(at):
        return pd.DataFrame()
    rows = []
    beyond: list[str] = []
    for (group, label), curve in table.groupby(["group", "outcome"], sort=False):
        part = frame if by is None else frame[frame[by] == group]
        last_time = float(part[duration].max())
        times = curve["time"].to_numpy()
        for t in at:
            row = {"group": group, "outcome": label, "time": float(t),
                   "n_risk": int((part[duration] >= t).sum())}  # fmt: skip
            index = np.searchsorted(times, t, side="right") - 1
            values: dict[str, float]
            if t > last_time:
                values = dict.fromkeys(["estimate", "std_error", "ci_lower", "ci_upper"], np.nan)
                if label == STILL_IN:
                    beyond.append(f"day {t:g} in group {group!r}")
            elif index < 0:
                # Before the first time: nobody has left yet.
                start = np.array([1.0 if label == STILL_IN else 0.0])
                low, high = confidence_limits(start, np.zeros(1), conf_type=conf_type,
                                              conf_level=conf_level)  # fmt: skip
                values = {"estimate": float(start[0]), "std_error": 0.0,
                          "ci_lower": float(low[0]), "ci_upper": float(high[0])}  # fmt: skip
            else:
                picked = curve.iloc[index]
                values = {k: float(picked[k]) for k in ("estimate", "std_error", "ci_lower",
                                                        "ci_upper")}  # fmt: skip
            row.update(values)
            rows.append(row)
    if beyond:
        warnings.append(
            "nobody is followed up to " + ", ".join(beyond) + ": not estimated there (NaN)"
        )
    return pd.DataFrame(rows)
