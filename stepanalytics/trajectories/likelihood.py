"""The linear mixed model likelihood at given variance parameters.

One grouping factor (patients), ``q`` random effects per patient and ``p``
fixed effects:

    y_i = X_i beta + Z_i b_i + e_i,   b_i ~ N(0, sigma^2 Lambda Lambda'),
    e_i ~ N(0, sigma^2 I).

``Lambda`` is the relative Cholesky factor of the random-effects covariance,
and ``theta`` lists its lower-triangular elements column by column, exactly
as lme4 does (``getME(fit, "theta")``).  Every quantity here is computed from
per-patient cross-products (Z_i'Z_i, Z_i'X_i, Z_i'y_i) with the Woodbury
identity, so one evaluation costs O(G q^3 + G q p^2) whatever the number of
visits.

This module does not optimise anything: engines find ``theta``; this module
turns ``theta`` (and ``sigma``) into the deviance, beta, cov(beta) and the
patient effects on the original scale, and is the function that the
Satterthwaite step differentiates (as lmerTest differentiates lme4's
deviance function).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stepanalytics.errors import AnalysisError

LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class CrossProducts:
    """Sufficient statistics of a mixed model problem (one grouping factor)."""

    n_obs: int
    xtx: np.ndarray  # (p, p)
    xty: np.ndarray  # (p,)
    yty: float
    ztz: np.ndarray  # (G, q, q)
    ztx: np.ndarray  # (G, q, p)
    zty: np.ndarray  # (G, q)

    @property
    def n_fixed(self) -> int:
        return int(self.xtx.shape[0])

    @property
    def n_random(self) -> int:
        return int(self.ztz.shape[1])

    @property
    def n_groups(self) -> int:
        return int(self.ztz.shape[0])


def cross_products(
    y: np.ndarray, x: np.ndarray, z: np.ndarray, group_codes: np.ndarray
) -> CrossProducts:
    """Per-group cross-products; rows must be sorted by ``group_codes`` (0..G-1, none empty).

    Examples
    --------
    >>> import numpy as np
    >>> cp = cross_products(np.array([1.0, 2.0, 3.0]), np.ones((3, 1)), np.ones((3, 1)),
    ...                     np.array([0, 0, 1]))
    >>> cp.zty.ravel().tolist()
    [3.0, 3.0]
    """
    starts = np.flatnonzero(np.r_[True, group_codes[1:] != group_codes[:-1]])
    ztz = np.add.reduceat(z[:, :, None] * z[:, None, :], starts, axis=0)
    ztx = np.add.reduceat(z[:, :, None] * x[:, None, :], starts, axis=0)
    zty = np.add.reduceat(z * y[:, None], starts, axis=0)
    return CrossProducts(
        n_obs=int(y.size),
        xtx=x.T @ x,
        xty=x.T @ y,
        yty=float(y @ y),
        ztz=ztz,
        ztx=ztx,
        zty=zty,
    )


def theta_positions(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of theta's elements in Lambda, lme4's column-wise order."""
    rows = [i for j in range(q) for i in range(j, q)]
    cols = [j for j in range(q) for _ in range(j, q)]
    return np.array(rows, dtype=int), np.array(cols, dtype=int)


def theta_to_lambda(theta: np.ndarray, q: int) -> np.ndarray:
    """Relative Cholesky factor Lambda (lower triangular) from lme4-ordered theta."""
    lam = np.zeros((q, q))
    rows, cols = theta_positions(q)
    lam[rows, cols] = theta
    return lam


def lambda_to_theta(lam: np.ndarray) -> np.ndarray:
    """Inverse of :func:`theta_to_lambda`."""
    rows, cols = theta_positions(lam.shape[0])
    return np.asarray(lam[rows, cols], dtype=float)


#: Random-effects covariance structures: lme4's ``(weeks | g)`` and ``(weeks || g)``.
COVARIANCES = ("unstructured", "diagonal")


