"""Run charts and Shewhart control charts (P, U, I, MR) for QI series.

One function, :func:`control_chart`, builds every chart from a frame with
one row per period (month or quarter).  It supports

* phases: limits computed separately before and after a protocol change;
* a frozen baseline: centre and limits from the first ``k`` points only,
  then extended to the later points, so change is judged against the past;
* excluded points: kept on the chart but left out of the calculations.

Every chart is tested with Shewhart's 3-sigma rule (points outside the
limits) and the Anhøj runs rules (:mod:`stepanalytics.qi.runs`) around its
centre line, per phase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.qi.runs import anhoej_rules
from stepanalytics.results import AnalysisResult

ChartKind = Literal["run", "i", "mr", "p", "u"]
_CHARTS = ("run", "i", "mr", "p", "u")

#: d2 for moving ranges of two points (Montgomery, Appendix VI).
D2 = 1.128
#: D4 for moving ranges of two points: MR upper limit = D4 * mean MR.
D4 = 3.267


@dataclass(frozen=True)
class ControlChart(AnalysisResult):
    """A run or control chart: points, centre, limits and signals.

    ``table`` has one row per period: ``period``, ``phase``, ``value``,
    ``denominator``, ``cl``, ``lcl``, ``ucl``, ``lcl_95``, ``ucl_95``
    (2-sigma), ``baseline`` (used for cl/limits), ``included``,
    ``sigma_signal`` (outside the 3-sigma limits) and ``runs_signal``
    (the point's phase breaks an Anhøj rule).  ``runs`` has one row per
    phase with the runs analysis and averaged limits, like R
    ``summary(qicharts2::qic(...))``.
    """

    chart: str = "run"
    runs: pd.DataFrame | None = None
    multiply: float = 1.0

    @property
    def signals(self) -> pd.DataFrame:
        """Rows of the table with a 3-sigma signal."""
        return self.table.loc[self.table["sigma_signal"]]


def control_chart(
    data: pd.DataFrame,
    *,
    chart: ChartKind = "run",
    value: str | None = None,
    count: str | None = None,
    denominator: str | None = None,
    period: str | None = None,
    phase: str | None = None,
    freeze: int | None = None,
    exclude: Sequence[int] = (),
    multiply: float = 1.0,
    title: str | None = None,
) -> ControlChart:
    """Build a run chart or a P, U, I or MR control chart.

    Parameters
    ----------
    data : DataFrame
        One row per period, in time order (sorted by ``period`` if given).
    chart : {"run", "i", "mr", "p", "u"}
        ``run``: median centre, no limits.  ``i`` / ``mr``: individual values
        and their moving ranges (``sigma = mean MR / 1.128``, MR limit
        ``3.267 * mean MR``).  ``p``: proportion ``count / denominator``,
        binomial limits.  ``u``: rate ``count / denominator``, Poisson
        limits.  Varying denominators give varying limits.
    value : str, optional
        Column of values (run, i, mr).  For run charts ``count`` and
        ``denominator`` may be given instead.
    count, denominator : str, optional
        Numerator and denominator columns (p, u; optional for run).
    period : str, optional
        Column labelling the periods (e.g. enrolment month).
    phase : str, optional
        Column naming the phase of each point (e.g. ``before`` / ``after`` a
        protocol change); centre and limits are computed per phase.
    freeze : int, optional
        Use only the first ``freeze`` points for centre and limits (a
        frozen baseline).  Not combined with ``phase``.
    exclude : sequence of int
        0-based positions (in time order) of points left out of all
        calculations; they stay on the chart.
    multiply : float
        Scale for display, e.g. 100 for per-100 rates (p and u charts).

    Returns
    -------
    ControlChart

    Notes
    -----
    Formulas as in Montgomery, *Introduction to Statistical Quality Control*
    (6th ed., eq. 6.33, 7.7, 7.19) and R ``qicharts2::qic`` (Anhøj 2018):
    ``p``: ``cl = sum(count) / sum(n)``, ``cl ± 3 sqrt(cl (1 - cl) / n_i)``
    truncated to [0, 1]; ``u``: ``cl ± 3 sqrt(cl / n_i)``, lower limit
    truncated at 0; ``i``: ``mean ± 3 mean|diff| / 1.128``.

    Examples
    --------
    >>> df = pd.DataFrame({"month": range(6), "x": [5, 7, 6, 8, 6, 7]})
    >>> res = control_chart(df, chart="i", value="x", period="month")
    >>> round(float(res.table["ucl"].iloc[0]), 3)
    10.755
    """
    if chart not in _CHARTS:
        raise UsageError(f"chart must be one of {_CHARTS}; got {chart!r}.")
    if freeze is not None and phase is not None:
        raise UsageError("Give either phase or freeze, not both (freeze applies to one phase).")
    frame = _points(data, chart=chart, value=value, count=count, denominator=denominator)
    frame["period"] = data[period].to_numpy() if period else np.arange(len(data))
    frame["phase"] = data[phase].astype(str).to_numpy() if phase else "1"
    if period:
        frame = frame.sort_values("period", kind="stable").reset_index(drop=True)
    n = len(frame)
    if n == 0:
        raise AnalysisError("The series is empty; nothing to chart.")
    bad = [i for i in exclude if not 0 <= i < n]
    if bad:
        raise UsageError(f"exclude positions {bad} are outside 0..{n - 1}.")
    if freeze is not None and not 2 <= freeze <= n:
        raise UsageError(f"freeze must be between 2 and the number of points ({n}).")
    frame["included"] = ~np.isin(np.arange(n), list(exclude))
    frame["baseline"] = frame["included"] & (np.arange(n) < (freeze if freeze else n))
    pieces, summaries = [], []
    for name, part in frame.groupby("phase", sort=False):
        part = _limits(part.copy(), chart)
        test = anhoej_rules(
            part["value"].where(part["included"]).to_numpy(dtype=float),
            part["cl"].to_numpy(dtype=float),
        )
        part["runs_signal"] = test.signal
        outside = (part["value"] > part["ucl"]) | (part["value"] < part["lcl"])
        part["sigma_signal"] = (outside & part["included"]).to_numpy(dtype=bool)
        pieces.append(part)
        summaries.append(
            {
                "phase": name,
                **test.to_dict(),
                "runs_signal": test.signal,
                "sigma_signals": int(part["sigma_signal"].sum()),
                "cl": float(part["cl"].iloc[-1]),
                "mean_lcl": float(part["lcl"].mean()),
                "mean_ucl": float(part["ucl"].mean()),
            }
        )
    table = pd.concat(pieces).sort_index()
    for column in ("value", "cl", "lcl", "ucl", "lcl_95", "ucl_95"):
        table[column] = table[column] * multiply
    runs = pd.DataFrame(summaries).drop(columns="signal")
    for column in ("cl", "mean_lcl", "mean_ucl"):
        runs[column] = runs[column] * multiply
    columns = [
        "period",
        "phase",
        "value",
        "denominator",
        "cl",
        "lcl",
        "ucl",
        "lcl_95",
        "ucl_95",
        "baseline",
        "included",
        "sigma_signal",
        "runs_signal",
    ]
    warnings = []
    if len(frame) < 10:
        warnings.append(
            f"Only {len(frame)} points: the runs rules have little power below 10 points."
        )
    return ControlChart(
        table=table[columns].reset_index(drop=True),
        warnings=tuple(warnings),
        title=title or f"{chart.upper() if chart != 'run' else 'Run'} chart",
        chart=chart,
        runs=runs,
        multiply=multiply,
    )


def _points(
    data: pd.DataFrame,
    *,
    chart: str,
    value: str | None,
    count: str | None,
    denominator: str | None,
) -> pd.DataFrame:
    needed = [c for c in (value, count, denominator) if c is not None]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise UsageError(f"control_chart: column(s) {missing} not found in the data.")
    if chart in ("p", "u") or (chart == "run" and value is None):
        if count is None or denominator is None:
            raise UsageError(f"A {chart} chart needs count= and denominator= columns.")
        num = data[count].to_numpy(dtype=float)
        den = data[denominator].to_numpy(dtype=float)
        if np.any(den < 0) or np.any(num < 0):
            raise UsageError("count and denominator must not be negative.")
        if chart == "p" and np.any(num > den):
            raise UsageError("A p chart needs count <= denominator in every period.")
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(den > 0, num / den, np.nan)
        return pd.DataFrame({"value": y, "count": num, "denominator": den})
    if value is None:
        raise UsageError(f"A {chart} chart needs value=, the column to plot.")
    y = data[value].to_numpy(dtype=float)
    return pd.DataFrame({"value": y, "count": np.nan, "denominator": np.nan})


def _limits(part: pd.DataFrame, chart: str) -> pd.DataFrame:
    base = part["baseline"].to_numpy(dtype=bool)
    y = part["value"].to_numpy(dtype=float)
    if chart == "run":
        cl = float(np.nanmedian(y[base])) if base.any() else np.nan
        part["cl"] = cl
        for column in ("lcl", "ucl", "lcl_95", "ucl_95"):
            part[column] = np.nan
        return part
    if chart == "mr":
        # Moving ranges are computed within the phase: the first point of a
        # phase has none, so a phase change does not create a false range.
        mr = np.concatenate(([np.nan], np.abs(np.diff(y))))
        part["value"] = mr
        cl = float(np.nanmean(mr[base])) if base.any() else np.nan
        part["cl"], part["lcl"], part["lcl_95"] = cl, 0.0, 0.0
        part["ucl"] = D4 * cl
        part["ucl_95"] = D4 / 3.0 * 2.0 * cl
        return part
    if chart == "i":
        cl = float(np.nanmean(y[base]))
        sigma = float(np.nanmean(np.abs(np.diff(y[base])))) / D2
        sd = np.full(y.shape, sigma)
    else:
        num = part["count"].to_numpy(dtype=float)[base]
        den = part["denominator"].to_numpy(dtype=float)[base]
        if np.nansum(den) <= 0:
            raise AnalysisError("The baseline has no denominator; centre line undefined.")
        cl = float(np.nansum(num) / np.nansum(den))
        n_i = part["denominator"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = cl * (1.0 - cl) / n_i if chart == "p" else cl / n_i
        sd = np.where(n_i > 0, np.sqrt(var), np.nan)
    part["cl"] = cl
    for column, k in (("lcl", -3.0), ("ucl", 3.0), ("lcl_95", -2.0), ("ucl_95", 2.0)):
        limit = cl + k * sd
        if chart in ("p", "u"):
            limit = np.maximum(limit, 0.0)
        if chart == "p":
            limit = np.minimum(limit, 1.0)
        part[column] = limit
    return part


def moving_range_sigma(values: npt.ArrayLike) -> float:
    """Process sigma from the mean moving range, ``mean|diff| / 1.128``.

    Examples
    --------
    >>> round(moving_range_sigma([1.0, 3.0, 2.0]), 4)
    1.3298
    """
    y = np.asarray(values, dtype=float)
    return float(np.nanmean(np.abs(np.diff(y))) / D2)
