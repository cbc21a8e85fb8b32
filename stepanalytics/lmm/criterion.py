"""The profiled REML / ML criterion and its exact gradient from group statistics.

Model (lme4's formulation, Bates et al. 2015)::

    y = X beta + Z_i b_i + 1 c_j + e,   b_i ~ N(0, sigma^2 Lam Lam'),
    c_j ~ N(0, sigma^2 lam_c^2),         e ~ N(0, sigma^2 I)

with patients i nested in clinics j (the clinic term is optional).  The
parameter vector ``theta`` holds the lower triangle of the relative
covariance factor ``Lam`` column by column (lme4's order), then ``lam_c``.

For one patient, with A = Z'Z and M = I + Lam' A Lam (q x q), Woodbury gives
the patient-level precision P = I - Z W Z' with W = Lam M^{-1} Lam', and
log|I + Z Lam Lam' Z'| = log|M|.  A clinic adds a rank-one term: with
s_j = sum_i 1'P_i 1 and m_j = 1 + lam_c^2 s_j, the clinic precision is
P - lam_c^2 / m_j (P 1)(P 1)', and the log-determinant gains log m_j.  Every
quadratic form u'V^{-1}v the criterion needs (X'V^{-1}X, X'V^{-1}y,
y'V^{-1}y) is therefore a sum of small per-patient and per-clinic terms.

Gradient: dW = H dLam G + (H dLam G)' with G = M^{-1} Lam' and H = I - W A,
so every term that reads tr(dW N) contributes 2 G N H to the matrix K with
d(criterion) = tr(K dLam).  The quadratic forms change as
d(u'V^{-1}v) = -sum_i uh_i' dW_i vh_i with uh_i = Z_i'u_i - kappa_j(u) Z_i'1,
kappa_j(u) = lam_c^2 T_j(u) / m_j, T_j(u) = sum_i 1'P_i u_i.  beta drops out
of the gradient because the criterion is stationary in beta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import linalg

from stepanalytics.errors import AnalysisError
from stepanalytics.lmm import smallmat as sm
from stepanalytics.lmm.stats import GroupStats

Array = NDArray[np.floating[Any]]


@dataclass(frozen=True)
class Evaluation:
    """Pieces of the criterion at one ``theta``, with V the covariance of y over sigma^2.

    ``logdet_v`` is log|V| = sum_i log|M_i| + sum_j log m_j; ``logdet_s`` is
    log|X'V^{-1}X| (``sxx`` is X'V^{-1}X itself); ``r2`` is the penalised
    residual sum of squares (y - X beta)'V^{-1}(y - X beta).  The ``grad_*``
    arrays are their derivatives with respect to ``theta`` and the modes are
    the conditional modes in data units (None when not requested).
    """

    theta: Array
    logdet_v: float
    logdet_s: float
    r2: float
    beta: Array
    sxx: Array
    grad_logdet_v: Array | None = None
    grad_logdet_s: Array | None = None
    grad_r2: Array | None = None
    patient_modes: Array | None = None
    clinic_modes: Array | None = None


class Criterion:
    """Evaluate the profiled deviance of a two- or three-level linear mixed model.

    Parameters
    ----------
    stats : GroupStats
        Sufficient statistics from :func:`~stepanalytics.lmm.stats.group_statistics`.
    reml : bool
        REML criterion (True) or ML deviance (False).
    """

    def __init__(self, stats: GroupStats, *, reml: bool) -> None:
        self.stats = stats
        self.reml = reml
        q = stats.q
        upper_r, upper_c = np.triu_indices(q)
        # Swapping the upper-triangle indices lists the lower triangle column by column.
        self.tri_rows, self.tri_cols = upper_c, upper_r
        self.n_patient_theta = q * (q + 1) // 2
        self.has_clinic = stats.clinic_starts is not None
        self.n_theta = self.n_patient_theta + int(self.has_clinic)
        diag = self.tri_rows == self.tri_cols
        self.diagonal = np.concatenate([diag, np.ones(int(self.has_clinic), dtype=bool)])
        self.n_eff = stats.n_obs - stats.p if reml else stats.n_obs

    def lambda_matrix(self, theta: Array) -> Array:
        """The patient-level relative covariance factor ``Lam`` (q x q, lower)."""
        lam = np.zeros((self.stats.q, self.stats.q))
        lam[self.tri_rows, self.tri_cols] = theta[: self.n_patient_theta]
        return lam

    def evaluate(self, theta: Array, *, gradient: bool = True) -> Evaluation:
        """Compute the criterion pieces (and gradients and conditional modes)."""
        st = self.stats
        p, q = st.p, st.q
        theta = np.asarray(theta, dtype=np.float64)
        lam = self.lambda_matrix(theta)
        m = sm.right_fixed(sm.left_fixed(lam.T, st.ztz), lam)
        for i in range(q):
            m[i, i] += 1.0
        chol = sm.cholesky(m)
        rb = sm.forward_solve(chol, sm.left_fixed(lam.T, st.ztr))
        k = rb.shape[1]
        flat = np.ascontiguousarray(rb.transpose(1, 0, 2)).reshape(k, -1)
        s_full = st.rtr - flat @ flat.T
        logdet_v = 2.0 * float(sum(np.log(chol[i, i]).sum() for i in range(q)))

        clinic = None
        if self.has_clinic:
            clinic = self._clinic_terms(theta[-1], rb)
            s_full = s_full - (clinic["t"] * clinic["weight"]) @ clinic["t"].T
            logdet_v += float(np.log(clinic["m"]).sum())

        sxx = s_full[:p, :p]
        try:
            chol_s = linalg.cholesky(sxx, lower=True)
        except linalg.LinAlgError as err:
            raise AnalysisError(
                "The fixed-effects design is rank deficient (some columns of X are linear "
                "combinations of others); drop or recode the redundant terms."
            ) from err
        beta = linalg.cho_solve((chol_s, True), s_full[:p, p])
        r2 = float(s_full[p, p] - s_full[:p, p] @ beta)
        if not r2 > 0:
            raise AnalysisError(
                "The model fits the data exactly (zero residual variance); the mixed model is "
                "not identifiable. Check that the response varies within patients."
            )
        logdet_s = 2.0 * float(np.log(np.diag(chol_s)).sum())
        if not gradient:
            return Evaluation(theta, logdet_v, logdet_s, r2, self._original_beta(beta), sxx)
        return self._with_gradient(
            theta, lam, chol, chol_s, beta, clinic, (logdet_v, logdet_s, r2, sxx)
        )

    def _clinic_terms(self, lam_c: float, rb: Array) -> dict[str, Array]:
        st = self.stats
        assert st.r_sums is not None and st.clinic_starts is not None
        ones = st.p + 1
        # t_i = 1'P_i [X y 1]: the patient's contribution to the clinic sums.
        t = st.r_sums - np.einsum("an,akn->kn", rb[:, ones], rb)
        totals = np.add.reduceat(t, st.clinic_starts, axis=1)
        m = 1.0 + lam_c**2 * totals[ones]
        return {"t": totals, "m": m, "weight": lam_c**2 / m, "lam": np.array(lam_c)}

    def _with_gradient(
        self,
        theta: Array,
        lam: Array,
        chol: Array,
        chol_s: Array,
        beta: Array,
        clinic: dict[str, Array] | None,
        values: tuple[float, float, float, Array],
    ) -> Evaluation:
        st = self.stats
        p = st.p
        zx = st.ztr[:, :p, :]
        ze = st.ztr[:, p, :] - sm.right_fixed(zx, beta[:, None])[:, 0, :]
        kappa_e = None
        ze_hat = ze
        if clinic is not None:
            ci = st.clinic_of_patient
            sz = st.ztr[:, p + 1, :]
            t_x, t_e = clinic["t"][:p], clinic["t"][p] - beta @ clinic["t"][:p]
            kappa_e = clinic["weight"] * t_e
            ze_hat = ze - kappa_e[ci] * sz
            zx = zx - sz[:, None, :] * (clinic["weight"] * t_x)[:, ci][None]
        # Columns of U: the residual direction, X whitened by S_XX^{-1/2}, and Z'1.
        columns = [ze_hat[:, None, :], sm.right_fixed(zx, np.linalg.inv(chol_s).T)]
        if clinic is not None:
            columns.append(sz[:, None, :])
        u = np.concatenate(columns, axis=1)
        gu = sm.backward_solve(chol, sm.forward_solve(chol, sm.left_fixed(lam.T, u)))
        hu = u - sm.matmul(st.ztz, sm.left_fixed(lam, gu))
        ga = sm.backward_solve(chol, sm.forward_solve(chol, sm.left_fixed(lam.T, st.ztz)))

        k_logdet = 2.0 * ga.sum(axis=2)
        k_s = -2.0 * sm.sum_of_products(gu[:, 1 : 1 + p], hu[:, 1 : 1 + p])
        k_r2 = -2.0 * sm.sum_of_products(gu[:, :1], hu[:, :1])
        grads = [self._theta_gradient(k) for k in (k_logdet, k_s, k_r2)]

        clinic_modes = None
        if clinic is not None:
            weight_i = clinic["weight"][st.clinic_of_patient]
            k_clin = -2.0 * sm.sum_of_products(gu[:, -1:] * weight_i, hu[:, -1:])
            grads[0][: self.n_patient_theta] += self._theta_gradient(k_clin)[: self.n_patient_theta]
            lam_c, m = float(clinic["lam"]), clinic["m"]
            sinv_tx = linalg.cho_solve((chol_s, True), t_x)
            grads[0][-1] = float(np.sum(2.0 * lam_c * clinic["t"][p + 1] / m))
            grads[1][-1] = -float(np.sum(2.0 * lam_c * np.sum(t_x * sinv_tx, axis=0) / m**2))
            grads[2][-1] = -float(np.sum(2.0 * lam_c * t_e**2 / m**2))
            clinic_modes = kappa_e

        # Conditional modes: b_i = Lam M_i^{-1} Lam' zh_i (data units).
        patient_modes = sm.left_fixed(lam, gu[:, :1])[:, 0, :].T
        logdet_v, logdet_s, r2, sxx = values
        return Evaluation(
            theta,
            logdet_v,
            logdet_s,
            r2,
            self._original_beta(beta),
            sxx,
            grad_logdet_v=grads[0],
            grad_logdet_s=grads[1],
            grad_r2=grads[2],
            patient_modes=patient_modes,
            clinic_modes=clinic_modes,
        )

    def _original_beta(self, beta: Array, direction: float = 1.0) -> Array:
        """beta for the original y: undo the centring of y (see GroupStats)."""
        st = self.stats
        if st.intercept_column is None:
            return beta
        out = beta.copy()
        out[st.intercept_column] += direction * st.y_shift / st.intercept_value
        return out

    def centred_beta(self, beta: Array) -> Array:
        """beta for the centred y the group statistics hold (inverse of the above)."""
        return self._original_beta(beta, direction=-1.0)

    def _theta_gradient(self, k: Array) -> Array:
        """Map d/dLam (as the matrix K with d f = tr(K dLam)) to d/dtheta."""
        grad = np.zeros(self.n_theta)
        grad[: self.n_patient_theta] = k[self.tri_cols, self.tri_rows]
        return grad

    # ----------------------------------------------------------------- criteria
    def deviance(self, ev: Evaluation) -> float:
        """Profiled REML criterion or ML deviance (-2 log-likelihood), as lme4 reports."""
        n = self.n_eff
        value = ev.logdet_v + n * (1.0 + np.log(2.0 * np.pi * ev.r2 / n))
        return float(value + (ev.logdet_s if self.reml else 0.0))

    def deviance_gradient(self, ev: Evaluation) -> Array:
        """Gradient of :meth:`deviance` with respect to theta."""
        assert ev.grad_logdet_v is not None and ev.grad_r2 is not None
        grad = ev.grad_logdet_v + (self.n_eff / ev.r2) * ev.grad_r2
        if self.reml:
            assert ev.grad_logdet_s is not None
            grad = grad + ev.grad_logdet_s
        return grad

    def objective(self, theta: Array) -> tuple[float, Array]:
        """Deviance and gradient, the pair scipy's L-BFGS-B asks for."""
        ev = self.evaluate(theta, gradient=True)
        return self.deviance(ev), self.deviance_gradient(ev)

    def varpar_deviance(self, ev: Evaluation, sigma: float) -> float:
        """Unprofiled deviance in (theta, sigma), lmerTest's ``devfun_vp``.

        logdet_v [+ logdet_s] + r2 / sigma^2 + n_eff log(2 pi sigma^2); at
        sigma^2 = r2 / n_eff it equals :meth:`deviance`.
        """
        value = ev.logdet_v + ev.r2 / sigma**2 + self.n_eff * np.log(2.0 * np.pi * sigma**2)
        return float(value + (ev.logdet_s if self.reml else 0.0))

    def varpar_deviance_gradient(self, ev: Evaluation, sigma: float) -> Array:
        """Gradient of the unprofiled deviance in (theta, sigma), lmerTest's ``devfun_vp``.

        The deviance is logdet_v [+ logdet_s] + r2 / sigma^2 + n_eff log(2 pi sigma^2).
        """
        assert ev.grad_logdet_v is not None and ev.grad_r2 is not None
        grad_theta = ev.grad_logdet_v + ev.grad_r2 / sigma**2
        if self.reml:
            assert ev.grad_logdet_s is not None
            grad_theta = grad_theta + ev.grad_logdet_s
        grad_sigma = -2.0 * ev.r2 / sigma**3 + 2.0 * self.n_eff / sigma
        return np.r_[grad_theta, grad_sigma]
