"""Kaplan-Meier curves with Greenwood confidence limits, medians and the log-rank test.

Notes
-----
R equivalent: ``survfit(Surv(time, event) ~ group, conf.type = "log")`` for
the curves (Greenwood variance; ``"log"`` limits are R's default), its
``quantile()`` / ``print()`` for the median and its limits, ``summary(fit,
times = ...)`` for survival at chosen days, and ``survdiff`` for the
log-rank test (lifelines' ``multivariate_logrank_test``, which agrees with
it).  Kaplan & Meier (1958); Greenwood (1926); Brookmeyer & Crowley (1982)
for the median's limits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from lifelines.statistics import multivariate_logrank_test

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression.confidence import (
    check_conf,
    confidence_limits,
    survival_quantile,
)
from stepanalytics.progression.results import SurvivalCurves

#: Fewer subjects than this in a group earns a warning about unstable estimates.
SMALL_GROUP = 10


def km_curve(
    durations: np.ndarray,
    events: np.ndarray,
    *,
    conf_type: str = "log",
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """One Kaplan-Meier curve at every distinct time (events and censorings).

    Returns a frame with time, n_risk, n_event, n_censor, estimate,
    std_error (of the survival, Greenwood), ci_lower, ci_upper.

    Examples
    --------
    >>> curve = km_curve(np.array([1, 2, 2, 3]), np.array([1, 1, 0, 1]))
    >>> curve["estimate"].round(3).tolist()
    [0.75, 0.5, 0.0]
    """
    durations = np.asarray(durations, dtype=float)
    events = np.asarray(events, dtype=bool)
    times, inverse = np.unique(durations, return_inverse=True)
    n_event = np.bincount(inverse, weights=events.astype(float), minlength=len(times))
    n_total = np.bincount(inverse, minlength=len(times)).astype(float)
    n_risk = n_total[::-1].cumsum()[::-1]
    survival = np.cumprod(1.0 - n_event / n_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Greenwood: var(log S) = sum d / (n (n - d)); infinite once S reaches 0.
        terms = np.where(n_event > 0, n_event / (n_risk * (n_risk - n_event)), 0.0)
    log_se = np.sqrt(np.cumsum(terms))
    # Once the curve reaches 0 its standard error is undefined (R: NaN, limits NA).
    std_error = np.where(np.isfinite(log_se), survival * np.nan_to_num(log_se), np.nan)
    lower, upper = confidence_limits(
        survival, std_error, conf_type=conf_type, conf_level=conf_level
    )
    return pd.DataFrame(
        {
            "time": times,
            "n_risk": n_risk.astype(np.int64),
            "n_event": n_event.astype(np.int64),
            "n_censor": (n_total - n_event).astype(np.int64),
            "estimate": survival,
            "std_error": std_error,
            "ci_lower": lower,
            "ci_upper": upper,
        }
    )


def kaplan_meier(
    data: pd.DataFrame,
    *,
    duration: str,
    event: str,
    by: str | None = None,
    at: Sequence[float] = (),
    conf_type: str = "log",
    conf_level: float = 0.95,
    title: str | None = None,
) -> SurvivalCurves:
    """Kaplan-Meier survival per group, medians with limits, log-rank test.

    Parameters
    ----------
    data : DataFrame
        One row per subject (or episode).
    duration : str
        Column of follow-up times (>= 0).
    event : str
        Column that is True (or 1) when the event happened at ``duration``,
        False (0) when the row is censored there.
    by : str, optional
        Grouping column; a log-rank test compares the groups.
    at : sequence of float
        Times at which to report survival (as R ``summary(fit, times=)``).
    conf_type : {"log", "log-log", "plain"}
        Transformation for the pointwise limits; ``"log"`` is R's default.
    conf_level : float
        Confidence level of all limits.
    title : str, optional
        Title of the result.

    Returns
    -------
    SurvivalCurves

    Examples
    --------
    >>> frame = pd.DataFrame({"t": [3, 5, 5, 8, 10, 12], "e": [1, 1, 0, 1, 0, 1]})
    >>> fit = kaplan_meier(frame, duration="t", event="e")
    >>> float(fit.medians["median"].iloc[0])
    8.0
    """
    check_conf(conf_type, conf_level)
    frame = _checked(data, duration, event, by)
    warnings: list[str] = []
    groups = ["all"] if by is None else sorted(frame[by].unique().tolist(), key=str)
    curves, medians, at_rows = [], [], []
    for group in groups:
        part = frame if by is None else frame[frame[by] == group]
        durations = part[duration].to_numpy(dtype=float)
        events = part[event].to_numpy(dtype=bool)
        curve = km_curve(durations, events, conf_type=conf_type, conf_level=conf_level)
        curve.insert(0, "group", group)
        curves.append(curve)
        medians.append(_median_row(group, curve, len(part), int(events.sum())))
        at_rows.extend(_at_rows(group, curve, durations, at, conf_type, conf_level))
        if len(part) < SMALL_GROUP:
            warnings.append(
                f"group {group!r} has only {len(part)} subjects: its curve and median are unstable"
            )
        if events.sum() == 0:
            warnings.append(f"group {group!r} has no events: its curve stays at 1")
    at_table = pd.DataFrame(at_rows)
    if not at_table.empty and at_table["n_risk"].eq(0).any():
        beyond = at_table.loc[at_table["n_risk"].eq(0), ["group", "time"]]
        warnings.append(
            "nobody is followed up to "
            + ", ".join(f"day {t:g} in group {g!r}" for g, t in beyond.itertuples(index=False))
            + ": survival is not estimated there (NaN)"
        )
    logrank = _logrank(frame, duration, event, by) if by is not None and len(groups) > 1 else None
    return SurvivalCurves(
        table=pd.concat(curves, ignore_index=True),
        warnings=tuple(warnings),
        title=title or "Kaplan-Meier estimate",
        medians=pd.DataFrame(medians),
        at_times=at_table,
        logrank=logrank if logrank is not None else pd.DataFrame(),
        conf_type=conf_type,
        conf_level=conf_level,
    )


def _checked(data: pd.DataFrame, duration: str, event: str, by: str | None) -> pd.DataFrame:
    needed = [duration, event] + ([by] if by else [])
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise UsageError(
            f"column(s) {', '.join(missing)} not in the data; have {list(data.columns)}"
        )
    frame = data[needed].copy()
    if frame.empty:
        raise AnalysisError("there are no rows to analyse (nobody at risk)")
    durations = pd.to_numeric(frame[duration], errors="coerce")
    bad = durations.isna() | (durations < 0)
    if bad.any():
        rows = ", ".join(str(i) for i in frame.index[bad][:10])
        raise AnalysisError(
            f"column {duration!r} must hold times >= 0; rows {rows} do not. "
            "Fix or remove those rows before the analysis."
        )
    values = frame[event]
    if not values.isin([0, 1, True, False]).all():
        raise AnalysisError(f"column {event!r} must be True/False (or 1/0)")
    if by is not None and frame[by].isna().any():
        n = int(frame[by].isna().sum())
        raise AnalysisError(
            f"{n} rows have no value in {by!r}; give them a group (e.g. 'unknown') or drop them"
        )
    frame[duration] = durations.astype(float)
    frame[event] = values.astype(bool)
    return frame


def _median_row(group: object, curve: pd.DataFrame, n: int, events: int) -> dict[str, object]:
    times = curve["time"].to_numpy()
    return {
        "group": group,
        "n": n,
        "events": events,
        "median": survival_quantile(times, curve["estimate"].to_numpy()),
        "ci_lower": survival_quantile(times, curve["ci_lower"].to_numpy()),
        "ci_upper": survival_quantile(times, curve["ci_upper"].to_numpy()),
    }


def _at_rows(
    group: object,
    curve: pd.DataFrame,
    durations: np.ndarray,
    at: Sequence[float],
    conf_type: str,
    conf_level: float,
) -> list[dict[str, object]]:
    rows = []
    times = curve["time"].to_numpy()
    for t in at:
        n_risk = int((durations >= t).sum())
        index = np.searchsorted(times, t, side="right") - 1
        row: dict[str, object] = {"group": group, "time": float(t), "n_risk": n_risk}
        values: dict[str, object]
        if n_risk == 0 and t > times.max():
            values = dict.fromkeys(["estimate", "std_error", "ci_lower", "ci_upper"], np.nan)
        elif index < 0:
            # Before the first time the curve is 1 with no uncertainty (limits as R's).
            low, high = confidence_limits(np.ones(1), np.zeros(1), conf_type=conf_type,
                                          conf_level=conf_level)  # fmt: skip
            values = {"estimate": 1.0, "std_error": 0.0, "ci_lower": float(low[0]),
                      "ci_upper": float(high[0])}  # fmt: skip
        else:
            picked = curve.iloc[index]
            values = {
                k: float(picked[k]) for k in ("estimate", "std_error", "ci_lower", "ci_upper")
            }
        row.update(values)
        rows.append(row)
    return rows


def _logrank(frame: pd.DataFrame, duration: str, event: str, by: str) -> pd.DataFrame:
    result = multivariate_logrank_test(frame[duration], frame[by].astype(str), frame[event])
    return pd.DataFrame(
        {
            "test": ["log-rank"],
            "statistic": [float(result.test_statistic)],
            "df": [int(result.degrees_of_freedom)],
            "p_value": [float(result.p_value)],
        }
    )
