"""The nested clinic model: fit_trajectory(..., clinic_effect="random").

Its numbers are validated against lme4 ``(1 | clinic_id) + (weeks | patient_id)``
in test_trajectories_vs_lme4 (synth_nested_*); here: that fit_trajectory builds
that model, what the result carries, and the data it refuses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.trajectories import (
    TrajectoryResult,
    clinic_effects,
    compare_models,
    fit_mixed_model,
    fit_trajectory,
    patient_curves,
    patient_effects,
    predict_trajectory,
    trajectory_data,
)


@pytest.fixture(scope="module")
def clinic_cohort():  # type: ignore[no-untyped-def]
    """Six clinics whose patients' levels differ (the 150-patient fixture's clinics do not)."""
    from stepanalytics.synth import synthesize_cohort

    return synthesize_cohort(n_patients=300, n_clinics=6, seed=1)


@pytest.fixture(scope="module")
def nested(clinic_cohort) -> TrajectoryResult:  # type: ignore[no-untyped-def]
    return fit_trajectory(clinic_cohort, "odi", clinic_effect="random")


def test_fit_trajectory_builds_lme4s_nested_model(nested: TrajectoryResult, clinic_cohort) -> None:  # type: ignore[no-untyped-def]
    same = fit_mixed_model(
        trajectory_data(clinic_cohort, "odi"),
        formula="score ~ weeks",
        re_formula="~weeks",
        outer_groups="clinic_id",
    )
    assert nested.loglik == same.loglik
    np.testing.assert_array_equal(nested.fit.theta, same.fit.theta)
    assert nested.design.lme4_formula() == (
        "score ~ weeks + (weeks | patient_id) + (1 | clinic_id)"
    )
    assert nested.fit_statistics["engine"].iat[0] == "fast"
    # theta: three for the patients' factor, one for the clinics (lme4's order).
    assert nested.fit.theta.size == 4 and nested.n_params == 2 + 4 + 1


def test_variance_components_gain_the_clinic_sd(nested: TrajectoryResult) -> None:
    vc = nested.variance_components
    assert vc["group"].tolist() == ["patient_id"] * 3 + ["clinic_id", "Residual"]
    clinic = vc[vc["group"] == "clinic_id"].iloc[0]
    assert (clinic["term"], clinic["kind"]) == ("Intercept", "sd")
    # clinic SD = sigma * theta_clinic, as lme4's VarCorr.
    assert clinic["estimate"] == pytest.approx(nested.fit.sigma * nested.fit.theta[-1], rel=1e-12)
    text = nested.summary()
    assert not nested.warnings
    assert "in 6 clinics" in text and "clinic_id" in text and "P000" not in text


def test_clinic_effects_and_conditional_curves(nested: TrajectoryResult, clinic_cohort) -> None:  # type: ignore[no-untyped-def]
    table = clinic_effects(nested)
    assert sorted(table["clinic_id"]) == sorted(clinic_cohort.patients["clinic_id"].unique())
    assert table["n_patients"].sum() == nested.design.problem.n_patients
    assert table["n_measurements"].sum() == nested.design.problem.n_obs
    assert not any(c.startswith("P0") for c in table.astype(str).to_numpy().ravel())
    # Conditional fitted values: X beta + Z b_i + c_j, worked out from the parts.
    curves = patient_curves(nested)
    effects = patient_effects(nested).set_index("patient_id")
    frame = nested.design.frame
    b = effects.loc[frame["patient_id"], ["Intercept", "weeks"]].to_numpy()
    c = table.set_index("clinic_id").loc[frame["clinic_id"], "Intercept"].to_numpy()
    expected = curves["population"] + b[:, 0] + b[:, 1] * frame["weeks"].to_numpy() + c
    np.testing.assert_allclose(curves["fitted"], expected, rtol=1e-12)
    # The mean trajectory is the population line (clinic effects average to zero in the model).
    line = predict_trajectory(nested, weeks=[0.0, 10.0]).table["estimate"]
    beta = nested.to_frame().set_index("term")["estimate"]
    np.testing.assert_allclose(line, [beta["Intercept"], beta["Intercept"] + 10 * beta["weeks"]])
    with pytest.raises(UsageError, match="random intercept in this model"):
        predict_trajectory(nested, by="clinic_id")


def test_clinic_random_intercept_is_tested_by_reml_lrt(
    nested: TrajectoryResult, clinic_cohort
) -> None:  # type: ignore[no-untyped-def]
    plain = fit_trajectory(clinic_cohort, "odi")
    comparison = compare_models(plain, nested)
    assert comparison.criterion == "REML"
    assert comparison.table["df"].iat[1] == 1
    chi2 = 2 * (nested.loglik - plain.loglik)
    assert comparison.table["chi2"].iat[1] == pytest.approx(chi2)
    # A fixed-effect comparison within the nested model refits both by ML.
    with_claim = fit_trajectory(
        clinic_cohort,
        "odi",
        formula="score ~ weeks + compensation_claim",
        clinic_effect="random",
    )
    ml = compare_models(nested, with_claim)
    assert ml.criterion == "ML"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clinic_effect": "fixed"}, "clinic_effect must be None or 'random'"),
        ({"clinic_effect": "random", "compare": "clinic"}, "both a fixed effect"),
    ],
)
def test_bad_clinic_options(kwargs: dict[str, str], message: str, synth_cohort) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=message):
        fit_trajectory(synth_cohort, "odi", **kwargs)


def _two_level(seed: int, n_clinics: int = 3, per_clinic: int = 15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_clinics * per_clinic
    pid = np.repeat(np.arange(n), 6)
    weeks = np.tile(np.arange(6) * 2.0, n)
    clinic = pid // per_clinic
    score = 40 - weeks + rng.normal(0, 5, n)[pid] + rng.normal(0, 2, pid.size)
    return pd.DataFrame(
        {
            "patient_id": [f"P{p:03d}" for p in pid],
            "clinic_id": [f"C{c}" for c in clinic],
            "weeks": weeks,
            "score": score,
        }
    )


def test_patients_in_two_clinics_are_refused() -> None:
    data = _two_level(1)
    data.loc[data.index[:3], "clinic_id"] = "C9"  # P000 now appears under C9 and C0
    with pytest.raises(AnalysisError, match=r"1 patient_id values appear under more than one"):
        fit_mixed_model(
            data, formula="score ~ weeks", re_formula="~weeks", outer_groups="clinic_id"
        )


def test_one_clinic_is_refused_and_few_clinics_are_noted() -> None:
    data = _two_level(2)
    one = data.assign(clinic_id="C0")
    with pytest.raises(AnalysisError, match="at least two clinic_id values"):
        fit_mixed_model(one, formula="score ~ weeks", outer_groups="clinic_id")
    fit = fit_mixed_model(data, formula="score ~ weeks", outer_groups="clinic_id")
    assert any("Only 3 clinic_id values carry" in n for n in fit.notes)


def test_clinics_that_do_not_differ_give_a_singular_warning() -> None:
    """Every clinic treats copies of the same patients: the clinic SD is exactly zero."""
    base = _two_level(3, n_clinics=1, per_clinic=20)
    copies = [
        base.assign(patient_id=base["patient_id"] + f"-{k}", clinic_id=f"C{k}") for k in range(4)
    ]
    fit = fit_mixed_model(
        pd.concat(copies, ignore_index=True),
        formula="score ~ weeks",
        re_formula="~weeks",
        outer_groups="clinic_id",
    )
    vc = fit.variance_components.set_index("group")
    assert vc.loc["clinic_id", "estimate"] < 1e-6
    assert any("the clinics hardly differ" in w for w in fit.warnings)


def test_nested_model_recovers_a_known_clinic_sd() -> None:
    """60 clinics x 25 patients x 6 visits, simulated from the model with known parameters."""
    rng = np.random.default_rng(2026)
    n_clinics, per_clinic, visits = 60, 25, 6
    n = n_clinics * per_clinic
    clinic = np.repeat(np.arange(n_clinics), per_clinic)
    sd = np.array([8.0, 0.5])
    cov = np.array([[1.0, -0.3], [-0.3, 1.0]]) * np.outer(sd, sd)
    b = rng.multivariate_normal([0.0, 0.0], cov, n)
    c = rng.normal(0.0, 3.0, n_clinics)[clinic]
    pid = np.repeat(np.arange(n), visits)
    weeks = np.tile(np.arange(visits) * 4.0, n)
    score = 45 + b[pid, 0] + c[pid] + (-0.8 + b[pid, 1]) * weeks + rng.normal(0, 4, pid.size)
    data = pd.DataFrame(
        {"patient_id": pid, "clinic_id": clinic[pid], "weeks": weeks, "score": score}
    )
    fit = fit_mixed_model(
        data, formula="score ~ weeks", re_formula="~weeks", outer_groups="clinic_id"
    )
    beta = fit.to_frame().set_index("term")
    assert abs(beta.loc["weeks", "estimate"] + 0.8) < 3 * beta.loc["weeks", "std_error"]
    assert abs(beta.loc["Intercept", "estimate"] - 45) < 3 * beta.loc["Intercept", "std_error"]
    vc = fit.variance_components.set_index(["group", "term"])["estimate"]
    assert vc[("clinic_id", "Intercept")] == pytest.approx(3.0, rel=0.3)
    assert vc[("patient_id", "Intercept")] == pytest.approx(8.0, rel=0.1)
    assert vc[("patient_id", "weeks")] == pytest.approx(0.5, rel=0.15)
    assert vc[("Residual", "")] == pytest.approx(4.0, rel=0.05)
    # The intercept's df reflect the 60 clinics, not the 9,000 rows.
    assert 40 < beta.loc["Intercept", "df"] < 80
