"""Starting values for the optimiser: a method-of-moments guess and a scaled lme4 default.

The moment guess comes from ordinary least squares residuals e: for patient
i, E[Z_i'e_i e_i'Z_i] ~ A_i D A_i + sigma^2 A_i with A_i = Z_i'Z_i and D the
random-effects covariance, so summing over patients gives a q^2 x q^2
linear system for D.  sigma^2 is estimated from the residuals left after a
separate least-squares fit of Z within each patient.  The guess is cheap
(one pass over the group statistics) and usually lands near the optimum,
which saves most of the optimiser's evaluations on large cohorts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from stepanalytics.lmm import smallmat as sm
from stepanalytics.lmm.criterion import Criterion

Array = NDArray[np.floating[Any]]

#: Smallest relative standard deviation a start may have, so that no diagonal
#: element starts on the bound (where its gradient is zero by symmetry).
MIN_START_SD = 0.05


def theta_units(criterion: Criterion) -> Array:
    """A natural size for each element of theta: 1 / RMS of the Z column of its row.

    Entry (r, c) of Lam multiplies Z column r, so 1 / RMS(Z_r) is the value
    at which that term's contribution has the size of the residual SD.  The
    clinic factor multiplies a column of ones: unit 1.
    """
    st = criterion.stats
    mean_square = np.diag(st.ztz.sum(axis=2)) / st.n_obs
    per_column = np.where(mean_square > 0, 1.0 / np.sqrt(np.maximum(mean_square, 1e-300)), 1.0)
    units = np.ones(criterion.n_theta)
    units[: criterion.n_patient_theta] = per_column[criterion.tri_rows]
    return units


def default_start(criterion: Criterion) -> Array:
    """lme4's start (Lam = identity, clinic factor 1) in units where each Z column has RMS 1.

    lme4 starts every relative SD at 1 whatever the units of Z; for a slope in
    points per week that means a slope SD as large as the residual SD, far
    from any plausible value.  Dividing by the column's root mean square
    makes the start independent of the time unit; an intercept column keeps
    lme4's value 1.
    """
    return np.where(criterion.diagonal, theta_units(criterion), 0.0)


def moment_start(criterion: Criterion) -> Array:
    """Method-of-moments starting value for theta (see the module notes)."""
    st = criterion.stats
    p, q = st.p, st.q
    ols = criterion.evaluate(np.zeros(criterion.n_theta), gradient=False)
    rss = ols.r2
    beta = criterion.centred_beta(ols.beta)
    ze = st.ztr[:, p, :] - np.tensordot(beta, st.ztr[:, :p, :], axes=(0, 1))

    # Within-patient residual variance: remove each patient's own fit on Z.
    ridge = 1e-8 * max(float(np.mean(np.trace(st.ztz))), 1.0)
    a_ridge = st.ztz.copy()
    for i in range(q):
        a_ridge[i, i] += ridge
    chol = sm.cholesky(a_ridge)
    half = sm.forward_solve(chol, ze[:, None, :])[:, 0, :]
    explained = float(np.sum(half**2))
    dof = st.n_obs - int(np.minimum(st.n_per_patient, q).sum())
    sigma2 = (rss - explained) / dof if dof > 0 and rss > explained else rss / st.n_obs
    sigma2 = max(sigma2, 1e-12 * rss / st.n_obs, np.finfo(float).tiny)

    # sum_i A_i D A_i = sum_i ze ze' - sigma^2 sum_i A_i, solved for vec(D).
    a = st.ztz
    kron = np.einsum("abn,cdn->acbd", a, a).reshape(q * q, q * q)
    rhs = np.einsum("an,bn->ab", ze, ze) - sigma2 * a.sum(axis=2)
    d_vec, *_ = np.linalg.lstsq(kron, rhs.reshape(-1), rcond=None)
    d_rel = d_vec.reshape(q, q) / sigma2
    lam = _psd_factor(0.5 * (d_rel + d_rel.T))

    theta = np.empty(criterion.n_theta)
    theta[: criterion.n_patient_theta] = lam[criterion.tri_rows, criterion.tri_cols]
    if criterion.has_clinic:
        theta[-1] = _clinic_start(criterion, beta, sigma2)
    return theta


def _psd_factor(d_rel: Array) -> Array:
    """Lower Cholesky factor of d_rel with eigenvalues lifted to a small floor."""
    values, vectors = np.linalg.eigh(d_rel)
    scale = np.sqrt(np.maximum(np.diag(d_rel), 0.0))
    floor = MIN_START_SD**2 * max(float(values.max()), 1e-4)
    values = np.maximum(values, floor)
    lifted = (vectors * values) @ vectors.T
    lam = np.linalg.cholesky(lifted)
    # Keep every diagonal element off the bound.
    diag = np.maximum(np.diag(lam), MIN_START_SD * np.maximum(scale, 1e-2))
    lam[np.diag_indices_from(lam)] = diag
    return lam


def _clinic_start(criterion: Criterion, beta: Array, sigma2: float) -> float:
    """Relative clinic SD from the spread of clinic mean residuals."""
    st = criterion.stats
    p = st.p
    assert st.r_sums is not None and st.clinic_starts is not None
    resid_sum = st.r_sums[p] - beta @ st.r_sums[:p]
    totals = np.add.reduceat(resid_sum, st.clinic_starts)
    counts = np.add.reduceat(st.r_sums[p + 1], st.clinic_starts)
    means = totals / counts
    between = float(np.var(means)) - sigma2 * float(np.mean(1.0 / counts))
    return float(np.sqrt(max(between / sigma2, MIN_START_SD**2)))
