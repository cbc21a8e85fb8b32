"""The fast engine against lme4 + lmerTest on public and synthetic data.

Reference numbers: tests/lmm/reference/lmm_reference.R, e.g. for the nested case

    lmerTest::lmer(score ~ weeks + (weeks | patient_id) + (1 | clinic_id), nested,
                   REML = TRUE)

fitted at tight optimiser tolerances.  Tolerances: fixed effects, standard
errors and SDs 1e-5 relative, log-likelihood 1e-4 absolute, Satterthwaite df
1e-2 relative (observed agreement is about 1e-6).
"""

from __future__ import annotations

import numpy as np
import pytest

from stepanalytics.lmm import fit_lmm

FITS = [
    (name, reml)
    for name in ("sleepstudy_ri", "sleepstudy_rs", "dietox_rs", "dietox_quad", "nested", "singular")
    for reml in (True, False)
]
IDS = [f"{name}_{'reml' if reml else 'ml'}" for name, reml in FITS]


def _ref(lme4_reference, name, reml):
    return lme4_reference[f"{name}_{'reml' if reml else 'ml'}"]


@pytest.mark.parametrize(("name", "reml"), FITS, ids=IDS)
def test_fixed_effects_and_standard_errors(lme4_reference, reference_fit, name, reml):
    ref, fit = _ref(lme4_reference, name, reml), reference_fit(name, reml)
    np.testing.assert_allclose(fit.fixed_effects, list(ref["fixef"].values()), rtol=1e-5)
    np.testing.assert_allclose(fit.table["std_error"], list(ref["std_error"].values()), rtol=1e-5)
    # Off-diagonal covariances can be near zero: compare them relative to the variances.
    expected = np.array(ref["vcov"])
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    np.testing.assert_allclose(fit.cov_fixed / scale, expected / scale, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "reml"), FITS, ids=IDS)
def test_variance_components(lme4_reference, reference_fit, name, reml):
    ref, fit = _ref(lme4_reference, name, reml), reference_fit(name, reml)
    sds = np.sqrt(np.diag(fit.random_cov))
    # A variance on its boundary is ~0 in both; compare it absolutely.
    np.testing.assert_allclose(sds, ref["patient_sd"], rtol=1e-5, atol=1e-6)
    assert fit.residual_sd == pytest.approx(ref["sigma"], rel=1e-5)
    if ref["clinic_sd"] is not None:
        assert fit.clinic_sd == pytest.approx(ref["clinic_sd"], rel=1e-5)
    else:
        assert fit.clinic_sd is None
    if len(sds) > 1 and not ref["singular"]:
        corr = fit.random_cov / np.outer(sds, sds)
        np.testing.assert_allclose(corr, np.array(ref["patient_corr"]), atol=1e-5)
    np.testing.assert_allclose(fit.theta, ref["theta"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "reml"), FITS, ids=IDS)
def test_likelihood_and_information_criteria(lme4_reference, reference_fit, name, reml):
    ref, fit = _ref(lme4_reference, name, reml), reference_fit(name, reml)
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-4)
    # The fast engine's optimum is at least as good as lme4's.
    assert fit.loglik >= ref["loglik"] - 1e-7
    assert fit.aic == pytest.approx(ref["aic"], abs=1e-4)
    assert fit.bic == pytest.approx(ref["bic"], abs=1e-4)
    if reml:
        assert fit.reml_criterion == pytest.approx(ref["reml_crit"], abs=1e-4)
    else:
        assert fit.reml_criterion is None
        assert fit.deviance == pytest.approx(ref["deviance"], abs=1e-4)
    assert fit.n_obs == ref["n_obs"]


@pytest.mark.parametrize(("name", "reml"), FITS, ids=IDS)
def test_satterthwaite_df(lme4_reference, reference_fit, name, reml):
    ref, fit = _ref(lme4_reference, name, reml), reference_fit(name, reml)
    np.testing.assert_allclose(fit.df_satterthwaite, list(ref["df"].values()), rtol=1e-2)
    np.testing.assert_allclose(fit.table["df"], list(ref["df"].values()), rtol=1e-2)


