"""LmmFit: everything a fitted linear mixed model reports, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from stepanalytics.errors import UsageError
from stepanalytics.lmm.criterion import Criterion
from stepanalytics.lmm.satterthwaite import VarparInference, satterthwaite_df
from stepanalytics.results import AnalysisResult

Array = NDArray[np.floating[Any]]


def check_level(level: float) -> float:
    """A confidence level strictly between 0 and 1, or a UsageError that says so."""
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise UsageError(f"level must be between 0 and 1 (e.g. 0.95), not {level!r}.")
    return value


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame()


def _empty_series() -> pd.Series:
    return pd.Series(dtype=float)


@dataclass(frozen=True, eq=False)
class LmmFit(AnalysisResult):
    """A linear mixed model fitted by the fast engine (:func:`~stepanalytics.lmm.fit_lmm`).

    ``table`` (and ``to_frame()``) holds one row per fixed effect with columns
    ``term, estimate, std_error, df, t_value, p_value, ci_lower, ci_upper``
    (Satterthwaite df, t intervals at ``level``, 95% by default), as
    ``summary(lmerTest::lmer(...))`` and ``confint(contest(...))``.

    Attributes
    ----------
    fixed_effects : Series
        beta by term.
    cov_fixed : DataFrame
        cov(beta) = sigma^2 (X'V^-1 X)^-1, lme4's ``vcov``.
    df_satterthwaite : Series
        Satterthwaite df per fixed effect (lmerTest).
    theta : ndarray
        Relative covariance factor in lme4's order (patient-level lower triangle
        column by column, then the clinic term), lme4's ``getME(fit, "theta")``.
    random_cov : DataFrame
        Patient-level random-effects covariance matrix sigma^2 Lam Lam' (data units).
    variance_components : DataFrame
        lme4's ``as.data.frame(VarCorr(fit))``: columns ``group, term, other_term,
        variance, sd_or_corr``; rows are the patient SDs, their correlations,
        the clinic SD (if any) and the residual SD.
    clinic_sd, residual_sd : float
        Clinic random-intercept SD (None without a clinic term) and sigma.
    reml : bool
        Whether the REML criterion was optimised.
    loglik, deviance, reml_criterion, aic, bic : float
        log-likelihood (REML or ML), -2 loglik, lme4's REMLcrit (None for ML),
        AIC and BIC with p + len(theta) + 1 parameters, as lme4 counts them.
    n_obs, n_patients, n_clinics : int
        Numbers of rows, patients and clinics.
    patient_effects : DataFrame
        Conditional modes (BLUPs) of the patient effects, one row per patient
        label, one column per random term; lme4's ``ranef(fit)$patient``.
    clinic_effects : Series or None
        Conditional modes of the clinic intercepts.
    converged, singular : bool
        Optimiser converged; some variance (or a correlation) on its boundary
        (lme4's ``isSingular``).
    n_evaluations : int
        Criterion evaluations used by the optimiser.
    inference : VarparInference
        Hessian of the deviance in (theta, sigma), its inverse and the
        Jacobian of cov(beta), for Satterthwaite df of any contrast.
    attempts : DataFrame
        One row per optimiser start (``start, optimizer, converged,
        boundary, evaluations, seconds, note, loglik, chosen``); a start that
        joined an earlier optimum says so in ``note``; ``boundary`` says that
        a diagonal element of the relative factor ended below 1e-4.
    criterion : Criterion
        The likelihood evaluator (holds the group statistics); used by
        :meth:`varpar_deviance` and :meth:`varpar_cov_beta`.
    level : float
        Confidence level of the intervals in ``table`` (``fit_lmm(level=...)``);
        also the default of :meth:`contrast`.
    """

    title: str = "Linear mixed model (fast engine)"
    fixed_effects: pd.Series = field(default_factory=_empty_series)
    cov_fixed: pd.DataFrame = field(default_factory=_empty_frame)
    df_satterthwaite: pd.Series = field(default_factory=_empty_series)
    theta: Array = field(default_factory=lambda: np.zeros(0))
    random_cov: pd.DataFrame = field(default_factory=_empty_frame)
    variance_components: pd.DataFrame = field(default_factory=_empty_frame)
    clinic_sd: float | None = None
    residual_sd: float = float("nan")
    reml: bool = True
    loglik: float = float("nan")
    deviance: float = float("nan")
    reml_criterion: float | None = None
    aic: float = float("nan")
    bic: float = float("nan")
    n_obs: int = 0
    n_patients: int = 0
    n_clinics: int = 0
    patient_effects: pd.DataFrame = field(default_factory=_empty_frame)
    clinic_effects: pd.Series | None = None
    converged: bool = False
    singular: bool = False
    n_evaluations: int = 0
    inference: VarparInference | None = field(default=None, repr=False)
    attempts: pd.DataFrame = field(default_factory=_empty_frame, repr=False)
    criterion: Criterion | None = field(default=None, repr=False, compare=False)
    level: float = 0.95

    def varpar_deviance(self, varpar: ArrayLike) -> float:
        """-2 log-likelihood (REML or ML, as fitted) at ``varpar = (theta..., sigma)``.

        sigma is not profiled out: this is lmerTest's ``devfun_vp``, the
        function whose Hessian gives the covariance of the variance parameters.
        """
        theta, sigma = self._split_varpar(varpar)
        criterion = self._criterion()
        return criterion.varpar_deviance(criterion.evaluate(theta, gradient=False), sigma)

    def varpar_cov_beta(self, varpar: ArrayLike) -> Array:
        """cov(beta) = sigma^2 (X'V^-1 X)^-1 at ``varpar`` (lmerTest's ``get_covbeta``)."""
        theta, sigma = self._split_varpar(varpar)
        ev = self._criterion().evaluate(theta, gradient=False)
        return sigma**2 * np.linalg.inv(ev.sxx)

    def _criterion(self) -> Criterion:
        if self.criterion is None:
            raise UsageError("This LmmFit carries no likelihood (it was built by hand).")
        return self.criterion

    def _split_varpar(self, varpar: ArrayLike) -> tuple[Array, float]:
        values = np.asarray(varpar, dtype=np.float64).ravel()
        if values.size != self.theta.size + 1:
            raise UsageError(
                f"varpar needs {self.theta.size + 1} values (theta..., sigma), got {values.size}."
            )
        return values[:-1], float(values[-1])

    @property
    def x_names(self) -> list[str]:
        """Names of the fixed-effect columns."""
        return [str(n) for n in self.fixed_effects.index]

    @property
    def z_names(self) -> list[str]:
        """Names of the patient-level random-effect columns."""
        return [str(n) for n in self.random_cov.columns]

    def contrast(self, contrast: ArrayLike, *, level: float | None = None) -> pd.DataFrame:
        """Estimate, SE, Satterthwaite df, t test and CI for each row of ``contrast``.

        Parameters
        ----------
        contrast : array (p,) or (m, p)
            Rows of L; the tested hypothesis is L beta = 0.
        level : float, optional
            Confidence level of the interval (default: the fit's ``level``).

        Notes
        -----
        R: ``lmerTest::contest(fit, L, joint = FALSE)``.
        """
        level = self.level if level is None else check_level(level)
        rows = np.atleast_2d(np.asarray(contrast, dtype=np.float64))
        p = len(self.fixed_effects)
        if rows.shape[1] != p or self.inference is None:
            raise UsageError(f"A contrast needs {p} columns, one per fixed effect {self.x_names}.")
        beta, cov = self.fixed_effects.to_numpy(), self.cov_fixed.to_numpy()
        out = []
        for vec in rows:
            estimate = float(vec @ beta)
            se = float(np.sqrt(vec @ cov @ vec))
            df = satterthwaite_df(self.inference, cov, vec)
            t_value = estimate / se
            half = stats.t.ppf(0.5 + level / 2, df) * se
            out.append(
                {
                    "estimate": estimate,
                    "std_error": se,
                    "df": df,
                    "t_value": t_value,
                    "p_value": float(2 * stats.t.sf(abs(t_value), df)),
                    "ci_lower": estimate - half,
                    "ci_upper": estimate + half,
                }
            )
        return pd.DataFrame(out)

    def predict(
        self,
        x: ArrayLike,
        z: ArrayLike | None = None,
        groups: ArrayLike | None = None,
        clinic: ArrayLike | None = None,
    ) -> Array:
        """Population (X beta) or conditional (X beta + Z b_i + c_j) predictions.

        Patients or clinics not seen in the fit get a random effect of zero,
        as ``predict(fit, newdata, allow.new.levels = TRUE)`` in lme4.
        """
        x_mat = np.atleast_2d(np.asarray(x, dtype=np.float64))
        mean = x_mat @ self.fixed_effects.to_numpy()
        if z is None:
            return mean
        if groups is None:
            raise UsageError("Conditional predictions need the patient label of each row.")
        z_mat = np.atleast_2d(np.asarray(z, dtype=np.float64))
        effects = self.patient_effects.reindex(pd.Index(np.asarray(groups, dtype=object)))
        mean = mean + np.sum(z_mat * effects.fillna(0.0).to_numpy(), axis=1)
        if clinic is not None and self.clinic_effects is not None:
            clinic_eff = self.clinic_effects.reindex(pd.Index(np.asarray(clinic, dtype=object)))
            mean = mean + clinic_eff.fillna(0.0).to_numpy()
        return mean

    def predict_se(self, x: ArrayLike) -> Array:
        """Standard error of the population prediction X beta: sqrt(diag(X C X'))."""
        x_mat = np.atleast_2d(np.asarray(x, dtype=np.float64))
        return np.sqrt(np.einsum("ij,jk,ik->i", x_mat, self.cov_fixed.to_numpy(), x_mat))

    def summary(self) -> str:
        """Fixed effects, variance components and fit statistics as plain text."""
        crit = "REML criterion" if self.reml else "deviance"
        value = self.reml_criterion if self.reml else self.deviance
        lines = [
            self.title,
            f"{'REML' if self.reml else 'ML'} fit: {self.n_obs} rows, {self.n_patients} "
            f"patients" + (f", {self.n_clinics} clinics" if self.n_clinics else ""),
            f"{crit} {value:.4f}; logLik {self.loglik:.4f}; AIC {self.aic:.2f}; BIC {self.bic:.2f}",
            "",
            f"Fixed effects (Satterthwaite df, {self.level:.0%} intervals):",
            self.table.round(4).to_string(index=False),
            "",
            "Random effects:",
            self.variance_components.round(4).to_string(index=False),
        ]
        if self.warnings:
            lines += ["", "Warnings:", *(f"  - {w}" for w in self.warnings)]
        return "\n".join(lines)
