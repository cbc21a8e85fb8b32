"""Pointwise confidence limits for probabilities and the quantile rule of R survival.

Notes
-----
The limits are those of R ``survival::survfit`` (``survfit_confint``):
``"log"`` (R's default) is ``exp(log p +/- z se/p)``, upper limit capped at
1; ``"log-log"`` is ``exp(-exp(log(-log p) -/+ z se/(p log p)))``;
``"plain"`` is ``p +/- z se`` clipped to [0, 1].  ``se`` is the standard
error of ``p`` itself.  For the Kaplan-Meier estimate with Greenwood's
formula, ``se/p`` is the standard error of ``log S`` (Kalbfleisch & Prentice
2002, section 1.4).

Quantiles follow ``quantile.survfit``: the time at which the curve first
falls to ``1 - k`` or below; where the curve is exactly ``1 - k`` (within a
tolerance) over a horizontal stretch, the midpoint of that stretch.  The
limits of a quantile are the same rule applied to the confidence limits.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from stepanalytics.errors import UsageError

ConfType = Literal["log", "log-log", "plain"]
CONF_TYPES: tuple[str, ...] = ("log", "log-log", "plain")
FloatArray = NDArray[np.float64]


def check_conf(conf_type: str, conf_level: float) -> None:
    """Refuse an unknown confidence type or a level outside (0, 1)."""
    if conf_type not in CONF_TYPES:
        raise UsageError(f"conf_type must be one of {', '.join(CONF_TYPES)}; got {conf_type!r}")
    if not 0.0 < conf_level < 1.0:
        raise UsageError(f"conf_level must be between 0 and 1 (e.g. 0.95); got {conf_level!r}")


def confidence_limits(
    p: FloatArray, se: FloatArray, *, conf_type: str = "log", conf_level: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Lower and upper pointwise limits for probabilities ``p`` with standard errors ``se``.

    Limits are NaN where they are undefined (``p == 0`` on the log scale,
    ``p`` equal to 0 or 1 on the log-log scale, infinite ``se``).

    Examples
    --------
    >>> lo, hi = confidence_limits(np.array([0.5]), np.array([0.1]))
    >>> round(float(lo[0]), 4), round(float(hi[0]), 4)
    (0.3379, 0.74)
    """
    check_conf(conf_type, conf_level)
    p = np.asarray(p, dtype=float)
    se = np.asarray(se, dtype=float)
    z = norm.ppf(1.0 - (1.0 - conf_level) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(se == 0, 0.0, se / p)  # standard error of log p
        if conf_type == "plain":
            half = z * se
            lower, upper = np.maximum(p - half, 0.0), np.minimum(p + half, 1.0)
        elif conf_type == "log":
            logp = np.log(np.where(p == 0, np.nan, p))
            lower, upper = np.exp(logp - z * rel), np.minimum(np.exp(logp + z * rel), 1.0)
        else:
            q = np.where((p == 0) | (p == 1), np.nan, p)
            spread = z * rel / np.log(q)
            loglog = np.log(-np.log(q))
            lower, upper = np.exp(-np.exp(loglog - spread)), np.exp(-np.exp(loglog + spread))
    bad = ~np.isfinite(se)
    lower = np.where(bad, np.nan, lower)
    upper = np.where(bad, np.nan, upper)
    return lower, upper


def survival_quantile(
    times: FloatArray,
    survival: FloatArray,
    probability: float = 0.5,
    *,
    start: float = 0.0,
    tolerance: float = float(np.sqrt(np.finfo(float).eps)),
) -> float:
    """Time at which a survival curve reaches ``1 - probability`` (R's rule).

    Parameters
    ----------
    times : array
        Every time of the curve (events and censorings), increasing.
    survival : array
        Survival just after each time (NaN allowed where undefined).
    probability : float
        ``0.5`` for the median.
    start : float
        Time origin of the curve.

    Returns
    -------
    float
        NaN when the curve never gets that low.

    Examples
    --------
    >>> survival_quantile(np.arange(1.0, 11.0), 1 - np.arange(1, 11) / 10)
    5.5
    """
    x = np.r_[start, np.asarray(times, dtype=float)]
    y = np.r_[0.0, 1.0 - np.asarray(survival, dtype=float)]
    if np.all(np.isnan(y)) or np.nanmax(y) < probability:
        return float("nan")
    if probability == 0:
        return float(x[0])
    x_max = float(x[-1])
    # Keep the first time at which each level of 1 - S is reached (NaN counts as a level).
    levels = np.where(np.isnan(y), np.inf, y)
    _, first = np.unique(levels, return_index=True)
    first = np.sort(first)
    x, y = x[first], y[first]
    index_reached = _first_knot_at_or_above(y + tolerance, probability)
    index_passed = _first_knot_at_or_above(y - tolerance, probability)
    if not np.isnan(y[-1]) and abs(probability - y[-1]) < tolerance:
        # The curve ends exactly at the level: midpoint with the last time observed.
        return float((x[index_reached] + x_max) / 2.0) if index_reached >= 0 else float("nan")
    if index_reached < 0 or index_passed < 0:
        return float("nan")
    return float((x[index_reached] + x[index_passed]) / 2.0)


def _first_knot_at_or_above(knots: FloatArray, level: float) -> int:
    """Position of the smallest knot >= level (R ``approx(method="constant", f=1)``).

    -1 when the level lies outside the range of the (non-missing) knots.
    """
    valid = np.flatnonzero(~np.isnan(knots))
    if valid.size == 0:
        return -1
    values = knots[valid]
    if level < values.min() or level > values.max():
        return -1
    order = np.argsort(values, kind="stable")
    position = np.searchsorted(values[order], level, side="left")
    return int(valid[order[position]])
