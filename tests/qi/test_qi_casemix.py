"""Case-mix adjustment against R glm / lm (tests/qi/reference/make_reference.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.qi.casemix import risk_adjust

COVARIATES = ["claim", "age_band", "baseline_score"]


@pytest.fixture(scope="module")
def patients(reference):
    return pd.read_csv(reference / "casemix_patients.csv")


@pytest.fixture(scope="module")
def expected(reference):
    return pd.read_csv(reference / "casemix_reference.csv").set_index("clinic_id")


def test_logistic_expected_counts_match_glm(patients, expected):
    """R: glm(responder ~ claim + age_band + baseline_score, binomial); E = sum(fitted)."""
    res = risk_adjust(patients, outcome="responder", covariates=COVARIATES, kind="binary")
    got = res.table.set_index("clinic_id").loc[expected.index]
    assert got["n"].tolist() == expected["n"].tolist()
    assert got["observed"].tolist() == expected["observed"].tolist()
    np.testing.assert_allclose(got["expected"], expected["expected"], rtol=1e-7)
    np.testing.assert_allclose(got["variance"], expected["variance"], rtol=1e-7)
    np.testing.assert_allclose(got["oe_ratio"], expected["oe_ratio"], rtol=1e-7)
    overall = patients["responder"].mean()
    np.testing.assert_allclose(got["risk_adjusted"], expected["oe_ratio"] * overall, rtol=1e-7)
    # The clinic simulated worse (C03) has the lowest O/E.
    assert got["oe_ratio"].idxmin() == "C03"


def test_linear_expected_means_match_lm(patients, expected):
    """R: lm(change ~ claim + age_band + baseline_score); residual SD = sigma."""
    res = risk_adjust(patients, outcome="change", covariates=COVARIATES, kind="continuous")
    got = res.table.set_index("clinic_id").loc[expected.index]
    np.testing.assert_allclose(got["observed"], expected["mean_change"], rtol=1e-10)
    np.testing.assert_allclose(got["expected"], expected["mean_expected_change"], rtol=1e-9)
    assert res.residual_sd == pytest.approx(expected["sigma"].iloc[0], rel=1e-10)
    overall = patients["change"].mean()
    np.testing.assert_allclose(
        got["risk_adjusted"], overall + expected["mean_change"] - expected["mean_expected_change"]
    )
    assert res.formula.startswith("change ~")


def test_missing_covariates_are_counted_not_silently_dropped(patients):
    damaged = patients.copy()
    damaged.loc[:9, "age_band"] = None
    res = risk_adjust(damaged, outcome="responder", covariates=COVARIATES)
    assert res.table["n"].sum() == len(patients) - 10
    assert any("10 of 1500 patients" in w for w in res.warnings)


def test_bad_inputs(patients):
    with pytest.raises(UsageError, match="0/1"):
        risk_adjust(patients, outcome="change", covariates=["claim"], kind="binary")
    with pytest.raises(UsageError, match="not found"):
        risk_adjust(patients, outcome="responder", covariates=["smoker"])
    one = patients.assign(clinic_id="C01")
    with pytest.raises(AnalysisError, match="2 clinics"):
        risk_adjust(one, outcome="responder")
    none = patients.assign(responder=0)
    with pytest.raises(AnalysisError, match="same for every patient"):
        risk_adjust(none, outcome="responder")