@pytest.mark.parametrize(("name", "reml"), FITS, ids=IDS)
def test_conditional_modes(lme4_reference, reference_fit, name, reml):
    ref, fit = _ref(lme4_reference, name, reml), reference_fit(name, reml)
    # jsonlite writes one-term modes as scalars: make every entry a row.
    expected = np.array([np.atleast_1d(v) for v in ref["ranef_patient"].values()])
    ours = fit.patient_effects.loc[list(ref["ranef_patient"].keys())].to_numpy()
    scale = np.abs(expected).max(axis=0)
    np.testing.assert_allclose(ours / scale, expected / scale, atol=1e-5)
    if ref["ranef_clinic"] is not None:
        expected_c = np.array([np.atleast_1d(v)[0] for v in ref["ranef_clinic"].values()])
        ours_c = fit.clinic_effects.loc[list(ref["ranef_clinic"].keys())].to_numpy()
        np.testing.assert_allclose(ours_c, expected_c, atol=1e-5 * np.abs(expected_c).max())


@pytest.mark.parametrize(("name", "reml"), FITS, ids=IDS)
def test_singular_flag_and_convergence(lme4_reference, reference_fit, name, reml):
    ref, fit = _ref(lme4_reference, name, reml), reference_fit(name, reml)
    assert fit.singular == ref["singular"]
    assert fit.converged
    assert any("singular" in w for w in fit.warnings) == ref["singular"]


@pytest.mark.parametrize("reml", [True, False], ids=["reml", "ml"])
@pytest.mark.parametrize("name", ["nested", "dietox_quad"])
def test_contrast_matches_lmertest_contest(lme4_reference, reference_fit, name, reml):
    ref, fit = _ref(lme4_reference, name, reml), reference_fit(name, reml)
    expected = ref["contrast"]["result"]
    row = fit.contrast(ref["contrast"]["L"]).iloc[0]
    assert row["estimate"] == pytest.approx(expected["Estimate"], rel=1e-5)
    assert row["std_error"] == pytest.approx(expected["Std. Error"], rel=1e-5)
    assert row["df"] == pytest.approx(expected["df"], rel=1e-2)
    assert row["ci_lower"] == pytest.approx(expected["lower"], rel=1e-4)
    assert row["ci_upper"] == pytest.approx(expected["upper"], rel=1e-4)


def test_conditional_predictions_match_lme4_fitted(lme4_reference, reference_fit, lmm_case):
    ref, fit = lme4_reference["nested_reml"], reference_fit("nested", True)
    a = lmm_case("nested")
    fitted = fit.predict(a["x"], a["z"], a["groups"], a["clinic"])
    np.testing.assert_allclose(fitted, ref["fitted"], rtol=1e-6)


@pytest.mark.parametrize(("name", "reml"), FITS, ids=IDS)
def test_intervals_at_another_level_match_lmertest(lme4_reference, lmm_case, name, reml):
    """R: contest(fit, diag(p), joint = FALSE, confint = TRUE, level = 0.90)."""
    ref = _ref(lme4_reference, name, reml)
    a = lmm_case(name)
    fit = fit_lmm(a["y"], a["x"], a["z"], a["groups"], clinic=a["clinic"], reml=reml, level=0.9)
    assert fit.level == 0.9
    np.testing.assert_allclose(fit.table["ci_lower"], ref["ci90_lower"], rtol=1e-5)
    np.testing.assert_allclose(fit.table["ci_upper"], ref["ci90_upper"], rtol=1e-5)
    # contrast() follows the fit's level unless told otherwise.
    first = np.eye(len(fit.fixed_effects))[0]
    assert fit.contrast(first)["ci_lower"].iat[0] == pytest.approx(ref["ci90_lower"][0])
    wide = fit.contrast(first, level=0.95)["ci_lower"].iat[0]
    assert wide < ref["ci90_lower"][0]
