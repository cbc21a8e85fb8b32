"""Confidence intervals for the shares, rates and means a QI report shows.

Small clinics give small denominators, so the intervals here are the ones
that behave at the edges: Wilson's score interval for shares (never outside
0..1, sensible at 0/n and n/n), Garwood's exact interval for event rates,
and Student's t interval for means.  All functions are vectorised: pass
scalars or arrays and get arrays back.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

from stepanalytics.errors import UsageError

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise UsageError(f"level must lie between 0 and 1 (got {level!r}); write 0.95 for 95%.")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def wilson_interval(
    successes: ArrayLike, trials: ArrayLike, *, level: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for a binomial proportion.

    Parameters
    ----------
    successes : array_like of int
        Number of patients with the outcome (e.g. reaching the MCID).
    trials : array_like of int
        Number of patients assessed.  Where it is 0 the interval is NaN.
    level : float, keyword-only
        Confidence level, default 0.95.

    Returns
    -------
    lower, upper : ndarray
        Interval bounds on the 0..1 scale.

    Notes
    -----
    Wilson (1927), without continuity correction.  Agrees with R's
    ``prop.test(x, n, correct = FALSE)$conf.int``.

    Examples
    --------
    >>> lo, hi = wilson_interval(3, 10)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.1078, 0.6032)
    """
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    if np.any(x < 0) or np.any(x > n):
        raise UsageError("successes must lie between 0 and trials for every group.")
    z = _z(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    lower = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    upper = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return lower, upper


def poisson_rate_interval(
    events: ArrayLike, exposure: ArrayLike, *, level: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Exact (Garwood) interval for an event rate ``events / exposure``.

    Parameters
    ----------
    events : array_like of int
        Event counts.
    exposure : array_like of float
        Person-time (e.g. patient-weeks); positive.
    level : float, keyword-only
        Confidence level, default 0.95.

    Returns
    -------
    lower, upper : ndarray
        Bounds of the rate, in events per unit of exposure.

    Notes
    -----
    Garwood (1936), from chi-square quantiles.  Agrees with R's
    ``poisson.test(x, T)$conf.int``.

    Examples
    --------
    >>> lo, hi = poisson_rate_interval(4, 100.0)
    >>> round(float(lo), 5), round(float(hi), 5)
    (0.0109, 0.10242)
    """
    x = np.asarray(events, dtype=float)
    t = np.asarray(exposure, dtype=float)
    if np.any(x < 0):
        raise UsageError("events must not be negative.")
    alpha = 1.0 - level
    if not 0.0 < alpha < 1.0:
        raise UsageError(f"level must lie between 0 and 1 (got {level!r}).")
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(x > 0, stats.chi2.ppf(alpha / 2.0, 2.0 * x) / 2.0, 0.0) / t
        upper = stats.chi2.ppf(1.0 - alpha / 2.0, 2.0 * x + 2.0) / 2.0 / t
    bad = ~(t > 0)
    return np.where(bad, np.nan, lower), np.where(bad, np.nan, upper)


def mean_interval(
    values: ArrayLike, *, level: float = 0.95
) -> tuple[float, float, float, float, int]:
    """Mean of a sample with its standard error and Student-t interval.

    Parameters
    ----------
    values : array_like of float
        The sample; NaN values are not allowed (drop them explicitly first).
    level : float, keyword-only
        Confidence level, default 0.95.

    Returns
    -------
    mean, std_error, lower, upper : float
        NaN where the sample is too small (SE needs two values).
    n : int
        Sample size.

    Notes
    -----
    Agrees with R's ``t.test(x)$conf.int``.

    Examples
    --------
    >>> m, se, lo, hi, n = mean_interval([1.0, 2.0, 3.0, 4.0])
    >>> round(m, 2), round(lo, 4), round(hi, 4), n
    (2.5, 0.4457, 4.5543, 4)
    """
    x = np.asarray(values, dtype=float)
    if np.isnan(x).any():
        raise UsageError("mean_interval received NaN values; drop missing scores first.")
    n = int(x.size)
    if n == 0:
        return (np.nan, np.nan, np.nan, np.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return (mean, np.nan, np.nan, np.nan, n)
    se = float(x.std(ddof=1) / np.sqrt(n))
    q = float(stats.t.ppf(0.5 + level / 2.0, n - 1))
    return (mean, se, mean - q * se, mean + q * se, n)
