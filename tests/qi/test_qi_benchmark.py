"""Clinic comparison options: O/E scale, continuous outcomes, no league table."""

from __future__ import annotations

import pytest

from stepanalytics.errors import UsageError
from stepanalytics.qi.benchmark import benchmark_outcome, compare_clinics


def test_ratio_scale_uses_poisson_limits_around_one(worse_clinic_patients):
    res = compare_clinics(
        worse_clinic_patients,
        outcome="responder",
        covariates=["claim", "baseline_score"],
        scale="ratio",
    )
    assert res.funnel.kind == "ratio" and res.funnel.target == 1.0
    assert "C14" in res.funnel.outside(0.998)
    assert "TINY" not in res.funnel.outside(0.998)
    hidden = res.committee_table().hidden.set_index(res.table["clinic_id"])
    assert hidden.loc["TINY", "oe_ratio"]
    with pytest.raises(UsageError, match="binary"):
        compare_clinics(
            worse_clinic_patients, outcome="baseline_score", kind="continuous", scale="ratio"
        )


def test_continuous_indicator_on_the_synthetic_cohort(synthetic_cohort):
    res = benchmark_outcome(synthetic_cohort, instrument="odi", indicator="improvement")
    assert res.kind == "continuous" and res.funnel.kind == "mean"
    assert res.adjustment.residual_sd > 0
    assert list(res.table["clinic_id"]) == sorted(synthetic_cohort.clinics)
    assert not {"rank", "patient_id"} & set(res.table.columns)
    assert any("no follow-up score" in w for w in res.warnings)
    committee = res.committee_table()
    small = res.table["n"] <= 10
    assert committee.hidden.loc[small, "risk_adjusted"].all()


def test_patient_columns_named_like_pair_columns_do_not_shadow_them(synthetic_cohort):
    """An extra patients column called `outcome` or `baseline_score` changes nothing."""
    from dataclasses import replace

    plain = benchmark_outcome(synthetic_cohort, instrument="odi")
    extra = synthetic_cohort.patients.assign(outcome=1.0, baseline_score=-5.0)
    shadowed = benchmark_outcome(replace(synthetic_cohort, patients=extra), instrument="odi")
    assert shadowed.table.equals(plain.table)
    assert shadowed.warnings == plain.warnings
