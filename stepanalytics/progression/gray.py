"""Gray's K-sample test: do groups differ in the cumulative incidence of an outcome?

Notes
-----
R equivalent: ``cmprsk::cuminc(ftime, fstatus, group, strata, rho = 0)$Tests``
(one test per outcome).  Source: Gray (1988), "A class of K-sample tests
for comparing the cumulative incidence of a competing risk", *Annals of
Statistics* 16:1141-1154.  The statistic compares each group's
subdistribution hazard with the pooled one, like a log-rank test on the
subdistribution ("still free of this outcome") risk sets.

With, in group r at an outcome time t, ``Y_r`` at risk, ``S_r(t-)`` the
all-outcome Kaplan-Meier just before t, ``F_r(t-)`` the incidence of the
outcome of interest and ``d_r`` / ``o_r`` the outcomes of interest / other
outcomes:

* ``h_r = Y_r / S_r(t-)``, ``H = sum_r h_r``; subdistribution risk set
  ``R_r = h_r (1 - F_r(t-))``, ``Q = sum_r R_r``;
* pooled incidence under the null ``F0``, increments ``D / H`` (D = sum d_r);
  weight ``L(t) = (1 - F0(t-))^rho``;
* score of group i: ``z_i = sum_t L (d_i - D R_i / Q)``.

Its covariance is the martingale variance of the paper, evaluated under the
null (pooled F0 for the outcome of interest, each group's own Kaplan-Meier
and competing outcomes otherwise), as cmprsk computes it:
``a_ik(t) = L h_i (delta_ik - h_k / H)``, ``B_ik(t) = sum_{u > t} a_ik(u)
D(u) / (H(u) (1 - F0(u-)))``, and per group k and time t

* outcome of interest: coefficient ``a_ik + (1 - (1 - F0(t)) / S_k(t)) B_ik``,
  weight ``c1 S_k(t-) D / (H Y_k)`` (expected events under the null, in
  incidence units), ``c1 = 1 - (D - 1) / (H S_k(t-) - 1)`` for ties;
* other outcomes: coefficient ``-(1 - F0(t)) / S_k(t) B_ik``, weight
  ``c2 S_k(t-)^2 o_k / Y_k^2``, ``c2 = 1 - (o_k - 1) / (Y_k - 1)`` for ties.

Strata add their scores and covariances.  The statistic ``z' V^{-1} z``
uses the first K - 1 groups and has K - 1 degrees of freedom.  The
formulas were checked against cmprsk 2.2-11 to 1e-9 (tests/progression).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import chi2

from stepanalytics.progression.results import GrayTest

FloatArray = NDArray[np.float64]


def gray_statistics(
    time: FloatArray,
    code: NDArray[np.int64],
    group: NDArray[np.int64],
    stratum: NDArray[np.int64],
    n_groups: int,
    *,
    rho: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """Scores (K-1,) and their covariance (K-1, K-1), summed over strata.

    ``code`` is 1 for the outcome of interest, 2 for any other outcome and 0
    for censored; ``group`` holds codes 0 .. n_groups-1.
    """
    score = np.zeros(n_groups)
    covariance = np.zeros((n_groups, n_groups))
    for value in np.unique(stratum):
        rows = stratum == value
        part_score, part_cov = _one_stratum(time[rows], code[rows], group[rows], n_groups, rho)
        score += part_score
        covariance += part_cov
    return score[:-1], covariance[:-1, :-1]


def _one_stratum(
    time: FloatArray, code: NDArray[np.int64], group: NDArray[np.int64], n_groups: int, rho: float
) -> tuple[FloatArray, FloatArray]:
    grid = np.unique(time[code > 0])
    n_times = len(grid)
    if n_times == 0:
        return np.zeros(n_groups), np.zeros((n_groups, n_groups))
    # Counts per group (rows) and outcome time (columns).
    at_risk = np.zeros((n_groups, n_times))
    own = np.zeros((n_groups, n_times))
    other = np.zeros((n_groups, n_times))
    last = np.searchsorted(grid, time, side="right") - 1  # at risk at grid[: last + 1]
    seen = last >= 0  # rows censored before the first outcome are never at risk
    np.add.at(at_risk, (group[seen], last[seen]), 1.0)
    at_risk = np.cumsum(at_risk[:, ::-1], axis=1)[:, ::-1]
    slot = np.searchsorted(grid, time)
    np.add.at(own, (group[code == 1], slot[code == 1]), 1.0)
    np.add.at(other, (group[code == 2], slot[code == 2]), 1.0)

    present = at_risk > 0
    safe_risk = np.where(present, at_risk, 1.0)
    survival = np.cumprod(1.0 - (own + other) / safe_risk, axis=1)  # S_k(t)
    before = np.hstack([np.ones((n_groups, 1)), survival[:, :-1]])  # S_k(t-)
    incidence = np.cumsum(before * own / safe_risk, axis=1)
    incidence_before = np.hstack([np.zeros((n_groups, 1)), incidence[:, :-1]])
    h = np.where(present, at_risk / np.where(before > 0, before, 1.0), 0.0)
    h_total = h.sum(axis=0)
    sub_risk = h * (1.0 - incidence_before)
    q_total = sub_risk.sum(axis=0)
    d_total = own.sum(axis=0)
    pooled = np.cumsum(d_total / h_total)  # F0(t)
    pooled_before = np.r_[0.0, pooled[:-1]]
    weight = (1.0 - pooled_before) ** rho

    score = (weight * (own - d_total * sub_risk / q_total)).sum(axis=1)

    # a[i, k, t] = L h_i (delta_ik - h_k / H); zero where either group is empty.
    share = h / h_total
    a = weight * h[:, None, :] * (np.eye(n_groups)[:, :, None] - share[None, :, :])
    a *= (present[:, None, :] & present[None, :, :]).astype(float)
    step = d_total / (h_total * (1.0 - pooled_before))
    after = np.cumsum((a * step)[:, :, ::-1], axis=2)[:, :, ::-1]  # sum over u >= t
    later = np.concatenate([after[:, :, 1:], np.zeros((n_groups, n_groups, 1))], axis=2)

    alive = survival > 0
    ratio = np.where(alive, (1.0 - pooled) / np.where(alive, survival, 1.0), 0.0)
    # Outcome of interest: expected events under the null, with a tie correction.
    tie_own = np.where(
        d_total > 1, 1.0 - (d_total - 1.0) / np.where(d_total > 1, h_total * before - 1.0, 1.0), 1.0
    )
    w_own = np.where(present & (d_total > 0), tie_own * before * d_total / (h_total * safe_risk), 0)
    coef_own = a + np.where(alive, 1.0 - ratio, 1.0)[None, :, :] * later
    # Other outcomes: observed, with the binomial tie correction.
    tie_other = np.where(other > 1, 1.0 - (other - 1.0) / np.where(other > 1, at_risk - 1, 1), 1.0)
    w_other = np.where(alive & (other > 0), tie_other * before**2 * other / safe_risk**2, 0.0)
    coef_other = -ratio[None, :, :] * later
    covariance = np.einsum("ikt,jkt,kt->ij", coef_own, coef_own, w_own) + np.einsum(
        "ikt,jkt,kt->ij", coef_other, coef_other, w_other
    )
    return score, covariance


def chi_square(score: FloatArray, covariance: FloatArray) -> tuple[float, int, bool]:
    """``z' V^{-1} z``, its degrees of freedom and whether V was invertible."""
    df = len(score)
    singular = np.linalg.svd(covariance, compute_uv=False)
    if df == 0 or singular.min() <= 1e-7 * singular.max():
        return float("nan"), df, False
    return float(score @ np.linalg.solve(covariance, score)), df, True


