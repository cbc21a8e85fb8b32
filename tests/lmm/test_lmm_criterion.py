"""The group-statistics criterion against the dense textbook formulas.

For a small unbalanced nested dataset the marginal covariance
V = sigma^2 (I + Z Lam Lam' Z' + lam_c^2 J) is built row by row, and the
profiled REML criterion / ML deviance, GLS beta, the gradient (by central
differences of the dense criterion) and the conditional modes
b = D Z' V^-1 (y - X beta) are computed from their definitions
(Bates et al. 2015, J Stat Softw 67(1), eqs. 34 and 41).
"""

from __future__ import annotations

import numpy as np
import pytest

from stepanalytics.lmm.criterion import Criterion
from stepanalytics.lmm.stats import group_statistics


@pytest.fixture
def nested_data(rng):
    clinic, patient, weeks = [], [], []
    for j in range(4):
        for i in range(5):
            n_visits = int(rng.integers(1, 6))  # includes single-visit patients
            clinic += [j] * n_visits
            patient += [f"c{j}p{i}"] * n_visits
            weeks += list(rng.uniform(0, 10, n_visits))
    clinic_arr, weeks_arr = np.array(clinic), np.array(weeks)
    n = weeks_arr.size
    x = np.column_stack([np.ones(n), weeks_arr, rng.normal(size=n)])
    z = x[:, :2]
    y = x @ [1.0, 0.5, 0.2] + rng.normal(size=4)[clinic_arr] + rng.normal(size=n)
    return y, x, z, np.array(patient), clinic_arr


def _lambda(theta, q):
    """Lower-triangular factor filled column by column (lme4's theta order)."""
    lam = np.zeros((q, q))
    k = 0
    for col in range(q):
        for row in range(col, q):
            lam[row, col] = theta[k]
            k += 1
    return lam


def _dense(theta, y, x, z, patient, clinic, reml):
    q = z.shape[1]
    lam = _lambda(theta, q)
    n, p = x.shape
    v = np.eye(n)
    for g in np.unique(patient):
        rows = patient == g
        v[np.ix_(rows, rows)] += z[rows] @ lam @ lam.T @ z[rows].T
    if clinic is not None:
        v += theta[-1] ** 2 * (clinic[:, None] == clinic[None, :])
    v_inv = np.linalg.inv(v)
    s = x.T @ v_inv @ x
    beta = np.linalg.solve(s, x.T @ v_inv @ y)
    resid = y - x @ beta
    r2 = resid @ v_inv @ resid
    n_eff = n - p if reml else n
    value = np.linalg.slogdet(v)[1] + n_eff * (1 + np.log(2 * np.pi * r2 / n_eff))
    if reml:
        value += np.linalg.slogdet(s)[1]
    modes = np.array(
        [
            lam @ lam.T @ z[patient == g].T @ (v_inv @ resid)[patient == g]
            for g in np.unique(patient)
        ]
    )
    clinic_modes = None
    if clinic is not None:
        clinic_modes = np.array(
            [theta[-1] ** 2 * (v_inv @ resid)[clinic == j].sum() for j in range(4)]
        )
    return value, beta, modes, clinic_modes


THETAS = {1: [0.8], 2: [0.8, -0.3, 0.4], 3: [0.8, -0.3, 0.2, 0.4, 0.1, 0.3]}


@pytest.mark.parametrize("q", [1, 2, 3])
@pytest.mark.parametrize("with_clinic", [True, False], ids=["nested", "patients_only"])
@pytest.mark.parametrize("reml", [True, False], ids=["reml", "ml"])
def test_criterion_gradient_and_modes_match_dense_formulas(nested_data, with_clinic, reml, q):
    y, x, z, patient, clinic = nested_data
    z = np.column_stack([z, z[:, 1] ** 2])[:, :q]
    clinic = clinic if with_clinic else None
    criterion = Criterion(group_statistics(y, x, z, patient, clinic), reml=reml)
    theta = np.array(THETAS[q] + ([0.6] if with_clinic else []))

    ev = criterion.evaluate(theta)
    value, beta, modes, clinic_modes = _dense(theta, y, x, z, patient, clinic, reml)
    assert criterion.deviance(ev) == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(ev.beta, beta, rtol=1e-10)
    # group_statistics orders patients by (clinic, label); np.unique orders labels
    # the same way here because labels start with the clinic.
    np.testing.assert_allclose(ev.patient_modes, modes, rtol=1e-9, atol=1e-12)
    if with_clinic:
        np.testing.assert_allclose(ev.clinic_modes, clinic_modes, rtol=1e-9)

    h = 1e-6
    numeric = [
        (
            _dense(theta + h * e, y, x, z, patient, clinic, reml)[0]
            - _dense(theta - h * e, y, x, z, patient, clinic, reml)[0]
        )
        / (2 * h)
        for e in np.eye(theta.size)
    ]
    np.testing.assert_allclose(criterion.deviance_gradient(ev), numeric, rtol=1e-6, atol=1e-6)


def test_zero_theta_is_ordinary_least_squares(nested_data):
    y, x, z, patient, _ = nested_data
    criterion = Criterion(group_statistics(y, x, z, patient), reml=False)
    ev = criterion.evaluate(np.zeros(criterion.n_theta))
    beta, rss, *_ = np.linalg.lstsq(x, y, rcond=None)
    np.testing.assert_allclose(ev.beta, beta, rtol=1e-10)
    assert ev.r2 == pytest.approx(float(rss[0]), rel=1e-10)
    assert ev.logdet_v == pytest.approx(0.0, abs=1e-12)
