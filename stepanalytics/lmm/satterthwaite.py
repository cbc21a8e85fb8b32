"""Satterthwaite degrees of freedom for fixed-effect contrasts, as lmerTest computes them.

For a contrast L (one row), with C(v) = cov(beta) as a function of the
variance parameters v = (theta, sigma), and A = 2 H^{-1} the asymptotic
covariance of v (H the Hessian of the deviance -2 log L(v), REML or ML, at
the optimum):

    df = 2 (L C L')^2 / (g' A g),   g_k = L (dC / dv_k) L'.

This is lmerTest's recipe (Kuznetsova, Brockhoff & Christensen 2017,
J Stat Softw 82(13), section 3; ``lmerTest:::as_lmerModLT``): the same
parameterisation (lme4's theta and the residual SD sigma), a generalised
inverse of H over its eigenvalues above 1e-8, and the same warnings.  lmerTest
differentiates numerically with ``numDeriv``; here the theta-block of H comes
from central differences of the *exact* gradient (step 1e-4 relative, error
about 1e-8 relative), the sigma rows are analytic, and dC/dtheta comes from
the same perturbed evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stepanalytics.lmm.criterion import Criterion
from stepanalytics.lmm.optimise import numerical_jacobian

Array = NDArray[np.floating[Any]]

#: Eigenvalues of H within this distance of zero count as zero (lmerTest's tol).
EIGEN_TOL = 1e-8


@dataclass(frozen=True)
class VarparInference:
    """Curvature of the deviance in (theta, sigma) and the Jacobian of cov(beta).

    Attributes
    ----------
    varpar : ndarray
        (theta..., sigma) at the optimum.
    hessian : ndarray
        Hessian of the unprofiled deviance in ``varpar``.
    varpar_cov : ndarray
        2 H^-1 (generalised inverse), lmerTest's ``vcov_varpar``.
    cov_beta_jacobian : ndarray (n_varpar, p, p)
        d cov(beta) / d varpar[k] in slice k.
    warnings : tuple of str
        Negative or zero eigenvalues of H, in lmerTest's words.
    """

    varpar: Array
    hessian: Array
    varpar_cov: Array
    cov_beta_jacobian: Array
    warnings: tuple[str, ...] = ()


def varpar_inference(criterion: Criterion, theta: Array, sigma: float) -> VarparInference:
    """Differentiate the deviance and cov(beta) at the optimum (see module notes)."""
    p = criterion.stats.p
    n_theta = criterion.n_theta

    def pieces(t: Array) -> Array:
        ev = criterion.evaluate(t, gradient=True)
        grad_theta = criterion.varpar_deviance_gradient(ev, sigma)[:n_theta]
        return np.r_[grad_theta, np.linalg.inv(ev.sxx).ravel()]

    at_opt = criterion.evaluate(theta, gradient=True)
    if at_opt.grad_r2 is None:  # pragma: no cover - evaluate(gradient=True) always sets it
        raise RuntimeError("gradient missing")
    jac = numerical_jacobian(pieces, np.asarray(theta, float), richardson=False)
    hessian = np.empty((n_theta + 1, n_theta + 1))
    hessian[:n_theta, :n_theta] = 0.5 * (jac[:, :n_theta] + jac[:, :n_theta].T)
    # d2/dtheta dsigma of r2/sigma^2 and d2/dsigma2 of r2/sigma^2 + n log(2 pi sigma^2).
    hessian[:n_theta, n_theta] = hessian[n_theta, :n_theta] = -2.0 * at_opt.grad_r2 / sigma**3
    hessian[n_theta, n_theta] = 6.0 * at_opt.r2 / sigma**4 - 2.0 * criterion.n_eff / sigma**2

    sxx_inv = np.linalg.inv(at_opt.sxx)
    cov_jac = np.empty((n_theta + 1, p, p))
    cov_jac[:n_theta] = sigma**2 * jac[:, n_theta:].reshape(n_theta, p, p)
    cov_jac[n_theta] = 2.0 * sigma * sxx_inv

    values, vectors = np.linalg.eigh(hessian)
    warnings = []
    negative, zero = values < -EIGEN_TOL, np.abs(values) <= EIGEN_TOL
    if negative.any():
        warnings.append(
            f"Model failed to converge with {int(negative.sum())} negative eigenvalue(s) of the "
            "deviance Hessian: degrees of freedom are unreliable."
        )
    if zero.any():
        warnings.append(
            f"Model may not have converged with {int(zero.sum())} eigenvalue(s) of the deviance "
            "Hessian close to zero (often a variance on its boundary)."
        )
    keep = values > EIGEN_TOL
    inverse = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    return VarparInference(
        varpar=np.r_[theta, sigma],
        hessian=hessian,
        varpar_cov=2.0 * inverse,
        cov_beta_jacobian=cov_jac,
        warnings=tuple(warnings),
    )


def satterthwaite_df(inference: VarparInference, cov_beta: Array, contrast: ArrayLike) -> float:
    """Satterthwaite df of one contrast ``L`` (a vector of length p).

    Examples
    --------
    One variance parameter sigma = 2 with var(sigma) = 0.5, and cov(beta) =
    sigma^2 / 10 = 0.4 with derivative 2 sigma / 10 = 0.4: df = 2 * 0.4^2 /
    (0.4 * 0.5 * 0.4) = 4.

    >>> inf = VarparInference(np.array([2.0]), np.eye(1), np.array([[0.5]]),
    ...                       np.array([[[0.4]]]))
    >>> round(satterthwaite_df(inf, np.array([[0.4]]), [1.0]), 6)
    4.0
    """
    vec = np.asarray(contrast, dtype=np.float64).ravel()
    variance = float(vec @ cov_beta @ vec)
    grad = np.einsum("i,kij,j->k", vec, inference.cov_beta_jacobian, vec)
    denominator = float(grad @ inference.varpar_cov @ grad)
    if denominator <= 0.0:
        return float("inf")
    return 2.0 * variance**2 / denominator
