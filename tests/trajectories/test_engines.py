"""The two engines behind fit_mixed_model / fit_trajectory: same answers, same shape, auto choice.

Where both engines can fit a model they must reach the same (best) optimum
and report the same numbers: the fast engine (stepanalytics.lmm) and the
statsmodels engine (several optimizers, best kept, bounded polish) are
independent implementations, so agreement to 1e-5 is a check on both.  Both
are validated against lme4 in test_trajectories_vs_lme4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import UsageError
from stepanalytics.trajectories import (
    MixedProblem,
    TrajectoryResult,
    available_engines,
    fit_mixed_model,
    fit_trajectory,
    patient_curves,
    patient_effects,
    predict_trajectory,
)
from stepanalytics.trajectories.engines import select_engine

LMM_REFERENCE = Path(__file__).parents[1] / "lmm" / "reference"
ONE = ("lbfgs",)  # statsmodels: one optimizer (then the polish) keeps the synthetic fits quick

Fitter = Callable[[str], TrajectoryResult]


def _cases(
    sleepstudy: pd.DataFrame, dietox: pd.DataFrame, synth_cohort: object
) -> dict[str, Fitter]:
    sleep = {"groups": "Subject", "time": "Days"}
    pigs = {"groups": "Pig", "time": "Time"}
    singular = pd.read_csv(LMM_REFERENCE / "singular.csv")

    def sm(engine: str, optimizers: tuple[str, ...] | None = ONE) -> dict[str, object]:
        return {"engine": engine, "optimizers": optimizers if engine == "statsmodels" else None}

    return {
        "sleepstudy REML": lambda e: fit_mixed_model(
            sleepstudy, formula="Reaction ~ Days", re_formula="~Days", **sleep, **sm(e, None)
        ),
        "sleepstudy ML": lambda e: fit_mixed_model(
            sleepstudy,
            formula="Reaction ~ Days",
            re_formula="~Days",
            reml=False,
            **sleep,
            **sm(e, None),
        ),
        # statsmodels' own optimizer chain stops at a worse optimum here (test_optimizer_attempts)
        "dietox": lambda e: fit_mixed_model(
            dietox, formula="Weight ~ Time", re_formula="~Time", **pigs, **sm(e, None)
        ),
        "dietox by Evit": lambda e: fit_mixed_model(
            dietox, formula="Weight ~ Time * Evit", re_formula="~Time", **pigs, **sm(e, None)
        ),
        "singular": lambda e: fit_mixed_model(
            singular, formula="score ~ weeks", re_formula="~weeks", **sm(e, None)
        ),
        "cohort default": lambda e: fit_trajectory(synth_cohort, "odi", **sm(e)),
        "cohort piecewise": lambda e: fit_trajectory(synth_cohort, "odi", piecewise=True, **sm(e)),
        "cohort case mix": lambda e: fit_trajectory(
            synth_cohort,
            "odi",
            covariates=["baseline_score", "compensation_claim"],
            missing="drop",
            **sm(e),
        ),
        "cohort clinics": lambda e: fit_trajectory(synth_cohort, "odi", compare="clinic", **sm(e)),
        "cohort intercept only": lambda e: fit_trajectory(
            synth_cohort, "pseq", random_slope=False, **sm(e)
        ),
    }


CASE_NAMES = [
    "sleepstudy REML",
    "sleepstudy ML",
    "dietox",
    "dietox by Evit",
    "singular",
    "cohort default",
    "cohort piecewise",
    "cohort case mix",
    "cohort clinics",
    "cohort intercept only",
]


@pytest.fixture(scope="module")
def both(
    sleepstudy: pd.DataFrame, dietox: pd.DataFrame, synth_cohort: object
) -> dict[str, tuple[TrajectoryResult, TrajectoryResult]]:
    cases = _cases(sleepstudy, dietox, synth_cohort)
    assert list(cases) == CASE_NAMES
    return {name: (fit("fast"), fit("statsmodels")) for name, fit in cases.items()}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_engines_reach_the_same_optimum_and_report_the_same_numbers(
    name: str, both: dict[str, tuple[TrajectoryResult, TrajectoryResult]]
) -> None:
    fast, sm = both[name]
    assert fast.fit_statistics["engine"].iat[0] == "fast"
    assert sm.fit_statistics["engine"].iat[0] == "statsmodels"
    # The same optimum, and the fast engine's is at least as good.
    assert fast.loglik == pytest.approx(sm.loglik, abs=1e-6)
    assert fast.loglik >= sm.loglik - 1e-8
    ours, theirs = fast.table, sm.table
    assert list(ours["term"]) == list(theirs["term"])
    for column, rtol in [("estimate", 1e-5), ("std_error", 1e-5), ("df", 1e-4)]:
        np.testing.assert_allclose(ours[column], theirs[column], rtol=rtol, err_msg=column)
    np.testing.assert_allclose(ours["p_value"], theirs["p_value"], rtol=1e-2, atol=1e-300)
    np.testing.assert_allclose(
        ours[["ci_lower", "ci_upper"]], theirs[["ci_lower", "ci_upper"]], rtol=1e-5
    )
    vc_fast, vc_sm = fast.variance_components, sm.variance_components
    pd.testing.assert_frame_equal(
        vc_fast[["group", "term", "kind"]], vc_sm[["group", "term", "kind"]]
    )
    np.testing.assert_allclose(vc_fast["estimate"], vc_sm["estimate"], rtol=1e-4, atol=1e-6)
    assert fast.warnings == sm.warnings


@pytest.mark.parametrize("name", CASE_NAMES)
def test_predictions_and_random_effects_agree(
    name: str, both: dict[str, tuple[TrajectoryResult, TrajectoryResult]]
) -> None:
    fast, sm = both[name]
    band = ["estimate", "std_error", "df", "ci_lower", "ci_upper"]
    p_fast, p_sm = predict_trajectory(fast).table, predict_trajectory(sm).table
    assert list(p_fast.columns) == list(p_sm.columns)
    np.testing.assert_allclose(p_fast[band], p_sm[band], rtol=1e-4)
    e_fast, e_sm = patient_effects(fast), patient_effects(sm)
    assert list(e_fast.columns) == list(e_sm.columns)
    assert e_fast.iloc[:, 0].tolist() == e_sm.iloc[:, 0].tolist()
    terms = list(fast.design.problem.random_names)
    scale = e_sm[terms].abs().max().to_numpy()
    np.testing.assert_allclose(e_fast[terms], e_sm[terms], rtol=1e-4, atol=1e-4 * scale.max())
    c_fast, c_sm = patient_curves(fast), patient_curves(sm)
    assert list(c_fast.columns) == list(c_sm.columns)
    np.testing.assert_allclose(c_fast["fitted"], c_sm["fitted"], rtol=1e-5)


def test_results_have_the_same_shape_whichever_engine_ran(
    both: dict[str, tuple[TrajectoryResult, TrajectoryResult]],
) -> None:
    fast, sm = both["cohort default"]
    for attribute in ("table", "variance_components", "fit_statistics", "attempts"):
        a, b = getattr(fast, attribute), getattr(sm, attribute)
        assert list(a.columns) == list(b.columns), attribute
        assert a.dtypes.to_dict() == b.dtypes.to_dict(), attribute
    assert fast.fit.patient_effects.shape == sm.fit.patient_effects.shape
    assert fast.fit.theta.shape == sm.fit.theta.shape
    assert fast.satterthwaite.jac_cov_beta.shape == sm.satterthwaite.jac_cov_beta.shape
    assert fast.attempts["chosen"].sum() == 1 and sm.attempts["chosen"].sum() == 1
    # Which engine ran is said in the statistics, the first note and the summary.
    assert fast.notes[0].startswith("Fitted by the fast engine")
    assert sm.notes[0].startswith("Fitted by statsmodels MixedLM")
    assert "fit by the fast engine" in fast.summary()
    assert "fit by the statsmodels engine" in sm.summary()
    assert type(fast.model).__name__ == "LmmFit"


def test_auto_uses_the_fast_engine_for_models_in_its_class(synth_cohort: object) -> None:
    fit = fit_trajectory(synth_cohort, "odi")
    assert fit.fit_statistics["engine"].iat[0] == "fast"
    assert fit.options.engine == "auto"
    assert not any("engine='auto'" in n for n in fit.notes)
    assert {"fast", "statsmodels"} <= set(available_engines())


def test_auto_falls_back_to_statsmodels_for_uncorrelated_random_effects(
    sleepstudy: pd.DataFrame,
) -> None:
    """lme4's (Days || Subject) is outside the fast engine's class."""
    fit = fit_mixed_model(
        sleepstudy,
        formula="Reaction ~ Days",
        re_formula="~Days",
        groups="Subject",
        time="Days",
        re_covariance="diagonal",
    )
    assert fit.fit_statistics["engine"].iat[0] == "statsmodels"
    assert any(
        "engine='auto' fitted with statsmodels" in n and "correlated random effects only" in n
        for n in fit.notes
    )
    assert "(Days || Subject)" in fit.title
    assert list(fit.variance_components["kind"]) == ["sd", "sd", "sd"]  # no correlation
    with pytest.raises(UsageError, match="correlated random effects only"):
        fit_mixed_model(
            sleepstudy,
            formula="Reaction ~ Days",
            re_formula="~Days",
            groups="Subject",
            time="Days",
            re_covariance="diagonal",
            engine="fast",
        )


def test_auto_falls_back_to_statsmodels_beyond_eight_random_effects() -> None:
    """The choice itself (fitting 9 random effects with statsmodels takes half a minute)."""
    n, q = 12, 9
    codes = np.repeat(np.arange(3), 4)
    problem = MixedProblem(
        np.zeros(n),
        np.ones((n, 1)),
        np.ones((n, q)),
        codes,
        np.array(["a", "b", "c"]),
        ("Intercept",),
        tuple(f"z{k}" for k in range(q)),
    )
    choice = select_engine("auto", problem)
    assert choice.name == "statsmodels"
    assert "handles up to 8 random effects per patient, and this model has 9" in choice.notes[0]
    assert (
        select_engine(
            "auto", replace(problem, z=problem.z[:, :8], random_names=problem.random_names[:8])
        ).name
        == "fast"
    )
    with pytest.raises(UsageError, match="handles up to 8 random effects"):
        select_engine("fast", problem)
    nested = replace(problem, clinic_codes=codes % 2, clinic_labels=np.array(["c1", "c2"]))
    with pytest.raises(UsageError, match="Only the fast engine fits a random intercept"):
        select_engine("auto", nested)


def test_optimizers_choose_statsmodels_under_auto_and_are_refused_by_the_fast_engine(
    sleepstudy: pd.DataFrame,
) -> None:
    common = {"formula": "Reaction ~ Days", "groups": "Subject", "time": "Days"}
    fit = fit_mixed_model(sleepstudy, optimizers=["lbfgs"], **common)
    assert fit.fit_statistics["engine"].iat[0] == "statsmodels"
    assert any("only the statsmodels engine uses them" in n for n in fit.notes)
    with pytest.raises(UsageError, match="optimizers= choose statsmodels' optimizers"):
        fit_mixed_model(sleepstudy, optimizers=["lbfgs"], engine="fast", **common)


def test_statsmodels_cannot_fit_the_clinic_random_intercept(synth_cohort: object) -> None:
    with pytest.raises(UsageError, match="statsmodels engine cannot fit a random intercept"):
        fit_trajectory(synth_cohort, "odi", clinic_effect="random", engine="statsmodels")
    with pytest.raises(UsageError, match="Only the fast engine fits a random intercept"):
        fit_trajectory(synth_cohort, "odi", clinic_effect="random", optimizers=["lbfgs"])
