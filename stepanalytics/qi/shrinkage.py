"""Empirical-Bayes shrinkage of clinic estimates (for caterpillar plots).

A small clinic's raw rate is noisy: by chance it may look best or worst.
The random-effects model ``y_i ~ N(theta_i, v_i)``, ``theta_i ~ N(mu, tau^2)``
gives each clinic a shrunken estimate that borrows strength from the others,
pulled towards the overall mean in proportion to its noise:
``theta_i* = mu + lambda_i (y_i - mu)`` with ``lambda_i = tau^2 / (tau^2 + v_i)``.
Large clinics keep their own value, tiny ones move towards the centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, stats

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.results import AnalysisResult

TauMethod = Literal["REML", "DL"]
FloatArray = npt.NDArray[np.float64]


def tau2_dersimonian_laird(estimates: npt.ArrayLike, variances: npt.ArrayLike) -> float:
    """Method-of-moments between-clinic variance (DerSimonian & Laird 1986).

    Notes
    -----
    Agrees with R ``metafor::rma(yi, vi, method = "DL")$tau2``.

    Examples
    --------
    >>> round(tau2_dersimonian_laird([0.1, 0.3, 0.2, 0.5], [0.0025] * 4), 5)
    0.02667
    """
    y, v = _clean(estimates, variances)
    w = 1.0 / v
    mu = np.sum(w * y) / np.sum(w)
    q = float(np.sum(w * (y - mu) ** 2))
    denom = float(w.sum() - (w**2).sum() / w.sum())
    return max(0.0, (q - (y.size - 1)) / denom)


def tau2_reml(estimates: npt.ArrayLike, variances: npt.ArrayLike) -> float:
    """Restricted maximum likelihood between-clinic variance.

    Notes
    -----
    Maximises the REML log-likelihood of the random-effects model over
    ``tau^2 >= 0``; agrees with ``metafor::rma(yi, vi, method = "REML")$tau2``.

    Examples
    --------
    >>> round(tau2_reml([0.1, 0.3, 0.2, 0.5], [0.0025] * 4), 5)
    0.02667
    """
    y, v = _clean(estimates, variances)

    def negative_loglik(tau2: float) -> float:
        w = 1.0 / (v + tau2)
        mu = np.sum(w * y) / np.sum(w)
        return float(
            0.5 * np.sum(np.log(v + tau2))
            + 0.5 * np.log(np.sum(w))
            + 0.5 * np.sum(w * (y - mu) ** 2)
        )

    start = tau2_dersimonian_laird(y, v)
    upper = max(10.0 * start, 10.0 * float(np.var(y, ddof=1)), 1e-8)
    found = optimize.minimize_scalar(
        negative_loglik, bounds=(0.0, upper), method="bounded", options={"xatol": 1e-12}
    )
    best = float(found.x)
    # The bounded search never lands exactly on the boundary; compare with it.
    if negative_loglik(0.0) <= negative_loglik(best):
        return 0.0
    return best


@dataclass(frozen=True)
class ShrinkageResult(AnalysisResult):
    """Shrunken clinic estimates; one row per clinic, never ranked.

    ``table`` columns: unit column, ``estimate`` (raw), ``std_error`` (raw),
    ``shrunken``, ``shrunken_se``, ``ci_lower``, ``ci_upper``, ``weight``
    (lambda, the share of the clinic's own data in its shrunken value).
    """

    mu: float = float("nan")
    mu_se: float = float("nan")
    tau2: float = 0.0
    method: str = "REML"
    level: float = 0.95
    unit: str = "clinic_id"


def shrink_estimates(
    data: pd.DataFrame,
    *,
    estimate: str,
    variance: str,
    unit: str = "clinic_id",
    method: TauMethod = "REML",
    level: float = 0.95,
    title: str | None = None,
) -> ShrinkageResult:
    """Empirical-Bayes (BLUP) estimates of each clinic's true indicator.

    Parameters
    ----------
    data : DataFrame
        One row per clinic.
    estimate, variance : str, keyword-only
        Columns with the raw clinic indicator and its sampling variance.
    unit : str
        Clinic column (default ``clinic_id``).
    method : {"REML", "DL"}
        Estimator of the between-clinic variance tau^2.
    level : float
        Coverage of the intervals (default 0.95).

    Returns
    -------
    ShrinkageResult

    Notes
    -----
    The interval variance ``lambda_i v_i + (1 - lambda_i)^2 Var(mu)`` adds
    the uncertainty of the overall mean (Morris 1983).  Agrees with R
    ``metafor::blup(rma(yi, vi, method = method))``.

    Examples
    --------
    >>> df = pd.DataFrame({"clinic_id": list("ABCD"), "y": [0.1, 0.3, 0.2, 0.5],
    ...                    "v": [0.0025, 0.01, 0.0025, 0.04]})
    >>> res = shrink_estimates(df, estimate="y", variance="v", method="DL")
    >>> res.to_frame()["shrunken"].round(3).tolist()
    [0.129, 0.242, 0.201, 0.246]
    """
    if method not in ("REML", "DL"):
        raise UsageError(f"method must be 'REML' or 'DL'; got {method!r}.")
    missing = [c for c in (unit, estimate, variance) if c not in data.columns]
    if missing:
        raise UsageError(f"shrink_estimates: column(s) {missing} not found in the data.")
    frame = data[[unit, estimate, variance]].rename(
        columns={estimate: "estimate", variance: "variance"}
    )
    frame = frame.loc[frame["estimate"].notna() & (frame["variance"] > 0)].reset_index(drop=True)
    y = frame["estimate"].to_numpy(dtype=float)
    v = frame["variance"].to_numpy(dtype=float)
    if y.size < 3:
        raise AnalysisError(
            f"Shrinkage needs at least 3 clinics with data; found {y.size}. "
            "Show the raw estimates with their intervals instead."
        )
    tau2 = tau2_reml(y, v) if method == "REML" else tau2_dersimonian_laird(y, v)
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    var_mu = float(1.0 / np.sum(w))
    weight = tau2 / (tau2 + v)
    shrunken = mu + weight * (y - mu)
    shrunken_se = np.sqrt(weight * v + (1.0 - weight) ** 2 * var_mu)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    out = pd.DataFrame(
        {
            unit: frame[unit].to_numpy(),
            "estimate": y,
            "std_error": np.sqrt(v),
            "shrunken": shrunken,
            "shrunken_se": shrunken_se,
            "ci_lower": shrunken - z * shrunken_se,
            "ci_upper": shrunken + z * shrunken_se,
            "weight": weight,
        }
    )
    out = out.sort_values(unit, kind="stable").reset_index(drop=True)
    warnings: tuple[str, ...] = ()
    if tau2 == 0.0:
        warnings = (
            "The estimated between-clinic variance is 0: every clinic is shrunk to the "
            "overall mean; the data show no difference between clinics beyond chance.",
        )
    return ShrinkageResult(
        table=out,
        warnings=warnings,
        title=title or "Empirical-Bayes clinic estimates",
        mu=mu,
        mu_se=float(np.sqrt(var_mu)),
        tau2=float(tau2),
        method=method,
        level=level,
        unit=unit,
    )


def _clean(estimates: npt.ArrayLike, variances: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(estimates, dtype=float)
    v = np.asarray(variances, dtype=float)
    if y.shape != v.shape:
        raise UsageError("estimates and variances must have the same length.")
    keep = np.isfinite(y) & np.isfinite(v) & (v > 0)
    if keep.sum() < 2:
        raise AnalysisError("At least 2 clinics with a positive variance are needed.")
    return y[keep], v[keep]