def gray_table(
    frame: pd.DataFrame,
    *,
    duration: str,
    outcome: str,
    censored: str,
    by: str,
    strata: str | None,
    rho: float,
    kinds: list[str],
    warnings: list[str],
) -> pd.DataFrame:
    """One Gray test per outcome: outcome, statistic, df, p_value, rho, n_strata."""
    groups, group_codes = np.unique(frame[by].astype(str).to_numpy(), return_inverse=True)
    stratum = (
        np.zeros(len(frame), dtype=np.int64)
        if strata is None
        else pd.factorize(frame[strata])[0].astype(np.int64)
    )
    time = frame[duration].to_numpy(dtype=float)
    what = frame[outcome].to_numpy(dtype=object)
    rows = []
    for kind in kinds:
        code = np.where(what == kind, 1, np.where(what == censored, 0, 2)).astype(np.int64)
        score, cov = gray_statistics(
            time, code, group_codes.astype(np.int64), stratum, len(groups), rho=rho
        )
        statistic, df, ok = chi_square(score, cov)
        if not ok:
            warnings.append(
                f"Gray's test for {kind!r} cannot be computed: the covariance of the group "
                f"scores is singular (often groups of {by!r} nested within strata"
                + (f" of {strata!r}" if strata else "")
                + " or a group without outcomes); merge groups or drop the strata"
            )
        rows.append({"outcome": kind, "statistic": statistic, "df": df,
                     "p_value": float(chi2.sf(statistic, df)) if ok else float("nan"),
                     "rho": float(rho),
                     "n_strata": int(stratum.max()) + 1 if len(stratum) else 0})  # fmt: skip
    return pd.DataFrame(rows)


