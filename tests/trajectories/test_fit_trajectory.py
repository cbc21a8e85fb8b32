"""fit_trajectory on a cohort: defaults, piecewise phases, clinics, case mix, direction.

Expected predictions are worked by hand from the fitted coefficients (the
coefficients themselves are validated against lme4 in test_trajectories_vs_lme4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.trajectories import (
    TrajectoryResult,
    compare_models,
    fit_mixed_model,
    fit_trajectory,
    patient_curves,
    patient_effects,
    predict_trajectory,
    trajectory_data,
)


@pytest.fixture(scope="module")
def default_fit(synth_cohort) -> TrajectoryResult:  # type: ignore[no-untyped-def]
    return fit_trajectory(synth_cohort, "odi")


@pytest.fixture(scope="module")
def piecewise_fit(synth_cohort) -> TrajectoryResult:  # type: ignore[no-untyped-def]
    return fit_trajectory(synth_cohort, "odi", piecewise=True)


@pytest.fixture(scope="module")
def clinic_fit(synth_cohort) -> TrajectoryResult:  # type: ignore[no-untyped-def]
    return fit_trajectory(synth_cohort, "odi", compare="clinic")


def coef(result: TrajectoryResult) -> pd.Series:
    return result.to_frame().set_index("term")["estimate"]


def test_default_model_is_weeks_with_random_intercept_and_slope(
    default_fit: TrajectoryResult, synth_cohort
) -> None:  # type: ignore[no-untyped-def]
    assert list(default_fit.to_frame()["term"]) == ["Intercept", "weeks"]
    assert default_fit.design.problem.random_names == ("Intercept", "weeks")
    assert default_fit.reml and default_fit.instrument == "odi"
    assert default_fit.higher_is_better is False
    assert any("a negative slope means improvement" in n for n in default_fit.notes)
    same = fit_mixed_model(
        trajectory_data(synth_cohort, "odi"),
        formula="score ~ weeks",
        re_formula="~weeks",
    )
    assert default_fit.loglik == pytest.approx(same.loglik, abs=1e-8)
    text = default_fit.summary()
    assert "Satterthwaite" in text and "P000" not in text
    assert "<h4>" in default_fit._repr_html_()


def test_mean_trajectory_without_covariates_is_the_fixed_line(
    default_fit: TrajectoryResult,
) -> None:
    weeks = np.array([0.0, 10.0, 30.0])
    table = predict_trajectory(default_fit, weeks=weeks).table
    b = coef(default_fit)
    np.testing.assert_allclose(table["estimate"], b["Intercept"] + b["weeks"] * weeks)
    rows = np.c_[np.ones(3), weeks]
    cov = default_fit.satterthwaite.cov_beta
    np.testing.assert_allclose(
        table["std_error"], np.sqrt(np.einsum("ij,jk,ik->i", rows, cov, rows))
    )
    # At week 0 the prediction is the intercept: same df and CI as its row in the table.
    intercept = default_fit.to_frame().iloc[0]
    assert table["df"].iat[0] == pytest.approx(intercept["df"])
    half = stats.t.ppf(0.975, table["df"]) * table["std_error"]
    np.testing.assert_allclose(table["ci_upper"] - table["estimate"], half)
    contrast = default_fit.contrast({"Intercept": 1, "weeks": 30}).iloc[0]
    assert contrast["estimate"] == pytest.approx(table["estimate"].iat[2])
    assert contrast["df"] == pytest.approx(table["df"].iat[2])


def test_piecewise_model_has_one_slope_per_phase_and_bends_on_the_path(
    piecewise_fit: TrajectoryResult,
) -> None:
    terms = list(piecewise_fit.to_frame()["term"])
    assert terms[:5] == ["Intercept", *[f"weeks_phase{k}" for k in (1, 2, 3, 4)]]
    path = piecewise_fit.phase_path
    assert path is not None and path.names[1] == "foundation"
    s2, s3 = path.start_weeks[2], path.start_weeks[3]
    week = (s2 + s3) / 2  # in phase 2 on the typical path
    table = predict_trajectory(piecewise_fit, weeks=[1.0, week], by="phase").table
    b = coef(piecewise_fit)
    expected = b["Intercept"] + b["weeks_phase1"] * s2 + b["weeks_phase2"] * (week - s2)
    assert table["estimate"].iat[1] == pytest.approx(expected)
    assert table["estimate"].iat[0] == pytest.approx(b["Intercept"] + b["weeks_phase1"])
    assert list(table["phase_label"]) == ["1 foundation", "2 building"]


def test_clinic_comparison_uses_the_largest_clinic_as_reference(
    clinic_fit: TrajectoryResult, synth_cohort
) -> None:  # type: ignore[no-untyped-def]
    sizes = synth_cohort.patients["clinic_id"].value_counts()
    largest = sizes.index[0]
    assert sizes.iloc[0] > sizes.iloc[1]
    terms = list(clinic_fit.to_frame()["term"])
    assert f"clinic_id[T.{largest}]" not in terms
    other = sizes.index[1]
    assert f"weeks:clinic_id[T.{other}]" in terms
    assert any(f"clinic_id {largest} (the largest)" in n for n in clinic_fit.notes)
    table = predict_trajectory(clinic_fit, weeks=[20.0], by="clinic_id").table.set_index(
        "clinic_id"
    )
    b = coef(clinic_fit)
    assert table.loc[largest, "estimate"] == pytest.approx(b["Intercept"] + 20 * b["weeks"])
    expected = (
        b["Intercept"]
        + b[f"clinic_id[T.{other}]"]
        + 20 * (b["weeks"] + b[f"weeks:clinic_id[T.{other}]"])
    )
    assert table.loc[other, "estimate"] == pytest.approx(expected)
    joint = clinic_fit.f_test([t for t in terms if t.startswith("weeks:clinic_id")])
    assert joint["num_df"].iat[0] == len(sizes) - 1


def test_case_mix_needs_a_decision_about_missing_baselines(synth_cohort) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AnalysisError, match=r"baseline_centred: .* missing.*missing='drop'"):
        fit_trajectory(synth_cohort, "odi", covariates=True)


def test_case_mix_adjusted_prediction_is_standardised_over_patients(synth_cohort) -> None:  # type: ignore[no-untyped-def]
    fit = fit_trajectory(
        synth_cohort,
        "odi",
        covariates=["baseline", "sex", "compensation_claim"],
        missing="drop",
    )
    terms = list(fit.to_frame()["term"])
    assert "baseline_centred" in terms and "compensation_claim[T.True]" in terms
    assert any("baseline measurements are used as the covariate" in n for n in fit.notes)
    assert any("rows with missing values were left out" in n for n in fit.notes)
    # By hand: the design row of every patient at week 12, averaged, times beta.
    design = fit.design
    first = design.frame.drop_duplicates(design.groups).assign(weeks=12.0)
    by_hand = design.fixed_matrix_for(first).mean(axis=0) @ fit.fit.beta
    table = predict_trajectory(fit, weeks=[12.0]).table
    assert table["estimate"].iat[0] == pytest.approx(by_hand)
    by_sex = predict_trajectory(fit, weeks=[12.0], by="sex").table.set_index("sex")
    b = coef(fit)
    with pytest.raises(UsageError, match="distinct values"):
        predict_trajectory(fit, by="baseline_centred")
    gap = by_sex.loc["male", "estimate"] - by_sex.loc["female", "estimate"]
    assert gap == pytest.approx(b.get("sex[T.male]", -b.get("sex[T.female]", np.nan)))


def test_higher_is_better_instruments_say_so(synth_cohort) -> None:  # type: ignore[no-untyped-def]
    fit = fit_trajectory(synth_cohort, "pseq")
    assert fit.higher_is_better is True
    assert any("a positive slope means improvement" in n for n in fit.notes)


def test_a_measure_on_a_large_scale_fits(synth_cohort) -> None:  # type: ignore[no-untyped-def]
    """Six-minute walk in metres, measured only at baseline and phase ends."""
    fit = fit_trajectory(synth_cohort, "six_mwt")
    assert fit.fit.converged
    assert fit.variance_components["estimate"].iat[0] > 10  # metres, not rescaled units
    assert fit.higher_is_better is True


def test_a_free_formula_with_phase_effects_predicts_by_phase(synth_cohort) -> None:  # type: ignore[no-untyped-def]
    fit = fit_trajectory(synth_cohort, "odi", formula="score ~ weeks + C(phase)", re_formula="1")
    path = fit.phase_path
    week = path.start_weeks[3] + 1.0
    table = predict_trajectory(fit, weeks=[week], by="phase").table
    b = coef(fit)
    assert table["estimate"].iat[0] == pytest.approx(
        b["Intercept"] + b["weeks"] * week + b["C(phase)[T.3]"]
    )


def test_patient_curves_and_effects(default_fit: TrajectoryResult) -> None:
    curves = patient_curves(default_fit)
    design = default_fit.design
    assert len(curves) == design.problem.n_obs
    np.testing.assert_allclose(curves["observed"], design.problem.y)
    effects = patient_effects(default_fit)
    merged = curves.merge(effects, on="patient_id", suffixes=("", "_b"))
    b = coef(default_fit)
    np.testing.assert_allclose(
        merged["fitted"],
        b["Intercept"] + merged["Intercept"] + (b["weeks"] + merged["weeks_b"]) * merged["weeks"],
    )
    np.testing.assert_allclose(curves["residual"], curves["observed"] - curves["fitted"])
    sample = patient_curves(default_fit, n=5, seed=1)
    assert sample["patient_id"].nunique() == 5
    assert effects["n_measurements"].sum() == design.problem.n_obs


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"formula": "score ~ weeks", "piecewise": True}, UsageError, "either formula="),
        ({"covariates": ["shoe_size"]}, UsageError, "Unknown covariate"),
        ({"compare": "team"}, UsageError, "compare must be one of"),
    ],
)
def test_option_errors(synth_cohort, kwargs, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        fit_trajectory(synth_cohort, "odi", **kwargs)


def test_unknown_instrument_lists_the_available_ones(synth_cohort) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AnalysisError, match=r"no scores for instrument 'bdi'.*odi"):
        fit_trajectory(synth_cohort, "bdi")


def test_prediction_errors(default_fit: TrajectoryResult, sleepstudy: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match="not in the model"):
        predict_trajectory(default_fit, by="clinic_id")
    plain = fit_mixed_model(sleepstudy, formula="Reaction ~ Days", groups="Subject", time="Days")
    with pytest.raises(UsageError, match="typical phase path"):
        predict_trajectory(plain, by="phase")


def test_compare_models_refuses_different_rows_and_non_nested_models(
    default_fit: TrajectoryResult,
    piecewise_fit: TrajectoryResult,
    sleepstudy: pd.DataFrame,
    synth_cohort,  # type: ignore[no-untyped-def]
) -> None:
    # compensation_claim is no combination of the phase clocks: not nested, whatever the sizes.
    claim = fit_trajectory(synth_cohort, "odi", formula="score ~ weeks + compensation_claim")
    with pytest.raises(UsageError, match=r"not nested.*compensation_claim"):
        compare_models(claim, piecewise_fit)
    other = fit_mixed_model(sleepstudy, formula="Reaction ~ Days", groups="Subject", time="Days")
    with pytest.raises(UsageError, match="different rows"):
        compare_models(default_fit, other)


@pytest.fixture(scope="module")
def one_clinic():  # type: ignore[no-untyped-def]
    from stepanalytics.synth import synthesize_cohort

    return synthesize_cohort(n_patients=15, n_clinics=1, seed=3)


@pytest.mark.parametrize(
    ("compare", "words"),
    [("clinic", "come from one clinic, C01"), ("protocol", "come from one protocol, default")],
)
def test_compare_needs_two_clinics_or_protocols(one_clinic, compare: str, words: str) -> None:  # type: ignore[no-untyped-def]
    """Formerly: no clinic terms, no warning, and a note claiming each clinic had its own
    level and slope (patsy gives a one-level factor no column)."""
    with pytest.raises(AnalysisError, match=words):
        fit_trajectory(one_clinic, "odi", compare=compare)


def test_a_covariate_with_one_value_is_refused(one_clinic) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AnalysisError, match="covariate protocol has the single value 'default'"):
        fit_trajectory(one_clinic, "odi", covariates=["protocol"])


def _everyone_dropped_out_on_day_0():  # type: ignore[no-untyped-def]
    """The audit's cohort: every patient one stay 0..0 dropped_out, day-0 measurements only."""
    from stepanalytics.cohort import Cohort
    from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML, SynthConfig, synthesize_tables

    tables, _ = synthesize_tables(SynthConfig(n_patients=40, n_clinics=4, seed=11))
    patients = tables["patients"].assign(last_contact_day=0)
    phases = pd.DataFrame(
        {
            "patient_id": patients["patient_id"],
            "phase": 1,
            "start_day": 0,
            "end_day": 0,
            "exit_reason": "dropped_out",
        }
    )
    day0 = {name: tables[name][tables[name]["day"] == 0] for name in ("assessments", "items")}
    rewritten = dict(tables, patients=patients, phases=phases, events=tables["events"].iloc[:0])
    return Cohort.from_tables({**rewritten, **day0}, protocol_text=SYNTH_PROTOCOL_YAML)


def test_baseline_adjustment_with_only_baselines_is_a_plain_error() -> None:
    """Formerly a raw IndexError: removing the baselines left no rows at all."""
    cohort = _everyone_dropped_out_on_day_0()
    with pytest.raises(AnalysisError, match=r"All \d+ measurements are baselines"):
        fit_trajectory(cohort, "odi", covariates=True)
    with pytest.raises(AnalysisError, match="leaves no later measurement"):
        fit_trajectory(cohort, "odi", covariates=["baseline"])
