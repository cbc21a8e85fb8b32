"""The likelihood, derivatives and Satterthwaite pieces, checked without any optimizer.

At lme4's own theta, our deviance must equal lme4's REML criterion / ML
deviance and our GLS beta and cov(beta) must equal lme4's: this checks the
likelihood code separately from whether an optimizer finds the optimum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from stepanalytics.trajectories import likelihood as lik
from stepanalytics.trajectories.design import build_design
from stepanalytics.trajectories.numderiv import hessian, jacobian
from stepanalytics.trajectories.satterthwaite import contrast_table, satterthwaite_state

CASES = {
    "sleep_intercept_reml": ("sleep", "Reaction ~ Days", "1", "Subject"),
    "sleep_slope_ml": ("sleep", "Reaction ~ Days", "~Days", "Subject"),
    "sleep_slope_reml": ("sleep", "Reaction ~ Days", "~Days", "Subject"),
    "dietox_slope_reml": ("dietox", "Weight ~ Time", "~Time", "Pig"),
    "synth_default_ml": ("synth", "score ~ weeks", "~weeks", "patient_id"),
    "synth_piecewise_reml": (
        "synth",
        "score ~ weeks_phase1 + weeks_phase2 + weeks_phase3 + weeks_phase4 + weeks_outside_phases",
        "~weeks",
        "patient_id",
    ),
}


@pytest.mark.parametrize("key", list(CASES))
def test_deviance_beta_and_satterthwaite_at_lme4_theta(
    key: str,
    sleepstudy: pd.DataFrame,
    dietox: pd.DataFrame,
    synthetic_long: pd.DataFrame,
    lme4_reference: dict[str, Any],
) -> None:
    source, formula, re_formula, groups = CASES[key]
    data = {"sleep": sleepstudy, "dietox": dietox, "synth": synthetic_long}[source]
    reference = lme4_reference["models"][key]
    problem = build_design(data, formula=formula, re_formula=re_formula, groups=groups).problem
    cp = lik.cross_products(problem.y, problem.x, problem.z, problem.patient_codes)
    theta = np.atleast_1d(np.asarray(reference["theta"], dtype=float))
    reml = reference["reml"]
    pieces = lik.profiled_pieces(cp, theta)
    sigma = lik.profiled_sigma(cp, pieces, reml=reml)
    assert sigma == pytest.approx(reference["sigma"], rel=1e-8)
    assert lik.deviance(cp, theta, sigma, reml=reml) == pytest.approx(
        reference["criterion"], abs=1e-6
    )
    fixed = pd.DataFrame(reference["fixed"])
    np.testing.assert_allclose(pieces.beta, fixed["estimate"], rtol=1e-8)
    state = satterthwaite_state(
        lambda vp: lik.deviance(cp, vp[:-1], vp[-1], reml=reml),
        lambda vp: lik.cov_beta(cp, vp[:-1], vp[-1]),
        np.r_[theta, sigma],
    )
    table = contrast_table(state, pieces.beta, np.eye(problem.n_fixed))
    np.testing.assert_allclose(table["std_error"], fixed["std_error"], rtol=1e-8)
    np.testing.assert_allclose(table["df"], fixed["df"], rtol=1e-4)


def test_deviance_equals_dense_multivariate_normal(rng: np.random.Generator) -> None:
    """Hand check: -2 log N(y; X beta, sigma^2 (Z Psi Z' + I)) with beta = GLS and dense V."""
    n_groups, per = 6, 4
    codes = np.repeat(np.arange(n_groups), per)
    t = np.tile(np.arange(per, dtype=float), n_groups)
    x = np.c_[np.ones(codes.size), t, rng.normal(size=codes.size)]
    z = x[:, :2]
    y = rng.normal(size=codes.size) * 3 + t
    theta = np.array([0.8, -0.3, 0.4])
    sigma = 1.7
    lam = lik.theta_to_lambda(theta, 2)
    blocks = [z[codes == g] @ lam @ lam.T @ z[codes == g].T for g in range(n_groups)]
    w = np.eye(codes.size)
    for g, block in enumerate(blocks):
        idx = np.flatnonzero(codes == g)
        w[np.ix_(idx, idx)] += block
    v = sigma**2 * w
    beta = np.linalg.solve(x.T @ np.linalg.solve(w, x), x.T @ np.linalg.solve(w, y))
    ml = -2 * stats.multivariate_normal(x @ beta, v).logpdf(y)
    # REML adds log|X'V^-1 X| - p log(2 pi) (Harville 1977).
    xtvx = x.T @ np.linalg.solve(v, x)
    reml = ml + np.linalg.slogdet(xtvx)[1] - x.shape[1] * np.log(2 * np.pi)
    cp = lik.cross_products(y, x, z, codes)
    assert lik.deviance(cp, theta, sigma, reml=False) == pytest.approx(ml, rel=1e-10)
    assert lik.deviance(cp, theta, sigma, reml=True) == pytest.approx(reml, rel=1e-10)
    np.testing.assert_allclose(lik.cov_beta(cp, theta, sigma), np.linalg.inv(xtvx), rtol=1e-9)
    # BLUPs: Psi Z_i' V_i^-1 (y_i - X_i beta)
    psi = sigma**2 * lam @ lam.T
    resid = y - x @ beta
    expected = np.vstack(
        [
            psi
            @ z[codes == g].T
            @ np.linalg.solve(v[np.ix_(codes == g, codes == g)], resid[codes == g])
            for g in range(n_groups)
        ]
    )
    np.testing.assert_allclose(lik.patient_effects(cp, theta, beta), expected, rtol=1e-9)


def test_richardson_derivatives_of_known_functions() -> None:
    x = np.array([0.7, -1.2, 2.0])

    def f(v: np.ndarray) -> float:
        return float(np.exp(v[0]) * v[1] ** 2 + np.sin(v[2]) * v[0])

    expected_h = np.array(
        [
            [np.exp(x[0]) * x[1] ** 2, 2 * np.exp(x[0]) * x[1], np.cos(x[2])],
            [2 * np.exp(x[0]) * x[1], 2 * np.exp(x[0]), 0.0],
            [np.cos(x[2]), 0.0, -np.sin(x[2]) * x[0]],
        ]
    )
    np.testing.assert_allclose(hessian(f, x), expected_h, atol=1e-8)
    jac = jacobian(lambda v: np.array([v[0] * v[1], v[2] ** 3]), x)
    np.testing.assert_allclose(jac, [[x[1], 0.0], [x[0], 0.0], [0.0, 3 * x[2] ** 2]], atol=1e-9)


def test_psd_cholesky_of_a_singular_covariance() -> None:
    """Correlation +1: lme4 stores a zero on Lambda's diagonal; so do we."""
    cov = np.array([[4.0, 1.0], [1.0, 0.25]])
    lam = lik.psd_cholesky(cov)
    np.testing.assert_allclose(lam, [[2.0, 0.0], [0.5, 0.0]])
    np.testing.assert_allclose(lam @ lam.T, cov)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.integers(0, 10_000))
def test_theta_round_trips_through_lambda(q: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=q * (q + 1) // 2)
    lam = lik.theta_to_lambda(theta, q)
    assert np.allclose(np.triu(lam, 1), 0.0)
    np.testing.assert_array_equal(lik.lambda_to_theta(lam), theta)
    # lme4 order: first column top to bottom, then the second, ...
    assert lam[q - 1, 0] == theta[q - 1]