def gray_test(
    data: pd.DataFrame,
    *,
    duration: str,
    outcome: str,
    group: str,
    strata: str | None = None,
    censored: str = "censored",
    rho: float = 0.0,
) -> GrayTest:
    """Gray's K-sample test of equal cumulative incidence across groups, per outcome.

    Parameters
    ----------
    data : DataFrame
        One row per subject (or episode); rows must be independent.
    duration : str
        Column of times (>= 0) of the outcome or of the end of follow-up.
    outcome : str
        Column naming what happened; ``censored`` marks no outcome.
    group : str
        Column of the groups compared (two or more).
    strata : str, optional
        Stratification column: scores and covariances are summed over strata.
    censored : str
        The value of ``outcome`` that means censored.
    rho : float
        Power of the weight ``(1 - F0(t-))^rho`` (0, R's default, weights all
        times alike; positive values stress early differences).

    Returns
    -------
    GrayTest
        ``table``: outcome, statistic (chi-square), df (groups - 1), p_value,
        rho, n_strata.  A singular covariance gives NaN and a warning (cmprsk
        reports a statistic of -1 there).

    Notes
    -----
    R: ``cmprsk::cuminc(ftime, fstatus, group, strata, rho = 0,
    cencode = "censored")$Tests``.  Gray (1988); see the module notes.

    Examples
    --------
    >>> frame = pd.DataFrame({
    ...     "t": [1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    ...     "what": ["a", "b", "a", "censored", "a", "b", "b", "a", "censored", "b", "a", "b"],
    ...     "arm": ["x", "y"] * 6})
    >>> test = gray_test(frame, duration="t", outcome="what", group="arm")
    >>> test.table[["outcome", "df"]].to_dict("list")
    {'outcome': ['a', 'b'], 'df': [1, 1]}
    """
    from stepanalytics.errors import AnalysisError
    from stepanalytics.progression.competing_risks import _checked

    frame = _checked(data, duration, outcome, group, None, strata)
    kinds = sorted(k for k in frame[outcome].unique() if k != censored)
    n_groups = frame[group].nunique()
    if n_groups < 2 or not kinds:
        raise AnalysisError(
            f"Gray's test needs two or more groups in {group!r} (found {n_groups}) and at least "
            f"one outcome other than {censored!r} (found {len(kinds)})"
        )
    warnings: list[str] = []
    table = gray_table(frame, duration=duration, outcome=outcome, censored=censored, by=group,
                       strata=strata, rho=rho, kinds=kinds, warnings=warnings)  # fmt: skip
    return GrayTest(
        table=table,
        warnings=tuple(warnings),
        title=f"Gray's test: equal cumulative incidence across {group}"
        + (f" (stratified by {strata})" if strata else ""),
    )
