"""Several optimizers, the best optimum kept: the dietox case where statsmodels' chain stops early."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from stepanalytics.errors import UsageError
from stepanalytics.trajectories import fit_mixed_model
from stepanalytics.trajectories.design import build_design
from stepanalytics.trajectories.statsmodels_engine import POLISH_NAME, fit_with_statsmodels


def test_statsmodels_default_chain_stops_at_a_worse_optimum(
    dietox: pd.DataFrame, lme4_reference: dict[str, Any]
) -> None:
    """The failure this engine exists for: method=None ends 3.3 log-likelihood units short."""
    expected = lme4_reference["models"]["dietox_slope_reml"]["loglik"]
    model = smf.mixedlm("Weight ~ Time", dietox, groups=dietox["Pig"], re_formula="~Time")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chained = model.fit()
    assert chained.llf < expected - 1.0
    ours = fit_mixed_model(
        dietox, formula="Weight ~ Time", re_formula="~Time", groups="Pig", time="Time"
    )
    assert ours.loglik == pytest.approx(expected, abs=0.01)


def test_each_optimizer_runs_independently_and_the_best_is_kept(
    dietox: pd.DataFrame, lme4_reference: dict[str, Any]
) -> None:
    expected = lme4_reference["models"]["dietox_slope_reml"]["loglik"]
    problem = build_design(
        dietox, formula="Weight ~ Time", re_formula="~Time", groups="Pig"
    ).problem
    # Without rescaling, BFGS on its own stops at the chain's poor optimum.
    fit = fit_with_statsmodels(problem, reml=True, rescale=False)
    attempts = fit.attempts
    assert list(attempts["optimizer"]) == ["lbfgs", "bfgs", "cg", "powell", POLISH_NAME]
    assert list(attempts["start"]) == ["default"] * 4 + ["best (polish)"]
    bfgs = attempts.iloc[1]
    assert not bfgs["converged"] and bfgs["loglik"] < expected - 1.0
    assert attempts["chosen"].sum() == 1
    assert attempts.loc[attempts["chosen"], "loglik"].iat[0] == pytest.approx(expected, abs=1e-6)
    assert fit.loglik == pytest.approx(expected, abs=1e-6)
    assert fit.converged


def test_disagreement_is_noted_and_attempts_are_in_the_result(dietox: pd.DataFrame) -> None:
    from functools import partial

    engine = partial(fit_with_statsmodels, rescale=False)
    result = fit_mixed_model(
        dietox,
        formula="Weight ~ Time",
        re_formula="~Time",
        groups="Pig",
        time="Time",
        engine=engine,  # type: ignore[arg-type]
    )
    assert any("did not all reach the same optimum" in n and "bfgs" in n for n in result.notes)
    assert len(result.attempts) == 5
    assert not result.warnings


@pytest.mark.parametrize("bad", [["nm"], ["Nelder-Mead"], ["newton"], []])
def test_refused_optimizers(bad: list[str], sleepstudy: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match=r"optimizer|Nelder-Mead"):
        fit_mixed_model(
            sleepstudy, formula="Reaction ~ Days", groups="Subject", time="Days", optimizers=bad
        )


def test_unknown_engine_is_refused(sleepstudy: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match="No mixed-model engine called 'lme4'"):
        fit_mixed_model(
            sleepstudy, formula="Reaction ~ Days", groups="Subject", time="Days", engine="lme4"
        )


def test_a_custom_engine_can_be_plugged_in(sleepstudy: pd.DataFrame) -> None:
    """Anything returning an EngineFit works behind fit_mixed_model (the fast engine will)."""
    calls: list[int] = []

    def engine(problem, *, reml, optimizers=None):  # type: ignore[no-untyped-def]
        calls.append(problem.n_obs)
        return fit_with_statsmodels(problem, reml=reml, optimizers=["lbfgs"])

    result = fit_mixed_model(
        sleepstudy,
        formula="Reaction ~ Days",
        re_formula="~Days",
        groups="Subject",
        time="Days",
        engine=engine,
    )
    assert calls == [180]
    assert result.to_frame()["estimate"].to_numpy() == pytest.approx([251.405105, 10.467286])
    np.testing.assert_allclose(result.fit.patient_effects.shape, (18, 2))


def test_fast_engine_starts_that_disagree_are_noted(sleepstudy: pd.DataFrame) -> None:
    """The fast engine's two starts are independent searches: if one stops 1 unit short,
    the note says so (it used to look only at statsmodels' "default" starts)."""
    from dataclasses import replace

    from stepanalytics.trajectories.diagnostics import convergence_messages

    result = fit_mixed_model(
        sleepstudy, formula="Reaction ~ Days", re_formula="~Days", groups="Subject", time="Days"
    )
    assert result.fit_statistics["engine"].iat[0] == "fast"
    attempts = result.attempts
    assert list(attempts["start"]) == ["method of moments", "lme4 default, scaled"]
    notes, _ = convergence_messages(result.fit)
    assert not notes  # both starts reach the same optimum here
    short = attempts.assign(loglik=attempts["loglik"] - [1.0, 0.0])
    notes, warnings = convergence_messages(replace(result.fit, attempts=short))
    (note,) = notes
    assert "did not all reach the same optimum" in note
    assert f"from the method of moments start stopped at {short['loglik'].iat[0]:.2f}" in note
    assert not warnings


def test_a_polish_behind_the_best_is_no_disagreement(dietox: pd.DataFrame) -> None:
    """The statsmodels polish refines the best run: it is not an independent search."""
    from dataclasses import replace

    from stepanalytics.trajectories.diagnostics import convergence_messages

    problem = build_design(
        dietox, formula="Weight ~ Time", re_formula="~Time", groups="Pig"
    ).problem
    fit = fit_with_statsmodels(problem, reml=True, optimizers=["lbfgs"])
    polish_behind = fit.attempts.assign(loglik=fit.attempts["loglik"] - [0.0, 1.0])
    notes, _ = convergence_messages(replace(fit, attempts=polish_behind))
    assert not notes


def test_the_polish_that_stops_on_its_line_search_counts_as_converged(
    dietox: pd.DataFrame,
) -> None:
    """dietox: L-BFGS-B at ftol 1e-15 ends "ABNORMAL" at lme4's optimum; by lme4's rule (a
    deviance gradient below 2e-3) that is convergence, and the attempts say why."""
    problem = build_design(
        dietox, formula="Weight ~ Time", re_formula="~Time", groups="Pig"
    ).problem
    fit = fit_with_statsmodels(problem, reml=True)
    polish = fit.attempts.iloc[-1]
    assert polish["optimizer"] == POLISH_NAME and polish["chosen"]
    assert polish["converged"]
    assert "converged by lme4's test (gradient < 0.002)" in polish["note"]
    assert fit.converged


@pytest.mark.parametrize(
    ("success", "gradient", "not_worse", "converged", "words"),
    [
        (True, 1e-7, True, True, "converged (gradient 1.0e-07)"),
        (False, 1e-4, True, True, "converged by lme4's test"),
        (False, 0.05, True, False, "above lme4's convergence tolerance 0.002"),
        (True, 1e-7, False, False, "ended below the best run"),
    ],
)
def test_polish_verdict(
    success: bool, gradient: float, not_worse: bool, converged: bool, words: str
) -> None:
    from stepanalytics.trajectories.statsmodels_engine import _polish_verdict

    verdict, note = _polish_verdict(success, "ABNORMAL: ", gradient, not_worse)
    assert verdict is converged and words in note
