"""Recovery: on data simulated from known parameters, the estimates land near the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stepanalytics.trajectories import fit_mixed_model, fit_trajectory


def test_exact_model_simulation_is_recovered() -> None:
    """An exact random intercept-and-slope model with a patient covariate, irregular visits.

    Truth: intercept 40, slope -0.5 / week, covariate +5; SDs 8 and 0.25, correlation
    -0.3, residual SD 4.  Fixed effects must lie within 3 standard errors of the truth and
    inside their 95% CI (seeded, so deterministic); variance components within 10-15%.
    """
    rng = np.random.default_rng(404)
    n = 500
    sd0, sd1, corr, sigma = 8.0, 0.25, -0.3, 4.0
    cov = np.array([[sd0**2, corr * sd0 * sd1], [corr * sd0 * sd1, sd1**2]])
    effects = rng.multivariate_normal([0.0, 0.0], cov, size=n)
    group = rng.integers(0, 2, n)
    visits = rng.integers(1, 10, n)  # 1 to 9 visits: unbalanced, some single
    pid = np.repeat(np.arange(n), visits)
    weeks = np.concatenate([np.sort(rng.uniform(0, 40, k)) for k in visits])
    score = (
        40
        + 5 * group[pid]
        + effects[pid, 0]
        + (-0.5 + effects[pid, 1]) * weeks
        + rng.normal(0, sigma, pid.size)
    )
    data = pd.DataFrame(
        {"patient_id": pid, "weeks": weeks, "score": score, "group": group[pid].astype(str)}
    )
    fit = fit_mixed_model(data, formula="score ~ weeks + group", re_formula="~weeks")
    table = fit.to_frame().set_index("term")
    truth = pd.Series({"Intercept": 40.0, "group[T.1]": 5.0, "weeks": -0.5})
    z = (table.loc[truth.index, "estimate"] - truth) / table.loc[truth.index, "std_error"]
    assert (z.abs() < 3).all(), z
    inside = (table.loc[truth.index, "ci_lower"] < truth) & (
        truth < table.loc[truth.index, "ci_upper"]
    )
    assert inside.all()
    vc = fit.variance_components["estimate"].to_numpy()
    assert vc[0] == pytest.approx(sd0, rel=0.1)
    assert vc[1] == pytest.approx(sd1, rel=0.15)
    assert vc[2] == pytest.approx(corr, abs=0.15)
    assert vc[3] == pytest.approx(sigma, rel=0.05)


def test_synthetic_cohort_truth_is_recovered() -> None:
    """The generator's ODI truth (truth.json): intercept 44, compensation +6, SDs 11 / 0.2,
    correlation -0.3, residual 5, and clinic-specific slopes -0.45 + clinic effect.

    Looser than the exact simulation, for reasons in the data, not the model: scores are
    rounded and clipped to 0..100, and dropout depends on the patient's own slope (not
    missing at random): patients who worsen leave, so the survivors of the clinic that
    loses most look better than its truth (about 2 SE here).  Still, every clinic's slope
    is within 3 SE of its truth and the truly worse clinic has the flattest slope.
    """
    from stepanalytics.cohort import Cohort
    from stepanalytics.synth import SynthConfig, synthesize_tables
    from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML

    tables, truth = synthesize_tables(SynthConfig(n_patients=300, n_clinics=4, seed=21))
    cohort = Cohort.from_tables(tables, protocol_text=SYNTH_PROTOCOL_YAML)
    odi = truth["odi_model"]
    fit = fit_trajectory(cohort, "odi", formula="score ~ weeks:clinic_id + compensation_claim")
    table = fit.to_frame().set_index("term")
    assert table.loc["Intercept", "estimate"] == pytest.approx(odi["intercept"], abs=2.0)
    compensation = table.loc["compensation_claim[T.True]"]
    assert abs(compensation["estimate"] - odi["compensation_claim"]) < 3 * compensation["std_error"]
    slopes = {}
    for clinic, effect in odi["clinic_slope_effects"].items():
        row = table.loc[f"weeks:clinic_id[{clinic}]"]
        slopes[clinic] = row["estimate"]
        assert abs(row["estimate"] - (odi["weeks"] + effect)) < 3 * row["std_error"], clinic
    assert max(slopes, key=slopes.get) == truth["worse_clinics"][0]
    vc = fit.variance_components["estimate"].to_numpy()
    assert vc[0] == pytest.approx(odi["sd_intercept"], rel=0.1)
    assert vc[1] == pytest.approx(odi["sd_slope"], rel=0.2)
    assert vc[2] == pytest.approx(odi["corr"], abs=0.15)
    assert vc[3] == pytest.approx(odi["residual_sd"], rel=0.05)
