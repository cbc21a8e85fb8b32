"""Committee tables of every QI analysis, attacked with the totals a report publishes.

Cohorts: 300 synthetic patients in 6 clinics (seed 1), where clinic C04 has
8 patients; 40 patients in 5 clinics (seed 2), with clinics of 1 to 4
patients.  The attacker (``attack`` fixture) sees the shown cells and the
published totals and solves for the hidden counts by linear programming.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt
from scipy import stats

from stepanalytics.plots.qi import plot_adherence
from stepanalytics.qi import (
    benchmark_outcome,
    completeness_funnel,
    outcome_indicators,
    protocol_adherence,
    safety_rates,
)
from stepanalytics.synth import synthesize_cohort


@pytest.fixture(scope="module")
def cohort_with_tiny_clinic():
    cohort = synthesize_cohort(n_patients=300, n_clinics=6, seed=1)
    assert cohort.patients["clinic_id"].value_counts()["C04"] == 8
    return cohort


@pytest.fixture(scope="module")
def cohort_of_tiny_clinics():
    return synthesize_cohort(n_patients=40, n_clinics=5, seed=2)


def test_adherence_hides_nothing_a_phase_or_clinic_total_gives_back(
    attack, cohort_with_tiny_clinic
):
    result = protocol_adherence(cohort_with_tiny_clinic)
    protected = result.committee_table()
    counts = ["stays", "progressions", "premature", "met_criteria", "delayed"]
    counts += ["stall_checked", "stalled"]
    # No phase (all-clinics total published) holds exactly one hidden count.
    per_phase = protected.hidden[counts].groupby(result.table["phase"]).sum()
    assert not (per_phase == 1).to_numpy().any(), per_phase
    parts = [("premature", "progressions"), ("delayed", "met_criteria")]
    parts += [("stalled", "stall_checked")]
    margins = [("phase",), ("clinic_id",)]
    assert attack(result.table, protected, counts=counts, margins=margins, parts=parts) == []
    # C04 (8 patients) shows no count in any phase with stays.
    c04 = (result.table["clinic_id"] == "C04") & (result.table["stays"] > 0)
    assert protected.hidden.loc[c04, "stays"].all()


def test_adherence_figure_draws_only_clinic_totals_the_table_publishes(
    cohort_with_tiny_clinic,
):
    result = protocol_adherence(cohort_with_tiny_clinic)
    totals = result.committee_table().totals(("clinic_id",)).set_index("clinic_id")
    ax = plot_adherence(result)
    bars = [patch.get_height() for patch in ax.patches]
    n = len(totals)
    left_out = 0
    for k, (event, base) in enumerate(
        [("premature", "progressions"), ("delayed", "met_criteria"), ("stalled", "stall_checked")]
    ):
        heights = np.array(bars[k * n : (k + 1) * n], dtype=float)
        withheld = (totals[event].isna() | totals[base].isna()).to_numpy()
        assert np.array_equal(np.isnan(heights), withheld), event
        left_out += int(withheld.sum())
    # e.g. C03's 25 delayed of 51 are not small, yet withheld to protect C04's total.
    assert left_out > 0
    plt.close("all")


def test_safety_pooled_rate_does_not_give_back_a_hidden_clinic(attack, cohort_with_tiny_clinic):
    result = safety_rates(cohort_with_tiny_clinic)
    protected = result.committee_table()
    table, hidden = result.table, protected.hidden
    # The audit's reader: centre x patient-weeks - shown events = hidden events.
    for _, rows in table.groupby(["phase", "event"]).groups.items():
        g = table.loc[rows]
        h = hidden.loc[rows]
        if h["centre"].any():
            assert h["centre"].all()  # withheld for the whole group
            continue
        n_hidden = int(h["events"].sum())
        assert n_hidden != 1
        if n_hidden and not h["patient_weeks"].any():
            total = g["centre"].iloc[0] / 100 * g["patient_weeks"].sum()
            assert total - g.loc[~h["events"], "events"].sum() > 10
    # Patient-weeks of a clinic with 8 patients describe individuals: hidden, with
    # everything computed from them (rate, interval, limits).
    c04 = table["clinic_id"] == "C04"
    for column in ("patient_weeks", "patients", "rate", "ci_lower", "ci_upper", "lcl", "ucl"):
        assert hidden.loc[c04, column].all(), column
    assert (
        attack(table, protected, counts=["events", "patients"], margins=[("phase", "event")]) == []
    )


def test_completeness_by_clinic_is_protected_against_the_all_clinics_funnel(
    attack, cohort_with_tiny_clinic
):
    result = completeness_funnel(cohort_with_tiny_clinic, instruments=["odi", "pseq"])
    protected = result.committee_table()
    assert (
        attack(
            result.table,
            protected,
            counts=["eligible", "measured"],
            margins=[("instrument", "stage")],
            parts=[("measured", "eligible")],
        )
        == []
    )
    hidden = protected.hidden
    assert (hidden["percent"] >= hidden["measured"]).all()
    assert (hidden["ci_lower"] == hidden["percent"]).all()


def test_outcome_indicators_hide_every_value_that_gives_n_back(attack, cohort_of_tiny_clinics):
    result = outcome_indicators(cohort_of_tiny_clinics, instruments=["odi", "pseq"])
    table = result.table
    protected = result.committee_table()
    hidden = protected.hidden
    # The leak guarded against: interval half-width over standard error is a t
    # quantile with n - 1 degrees of freedom, so the two together give n back.
    shown = table[(table["n"] > 2)]
    ratio = (shown["ci_upper"] - shown["mean_change"]) / shown["std_error"]
    assert np.allclose(ratio, stats.t.ppf(0.975, shown["n"] - 1))
    small_n = hidden["n"].to_numpy()
    assert small_n.any()
    for column in ("mean_change", "std_error", "ci_lower", "ci_upper"):
        assert hidden.loc[small_n, column].all(), column
    counts = ["n", "responders", "n_rci", "deteriorated", "n_clinical", "crossed"]
    parts = [("responders", "n"), ("deteriorated", "n_rci"), ("crossed", "n_clinical")]
    parts += [("n_rci", "n"), ("n_clinical", "n")]
    margins = [("instrument",)]
    assert attack(table, protected, counts=counts, margins=margins, parts=parts) == []


def test_clinic_comparison_is_protected_against_the_pooled_target(attack, cohort_with_tiny_clinic):
    result = benchmark_outcome(cohort_with_tiny_clinic, instrument="odi")
    protected = result.committee_table()
    found = attack(
        result.table,
        protected,
        counts=["n", "observed"],
        margins=[()],
        parts=[("observed", "n")],
    )
    assert found == []
    assert not protected.hidden["target"].any()
    assert protected.totals()["n"].iloc[0] == result.table["n"].sum()


def test_committee_tables_carry_no_identifier(cohort_of_tiny_clinics):
    for protected in (
        protocol_adherence(cohort_of_tiny_clinics).committee_table(),
        safety_rates(cohort_of_tiny_clinics).committee_table(),
        completeness_funnel(cohort_of_tiny_clinics, instruments=["odi"]).committee_table(),
        outcome_indicators(cohort_of_tiny_clinics, instruments=["odi"]).committee_table(),
    ):
        assert "patient_id" not in protected.table.columns
        assert isinstance(protected.table, pd.DataFrame)
