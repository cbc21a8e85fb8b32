"""The issue's acceptance tests: a truly worse clinic is flagged, a tiny extreme one is not.

Two data sources:

* a patient file built in ``tests/qi/conftest.py`` (``truly_worse_patients``) where the
  truth is fixed by construction: C14 has its odds of responding cut by 70%,
  TINY has 6 patients who all respond by chance;
* the project's synthetic cohort (``stepanalytics.synth``), whose truth file
  names the clinic made worse.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from stepanalytics.cohort import Cohort
from stepanalytics.plots.qi import plot_caterpillar, plot_funnel
from stepanalytics.qi.benchmark import benchmark_outcome, compare_clinics
from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML, SynthConfig, synthesize_tables


@pytest.fixture(scope="module")
def comparison(worse_clinic_patients):
    return compare_clinics(
        worse_clinic_patients, outcome="responder", covariates=["claim", "baseline_score"]
    )


def test_truly_worse_clinic_falls_outside_the_998_limit(comparison):
    assert comparison.funnel.outside(0.998) == ["C14"]
    row = comparison.table.set_index("clinic_id").loc["C14"]
    assert row["position"] == "below 99.8%"
    assert row["risk_adjusted"] < row["lower_99_8"]


def test_tiny_clinic_with_an_extreme_rate_is_not_flagged(comparison):
    row = comparison.table.set_index("clinic_id").loc["TINY"]
    assert row["crude"] == 1.0  # 6 of 6 responded
    # Above the 95% limit (1 in 20 small clinics is), not beyond the 99.8% one.
    assert row["position"] in ("within", "above 95%")
    assert "TINY" not in comparison.funnel.outside(0.998)
    assert row["lower_99_8"] <= row["risk_adjusted"] <= row["upper_99_8"]
    # Its empirical-Bayes estimate keeps under a fifth of its distance from the mean.
    eb = comparison.shrinkage.table.set_index("clinic_id").loc["TINY"]
    assert eb["weight"] < 0.2
    assert abs(row["shrunken"] - comparison.shrinkage.mu) < 0.2 * abs(
        row["risk_adjusted"] - comparison.shrinkage.mu
    )


def test_tiny_clinic_counts_are_suppressed_for_the_committee(comparison):
    committee = comparison.committee_table()
    hidden = committee.hidden.set_index(comparison.table["clinic_id"])
    for column in ("n", "observed", "risk_adjusted", "crude", "z", "shrunken"):
        assert hidden.loc["TINY", column], column
    # Complementary: TINY's n cannot be had as the total minus the others.
    assert hidden["n"].sum() >= 2
    assert "patient_id" not in committee.table.columns
    shown = committee.to_display().set_index("clinic_id")
    assert shown.loc["TINY", "n"] == "*"
    assert shown.loc["C14", "position"] == "below 99.8%"


def test_figures_leave_the_tiny_clinic_out(comparison):
    fig, (left, right) = plt.subplots(1, 2)
    plot_funnel(comparison, ax=left)
    drawn = left.collections[0].get_offsets()
    assert (
        len(drawn)
        == len(comparison.table) - comparison.committee_table().hidden["risk_adjusted"].sum()
    )
    assert any("not shown" in t.get_text() for t in left.texts)
    plot_caterpillar(comparison, ax=right)
    labels = [t.get_text() for t in right.get_yticklabels()]
    assert "TINY" not in labels and "C14" in labels
    plt.close(fig)


def test_synthetic_cohort_worse_clinic_flagged_tiny_clinic_hidden():
    """stepanalytics.synth, seed 3: C03 is the clinic made worse, C02 has 7 patients."""
    tables, truth = synthesize_tables(SynthConfig(n_patients=1200, n_clinics=8, seed=3))
    cohort = Cohort.from_tables(tables, protocol_text=SYNTH_PROTOCOL_YAML)
    worse = truth["worse_clinics"][0]
    result = benchmark_outcome(cohort, instrument="odi", indicator="responder")
    table = result.table.set_index("clinic_id")
    assert table["z_adjusted"].idxmin() == worse
    assert worse in result.funnel.outside(0.998)
    tiny = table["n"].idxmin()
    assert table.loc[tiny, "n"] <= 10
    assert tiny not in result.funnel.outside(0.998)
    hidden = result.committee_table().hidden.set_index(result.table["clinic_id"])
    assert hidden.loc[tiny, "n"] and hidden.loc[tiny, "observed"]
    assert "rank" not in result.table.columns
