"""fit_mixed_model against lme4 + lmerTest (reference/lme4_reference.R writes the numbers).

Tolerances from the issue: fixed effects 1e-4 relative, SDs 1e-3 relative,
log-likelihood 0.01 absolute, Satterthwaite df 1e-2 relative.  The R fits use
bobyqa with rhoend = 1e-10 so that the reference is the optimum itself.
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
    compare_models,
    fit_mixed_model,
    patient_effects,
)

REFERENCE = Path(__file__).parent / "reference"
FAST = ("lbfgs",)  # the polish step gives the precision; all four optimizers run on the small data


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
}


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
) -> dict[str, TrajectoryResult]:
    synth = synthetic_long.copy()
    reference_clinic = lme4_reference["models"]["synth_clinic_reml"]["reference_clinic"]
    others = sorted(c for c in synth["clinic_id"].unique() if c != reference_clinic)
    synth["clinic_id"] = pd.Categorical(synth["clinic_id"], [reference_clinic, *others])
    data = {"sleep": sleepstudy, "dietox": dietox, "synth": synth}
    return {
        key: fit_mixed_model(
            data[spec.data],
            formula=spec.formula,
            re_formula=spec.re_formula,
            groups=spec.groups,
            time=spec.time,
            reml=spec.reml,
            optimizers=spec.optimizers,
        )
        for key, spec in SPECS.items()
    }


def _fixed(reference: dict[str, Any], spec: Spec) -> pd.DataFrame:
    frame = pd.DataFrame(reference["fixed"])
    frame["term"] = [patsy_name(t, spec.factors) for t in frame["term"]]
    return frame.set_index("term")


@pytest.mark.parametrize("key", list(SPECS))
def test_fixed_effects_and_satterthwaite_match_lmertest(
    key: str, fits: dict[str, TrajectoryResult], lme4_reference: dict[str, Any]
) -> None:
    spec = SPECS[key]
    expected = _fixed(lme4_reference["models"][key], spec)
    ours = fits[key].to_frame().set_index("term").loc[expected.index]
    np.testing.assert_allclose(ours["estimate"], expected["estimate"], rtol=1e-4)
    np.testing.assert_allclose(ours["std_error"], expected["std_error"], rtol=1e-4)
    np.testing.assert_allclose(ours["df"], expected["df"], rtol=1e-2)
    np.testing.assert_allclose(ours["t_value"], expected["t_value"], rtol=1e-4)
    np.testing.assert_allclose(ours["p_value"], expected["p_value"], rtol=1e-2, atol=1e-300)


@pytest.mark.parametrize("key", list(SPECS))
def test_variance_components_and_likelihood_match_lme4(
    key: str, fits: dict[str, TrajectoryResult], lme4_reference: dict[str, Any]
) -> None:
    reference = lme4_reference["models"][key]
    fit = fits[key]
    vc = fit.variance_components
    sds = vc[(vc["kind"] == "sd") & (vc["group"] != "Residual")]["estimate"].to_numpy()
    np.testing.assert_allclose(sds, [row["sd"] for row in reference["sd"]], rtol=1e-3)
    corr = vc[vc["kind"] == "corr"]["estimate"].to_numpy()
    np.testing.assert_allclose(corr, [row["corr"] for row in reference["corr"]], atol=1e-3)
    residual = vc[vc["group"] == "Residual"]["estimate"].iat[0]
    assert residual == pytest.approx(reference["sigma"], rel=1e-3)
    assert fit.loglik == pytest.approx(reference["loglik"], abs=0.01)
    assert fit.aic == pytest.approx(reference["aic"], abs=0.02)
    assert fit.bic == pytest.approx(reference["bic"], abs=0.02)
    stats = fit.fit_statistics.iloc[0]
    assert (stats["n_obs"], stats["n_patients"]) == (reference["nobs"], reference["ngroups"])
    assert stats["criterion"] == ("REML" if reference["reml"] else "ML")
    # lme4's theta: the relative covariance factor, column by column.
    np.testing.assert_allclose(fit.fit.theta, np.atleast_1d(reference["theta"]), rtol=2e-3)


WITH_CONTRASTS = [
    key
    for key, model in json.loads((REFERENCE / "lme4_reference.json").read_text())["models"].items()
    if model.get("contrasts")
]


@pytest.mark.parametrize("key", WITH_CONTRASTS)
def test_contrasts_and_f_tests_match_contest(
    key: str, fits: dict[str, TrajectoryResult], lme4_reference: dict[str, Any]
) -> None:
    """R: lmerTest::contest(fit, L, joint = FALSE / TRUE)."""
    reference = lme4_reference["models"][key]
    spec = SPECS[key]
    r_terms = [patsy_name(row["term"], spec.factors) for row in reference["fixed"]]
    ours_terms = list(fits[key].to_frame()["term"])
    reorder = [r_terms.index(t) for t in ours_terms]
    for contrast in reference["contrasts"]:
        matrix = np.atleast_2d(np.asarray(contrast["L"], dtype=float))[:, reorder]
        if matrix.shape[0] == 1:
            row = fits[key].contrast(matrix[0]).iloc[0]
            assert row["estimate"] == pytest.approx(contrast["estimate"], rel=1e-4)
            assert row["std_error"] == pytest.approx(contrast["std_error"], rel=1e-4)
            assert row["df"] == pytest.approx(contrast["df"], rel=1e-2)
            assert row["p_value"] == pytest.approx(contrast["p_value"], rel=1e-2)
        else:
            test = fits[key].f_test(matrix).iloc[0]
            assert test["f_value"] == pytest.approx(contrast["f_value"], rel=1e-4)
            assert test["num_df"] == contrast["num_df"]
            assert test["den_df"] == pytest.approx(contrast["den_df"], rel=1e-2)
            assert test["p_value"] == pytest.approx(contrast["p_value"], rel=1e-2)


@pytest.mark.parametrize(
    ("lrt_key", "small", "large", "criterion"),
    [
        ("sleep_random_slope_reml", "sleep_intercept_reml", "sleep_slope_reml", "REML"),
        ("synth_random_slope_reml", "synth_intercept_reml", "synth_default_reml", "REML"),
        ("synth_clinic_fixed", "synth_default_reml", "synth_clinic_reml", "ML"),
    ],
)
def test_likelihood_ratio_tests_match_anova(
    lrt_key: str,
    small: str,
    large: str,
    criterion: str,
    fits: dict[str, TrajectoryResult],
    lme4_reference: dict[str, Any],
) -> None:
    """R: anova(small, large, refit = FALSE) for random effects, refit = TRUE for fixed."""
    expected = lme4_reference["lrt"][lrt_key]
    comparison = compare_models(fits[large], fits[small], names=["large", "small"])
    table = comparison.table
    assert list(table["model"]) == ["small", "large"]
    assert comparison.criterion == criterion
    assert table["loglik"].iat[0] == pytest.approx(expected["loglik_small"], abs=0.01)
    assert table["loglik"].iat[1] == pytest.approx(expected["loglik_large"], abs=0.01)
    assert table["chi2"].iat[1] == pytest.approx(expected["chisq"], abs=0.02)
    assert table["df"].iat[1] == expected["df"]
    assert table["p_value"].iat[1] == pytest.approx(expected["p_value"], rel=1e-2)
    if criterion == "ML":
        assert any("refitted by maximum likelihood" in w for w in comparison.warnings)


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
        [expected["loglik_small"], expected["loglik_large"]], abs=0.01
    )
    assert table["chi2"].iat[1] == pytest.approx(expected["chisq"], abs=0.02)
    assert table["p_value"].iat[1] == pytest.approx(expected["p_value"], rel=1e-2)


@pytest.mark.parametrize("key", ["sleep_slope_reml", "sleep_slope_ml"])
def test_patient_effects_match_ranef(
    key: str, fits: dict[str, TrajectoryResult], lme4_reference: dict[str, Any]
) -> None:
    """R: ranef(fit)$Subject (conditional modes), per subject."""
    expected = pd.DataFrame(lme4_reference["models"][key]["ranef"]).set_index("Subject")
    ours = patient_effects(fits[key]).set_index("Subject").loc[expected.index]
    np.testing.assert_allclose(ours["Intercept"], expected["intercept"], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ours["Days"], expected["slope"], rtol=1e-3, atol=1e-4)


def test_reference_names_map_onto_patsy_names() -> None:
    assert patsy_name("(Intercept)", ()) == "Intercept"
    assert patsy_name("Time:Evit2", ("Evit",)) == "Time:Evit[T.2]"
    assert patsy_name("compensation_claimTrue", ("compensation_claim",)) == (
        "compensation_claim[T.True]"
    )
    assert re.fullmatch(
        r"weeks:clinic_id\[T\.C\d+\]", patsy_name("weeks:clinic_idC01", ("clinic_id",))
    )
