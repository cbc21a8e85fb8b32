"""lme4-style formulas to fast-engine arrays: parsing, nesting, missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.lmm import fit_lmm_formula, lmm_design

NESTED = "score ~ weeks + (weeks | patient_id) + (1 | clinic_id)"


def test_design_of_the_nested_model(lmm_dataset):
    data = lmm_dataset("nested")
    design = lmm_design(data, NESTED)
    assert list(design.x.columns) == ["(Intercept)", "weeks"]
    assert list(design.z.columns) == ["(Intercept)", "weeks"]
    assert design.patient_column == "patient_id"
    assert design.clinic_column == "clinic_id"
    np.testing.assert_array_equal(design.y, data["score"])
    np.testing.assert_array_equal(design.groups, data["patient_id"])


@pytest.mark.parametrize(
    "formula",
    [
        NESTED,
        "score ~ weeks + (1 | clinic_id) + (weeks | patient_id)",
        "score~weeks+(1+weeks|patient_id)+(1|clinic_id)",
    ],
)
def test_formula_fit_matches_lme4(lmm_dataset, lme4_reference, formula):
    """lmerTest::lmer(score ~ weeks + (weeks | patient_id) + (1 | clinic_id), nested)."""
    ref = lme4_reference["nested_reml"]
    fit = fit_lmm_formula(lmm_dataset("nested"), formula)
    np.testing.assert_allclose(fit.fixed_effects, list(ref["fixef"].values()), rtol=1e-5)
    assert fit.clinic_sd == pytest.approx(ref["clinic_sd"], rel=1e-5)
    assert fit.model.clinic_column == "clinic_id"


def test_prediction_grid_from_the_design(lmm_dataset, lme4_reference):
    fit = fit_lmm_formula(lmm_dataset("sleepstudy"), "Reaction ~ Days + (Days | Subject)")
    grid = pd.DataFrame({"Days": [0.0, 4.5, 9.0]})
    x, z = fit.model.matrices(grid)
    beta = list(lme4_reference["sleepstudy_rs_reml"]["fixef"].values())
    np.testing.assert_allclose(fit.predict(x), beta[0] + beta[1] * grid["Days"], rtol=1e-6)
    # Population prediction SE: sqrt(var(b0) + 2 d cov(b0, b1) + d^2 var(b1)).
    vcov = np.array(lme4_reference["sleepstudy_rs_reml"]["vcov"])
    d = grid["Days"].to_numpy()
    expected = np.sqrt(vcov[0, 0] + 2 * d * vcov[0, 1] + d**2 * vcov[1, 1])
    np.testing.assert_allclose(fit.predict_se(x), expected, rtol=1e-5)
    assert z.shape == (3, 2)


def test_missing_values_are_reported_not_dropped(lmm_dataset):
    data = lmm_dataset("nested").copy()
    data.loc[[4, 10], "score"] = np.nan
    with pytest.raises(AnalysisError, match=r"2 rows have missing values.*rows 5, 11"):
        lmm_design(data, NESTED)


def test_missing_patient_label_is_reported(lmm_dataset):
    data = lmm_dataset("nested").copy()
    data.loc[3, "patient_id"] = None
    with pytest.raises(AnalysisError, match="rows 4"):
        lmm_design(data, NESTED)


@pytest.mark.parametrize(
    ("formula", "error", "message"),
    [
        ("score ~ weeks + (weeks || patient_id)", UsageError, "Uncorrelated"),
        ("score ~ weeks", UsageError, "no random term"),
        ("weeks + (1 | patient_id)", UsageError, "needs a response"),
        ("score ~ weeks + (1 | site)", UsageError, "'site' is not in the data"),
        (
            "score ~ weeks + (weeks | patient_id) + (weeks | clinic_id)",
            UsageError,
            "may only have a random intercept",
        ),
    ],
)
def test_formulas_the_engine_refuses(lmm_dataset, formula, error, message):
    with pytest.raises(error, match=message):
        lmm_design(lmm_dataset("nested"), formula)


def test_crossed_factors_are_refused(lmm_dataset):
    data = lmm_dataset("nested").copy()
    data.loc[0, "clinic_id"] = "C02"  # patient C01-P01 now appears in two clinics
    with pytest.raises(AnalysisError, match="must belong to one clinic_id"):
        lmm_design(data, NESTED)


@settings(max_examples=30, deadline=None)
@given(
    spaces=st.lists(st.sampled_from(["", " ", "  "]), min_size=8, max_size=8),
    order=st.booleans(),
)
def test_spacing_and_term_order_do_not_change_the_design(lmm_dataset, spaces, order):
    s = spaces
    patient = f"({s[0]}weeks{s[1]}|{s[2]}patient_id{s[3]})"
    clinic = f"({s[4]}1{s[5]}|{s[6]}clinic_id{s[7]})"
    terms = [patient, clinic] if order else [clinic, patient]
    formula = f"score{s[0]}~{s[1]}weeks{s[2]}+{s[3]}{terms[0]} + {terms[1]}"
    design = lmm_design(lmm_dataset("nested"), formula)
    assert list(design.x.columns) == ["(Intercept)", "weeks"]
    assert list(design.z.columns) == ["(Intercept)", "weeks"]
    assert (design.patient_column, design.clinic_column) == ("patient_id", "clinic_id")
