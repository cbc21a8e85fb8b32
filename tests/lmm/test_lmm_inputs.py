"""fit_lmm on bad input, invariance properties, and the result's shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.lmm import LmmFit, fit_lmm


@pytest.fixture(scope="module")
def sleep(lmm_case):
    return lmm_case("sleepstudy_rs")


def _fit(a, **kwargs):
    return fit_lmm(a["y"], a["x"], a["z"], a["groups"], clinic=a["clinic"], **kwargs)


def test_mismatched_lengths(sleep):
    with pytest.raises(UsageError, match="X has 179 rows but y has 180"):
        fit_lmm(sleep["y"], sleep["x"][:-1], sleep["z"], sleep["groups"])


def test_missing_response_names_rows(sleep):
    y = sleep["y"].copy()
    y[[2, 7]] = np.nan
    with pytest.raises(AnalysisError, match=r"2 rows \(rows 3, 8\)"):
        fit_lmm(y, sleep["x"], sleep["z"], sleep["groups"])


def test_rank_deficient_fixed_effects(sleep):
    x = np.column_stack([sleep["x"], 2 * sleep["x"][:, 1]])
    with pytest.raises(AnalysisError, match="rank deficient"):
        fit_lmm(sleep["y"], x, sleep["z"], sleep["groups"])


def test_patient_in_two_clinics(sleep):
    clinic = np.where(np.arange(180) < 95, "A", "B")  # subject 10's rows straddle the split
    with pytest.raises(AnalysisError, match="1 patients appear in more than one clinic"):
        fit_lmm(sleep["y"], sleep["x"], sleep["z"], sleep["groups"], clinic=clinic)


def test_single_patient(sleep):
    rows = sleep["groups"] == sleep["groups"][0]
    with pytest.raises(AnalysisError, match="at least two levels"):
        fit_lmm(sleep["y"][rows], sleep["x"][rows], sleep["z"][rows], sleep["groups"][rows])


def test_more_random_effects_than_observations(sleep):
    rows = np.isin(sleep["x"][:, 1], [0, 1])  # two visits per subject, two random terms
    with pytest.raises(
        AnalysisError, match=r"36 measurements cannot support 36 random effects \(2 random terms"
    ):
        fit_lmm(sleep["y"][rows], sleep["x"][rows], sleep["z"][rows], sleep["groups"][rows])


def test_wrong_number_of_names(sleep):
    with pytest.raises(UsageError, match="x_names has 3 names but X has 2 columns"):
        fit_lmm(sleep["y"], sleep["x"], sleep["z"], sleep["groups"], x_names=["a", "b", "c"])


def test_names_come_from_data_frames(sleep):
    x = pd.DataFrame(sleep["x"], columns=["(Intercept)", "Days"])
    fit = fit_lmm(sleep["y"], x, sleep["z"], sleep["groups"], z_names=["(Intercept)", "Days"])
    assert fit.x_names == ["(Intercept)", "Days"]
    assert fit.z_names == ["(Intercept)", "Days"]
    assert list(fit.to_frame().columns) == [
        "term",
        "estimate",
        "std_error",
        "df",
        "t_value",
        "p_value",
        "ci_lower",
        "ci_upper",
    ]


@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.01, 100.0),
    shift=st.tuples(st.floats(-100, 100), st.floats(-10, 10)),
    reml=st.booleans(),
)
def test_fit_is_equivariant(sleep, seed, scale, shift, reml):
    """Permuting rows changes nothing; y -> s*y + X d maps beta -> s*beta + d, SDs -> s*SDs,
    theta unchanged and loglik -> loglik - n_eff*log(s)."""
    base = _fit(sleep, reml=reml)
    order = np.random.default_rng(seed).permutation(180)
    moved = {k: (None if v is None else v[order]) for k, v in sleep.items()}
    moved["y"] = scale * moved["y"] + moved["x"] @ np.array(shift)
    fit = _fit(moved, reml=reml)
    np.testing.assert_allclose(fit.fixed_effects, scale * base.fixed_effects + shift, rtol=1e-6)
    np.testing.assert_allclose(fit.theta, base.theta, rtol=1e-5, atol=1e-7)
    assert fit.residual_sd == pytest.approx(scale * base.residual_sd, rel=1e-6)
    n_eff = 180 - 2 if reml else 180
    assert fit.loglik == pytest.approx(base.loglik - n_eff * np.log(scale), abs=1e-6)
    blups = fit.patient_effects.loc[base.patient_effects.index]
    np.testing.assert_allclose(blups, scale * base.patient_effects, rtol=1e-5, atol=1e-6 * scale)


def test_result_is_a_frozen_analysis_result(reference_fit):
    fit = reference_fit("nested", True)
    assert isinstance(fit, LmmFit)
    with pytest.raises(AttributeError):
        fit.reml = False  # type: ignore[misc]
    text = fit.summary()
    assert "REML criterion" in text and "clinic" in text and "Satterthwaite" in text
    assert "<table" in fit._repr_html_()
    vc = fit.variance_components
    assert list(vc["group"]) == ["patient", "patient", "patient", "clinic", "residual"]
    assert fit.n_patients == 600 and fit.n_clinics == 20 and fit.n_obs == 2690
    assert fit.n_evaluations > 0
    attempts = fit.attempts
    assert list(attempts["start"]) == ["method of moments", "lme4 default, scaled"]
    assert attempts["chosen"].sum() == 1
    assert attempts["loglik"].max() == pytest.approx(fit.loglik, abs=1e-9)


def test_large_response_offset_loses_no_precision(sleep):
    """y + 1e7 (e.g. scores stored with an offset) changes only the intercept."""
    base = _fit(sleep)
    shifted = _fit({**sleep, "y": sleep["y"] + 1e7})
    assert shifted.fixed_effects.iloc[0] - 1e7 == pytest.approx(
        base.fixed_effects.iloc[0], abs=1e-6
    )
    np.testing.assert_allclose(shifted.random_cov, base.random_cov, rtol=1e-8)
    assert shifted.loglik == pytest.approx(base.loglik, abs=1e-8)


@pytest.mark.parametrize("level", [0.0, 1.0, 95, -0.5, "high"])
def test_level_outside_zero_one_is_refused(sleep, level):
    with pytest.raises(UsageError, match="level must be between 0 and 1"):
        fit_lmm(sleep["y"], sleep["x"], sleep["z"], sleep["groups"], level=level)


def test_formula_fits_take_a_level(lmm_dataset):
    from stepanalytics.lmm import fit_lmm_formula

    data = lmm_dataset("sleepstudy")
    fit = fit_lmm_formula(data, "Reaction ~ Days + (Days | Subject)", level=0.8)
    assert fit.level == 0.8
    assert "80% intervals" in fit.summary()
