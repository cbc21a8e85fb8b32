"""Cohorts where nothing can be measured, and what the analyses say about them.

``baseline_only_cohort``: every patient drops out on day 0 after a baseline
score (like the audit's cohort e1); ``scoreless_cohort``: the same without a
single score (e4).  Each analysis either returns an empty result with a
warning that says why, or raises a project error naming the real reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stepanalytics.errors import AnalysisError
from stepanalytics.qi import (
    benchmark_outcome,
    completeness_funnel,
    funnel_compare,
    outcome_indicators,
)
from stepanalytics.qi.overdispersion import winsorise


def test_indicators_without_any_follow_up_are_empty_with_the_reason(baseline_only_cohort):
    result = outcome_indicators(baseline_only_cohort)
    assert result.table.empty
    assert list(result.table.columns[:3]) == ["clinic_id", "instrument", "n"]
    assert any("No patient has a follow-up score" in w for w in result.warnings)
    assert result.committee_table().table.empty
    by_phase = outcome_indicators(baseline_only_cohort, by=(), follow_up="phase_end")
    assert by_phase.table.empty and "phase" in by_phase.table.columns


def test_indicators_without_any_score_are_empty_with_the_reason(scoreless_cohort):
    result = outcome_indicators(scoreless_cohort)
    assert result.table.empty
    assert any("No scores" in w for w in result.warnings)


def test_completeness_without_any_score(scoreless_cohort):
    with pytest.raises(AnalysisError, match="no scores at all"):
        completeness_funnel(scoreless_cohort)
    # Asked for an instrument: everybody due, nobody measured.
    result = completeness_funnel(scoreless_cohort, instruments=["odi"], by=())
    counts = result.table.set_index("stage")[["eligible", "measured"]]
    assert counts.loc["baseline"].tolist() == [5, 0]
    assert counts.loc["end_of_care"].tolist() == [5, 0]
    assert result.warnings


def test_completeness_when_everybody_leaves_on_day_0(baseline_only_cohort):
    result = completeness_funnel(baseline_only_cohort, instruments=["odi"], by=())
    counts = result.table.set_index("stage")[["eligible", "measured"]]
    # P1 and P4 have an ODI score on day 0; nobody completed, so nobody is due follow-up.
    assert counts.loc["baseline"].tolist() == [5, 2]
    assert counts.loc["follow_up"].tolist() == [0, 0]


def test_benchmark_names_the_real_reason(baseline_only_cohort, scoreless_cohort, handmade_cohort):
    with pytest.raises(AnalysisError, match="no patient has a follow-up odi score") as err:
        benchmark_outcome(baseline_only_cohort, instrument="odi")
    assert "2 clinics" not in str(err.value)
    with pytest.raises(AnalysisError, match="No odi scores in this cohort"):
        benchmark_outcome(scoreless_cohort, instrument="odi", indicator="change")
    with pytest.raises(AnalysisError, match="only 1 clinic"):
        benchmark_outcome(handmade_cohort.subset(clinics=["A"]), instrument="odi")


def _clinics(shares: list[float], n: int = 100) -> pd.DataFrame:
    return pd.DataFrame(
        {"clinic_id": [f"C{k}" for k in range(len(shares))], "n": n, "share": shares}
    )


def _dispersion_test(frame: pd.DataFrame) -> tuple[float, float]:
    """phi and its chi-square p-value from the winsorised z-scores, computed here."""
    target = float(np.average(frame["share"], weights=frame["n"]))
    z = (frame["share"] - target) / np.sqrt(target * (1 - target) / frame["n"])
    phi = float(np.mean(winsorise(z.to_numpy(), share=0.1) ** 2))
    return phi, float(stats.chi2.sf(len(frame) * phi, len(frame) - 1))


def test_funnel_note_follows_the_decision_made():
    # Slightly more spread than binomial: tau^2 > 0 (limits widened), test not significant.
    mild = _clinics([0.24, 0.36, 0.27, 0.33, 0.25, 0.35])
    phi, p = _dispersion_test(mild)
    assert phi > 5 / 6 and p > 0.05
    result = funnel_compare(mild, estimate="share", precision="n", kind="proportion")
    assert result.overdispersion.tau2 > 0
    (note,) = result.warnings
    assert "more than chance" not in note
    assert "compatible with chance" in note and f"p = {p:.3g}" in note
    assert "I phi > I - 1" in note
    # Clearly overdispersed: the note says so, with the test.
    wide = _clinics([0.10, 0.45, 0.15, 0.50, 0.20, 0.55])
    phi, p = _dispersion_test(wide)
    assert p < 0.05
    (note,) = funnel_compare(wide, estimate="share", precision="n", kind="proportion").warnings
    assert note.startswith("Clinics vary more than chance explains") and f"p = {p:.3g}" in note
    # Multiplicative model: widened by sqrt(phi) whenever phi > 1.
    (note,) = funnel_compare(
        wide, estimate="share", precision="n", kind="proportion", overdispersion="multiplicative"
    ).warnings
    assert f"sqrt(phi) = {np.sqrt(phi):.2f}" in note
    # Less spread than chance: nothing widened, nothing said.
    tight = _clinics([0.29, 0.31, 0.30, 0.30, 0.29, 0.31])
    assert funnel_compare(tight, estimate="share", precision="n", kind="proportion").warnings == ()
