"""Whether a change matters: MCID responders and the reliable change index.

Vectorised helpers used by :func:`stepanalytics.instruments.measure_change`;
each takes arrays of baseline and follow-up scores for one instrument.

Jacobson & Truax (1991): with ``SEM = SD_baseline * sqrt(1 - r)`` and
``S_diff = sqrt(2) * SEM``, the reliable change index is
``RCI = (follow_up - baseline) / S_diff``; ``|RCI| > 1.96`` is a change
larger than measurement error at the 5% level.  A reliably improved patient
who also moves from the clinical into the normal range is *recovered*.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError
from stepanalytics.instruments.registry import Instrument

RCI_CRITICAL = 1.96
RESPONDER_RULES = ("points_first", "points", "percent", "either", "both")
CATEGORIES = ("recovered", "improved", "unchanged", "deteriorated")


def standard_error_of_difference(sd_baseline: float, reliability: float) -> float:
    """``S_diff = sqrt(2) * SD * sqrt(1 - r)`` (Jacobson & Truax 1991).

    Examples
    --------
    >>> round(standard_error_of_difference(7.5, 0.88), 4)  # 7.5 * sqrt(2) * sqrt(0.12)
    3.6742
    """
    if not 0 < reliability < 1:
        raise UsageError(f"reliability must lie strictly between 0 and 1, got {reliability}.")
    return float(np.sqrt(2.0) * sd_baseline * np.sqrt(1.0 - reliability))


def reliable_change_index(
    baseline: np.ndarray, follow_up: np.ndarray, *, sd_baseline: float, reliability: float
) -> np.ndarray:
    """RCI of each pair; NaN where a score is missing or the SD is not positive.

    Examples
    --------
    >>> reliable_change_index(np.array([20.0]), np.array([10.0]), sd_baseline=5.0,
    ...                       reliability=0.8).round(4)
    array([-3.1623])
    """
    s_diff = standard_error_of_difference(sd_baseline, reliability)
    if not np.isfinite(s_diff) or s_diff <= 0:
        return np.full(len(baseline), np.nan)
    return (np.asarray(follow_up, float) - np.asarray(baseline, float)) / s_diff


def improvement(spec: Instrument, baseline: np.ndarray, follow_up: np.ndarray) -> np.ndarray:
    """Change in the better direction: positive means the patient improved."""
    return (np.asarray(follow_up, float) - np.asarray(baseline, float)) * spec.direction


def is_responder(
    spec: Instrument,
    baseline: np.ndarray,
    follow_up: np.ndarray,
    *,
    rule: str = "points_first",
) -> pd.Series:
    """Whether each improvement reaches the registry's MCID (nullable boolean).

    Parameters
    ----------
    rule : {"points_first", "points", "percent", "either", "both"}
        ``points_first`` (default) uses the MCID in points and falls back to
        the percent MCID for instruments that only have one in percent (PCS,
        BPI severity).  ``either`` / ``both`` need one / both thresholds when
        the instrument has both (Ostelo 2008 give both for ODI, RMDQ, NRS).

    Returns
    -------
    Series of boolean, <NA> where a score is missing, the percent change is
    undefined (baseline 0) or the instrument has no MCID for the rule.
    """
    if rule not in RESPONDER_RULES:
        raise UsageError(f"responder rule must be one of {', '.join(RESPONDER_RULES)}.")
    gain = improvement(spec, baseline, follow_up)
    base = np.asarray(baseline, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        percent_gain = np.where(base != 0, gain / np.abs(base) * 100.0, np.nan)
    by_points = _reaches(gain, spec.mcid_points)
    by_percent = _reaches(percent_gain, spec.mcid_percent)
    if rule == "points_first":
        chosen = by_points if spec.mcid_points is not None else by_percent
    elif rule == "points":
        chosen = by_points
    elif rule == "percent":
        chosen = by_percent
    elif rule == "either":
        chosen = by_points | by_percent if _both(spec) else by_points.fillna(by_percent)
    else:
        chosen = by_points & by_percent if _both(spec) else by_points.fillna(by_percent)
    return chosen.astype("boolean")


def _both(spec: Instrument) -> bool:
    return spec.mcid_points is not None and spec.mcid_percent is not None


def _reaches(values: np.ndarray, threshold: float | None) -> pd.Series:
    out = pd.Series(pd.array([pd.NA] * len(values), dtype="boolean"))
    if threshold is None:
        return out
    known = ~np.isnan(values)
    # A tiny tolerance so that a prorated 9.999999999 reaches a 10-point MCID.
    out[known] = values[known] >= threshold - 1e-9
    return out


def classify_change(
    spec: Instrument, baseline: np.ndarray, follow_up: np.ndarray, rci: np.ndarray
) -> pd.Series:
    """Jacobson-Truax category of each pair, respecting the instrument's direction.

    ``deteriorated``: reliable change for the worse; ``improved``: reliable
    change for the better; ``recovered``: improved and moved from the clinical
    range at baseline into the normal range (needs the registry's
    ``clinical_cutoff``; without one nobody is ``recovered``); ``unchanged``
    otherwise.  <NA> where the RCI is missing.
    """
    better = np.asarray(rci, float) * spec.direction
    category = np.full(len(better), None, dtype=object)
    known = ~np.isnan(better)
    category[known] = "unchanged"
    category[known & (better > RCI_CRITICAL)] = "improved"
    category[known & (better < -RCI_CRITICAL)] = "deteriorated"
    if spec.clinical_cutoff is not None:
        crossed = crossed_into_normal(spec, baseline, follow_up).fillna(False).to_numpy(bool)
        category[(category == "improved") & crossed] = "recovered"
    return pd.Series(category, dtype="string")


def crossed_into_normal(spec: Instrument, baseline: np.ndarray, follow_up: np.ndarray) -> pd.Series:
    """True where the baseline lies in the clinical and the follow-up in the normal range."""
    out = pd.Series(pd.array([pd.NA] * len(baseline), dtype="boolean"))
    if spec.clinical_cutoff is None:
        return out
    base, later = np.asarray(baseline, float), np.asarray(follow_up, float)
    known = ~np.isnan(base) & ~np.isnan(later)
    out[known] = ~spec.is_normal(base[known]) & spec.is_normal(later[known])
    return out
