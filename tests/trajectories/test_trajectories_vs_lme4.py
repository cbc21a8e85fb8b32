"""fit_mixed_model, with either engine, against lme4 + lmerTest (reference/lme4_reference.R).

Tolerances: for the statsmodels engine those of issue 4 (fixed effects 1e-4
relative, SDs 1e-3 relative, log-likelihood 0.01, Satterthwaite df 1e-2);
for the fast engine those of issue 9 (fixed effects, standard errors and SDs
1e-5 relative, log-likelihood 1e-4, Satterthwaite df 1e-2).  The R fits are
the better of bobyqa and nloptwrap at tight tolerances, refined by Newton
steps on lme4's own deviance function, so the reference is the optimum itself.
The nested clinic models (a clinic random intercept) only the fast engine fits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepanalytics.trajectories import (
    TrajectoryResult,
    clinic_effects,
    compare_models,
    fit_mixed_model,
    patient_effects,
)

REFERENCE = Path(__file__).parent / "reference"
FAST = ("lbfgs",)  # the polish step gives the precision; all four optimizers run on the small data


@dataclass(frozen=True)
class Tolerance:
    fixed: float  # estimates and standard errors, relative
    sd: float  # SDs, sigma and theta, relative
    corr: float  # correlations, absolute
    loglik: float  # absolute
    df: float = 1e-2  # relative


TOLERANCES = {
    "statsmodels": Tolerance(fixed=1e-4, sd=1e-3, corr=1e-3, loglik=0.01),
    "fast": Tolerance(fixed=1e-5, sd=1e-5, corr=1e-5, loglik=1e-4),
}


@dataclass(frozen=True)
class Spec:
    data: str
    formula: str
    re_formula: str
    groups: str
    time: str
    reml: bool
    factors: tuple[str, ...] = ()
    optimizers: tuple[str, ...] | None = None
    outer: str | None = None
    covariance: str = "unstructured"


SPECS = {
    "sleep_intercept_reml": Spec("sleep", "Reaction ~ Days", "1", "Subject", "Days", True),
    "sleep_intercept_ml": Spec("sleep", "Reaction ~ Days", "1", "Subject", "Days", False),
    "sleep_slope_reml": Spec("sleep", "Reaction ~ Days", "~Days", "Subject", "Days", True),
    "sleep_slope_ml": Spec("sleep", "Reaction ~ Days", "~Days", "Subject", "Days", False),
    "dietox_slope_reml": Spec("dietox", "Weight ~ Time", "~Time", "Pig", "Time", True),
    "dietox_slope_ml": Spec("dietox", "Weight ~ Time", "~Time", "Pig", "Time", False),
    "dietox_evit_reml": Spec(
        "dietox", "Weight ~ Time * Evit", "~Time", "Pig", "Time", True, ("Evit",)
    ),
    "synth_default_reml": Spec(
        "synth", "score ~ weeks", "~weeks", "patient_id", "weeks", True, optimizers=FAST
    ),
    "synth_default_ml": Spec(
        "synth", "score ~ weeks", "~weeks", "patient_id", "weeks", False, optimizers=FAST
    ),
    "synth_intercept_reml": Spec(
        "synth", "score ~ weeks", "1", "patient_id", "weeks", True, optimizers=FAST
    ),
    "synth_compensation_reml": Spec(
        "synth",
        "score ~ weeks + compensation_claim",
        "~weeks",
        "patient_id",
        "weeks",
        True,
        ("compensation_claim",),
        FAST,
    ),
    "synth_piecewise_reml": Spec(
        "synth",
        "score ~ weeks_phase1 + weeks_phase2 + weeks_phase3 + weeks_phase4 + weeks_outside_phases",
        "~weeks",
        "patient_id",
        "weeks",
        True,
        optimizers=FAST,
    ),
    "synth_clinic_reml": Spec(
        "synth",
        "score ~ weeks * clinic_id",
        "~weeks",
        "patient_id",
        "weeks",
        True,
        ("clinic_id",),
        FAST,
    ),
    "sleep_diagonal_reml": Spec(
        "sleep", "Reaction ~ Days", "~Days", "Subject", "Days", True, covariance="diagonal"
    ),
    "sleep_diagonal_ml": Spec(
        "sleep", "Reaction ~ Days", "~Days", "Subject", "Days", False, covariance="diagonal"
    ),
    "synth_diagonal_reml": Spec(
        "synth",
        "score ~ weeks",
        "~weeks",
        "patient_id",
        "weeks",
        True,
        optimizers=FAST,
        covariance="diagonal",
    ),
    "synth_nested_reml": Spec(
        "synth", "score ~ weeks", "~weeks", "patient_id", "weeks", True, outer="clinic_id"
    ),
    "synth_nested_ml": Spec(
        "synth", "score ~ weeks", "~weeks", "patient_id", "weeks", False, outer="clinic_id"
    ),
    "synth_nested_compensation_reml": Spec(
        "synth",
        "score ~ weeks + compensation_claim",
        "~weeks",
        "patient_id",
        "weeks",
        True,
        ("compensation_claim",),
        outer="clinic_id",
    ),
}
#: (model, engine) pairs: statsmodels fits every model but the nested ones, the fast
#: engine every model but the uncorrelated (diagonal) ones.
CASES = [
    (key, engine)
    for key, spec in SPECS.items()
    for engine in ("statsmodels", "fast")
    if not (engine == "statsmodels" and spec.outer)
    and not (engine == "fast" and spec.covariance == "diagonal")
]


def patsy_name(r_term: str, factors: tuple[str, ...]) -> str:
    """lme4's coefficient name in patsy's spelling: (Intercept) -> Intercept, Evit2 -> Evit[T.2]."""
    if r_term == "(Intercept)":
        return "Intercept"
    parts = []
    for part in r_term.split(":"):
        for factor in factors:
            if part.startswith(factor) and part != factor:
                part = f"{factor}[T.{part[len(factor) :]}]"
                break
        parts.append(part)
    return ":".join(parts)


@pytest.fixture(scope="module")
def fits(
    sleepstudy: pd.DataFrame,
    dietox: pd.DataFrame,
    synthetic_long: pd.DataFrame,
    lme4_reference: dict[str, Any],
) -> dict[tuple[str, str], TrajectoryResult]:
    synth = synthetic_long.copy()
    reference_clinic = lme4_reference["models"]["synth_clinic_reml"]["reference_clinic"]
    others = sorted(c for c in synth["clinic_id"].unique() if c != reference_clinic)
    synth["clinic_id"] = pd.Categorical(synth["clinic_id"], [reference_clinic, *others])
    data = {"sleep": sleepstudy, "dietox": dietox, "synth": synth}
    out = {}
    for key, engine in CASES:
        spec = SPECS[key]
        out[(key, engine)] = fit_mixed_model(
            data[spec.data],
            formula=spec.formula,
            re_formula=spec.re_formula,
            groups=spec.groups,
            outer_groups=spec.outer,
            re_covariance=spec.covariance,
            time=spec.time,
            reml=spec.reml,
            engine=engine,
            optimizers=spec.optimizers if engine == "statsmodels" else None,
        )
    return out


def _fixed(reference: dict[str, Any], spec: Spec) -> pd.DataFrame:
    frame = pd.DataFrame(reference["fixed"])
    frame["term"] = [patsy_name(t, spec.factors) for t in frame["term"]]
    return frame.set_index("term")


@pytest.mark.parametrize(("key", "engine"), CASES)
def test_fixed_effects_and_satterthwaite_match_lmertest(
    key: str,
    engine: str,
    fits: dict[tuple[str, str], TrajectoryResult],
    lme4_reference: dict[str, Any],
) -> None:
    spec, tol = SPECS[key], TOLERANCES[engine]
    expected = _fixed(lme4_reference["models"][key], spec)
    fit = fits[(key, engine)]
    assert fit.fit_statistics["engine"].iat[0] == engine
    ours = fit.to_frame().set_index("term").loc[expected.index]
    np.testing.assert_allclose(ours["estimate"], expected["estimate"], rtol=tol.fixed)
    np.testing.assert_allclose(ours["std_error"], expected["std_error"], rtol=tol.fixed)
    np.testing.assert_allclose(ours["df"], expected["df"], rtol=tol.df)
    np.testing.assert_allclose(ours["t_value"], expected["t_value"], rtol=tol.fixed)
    np.testing.assert_allclose(ours["p_value"], expected["p_value"], rtol=1e-2, atol=1e-300)


@pytest.mark.parametrize(("key", "engine"), CASES)
def test_variance_components_and_likelihood_match_lme4(
    key: str,
    engine: str,
    fits: dict[tuple[str, str], TrajectoryResult],
    lme4_reference: dict[str, Any],
) -> None:
    reference, tol = lme4_reference["models"][key], TOLERANCES[engine]
    fit = fits[(key, engine)]
    vc = fit.variance_components
    # Patient SDs, then the clinic SD of a nested model: lme4's VarCorr order.
    sds = vc[(vc["kind"] == "sd") & (vc["group"] != "Residual")]["estimate"].to_numpy()
    np.testing.assert_allclose(sds, [row["sd"] for row in reference["sd"]], rtol=tol.sd)
    if SPECS[key].outer:
        clinic = vc[vc["group"] == SPECS[key].outer]["estimate"].iat[0]
        assert clinic == pytest.approx(reference["clinic_sd"], rel=tol.sd)
    corr = vc[vc["kind"] == "corr"]["estimate"].to_numpy()
    np.testing.assert_allclose(corr, [row["corr"] for row in reference["corr"]], atol=tol.corr)
    residual = vc[vc["group"] == "Residual"]["estimate"].iat[0]
    assert residual == pytest.approx(reference["sigma"], rel=tol.sd)
    assert fit.loglik == pytest.approx(reference["loglik"], abs=tol.loglik)
    assert fit.aic == pytest.approx(reference["aic"], abs=2 * tol.loglik)
    assert fit.bic == pytest.approx(reference["bic"], abs=2 * tol.loglik)
    stats = fit.fit_statistics.iloc[0]
    assert (stats["n_obs"], stats["n_patients"]) == (reference["nobs"], reference["ngroups"])
    assert stats["criterion"] == ("REML" if reference["reml"] else "ML")
    # lme4's theta: the relative covariance factor, column by column (clinic last).
    theta = np.atleast_1d(reference["theta"])
    rtol = 2e-3 if engine == "statsmodels" else tol.sd
    np.testing.assert_allclose(fit.fit.theta, theta, rtol=rtol)


WITH_CONTRASTS = [
    (key, engine)
    for key, engine in CASES
    if json.loads((REFERENCE / "lme4_reference.json").read_text())["models"][key].get("contrasts")
]


@pytest.mark.parametrize(("key", "engine"), WITH_CONTRASTS)
def test_contrasts_and_f_tests_match_contest(
    key: str,
    engine: str,
    fits: dict[tuple[str, str], TrajectoryResult],
    lme4_reference: dict[str, Any],
) -> None:
    """R: lmerTest::contest(fit, L, joint = FALSE / TRUE)."""
    reference, tol = lme4_reference["models"][key], TOLERANCES[engine]
    spec = SPECS[key]
    fit = fits[(key, engine)]
    r_terms = [patsy_name(row["term"], spec.factors) for row in reference["fixed"]]
    ours_terms = list(fit.to_frame()["term"])
    reorder = [r_terms.index(t) for t in ours_terms]
    for contrast in reference["contrasts"]:
        matrix = np.atleast_2d(np.asarray(contrast["L"], dtype=float))[:, reorder]
        if matrix.shape[0] == 1:
            row = fit.contrast(matrix[0]).iloc[0]
            assert row["estimate"] == pytest.approx(contrast["estimate"], rel=tol.fixed)
            assert row["std_error"] == pytest.approx(contrast["std_error"], rel=tol.fixed)
            assert row["df"] == pytest.approx(contrast["df"], rel=tol.df)
            assert row["p_value"] == pytest.approx(contrast["p_value"], rel=1e-2)
        else:
            test = fit.f_test(matrix).iloc[0]
            assert test["f_value"] == pytest.approx(contrast["f_value"], rel=tol.fixed)
            assert test["num_df"] == contrast["num_df"]
            assert test["den_df"] == pytest.approx(contrast["den_df"], rel=tol.df)
            assert test["p_value"] == pytest.approx(contrast["p_value"], rel=1e-2)


LRT_CASES = [
    ("sleep_random_slope_reml", "sleep_intercept_reml", "sleep_slope_reml", "REML"),
    ("synth_random_slope_reml", "synth_intercept_reml", "synth_default_reml", "REML"),
    ("synth_clinic_fixed", "synth_default_reml", "synth_clinic_reml", "ML"),
    ("synth_clinic_random_reml", "synth_default_reml", "synth_nested_reml", "REML"),
    # weeks = the sum of the phase clocks: nested by column space, though not by name
    ("synth_piecewise_fixed", "synth_default_reml", "synth_piecewise_reml", "ML"),
]


@pytest.mark.parametrize(
    ("lrt_key", "small", "large", "criterion", "engine"),
    [
        (*case, engine)
        for case in LRT_CASES
        for engine in ("statsmodels", "fast")
        if (case[2], engine) in CASES
    ],
)
def test_likelihood_ratio_tests_match_anova(
    lrt_key: str,
    small: str,
    large: str,
    criterion: str,
    engine: str,
    fits: dict[tuple[str, str], TrajectoryResult],
    lme4_reference: dict[str, Any],
) -> None:
    """R: anova(small, large, refit = FALSE) for random effects, refit = TRUE for fixed.

    For a random-effect test the reference also holds the p-value of the 50:50
    mixture of chi2(df - 1) and chi2(df), from R's pchisq at anova()'s statistic.
    """
    expected = lme4_reference["lrt"][lrt_key]
    tol = TOLERANCES[engine]
    comparison = compare_models(
        fits[(large, engine)], fits[(small, engine)], names=["large", "small"]
    )
    table = comparison.table
    assert list(table["model"]) == ["small", "large"]
    assert comparison.criterion == criterion
    assert table["loglik"].iat[0] == pytest.approx(expected["loglik_small"], abs=tol.loglik)
    assert table["loglik"].iat[1] == pytest.approx(expected["loglik_large"], abs=tol.loglik)
    assert table["chi2"].iat[1] == pytest.approx(expected["chisq"], abs=2 * tol.loglik)
    assert table["df"].iat[1] == expected["df"]
    assert table["p_value"].iat[1] == pytest.approx(expected["p_value"], rel=1e-2)
    if criterion == "ML":
        assert any("refitted by maximum likelihood" in w for w in comparison.warnings)
    if "p_mixture" in expected:
        assert table["p_value_boundary"].iat[1] == pytest.approx(expected["p_mixture"], rel=1e-3)
        assert any("50:50 mixture" in w for w in comparison.warnings)
    else:
        assert np.isnan(table["p_value_boundary"].iat[1])
        assert not any("variance cannot be negative" in w for w in comparison.warnings)


def test_fixed_effect_lrt_refits_by_ml(
    sleepstudy: pd.DataFrame, lme4_reference: dict[str, Any]
) -> None:
    """R: anova(lmer(Reaction ~ 1 + (Days | Subject)), lmer(Reaction ~ Days + (Days | Subject)))."""
    expected = lme4_reference["lrt"]["sleep_days_fixed"]
    common = {"re_formula": "~Days", "groups": "Subject", "time": "Days"}
    without = fit_mixed_model(sleepstudy, formula="Reaction ~ 1", **common)
    with_days = fit_mixed_model(sleepstudy, formula="Reaction ~ Days", **common)
    table = compare_models(without, with_days).table
    assert table["loglik"].to_list() == pytest.approx(
        [expected["loglik_small"], expected["loglik_large"]], abs=1e-4
    )
    assert table["chi2"].iat[1] == pytest.approx(expected["chisq"], abs=2e-4)
    assert table["p_value"].iat[1] == pytest.approx(expected["p_value"], rel=1e-2)


@pytest.mark.parametrize("engine", ["statsmodels", "fast"])
@pytest.mark.parametrize("key", ["sleep_slope_reml", "sleep_slope_ml"])
def test_patient_effects_match_ranef(
    key: str,
    engine: str,
    fits: dict[tuple[str, str], TrajectoryResult],
    lme4_reference: dict[str, Any],
) -> None:
    """R: ranef(fit)$Subject (conditional modes), per subject."""
    expected = pd.DataFrame(lme4_reference["models"][key]["ranef"]).set_index("Subject")
    ours = patient_effects(fits[(key, engine)]).set_index("Subject").loc[expected.index]
    rtol = 1e-3 if engine == "statsmodels" else 1e-5
    np.testing.assert_allclose(ours["Intercept"], expected["intercept"], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ours["Days"], expected["slope"], rtol=rtol, atol=rtol / 10)


@pytest.mark.parametrize("key", ["synth_nested_reml", "synth_nested_ml"])
def test_nested_patient_and_clinic_effects_match_ranef(
    key: str, fits: dict[tuple[str, str], TrajectoryResult], lme4_reference: dict[str, Any]
) -> None:
    """R: ranef(fit)$patient_id and ranef(fit)$clinic_id of the nested model."""
    reference = lme4_reference["models"][key]
    fit = fits[(key, "fast")]
    expected = pd.DataFrame(reference["ranef"]).set_index("patient_id")
    ours = patient_effects(fit).set_index("patient_id").loc[expected.index]
    np.testing.assert_allclose(ours["Intercept"], expected["intercept"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours["weeks"], expected["slope"], rtol=1e-5, atol=1e-6)
    clinics = pd.DataFrame(reference["ranef_clinic"]).set_index("clinic_id")
    ours_clinics = clinic_effects(fit).set_index("clinic_id").loc[clinics.index]
    np.testing.assert_allclose(
        ours_clinics["Intercept"], clinics["intercept"], rtol=1e-5, atol=1e-5
    )
    assert ours_clinics["n_patients"].sum() == reference["ngroups"]


def test_reference_names_map_onto_patsy_names() -> None:
    assert patsy_name("(Intercept)", ()) == "Intercept"
    assert patsy_name("Time:Evit2", ("Evit",)) == "Time:Evit[T.2]"
    assert patsy_name("compensation_claimTrue", ("compensation_claim",)) == (
        "compensation_claim[T.True]"
    )
    assert re.fullmatch(
        r"weeks:clinic_id\[T\.C\d+\]", patsy_name("weeks:clinic_idC01", ("clinic_id",))
    )
