"""Outcomes by phase against the minimal important change (MCID).

For each outcome and phase: change from baseline to the end of the phase
(mean with 95% CI), the share reaching the instrument's MCID, the share
reliably deteriorated, and the share moving from the clinical to the
normal range (:func:`stepanalytics.qi.indicators.outcome_indicators`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section
from stepanalytics.reports.sections.common import (
    phase_labels,
    protect_text,
    protected_table_html,
)

OUTCOME_CAPTION = (
    "Each bar is the share of patients whose score had improved by at least the minimal "
    "important change (MCID) by the end of the phase, with its 95% interval; the dot is the "
    "same share for all clinics. Higher is better. Bars resting on small counts are left "
    "out for privacy."
)


OUTCOME_CAPTION_ALONE = (
    "Each bar is the share of patients whose score had improved by at least the minimal "
    "important change (MCID) by the end of the phase, with its 95% interval. Higher is "
    "better. Bars resting on small counts are left out for privacy."
)


def section_outcomes(context: ReportContext) -> Section:
    """Change per outcome and phase, against the MCID, with all clinics alongside."""
    from stepanalytics.qi.indicators import outcome_indicators

    section = Section("Outcomes by phase")
    section.add_text(
        "Change from the baseline score to the last score of each phase. A responder improved "
        "by at least the instrument's minimal important change; deteriorated means a reliable "
        "change for the worse (Jacobson-Truax); 'clinical to normal' counts patients who "
        "started in the clinical range and ended outside it."
    )
    codes = context.reported_instruments
    if not codes:
        section.add_note("No outcome instrument has scores in this selection.")
        return section
    threshold = context.suppression_threshold
    mine = outcome_indicators(context.selection, instruments=codes, by=(), follow_up="phase_end")
    everyone = (
        outcome_indicators(context.cohort, instruments=codes, by=(), follow_up="phase_end")
        if context.clinic and context.compare_with_all
        else None
    )
    table = mine.table
    if table.empty:
        section.add_note("No patient has both a baseline and an end-of-phase score yet.")
        return section
    section.add_figure(
        _responder_axes(table, None if everyone is None else everyone.table, threshold),
        OUTCOME_CAPTION if everyone is not None else OUTCOME_CAPTION_ALONE,
    )
    for code in codes:
        rows = table[table["instrument"] == code]
        if rows.empty:
            continue
        rows = rows.assign(phase=phase_labels(rows["phase"], context.selection.phase_names()))
        shown = rows[
            [
                "phase",
                "n",
                "mean_change",
                "ci_lower",
                "ci_upper",
                "responders",
                "pct_responders",
                "deteriorated",
                "pct_deteriorated",
                "crossed",
                "pct_crossed",
            ]
        ].rename(
            columns={
                "n": "patients",
                "mean_change": "mean change",
                "ci_lower": "CI lower",
                "ci_upper": "CI upper",
                "pct_responders": "responders %",
                "pct_deteriorated": "deteriorated %",
                "crossed": "clinical to normal",
                "pct_crossed": "clinical to normal %",
            }
        )
        section.add_html(
            protected_table_html(
                shown,
                counts=["patients", "responders", "deteriorated", "clinical to normal"],
                derived={
                    "mean change": ["patients"],
                    "CI lower": ["patients"],
                    "CI upper": ["patients"],
                    "responders %": ["responders", "patients"],
                    "deteriorated %": ["deteriorated", "patients"],
                    "clinical to normal %": ["clinical to normal", "patients"],
                },
                parts=[
                    ("responders", "patients"),
                    ("deteriorated", "patients"),
                    ("clinical to normal", "patients"),
                ],
                totals=False,
                threshold=threshold,
                caption=f"{code}: change from baseline to the end of each phase.",
            )
        )
    for warning in mine.warnings:
        section.add_note(protect_text(warning, threshold=threshold))
    return section


def _safe_share(rows: pd.DataFrame, threshold: int) -> np.ndarray:
    """Responder shares with those resting on a small count (or its complement) removed."""
    responders = rows["responders"].to_numpy(dtype=float)
    n = rows["n"].to_numpy(dtype=float)
    small = ((responders >= 1) & (responders <= threshold)) | (
        (n - responders >= 1) & (n - responders <= threshold)
    )
    small |= (n >= 1) & (n <= threshold)
    return np.where(small, np.nan, rows["pct_responders"].to_numpy(dtype=float))


def _responder_axes(mine: pd.DataFrame, everyone: pd.DataFrame | None, threshold: int) -> plt.Axes:
    codes = list(dict.fromkeys(mine["instrument"]))
    phases = sorted(mine["phase"].dropna().unique())
    _fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(len(codes), 1)
    for k, code in enumerate(codes):
        rows = mine[mine["instrument"] == code].set_index("phase").reindex(phases)
        x = np.arange(len(phases)) + (k - (len(codes) - 1) / 2) * width
        share = _safe_share(rows.reset_index(), threshold)
        low = rows["responders_lower"].to_numpy(dtype=float)
        high = rows["responders_upper"].to_numpy(dtype=float)
        err = np.nan_to_num(np.vstack([share - low, high - share]), nan=0.0).clip(min=0.0)
        ax.bar(x, share, width, yerr=err, capsize=2, label=code)
        if everyone is not None:  # the dots: all clinics' share of the same phase
            pooled = everyone[everyone["instrument"] == code].set_index("phase").reindex(phases)
            dots = _safe_share(pooled.reset_index(), threshold)
            ax.scatter(x, dots, color="black", s=12, zorder=3)
    ax.set_xticks(np.arange(len(phases)), [f"phase {int(p)}" for p in phases])
    ax.set_ylabel("% reaching the MCID")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, frameon=False, ncol=len(codes))
    ax.spines[["top", "right"]].set_visible(False)
    return ax
