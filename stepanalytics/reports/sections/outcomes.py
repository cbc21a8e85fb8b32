"""Outcomes by phase against the minimal important change (MCID).

For each outcome and phase: change from baseline to the end of the phase
(mean with 95% CI), the share reaching the instrument's MCID, the share
reliably deteriorated, and the share moving from the clinical to the
normal range (:func:`stepanalytics.qi.indicators.outcome_indicators`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stepanalytics.qi.suppression import SUPPRESSED_MARK
from stepanalytics.reports.context import ReportContext
from stepanalytics.reports.display import Section, note_html, table_html
from stepanalytics.reports.sections.common import phase_labels, protect_text

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
    if context.clinic:
        # One clinic-by-clinic table protected against each (phase, instrument) total:
        # the clinic's rows and "all clinics" both come from it, so all clinics minus
        # this clinic cannot give the other clinics' small count back.
        full = clinic_indicators(context, codes)
        protected = full.committee_table(threshold=threshold)
        here = (full.table["clinic_id"] == context.clinic).to_numpy()
        table = full.table.loc[here].drop(columns="clinic_id").reset_index(drop=True)
        hidden = protected.hidden.loc[here].drop(columns="clinic_id").reset_index(drop=True)
        everyone = (
            _pooled_shares(protected.totals(("phase", "instrument")))
            if context.compare_with_all
            else None
        )
        warnings = full.warnings
    else:
        # The counts of all clinics are the published totals of the same protected
        # clinic-by-clinic table that every clinic's report shows "all clinics" from:
        # this report minus a clinic's report is then a difference of cells of one table.
        full = clinic_indicators(context, codes)
        pooled = outcome_indicators(context.cohort, instruments=codes, by=(), follow_up="phase_end")
        totals = full.committee_table(threshold=threshold).totals(("phase", "instrument"))
        table, hidden = _pooled_indicators(pooled.table, totals)
        everyone = None
        warnings = pooled.warnings
    if table.empty:
        section.add_note("No patient has both a baseline and an end-of-phase score yet.")
        return section
    section.add_figure(
        _responder_axes(table, hidden, everyone),
        OUTCOME_CAPTION if everyone is not None else OUTCOME_CAPTION_ALONE,
    )
    for code in codes:
        is_code = (table["instrument"] == code).to_numpy()
        rows = table[is_code]
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
        section.add_html(_indicator_html(shown, hidden[is_code], code=code, threshold=threshold))
    for warning in warnings:
        section.add_note(protect_text(warning, threshold=threshold))
    return section


def clinic_indicators(context: ReportContext, codes: list[str]) -> Any:
    """Every clinic's outcome indicators (from the peer results), for these outcomes."""
    indicators = context.peers.outcomes
    keep = indicators.table["instrument"].isin(codes).to_numpy()
    return replace(indicators, table=indicators.table[keep].reset_index(drop=True))


#: Report column -> indicator column it shows (the hidden mask is the indicator's).
_SHOWN_FROM = {
    "patients": "n",
    "mean change": "mean_change",
    "CI lower": "ci_lower",
    "CI upper": "ci_upper",
    "responders": "responders",
    "responders %": "pct_responders",
    "deteriorated": "deteriorated",
    "deteriorated %": "pct_deteriorated",
    "clinical to normal": "crossed",
    "clinical to normal %": "pct_crossed",
}


def _indicator_html(shown: pd.DataFrame, hidden: pd.DataFrame, *, code: str, threshold: int) -> str:
    """One outcome's indicator rows, hidden where the committee table hides them."""
    shown = shown.reset_index(drop=True)
    mask = pd.DataFrame(False, index=shown.index, columns=shown.columns)
    for column, source in _SHOWN_FROM.items():
        mask[column] = hidden[source].to_numpy(dtype=bool)
    values = shown.copy()
    for column in values.columns:
        if pd.api.types.is_float_dtype(values[column]):
            values[column] = values[column].round(1)
    html = table_html(
        values.astype(object).where(~mask, SUPPRESSED_MARK),
        caption=f"{code}: change from baseline to the end of each phase.",
    )
    if bool(mask.to_numpy().any()):
        html += note_html(
            f"{SUPPRESSED_MARK} hidden to protect privacy: counts from 1 to {threshold}, and "
            "values that would let a hidden count be worked out (also as all clinics minus "
            "this clinic), are not shown."
        )
    return html