def free_positions(q: int, covariance: str = "unstructured") -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices in Lambda of the free elements of theta, in lme4's order.

    ``"unstructured"``: the lower triangle column by column; ``"diagonal"``
    (uncorrelated random effects, lme4's ``||``): the diagonal only.
    """
    if covariance == "diagonal":
        return np.arange(q), np.arange(q)
    return theta_positions(q)


def structured_lambda(theta: np.ndarray, q: int, covariance: str = "unstructured") -> np.ndarray:
    """Lambda from theta of a given structure (see :func:`free_positions`)."""
    lam = np.zeros((q, q))
    rows, cols = free_positions(q, covariance)
    lam[rows, cols] = np.asarray(theta, dtype=float)[: rows.size]
    return lam


def full_theta(theta: np.ndarray, q: int, covariance: str = "unstructured") -> np.ndarray:
    """The full lower-triangle theta (zeros where the structure fixes an element)."""
    if covariance == "unstructured":
        return np.asarray(theta, dtype=float)
    return lambda_to_theta(structured_lambda(theta, q, covariance))


def structured_theta(lam: np.ndarray, covariance: str = "unstructured") -> np.ndarray:
    """Inverse of :func:`structured_lambda` (elements the structure fixes are ignored)."""
    rows, cols = free_positions(lam.shape[0], covariance)
    return np.asarray(lam[rows, cols], dtype=float)


def psd_cholesky(matrix: np.ndarray, *, tol: float = 1e-12) -> np.ndarray:
    """Lower Cholesky factor of a positive semi-definite matrix, zero columns where singular.

    A singular fit (a variance at zero or a correlation of +-1) has no ordinary
    Cholesky factor; lme4 represents it with zeros on Lambda's diagonal, and so
    does this.  Diagonal entries are kept non-negative.
    """
    q = matrix.shape[0]
    lam = np.zeros((q, q))
    scale = max(float(np.max(np.abs(np.diag(matrix)))), 1e-300)
    for j in range(q):
        pivot = matrix[j, j] - lam[j, :j] @ lam[j, :j]
        if pivot <= tol * scale:
            continue
        lam[j, j] = np.sqrt(pivot)
        for i in range(j + 1, q):
            lam[i, j] = (matrix[i, j] - lam[i, :j] @ lam[j, :j]) / lam[j, j]
    return lam


@dataclass(frozen=True)
class ProfiledPieces:
    """Quantities that depend on theta only (sigma profiled out)."""

    beta: np.ndarray
    xtwx: np.ndarray  # X' W^-1 X, with V = sigma^2 W
    rwr: float  # (y - X beta)' W^-1 (y - X beta)
    logdet_w: float  # log |W| = sum_i log |I + Lambda' Z_i'Z_i Lambda|
    logdet_xtwx: float


def profiled_pieces(cp: CrossProducts, theta: np.ndarray) -> ProfiledPieces:
    """GLS estimate of beta and the pieces of the deviance at ``theta``."""
    q = cp.n_random
    lam = theta_to_lambda(np.asarray(theta, dtype=float), q)
    chol = _cholesky_small(_relative_precision(cp, lam))
    logdet_w = 2.0 * float(sum(np.sum(np.log(chol[(j, j)])) for j in range(q)))
    # Whitened blocks: solve L_i c = Lambda' Z_i' [X_i y_i], one row of c per random effect.
    lzx = _left_lambda_t(lam, cp.ztx)  # (G, q, p)
    lzy = cp.zty @ lam  # (G, q)
    white = _solve_lower(chol, [np.column_stack([lzx[:, i, :], lzy[:, i]]) for i in range(q)])
    stacked = np.concatenate(white, axis=0)
    wx, wy = stacked[:, :-1], stacked[:, -1]
    xtwx = cp.xtx - wx.T @ wx
    xtwy = cp.xty - wx.T @ wy
    ytwy = cp.yty - float(wy @ wy)
    try:
        chol_x = np.linalg.cholesky(xtwx)
    except np.linalg.LinAlgError as exc:
        raise AnalysisError(
            "The fixed-effect design is not of full rank at these variance parameters; "
            "some terms are collinear. Remove redundant terms from the formula."
        ) from exc
    beta = np.linalg.solve(xtwx, xtwy)
    rwr = float(ytwy - xtwy @ beta)
    logdet_xtwx = 2.0 * float(np.sum(np.log(np.diag(chol_x))))
    return ProfiledPieces(beta, xtwx, max(rwr, 0.0), logdet_w, logdet_xtwx)


def _left_lambda_t(lam: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Lambda' B_i for a stack B (G, q, k), as one matrix product (fast for tiny q)."""
    g, q, k = blocks.shape
    turned = np.swapaxes(blocks, 1, 2).reshape(g * k, q) @ lam  # rows: (B_i' Lambda)
    return np.swapaxes(turned.reshape(g, k, q), 1, 2)


def _relative_precision(cp: CrossProducts, lam: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Entries (i, j), i >= j, of M_g = I + Lambda' Z_g'Z_g Lambda as arrays over groups."""
    q = cp.n_random
    inner = _left_lambda_t(lam, _left_lambda_t(lam, cp.ztz).swapaxes(1, 2))
    return {
        (i, j): inner[:, i, j] + (1.0 if i == j else 0.0) for j in range(q) for i in range(j, q)
    }


def _cholesky_small(m: dict[tuple[int, int], np.ndarray]) -> dict[tuple[int, int], np.ndarray]:
    """Cholesky factors of many small SPD matrices, entry by entry over the stack.

    numpy's batched cholesky pays a LAPACK call per matrix; for the 1x1 to 4x4
    matrices here, working on one contiguous array per entry is much faster.
    """
    q = max(i for i, _ in m) + 1
    chol: dict[tuple[int, int], np.ndarray] = {}
    for j in range(q):
        pivot = m[(j, j)] - sum((chol[(j, k)] ** 2 for k in range(j)), np.zeros(1))
        chol[(j, j)] = np.sqrt(pivot)
        for i in range(j + 1, q):
            off = m[(i, j)] - sum((chol[(i, k)] * chol[(j, k)] for k in range(j)), np.zeros(1))
            chol[(i, j)] = off / chol[(j, j)]
    return chol


def _solve_lower(
    chol: dict[tuple[int, int], np.ndarray], rhs: list[np.ndarray]
) -> list[np.ndarray]:
    """Forward substitution L c = r for many small systems; ``rhs[i]`` is row i (G, k)."""
    out: list[np.ndarray] = []
    for i, row in enumerate(rhs):
        acc = row.copy()
        for k in range(i):
            acc -= chol[(i, k)][:, None] * out[k]
        out.append(acc / chol[(i, i)][:, None])
    return out


def profiled_sigma(cp: CrossProducts, pieces: ProfiledPieces, *, reml: bool) -> float:
    """Residual SD that maximises the (REML) likelihood at this theta."""
    dof = cp.n_obs - cp.n_fixed if reml else cp.n_obs
    return float(np.sqrt(pieces.rwr / dof))


def deviance(cp: CrossProducts, theta: np.ndarray, sigma: float, *, reml: bool) -> float:
    """-2 log-likelihood (REML or ML) at ``theta`` and residual SD ``sigma``.

    Notes
    -----
    The same function of (theta, sigma) as lmerTest's ``devfun_vp``: the ML
    deviance log|W| + r'W^-1 r / sigma^2 + n log(2 pi sigma^2), plus
    log|X'W^-1 X| - p log(2 pi sigma^2) for REML.
    """
    return _deviance_from(cp, profiled_pieces(cp, theta), float(sigma), reml=reml)


def _deviance_from(cp: CrossProducts, pieces: ProfiledPieces, sigma: float, *, reml: bool) -> float:
    sigma2 = sigma**2
    dev = pieces.logdet_w + pieces.rwr / sigma2 + cp.n_obs * (LOG_2PI + np.log(sigma2))
    if reml:
        dev += pieces.logdet_xtwx - cp.n_fixed * (LOG_2PI + np.log(sigma2))
    return float(dev)


def profiled_deviance(cp: CrossProducts, theta: np.ndarray, *, reml: bool) -> float:
    """Deviance with sigma at its optimum for this theta (what engines minimise)."""
    pieces = profiled_pieces(cp, theta)
    sigma = profiled_sigma(cp, pieces, reml=reml)
    if sigma <= 0.0:
        return float("inf")
    return _deviance_from(cp, pieces, sigma, reml=reml)


def cov_beta(cp: CrossProducts, theta: np.ndarray, sigma: float) -> np.ndarray:
    """Covariance of the fixed effects, sigma^2 (X'W^-1 X)^-1 (lmerTest ``get_covbeta``)."""
    pieces = profiled_pieces(cp, theta)
    return float(sigma) ** 2 * np.linalg.inv(pieces.xtwx)


def patient_effects(cp: CrossProducts, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Conditional modes (BLUPs) of the random effects, one row per group.

    b_i = Lambda (I + Lambda'Z_i'Z_i Lambda)^-1 Lambda' Z_i'(y_i - X_i beta), which is
    the usual Psi Z_i' V_i^-1 (y_i - X_i beta) written without inverting V_i.
    """
    q = cp.n_random
    lam = theta_to_lambda(np.asarray(theta, dtype=float), q)
    m = _left_lambda_t(lam, _left_lambda_t(lam, cp.ztz).swapaxes(1, 2)) + np.eye(q)
    ztr = cp.zty - cp.ztx @ beta
    u = np.linalg.solve(m, (ztr @ lam)[:, :, None])[:, :, 0]
    return np.asarray(u @ lam.T)
