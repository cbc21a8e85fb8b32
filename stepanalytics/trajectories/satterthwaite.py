"""Satterthwaite degrees of freedom for fixed-effect tests, as lmerTest computes them.

statsmodels reports z-tests for mixed models; with few patients or a
between-patient covariate (clinic, baseline severity) the t reference needs
far fewer degrees of freedom than the number of visits.  Satterthwaite's
approximation (Satterthwaite 1946; Giesbrecht & Burns 1985) matches the
variance of a contrast's estimate to a scaled chi-square:

    df = 2 (l C l')^2 / (g' A g),   g_k = l (dC / d varpar_k) l'

where C = cov(beta), varpar = (theta, sigma) and A = 2 H^-1 is the
asymptotic covariance of varpar from the Hessian H of the deviance.  As in
lmerTest (Kuznetsova, Brockhoff & Christensen 2017, J Stat Softw 82(13)),
dC/dvarpar and H are found numerically by Richardson extrapolation and H is
inverted on its positive eigenvalues only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from stepanalytics.trajectories.numderiv import hessian, jacobian

EIGEN_TOL = 1e-8


@dataclass(frozen=True)
class SatterthwaiteState:
    """What every Satterthwaite test of one fitted model needs, computed once."""

    varpar: np.ndarray  # (theta..., sigma)
    cov_beta: np.ndarray  # (p, p)
    jac_cov_beta: np.ndarray  # (k, p, p): d cov(beta) / d varpar_k
    vcov_varpar: np.ndarray  # (k, k)
    hessian_eigenvalues: np.ndarray

    @property
    def n_negative_eigenvalues(self) -> int:
        return int(np.sum(self.hessian_eigenvalues < -EIGEN_TOL))

    @property
    def n_zero_eigenvalues(self) -> int:
        return int(np.sum(np.abs(self.hessian_eigenvalues) <= EIGEN_TOL))


def satterthwaite_state(
    deviance_function: Callable[[np.ndarray], float],
    cov_beta_function: Callable[[np.ndarray], np.ndarray],
    varpar: np.ndarray,
) -> SatterthwaiteState:
    """Differentiate cov(beta) and the deviance at the fitted variance parameters.

    Parameters
    ----------
    deviance_function : callable
        -2 log-likelihood (REML or ML, as fitted) at ``varpar = (theta..., sigma)``.
    cov_beta_function : callable
        cov(beta) at ``varpar``.
    varpar : ndarray
        The fitted variance parameters.

    Notes
    -----
    R equivalent: ``lmerTest::as_lmerModLmerTest`` (slots ``Jac_list`` and
    ``vcov_varpar``), which differentiates lme4's deviance function the same way.

    Examples
    --------
    >>> import numpy as np
    >>> from stepanalytics.trajectories import likelihood as lik
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(10), 4)
    >>> x = np.c_[np.ones(40), np.tile(np.arange(4.0), 10)]
    >>> y = x @ [1.0, 0.5] + rng.normal(size=10)[g] + rng.normal(size=40)
    >>> cp = lik.cross_products(y, x, x[:, :1], g)
    >>> state = satterthwaite_state(
    ...     lambda vp: lik.deviance(cp, vp[:-1], vp[-1], reml=True),
    ...     lambda vp: lik.cov_beta(cp, vp[:-1], vp[-1]),
    ...     np.array([1.0, 1.0]))
    >>> state.jac_cov_beta.shape
    (2, 2, 2)
    """
    varpar = np.asarray(varpar, dtype=float)
    cov_at, dev_at = cov_beta_function, deviance_function
    jac = jacobian(cov_at, varpar)
    hess = hessian(dev_at, varpar)
    values, vectors = np.linalg.eigh(hess)
    keep = values > EIGEN_TOL
    # Generalised inverse on the positive eigenvalues, as lmerTest does.
    h_inv = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    return SatterthwaiteState(
        varpar=varpar,
        cov_beta=cov_at(varpar),
        jac_cov_beta=jac,
        vcov_varpar=2.0 * h_inv,
        hessian_eigenvalues=values,
    )


def state_from_derivatives(
    hessian: np.ndarray,
    cov_beta_jacobian: np.ndarray,
    cov_beta: np.ndarray,
    varpar: np.ndarray,
) -> SatterthwaiteState:
    """The same state from derivatives an engine already has (the fast engine's).

    Parameters
    ----------
    hessian : ndarray (k, k)
        Hessian of the deviance in ``varpar``.
    cov_beta_jacobian : ndarray (k, p, p)
        d cov(beta) / d varpar_k.
    cov_beta : ndarray (p, p)
    varpar : ndarray (k,)

    Examples
    --------
    One variance parameter sigma = 2 with Hessian 4 (so var(sigma) = 2 / 4),
    and cov(beta) = sigma^2 / 10 with derivative 2 sigma / 10:

    >>> import numpy as np
    >>> state = state_from_derivatives(np.array([[4.0]]), np.array([[[0.4]]]),
    ...                                np.array([[0.4]]), np.array([2.0]))
    >>> float(contrast_df(state, np.array([[1.0]]))[0])
    4.0
    """
    hess = 0.5 * (np.asarray(hessian, dtype=float) + np.asarray(hessian, dtype=float).T)
    values, vectors = np.linalg.eigh(hess)
    keep = values > EIGEN_TOL
    h_inv = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    return SatterthwaiteState(
        varpar=np.asarray(varpar, dtype=float),
        cov_beta=np.asarray(cov_beta, dtype=float),
        jac_cov_beta=np.asarray(cov_beta_jacobian, dtype=float),
        vcov_varpar=2.0 * h_inv,
        hessian_eigenvalues=values,
    )


def contrast_df(state: SatterthwaiteState, contrasts: np.ndarray) -> np.ndarray:
    """Satterthwaite df for each row ``l`` of ``contrasts`` (shape (m, p))."""
    rows = np.atleast_2d(np.asarray(contrasts, dtype=float))
    variance = np.einsum("mp,pq,mq->m", rows, state.cov_beta, rows)
    grad = np.einsum("mp,kpq,mq->mk", rows, state.jac_cov_beta, rows)
    denominator = np.einsum("mk,kl,ml->m", grad, state.vcov_varpar, grad)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2.0 * variance**2 / denominator
    return np.where(denominator > 0, df, np.inf)


def contrast_table(
    state: SatterthwaiteState,
    beta: np.ndarray,
    contrasts: np.ndarray,
    *,
    level: float = 0.95,
    names: list[str] | None = None,
) -> pd.DataFrame:
    """t-tests of single-df contrasts l'beta with Satterthwaite df, CI and p-value.

    Notes
    -----
    R equivalent: ``lmerTest::contest(fit, L, joint = FALSE)`` and the
    coefficient table of ``summary()`` of an lmerTest fit.
    """
    rows = np.atleast_2d(np.asarray(contrasts, dtype=float))
    estimate = rows @ beta
    std_error = np.sqrt(np.einsum("mp,pq,mq->m", rows, state.cov_beta, rows))
    df = contrast_df(state, rows)
    t_value = estimate / std_error
    p_value = 2.0 * stats.t.sf(np.abs(t_value), df)
    half = stats.t.ppf(0.5 + level / 2.0, df) * std_error
    frame = pd.DataFrame(
        {
            "estimate": estimate,
            "std_error": std_error,
            "df": df,
            "t_value": t_value,
            "p_value": p_value,
            "ci_lower": estimate - half,
            "ci_upper": estimate + half,
        }
    )
    if names is not None:
        frame.insert(0, "term", names)
    return frame


def f_test(state: SatterthwaiteState, beta: np.ndarray, contrasts: np.ndarray) -> dict[str, float]:
    """Joint F-test of several contrasts (rows of ``contrasts``) with Satterthwaite ddf.

    The contrast covariance is rotated to its eigenvectors; each rotated
    contrast gets its own df nu_m and the denominator df follows Fai &
    Cornelius (1996): E = sum nu_m / (nu_m - 2), ddf = 2E / (E - q), and 2
    when any nu_m <= 2.  R equivalent: ``lmerTest::contest(fit, L, joint = TRUE)``.
    """
    rows = np.atleast_2d(np.asarray(contrasts, dtype=float))
    cov_l = rows @ state.cov_beta @ rows.T
    values, vectors = np.linalg.eigh(cov_l)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    keep = values > max(np.sqrt(np.finfo(float).eps) * values[0], 0.0)
    rotated = vectors[:, keep].T @ rows
    q = int(keep.sum())
    t2 = (rotated @ beta) ** 2 / values[keep]
    f_value = float(t2.sum() / q)
    nu = contrast_df(state, rotated)
    den_df = _f_denominator_df(nu)
    p_value = float(stats.f.sf(f_value, q, den_df))
    return {"f_value": f_value, "num_df": float(q), "den_df": den_df, "p_value": p_value}


def _f_denominator_df(nu: np.ndarray, tol: float = 1e-8) -> float:
    if nu.size == 1 or np.all(np.abs(nu - nu[0]) < tol):
        return float(nu[0])
    if np.any(nu <= 2):
        return 2.0
    expected = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * expected / (expected - nu.size)