def _pooled_shares(totals: pd.DataFrame) -> pd.DataFrame:
    """All clinics' responder share per phase and instrument, from the published totals.

    A withheld total (``<NA>``) leaves the share out.
    """
    n = totals["n"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    responders = totals["responders"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, 100 * responders / n, np.nan)
    return totals[["phase", "instrument"]].assign(pct_responders=share)


#: Count columns of the indicator table; each share's count and denominator.
_COUNTS = ("n", "responders", "n_rci", "deteriorated", "n_clinical", "crossed")
_SHARE_PARTS = {
    "responders": "n",
    "deteriorated": "n_rci",
    "crossed": "n_clinical",
}


def _pooled_indicators(
    pooled: pd.DataFrame, totals: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All clinics' indicator rows with their counts from the published totals.

    ``pooled`` is the indicator table over all clinics (``by=()``), for the
    mean change and the intervals; ``totals`` the clinic-by-clinic committee
    table's totals by (phase, instrument).  Each count is the published
    total (a withheld one is hidden); each share is computed from the
    totals and hidden with its count or denominator; the mean change, its
    standard error and interval are hidden with ``n`` (the interval's width
    over the standard error gives ``n`` back).

    Returns the rows and the hidden mask (same columns).
    """
    keys = ["phase", "instrument"]
    table = pooled.reset_index(drop=True)
    published = table[keys].merge(totals[[*keys, *_COUNTS]], on=keys, how="left")
    hidden = pd.DataFrame(False, index=table.index, columns=table.columns)
    counts = {}
    for column in _COUNTS:
        values = published[column].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        hidden[column] = np.isnan(values)
        counts[column] = values
        table[column] = np.nan_to_num(values, nan=0.0).astype(np.int64)
    for column in ("mean_change", "std_error", "ci_lower", "ci_upper"):
        if column in hidden.columns:
            hidden[column] = hidden["n"].to_numpy()
    for name, denominator in _SHARE_PARTS.items():
        gone = hidden[name].to_numpy() | hidden[denominator].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(
                counts[denominator] > 0, 100 * counts[name] / counts[denominator], np.nan
            )
        table[f"pct_{name}"] = share
        for column in (f"pct_{name}", f"{name}_lower", f"{name}_upper"):
            if column in hidden.columns:
                hidden[column] = gone
    return table, hidden


def _safe_share(rows: pd.DataFrame, hidden: pd.DataFrame) -> np.ndarray:
    """Responder shares, with those the committee table hides removed."""
    gone = hidden["pct_responders"].to_numpy(dtype=bool) | hidden["n"].to_numpy(dtype=bool)
    return np.where(gone, np.nan, rows["pct_responders"].to_numpy(dtype=float))


def _responder_axes(
    mine: pd.DataFrame, hidden: pd.DataFrame, everyone: pd.DataFrame | None
) -> plt.Axes:
    """Bars of the clinic's responder shares; dots of all clinics' (from published totals)."""
    codes = list(dict.fromkeys(mine["instrument"]))
    phases = sorted(mine["phase"].dropna().unique())
    _fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(len(codes), 1)
    for k, code in enumerate(codes):
        is_code = (mine["instrument"] == code).to_numpy()
        rows = mine[is_code].reset_index(drop=True)
        share = _safe_share(rows, hidden[is_code].reset_index(drop=True))
        position = {p: i for i, p in enumerate(phases)}
        x = np.array([position[p] for p in rows["phase"]], dtype=float)
        x = x + (k - (len(codes) - 1) / 2) * width
        low = rows["responders_lower"].to_numpy(dtype=float)
        high = rows["responders_upper"].to_numpy(dtype=float)
        err = np.nan_to_num(np.vstack([share - low, high - share]), nan=0.0).clip(min=0.0)
        ax.bar(x, share, width, yerr=err, capsize=2, label=code)
        if everyone is not None:  # the dots: all clinics' share of the same phase
            pooled = everyone[everyone["instrument"] == code].set_index("phase")
            dots = pooled["pct_responders"].reindex(rows["phase"]).to_numpy(dtype=float)
            ax.scatter(x, dots, color="black", s=12, zorder=3)
    ax.set_xticks(np.arange(len(phases)), [f"phase {int(p)}" for p in phases])
    ax.set_ylabel("% reaching the MCID")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, frameon=False, ncol=len(codes))
    ax.spines[["top", "right"]].set_visible(False)
    return ax
