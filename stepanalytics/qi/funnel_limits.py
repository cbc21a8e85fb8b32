"""Funnel-plot limits: the standard error under the target, exact quantiles, the limits.

The pieces of :func:`stepanalytics.qi.funnel.funnel_compare` that depend on
the indicator kind only (Spiegelhalter 2005): the null standard error of a
clinic's estimate, exact binomial / Poisson quantiles with interpolation,
and the control limits at each precision, with an additive between-clinic
variance when there is overdispersion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from stepanalytics.errors import UsageError

FunnelKind = Literal["proportion", "ratio", "mean"]
FloatArray = npt.NDArray[np.float64]
DEFAULT_LEVELS: tuple[float, ...] = (0.95, 0.998)
_KINDS = ("proportion", "ratio", "mean")


def level_tag(level: float) -> str:
    """Column suffix for a confidence level: ``0.95 -> "95"``, ``0.998 -> "99_8"``.

    Examples
    --------
    >>> level_tag(0.998)
    '99_8'
    """
    text = f"{100 * level:.10g}"
    return text.replace(".", "_")


def null_standard_error(
    precision: npt.ArrayLike, *, kind: FunnelKind, target: float, sd: float | None = None
) -> FloatArray:
    """Standard error of a clinic's indicator when it is on target.

    Parameters
    ----------
    precision : array_like
        n (proportion, mean) or expected count E (ratio).
    kind : {"proportion", "ratio", "mean"}
    target : float
        The target theta0 (pooled proportion, 1 for O/E, pooled mean).
    sd : float, optional
        Patient-level standard deviation; required for ``kind="mean"``.

    Notes
    -----
    Spiegelhalter (2005), Table I: ``sqrt(theta0 (1 - theta0) / n)``,
    ``sqrt(theta0 / E)`` and ``sd / sqrt(n)``.

    Examples
    --------
    >>> float(null_standard_error(100, kind="proportion", target=0.2))
    0.04
    """
    rho = np.asarray(precision, dtype=float)
    check_kind(kind)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "proportion":
            se = np.sqrt(target * (1.0 - target) / rho)
        elif kind == "ratio":
            se = np.sqrt(target / rho)
        else:
            if sd is None or not sd > 0:
                raise UsageError("kind='mean' needs sd, the patient-level standard deviation.")
            se = sd / np.sqrt(rho)
    return np.where(rho > 0, se, np.nan)


def exact_quantile(
    probability: float, precision: npt.ArrayLike, *, kind: FunnelKind, target: float
) -> FloatArray:
    """Interpolated exact quantile of a clinic's indicator on target.

    The ``p``-quantile ``r`` of the binomial ``B(n, theta0)`` (or Poisson
    with mean ``theta0 * E``) is made continuous by Spiegelhalter's
    interpolation ``(r - a) / rho`` with
    ``a = (F(r) - p) / (F(r) - F(r - 1))``.

    Parameters
    ----------
    probability : float
        Lower-tail probability, e.g. 0.001 or 0.999 for 99.8% limits.
    precision : array_like
        n (proportion; integer) or E (ratio).
    kind : {"proportion", "ratio"}
    target : float

    Notes
    -----
    Spiegelhalter (2005) Stat Med 24:1185, Appendix A.1.1.  There is no
    base-R equivalent; the reference script in ``tests/qi/reference``
    evaluates the same formula with ``qbinom`` / ``pbinom``.

    Examples
    --------
    >>> round(float(exact_quantile(0.975, 100, kind="proportion", target=0.2)), 4)
    0.2765
    """
    rho = np.asarray(precision, dtype=float)
    if kind == "proportion":
        n = np.round(rho)
        dist = stats.binom(n, target)
    elif kind == "ratio":
        dist = stats.poisson(target * rho)
    else:
        raise UsageError("Exact limits exist only for kind='proportion' or kind='ratio'.")
    with np.errstate(divide="ignore", invalid="ignore"):
        r = dist.ppf(probability)
        f_r = dist.cdf(r)
        f_below = dist.cdf(r - 1.0)
        alpha = (f_r - probability) / (f_r - f_below)
        value = (r - alpha) / rho
    return np.where(rho > 0, value, np.nan)


def funnel_limits(
    precision: npt.ArrayLike,
    *,
    kind: FunnelKind,
    target: float,
    sd: float | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    tau2: float = 0.0,
    phi: float = 1.0,
    exact: bool = True,
) -> pd.DataFrame:
    """Control limits of a funnel plot at given precisions.

    Parameters
    ----------
    precision : array_like
        Points at which limits are wanted (n or E).
    kind : {"proportion", "ratio", "mean"}
    target : float
        theta0.
    sd : float, optional
        Patient-level SD, for ``kind="mean"``.
    levels : sequence of float, keyword-only
        Two-sided coverage, default 95% and 99.8%.
    tau2 : float, keyword-only
        Additive overdispersion variance: limits ``theta0 ± z sqrt(s^2 + tau^2)``.
    phi : float, keyword-only
        Multiplicative dispersion: limits ``theta0 ± z sqrt(phi) s``.
    exact : bool, keyword-only
        Binomial / Poisson limits when no overdispersion adjustment is
        made; otherwise (and always for means) the normal approximation.

    Returns
    -------
    DataFrame
        ``precision`` and ``lower_<tag>``, ``upper_<tag>`` for each level
        (tags ``95`` and ``99_8``).

    Notes
    -----
    Spiegelhalter (2005) Stat Med 24:1185, sections 3 and 6.

    Examples
    --------
    >>> lim = funnel_limits([100], kind="proportion", target=0.2, exact=False)
    >>> round(float(lim["upper_95"].iloc[0]), 4)
    0.2784
    """
    check_kind(kind)
    rho = np.atleast_1d(np.asarray(precision, dtype=float))
    se = null_standard_error(rho, kind=kind, target=target, sd=sd)
    adjusted = tau2 > 0 or phi != 1.0
    out = pd.DataFrame({"precision": rho})
    for level in levels:
        tag = level_tag(level)
        upper_p = 0.5 + level / 2.0
        if exact and not adjusted and kind != "mean":
            lower = exact_quantile(1.0 - upper_p, rho, kind=kind, target=target)
            upper = exact_quantile(upper_p, rho, kind=kind, target=target)
        else:
            z = float(stats.norm.ppf(upper_p))
            spread = np.sqrt(phi * se**2 + tau2)
            lower, upper = target - z * spread, target + z * spread
        if kind in ("proportion", "ratio"):
            lower = np.maximum(lower, 0.0)
        if kind == "proportion":
            upper = np.minimum(upper, 1.0)
        out[f"lower_{tag}"] = lower
        out[f"upper_{tag}"] = upper
    return out


def check_kind(kind: str) -> None:
    """Refuse an indicator kind other than proportion, ratio or mean."""
    if kind not in _KINDS:
        raise UsageError(f"kind must be one of {_KINDS}; got {kind!r}.")
