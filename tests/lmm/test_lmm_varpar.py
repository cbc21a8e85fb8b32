"""The unprofiled deviance and cov(beta) in (theta, sigma), lmerTest's devfun_vp / get_covbeta.

These two functions are what an engine adapter hands to a generic
Satterthwaite routine.  Differentiating them numerically, as lmerTest does
with numDeriv (here: plain central differences of function values), must give
lmerTest's df for the nested model

    lmerTest::lmer(score ~ weeks + (weeks | patient_id) + (1 | clinic_id), nested)
"""

from __future__ import annotations

import numpy as np
import pytest


def _hessian(func, x, h=1e-4):
    k = x.size
    out = np.empty((k, k))
    steps = h * np.maximum(np.abs(x), 0.1)
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * steps[i], np.eye(k)[j] * steps[j]
            out[i, j] = (
                func(x + ei + ej) - func(x + ei - ej) - func(x - ei + ej) + func(x - ei - ej)
            ) / (4 * steps[i] * steps[j])
    return 0.5 * (out + out.T)


@pytest.mark.parametrize("reml", [True, False], ids=["reml", "ml"])
def test_varpar_functions_reproduce_lmertest_df(lme4_reference, reference_fit, reml):
    fit = reference_fit("nested", reml)
    ref = lme4_reference[f"nested_{'reml' if reml else 'ml'}"]
    varpar = np.r_[fit.theta, fit.residual_sd]

    # At sigma-hat the unprofiled deviance is the profiled one.
    assert fit.varpar_deviance(varpar) == pytest.approx(-2 * fit.loglik, rel=1e-12)
    np.testing.assert_allclose(fit.varpar_cov_beta(varpar), fit.cov_fixed, rtol=1e-12)

    vcov_varpar = 2 * np.linalg.inv(_hessian(fit.varpar_deviance, varpar))
    steps = 1e-5 * np.maximum(np.abs(varpar), 0.1)
    jac = [
        (fit.varpar_cov_beta(varpar + e) - fit.varpar_cov_beta(varpar - e)) / (2 * s)
        for e, s in zip(np.diag(steps), steps, strict=True)
    ]
    cov = fit.cov_fixed.to_numpy()
    for k, expected in enumerate(ref["df"].values()):
        grad = np.array([j[k, k] for j in jac])
        df = 2 * cov[k, k] ** 2 / (grad @ vcov_varpar @ grad)
        assert df == pytest.approx(expected, rel=1e-2)
