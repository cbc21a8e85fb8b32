"""The fast engine against statsmodels MixedLM, on models both can fit.

Two checks: (1) the criteria coincide, i.e. statsmodels' ``loglike`` at the
fast engine's estimates equals the fast engine's log-likelihood; (2) a
statsmodels fit (L-BFGS) lands on the same estimates, with the fast
engine's optimum at least as good.  statsmodels' L-BFGS stops early (on
dietox its log-likelihood is 4e-6 below the optimum), so its variance
parameters and standard errors are compared at 1e-3; at the better optimum the
criteria agree to 1e-10 (check 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.regression.mixed_linear_model import MixedLMParams

from stepanalytics.lmm import fit_lmm_formula

CASES = [
    ("sleepstudy", "Reaction ~ Days", "Subject", "~Days", "Reaction ~ Days + (Days | Subject)"),
    ("dietox", "Weight ~ Time", "Pig", "~Time", "Weight ~ Time + (Time | Pig)"),
]


@pytest.mark.parametrize("reml", [True, False], ids=["reml", "ml"])
@pytest.mark.parametrize(("dataset", "fixed", "group", "re_formula", "formula"), CASES)
def test_same_criterion_and_optimum_as_statsmodels(
    lmm_dataset, dataset, fixed, group, re_formula, formula, reml
):
    data = lmm_dataset(dataset)
    ours = fit_lmm_formula(data, formula, reml=reml)
    model = smf.mixedlm(fixed, data, groups=group, re_formula=re_formula)

    theirs = model.fit(reml=reml, method="lbfgs")
    # The criterion itself: statsmodels' log-likelihood at our estimates.
    params = MixedLMParams.from_components(
        fe_params=ours.fixed_effects.to_numpy(),
        cov_re=ours.random_cov.to_numpy() / ours.residual_sd**2,
    )
    assert model.loglike(params, profile_fe=False) == pytest.approx(ours.loglik, rel=1e-10)

    assert ours.loglik >= theirs.llf - 1e-8
    np.testing.assert_allclose(ours.fixed_effects, theirs.fe_params, rtol=1e-5)
    np.testing.assert_allclose(ours.random_cov, theirs.cov_re, rtol=1e-3)
    assert ours.residual_sd**2 == pytest.approx(theirs.scale, rel=1e-3)
    np.testing.assert_allclose(ours.table["std_error"], theirs.bse_fe, rtol=1e-3)
    blups = pd.DataFrame(theirs.random_effects).T
    ours_blups = ours.patient_effects.loc[blups.index].to_numpy()
    np.testing.assert_allclose(ours_blups, blups.to_numpy(), atol=1e-3 * np.abs(ours_blups).max())
