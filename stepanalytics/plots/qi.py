"""Figures for quality improvement: funnel, caterpillar, control chart,
completeness funnel and adherence bars.

Every function takes a result first and ``ax=None``, draws, and returns the
Axes; nothing is saved here.  Figures meant for a report pass through the
small-cell rule like tables do: with the default ``threshold`` a clinic
whose counts the committee table would hide is not drawn (a dot on a funnel
plot gives its count back), and the figure says how many were left out.
Pass ``threshold=None`` for an analyst's unprotected view.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from stepanalytics.qi.adherence import Adherence
from stepanalytics.qi.benchmark import ClinicComparison
from stepanalytics.qi.completeness import Completeness
from stepanalytics.qi.funnel import FunnelResult, level_tag
from stepanalytics.qi.shrinkage import ShrinkageResult
from stepanalytics.qi.spc import ControlChart
from stepanalytics.qi.suppression import DEFAULT_THRESHOLD, protect_frame

_SIGNAL = "#c0392b"
_MAIN = "#2c3e50"
_LIMIT = "#7f8c8d"


def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    return ax


def _note_hidden(ax: Axes, n_hidden: int, threshold: int | None) -> None:
    if n_hidden and threshold is not None:
        ax.text(
            0.01,
            0.01,
            f"{n_hidden} clinic(s) with counts of 1-{threshold} not shown",
            transform=ax.transAxes,
            fontsize=8,
            color=_LIMIT,
            va="bottom",
        )


def _hidden_units(result: Any, threshold: int | None) -> set[str]:
    """Clinics that may not be drawn under the small-cell rule.

    A dot on a funnel plot gives its counts back (n on the x axis, the
    share on the y axis), and the target line is the pooled value, so the
    dots must follow the committee table's protection, complementary
    clinics included: one hidden clinic would be the total minus the others.
    """
    if threshold is None:
        return set()
    if isinstance(result, ClinicComparison):
        hidden = result.committee_table(threshold=threshold).hidden
        column = "oe_ratio" if result.scale == "ratio" else "risk_adjusted"
        return set(result.table.loc[hidden[column].to_numpy(), result.unit].astype(str))
    table = result.table
    precision = table["precision"].to_numpy(dtype=float)
    estimate = table["estimate"].to_numpy(dtype=float)
    frame = pd.DataFrame({"unit": table[result.unit].astype(str)})
    kind = getattr(result, "kind", "")
    counts: list[str] = []
    parts: list[tuple[str, str]] = []
    if kind != "ratio":
        frame["n"] = precision
        counts.append("n")
    if kind in ("proportion", "ratio"):
        frame["count"] = np.round(estimate * precision)
        counts.append("count")
    if kind == "proportion":
        parts.append(("count", "n"))
    hidden = protect_frame(frame, counts=counts, parts=parts, threshold=threshold).hidden
    return set(frame.loc[hidden[counts].any(axis=1).to_numpy(), "unit"])


def plot_funnel(
    result: FunnelResult | ClinicComparison,
    *,
    ax: Axes | None = None,
    threshold: int | None = DEFAULT_THRESHOLD,
    label_outside: bool = True,
) -> Axes:
    """Funnel plot: each clinic's indicator against its precision, with limits.

    Parameters
    ----------
    result : FunnelResult or ClinicComparison
    ax : Axes, optional
    threshold : int or None
        Small-cell threshold; clinics with hidden counts are not drawn.
        None draws every clinic (analysts only).
    label_outside : bool
        Write the id of clinics outside the outer limits.

    Returns
    -------
    Axes

    Examples
    --------
    >>> import pandas as pd
    >>> from stepanalytics.qi.funnel import funnel_compare
    >>> df = pd.DataFrame({"clinic_id": list("ABCD"), "n": [50, 80, 120, 60],
    ...                    "share": [0.40, 0.45, 0.42, 0.30]})
    >>> res = funnel_compare(df, estimate="share", precision="n", kind="proportion")
    >>> ax = plot_funnel(res)
    """
    funnel = result.funnel if isinstance(result, ClinicComparison) else result
    if funnel is None:
        raise ValueError("This comparison has no funnel.")
    ax = _axes(ax)
    table = funnel.table
    hidden = _hidden_units(result, threshold)
    visible = ~table[funnel.unit].astype(str).isin(hidden).to_numpy()
    top = float(table["precision"].max()) * 1.05
    grid = np.unique(
        np.linspace(1.0, top, 300).round()
        if funnel.kind == "proportion"
        else np.linspace(max(top / 300, 0.5), top, 300)
    )
    limits = funnel.limits(grid)
    ax.axhline(funnel.target, color=_MAIN, lw=1)
    for level, style in zip(sorted(funnel.levels), ("--", "-"), strict=False):
        tag = level_tag(level)
        for side in ("lower", "upper"):
            ax.plot(
                grid,
                limits[f"{side}_{tag}"],
                ls=style,
                color=_LIMIT,
                lw=1,
                label=f"{100 * level:.10g}% limits" if side == "lower" else None,
            )
    shown = table[visible]
    outer = level_tag(max(funnel.levels))
    out = (shown["estimate"] > shown[f"upper_{outer}"]) | (
        shown["estimate"] < shown[f"lower_{outer}"]
    )
    ax.scatter(shown["precision"], shown["estimate"], color=np.where(out, _SIGNAL, _MAIN), zorder=3)
    if label_outside:
        for _, row in shown[out].iterrows():
            ax.annotate(
                str(row[funnel.unit]),
                (row["precision"], row["estimate"]),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
            )
    ax.set_xlabel("patients (n)" if funnel.kind != "ratio" else "expected (E)")
    ax.set_ylabel("indicator")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    _note_hidden(ax, len(hidden), threshold)
    return ax


def plot_caterpillar(
    result: ShrinkageResult | ClinicComparison,
    *,
    ax: Axes | None = None,
    threshold: int | None = DEFAULT_THRESHOLD,
) -> Axes:
    """Shrunken clinic estimates with intervals, ordered by estimate for reading.

    The order helps the eye; no rank is shown or stored, and overlapping
    intervals mean clinics cannot be told apart.

    Examples
    --------
    >>> import pandas as pd
    >>> from stepanalytics.qi.shrinkage import shrink_estimates
    >>> df = pd.DataFrame({"clinic_id": list("ABCD"), "y": [0.1, 0.3, 0.2, 0.5],
    ...                    "v": [0.0025, 0.01, 0.0025, 0.04]})
    >>> ax = plot_caterpillar(shrink_estimates(df, estimate="y", variance="v"), threshold=None)
    """
    ax = _axes(ax)
    if isinstance(result, ClinicComparison):
        if result.shrinkage is None:
            raise ValueError("This comparison has no empirical-Bayes estimates.")
        hidden = _hidden_units(result, threshold)
        shrink = result.shrinkage
        table = shrink.table[~shrink.table[shrink.unit].astype(str).isin(hidden)]
        n_hidden = len(hidden)
    else:
        shrink, table, n_hidden = result, result.table, 0
    ordered = table.sort_values("shrunken").reset_index(drop=True)
    y = np.arange(len(ordered))
    ax.errorbar(
        ordered["shrunken"],
        y,
        xerr=[ordered["shrunken"] - ordered["ci_lower"], ordered["ci_upper"] - ordered["shrunken"]],
        fmt="o",
        color=_MAIN,
        ecolor=_LIMIT,
        capsize=2,
    )
    ax.axvline(shrink.mu, color=_MAIN, lw=1, ls="--")
    ax.set_yticks(y, ordered[shrink.unit].astype(str))
    ax.set_xlabel(f"shrunken estimate ({100 * shrink.level:.0f}% interval)")
    _note_hidden(ax, n_hidden, threshold)
    return ax


def plot_control_chart(chart: ControlChart, *, ax: Axes | None = None) -> Axes:
    """Run or control chart with centre, limits, phases and signals marked.

    Points outside the 3-sigma limits are red; a phase whose runs break an
    Anhøj rule has its centre line dashed red (as in R qicharts2).

    Examples
    --------
    >>> import pandas as pd
    >>> from stepanalytics.qi.spc import control_chart
    >>> df = pd.DataFrame({"x": [5, 7, 6, 8, 6, 7, 9, 12, 11, 12, 13, 12]})
    >>> ax = plot_control_chart(control_chart(df, chart="i", value="x"))
    """
    ax = _axes(ax)
    t = chart.table
    x = np.arange(len(t))
    ax.plot(x, t["value"], marker="o", ms=4, color=_MAIN, lw=1)
    flagged = t["sigma_signal"].to_numpy(dtype=bool)
    ax.scatter(x[flagged], t["value"][flagged], color=_SIGNAL, zorder=3, s=30)
    for _, part in t.groupby("phase", sort=False):
        idx = x[part.index.to_numpy()]
        shifted = bool(part["runs_signal"].iloc[0])
        ax.step(
            idx,
            part["cl"],
            where="mid",
            color=_SIGNAL if shifted else _MAIN,
            ls="--" if shifted else "-",
            lw=1,
        )
        if chart.chart != "run":
            ax.step(idx, part["ucl"], where="mid", color=_LIMIT, lw=1)
            ax.step(idx, part["lcl"], where="mid", color=_LIMIT, lw=1)
        if idx[0] > 0:
            ax.axvline(idx[0] - 0.5, color=_LIMIT, lw=0.8, ls=":")
    frozen = t.index[~t["baseline"] & t["included"]]
    if len(frozen) and chart.runs is not None and len(chart.runs) == 1:
        ax.axvline(frozen[0] - 0.5, color=_LIMIT, lw=0.8, ls=":")
    ticks = x[:: max(1, len(x) // 12)]
    ax.set_xticks(ticks, t["period"].astype(str).to_numpy()[ticks], rotation=45, ha="right")
    ax.set_title(chart.title, fontsize=10)
    return ax


def plot_completeness(
    result: Completeness,
    *,
    instrument: str,
    ax: Axes | None = None,
    threshold: int | None = DEFAULT_THRESHOLD,
) -> Axes:
    """Completeness funnel: percent measured at each stage, one line per clinic.

    Points whose measured or missing count is small are not drawn.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.qi.completeness import completeness_funnel
    >>> c = synthesize_cohort(n_patients=80, n_clinics=2, seed=1)
    >>> ax = plot_completeness(completeness_funnel(c, instruments=["odi"]), instrument="odi")
    """
    ax = _axes(ax)
    t = result.table[result.table["instrument"] == instrument]
    if t.empty:
        raise ValueError(f"No completeness rows for instrument {instrument!r}.")
    stages = t.drop_duplicates("stage").sort_values("stage_order")["stage"].tolist()
    position = {s: i for i, s in enumerate(stages)}
    drawn = np.ones(len(result.table), dtype=bool)
    if threshold is not None:
        # The committee table's protection: by clinic, against the all-clinics counts.
        drawn = ~result.committee_table(threshold=threshold).hidden["percent"].to_numpy()
    t = t.assign(_drawn=drawn[(result.table["instrument"] == instrument).to_numpy()])
    groups = t.groupby(list(result.by), sort=True) if result.by else [("all", t)]
    for key, group in groups:
        shown = group[group["_drawn"]]
        ax.plot(
            shown["stage"].map(position),
            shown["percent"],
            marker="o",
            lw=1,
            label=str(key[0] if isinstance(key, tuple) else key),
        )
    ax.set_xticks(range(len(stages)), stages, rotation=30, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of patients due who were measured")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return ax


def plot_adherence(
    result: Adherence,
    *,
    phase: int | None = None,
    ax: Axes | None = None,
    threshold: int | None = DEFAULT_THRESHOLD,
) -> Axes:
    """Bars of premature, delayed and stalled percentages per clinic.

    Parameters
    ----------
    result : Adherence
    phase : int, optional
        One phase; by default counts are pooled over phases.
    threshold : int or None
        Bars resting on a hidden count are not drawn.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.qi.adherence import protocol_adherence
    >>> c = synthesize_cohort(n_patients=80, n_clinics=2, seed=1)
    >>> ax = plot_adherence(protocol_adherence(c))
    """
    from stepanalytics.qi.intervals import wilson_interval

    ax = _axes(ax)
    columns = ["progressions", "premature", "met_criteria", "delayed", "stall_checked", "stalled"]
    protected = result.committee_table(threshold=threshold) if threshold is not None else None
    if phase is None:
        # A clinic's bars pool its phases: they show the clinic totals of the
        # committee table, protected with it.
        counts = result.table.groupby("clinic_id", sort=True)[columns].sum()
        shown = None if protected is None else protected.totals(("clinic_id",))
        shown = None if shown is None else shown.set_index("clinic_id").loc[counts.index]
    else:
        rows = (result.table["phase"] == phase).to_numpy()
        counts = result.table[rows].set_index("clinic_id")[columns]
        shown = None if protected is None else protected.table[rows].set_index("clinic_id")
    x = np.arange(len(counts))
    width = 0.27
    pairs = (
        ("premature", "progressions"),
        ("delayed", "met_criteria"),
        ("stalled", "stall_checked"),
    )
    for k, (event, base) in enumerate(pairs):
        num = counts[event].to_numpy(dtype=float)
        den = counts[base].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(den > 0, 100 * num / den, np.nan)
        lo, hi = wilson_interval(num, den)
        if shown is not None:
            hide = shown[event].isna().to_numpy() | shown[base].isna().to_numpy()
            pct = np.where(hide, np.nan, pct)
        err = np.nan_to_num(np.maximum(np.vstack([pct - 100 * lo, 100 * hi - pct]), 0.0))
        ax.bar(x + (k - 1) * width, pct, width, yerr=err, capsize=2, label=event)
    ax.set_xticks(x, counts.index.astype(str))
    ax.set_ylabel("% of stays")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Protocol adherence" + (f", phase {phase}" if phase else ""), fontsize=10)
    return ax
