"""Group-level summaries of patient-level change (counts and percentages only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from stepanalytics.instruments.registry import Registry
from stepanalytics.instruments.reliable_change import CATEGORIES, RCI_CRITICAL

SUMMARY_COLUMNS = [
    "instrument", "follow_up", "n", "n_no_baseline", "n_no_follow_up", "mean_baseline",
    "mean_follow_up", "mean_change", "std_error", "ci_lower", "ci_upper", "pct_responder",
    "pct_recovered", "pct_improved", "pct_unchanged", "pct_deteriorated", "pct_crossed_cutoff",
]  # fmt: skip


def summarise_change(patients: pd.DataFrame) -> pd.DataFrame:
    """One row per instrument and follow-up point.

    ``n`` counts complete pairs; means use them; the 95% interval of the mean
    change is a t interval (R: ``t.test(change)$conf.int``).  Percentages have
    the pairs with a known value as denominator (responder is unknown for an
    instrument without MCID, category without reliability).
    """
    rows = []
    if patients.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    for (code, point), group in patients.groupby(["instrument", "follow_up"], sort=True):
        complete = group[group["status"] == "complete"]
        change = complete["change"].to_numpy(float)
        n = len(change)
        mean = float(change.mean()) if n else np.nan
        se = float(change.std(ddof=1) / np.sqrt(n)) if n >= 2 else np.nan
        half = float(stats.t.ppf(0.975, n - 1) * se) if n >= 2 else np.nan
        row = {
            "instrument": code,
            "follow_up": point,
            "n": n,
            "n_no_baseline": int((group["status"] == "no_baseline").sum()),
            "n_no_follow_up": int((group["status"] == "no_follow_up").sum()),
            "mean_baseline": float(complete["baseline_score"].mean()) if n else np.nan,
            "mean_follow_up": float(complete["follow_up_score"].mean()) if n else np.nan,
            "mean_change": mean,
            "std_error": se,
            "ci_lower": mean - half,
            "ci_upper": mean + half,
            "pct_responder": _percent(complete["responder"], True),
            "pct_crossed_cutoff": _percent(complete["crossed_cutoff"], True),
        }
        for category in CATEGORIES:
            row[f"pct_{category}"] = _percent(complete["category"], category)
        if n and complete["crossed_cutoff"].isna().all():
            row["pct_recovered"] = np.nan  # no clinical cut-off: recovery cannot be assessed
        rows.append(row)
    return pd.DataFrame(rows)[SUMMARY_COLUMNS]


def _percent(values: pd.Series, target: object) -> float:
    known = values.dropna()
    if known.empty:
        return np.nan
    return float((known == target).mean() * 100.0)


def threshold_table(sds: pd.DataFrame, registry: Registry) -> pd.DataFrame:
    """Per instrument: SD, reliability with source, S_diff and the reliable change in points."""
    rows = []
    for record in sds.to_dict("records"):
        spec = registry.get(str(record["instrument"]))
        sd = float(record["sd_baseline"])
        r = spec.reliability
        s_diff = float(np.sqrt(2.0) * sd * np.sqrt(1.0 - r)) if r is not None else np.nan
        rows.append(
            {
                **record,
                "reliability": r,
                "reliability_source": spec.reliability_source,
                "s_diff": s_diff,
                "reliable_change_points": RCI_CRITICAL * s_diff,
                "mcid_points": spec.mcid_points,
                "mcid_percent": spec.mcid_percent,
                "clinical_cutoff": spec.clinical_cutoff,
            }
        )
    return pd.DataFrame(rows)
