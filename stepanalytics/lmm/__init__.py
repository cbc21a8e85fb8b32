"""Fast linear mixed models from per-patient sufficient statistics.

``fit_lmm`` fits a random intercept and correlated random slopes per patient,
optionally with a random intercept per clinic (patients nested in clinics),
by REML or ML.  After one pass over the rows every likelihood evaluation
costs O(patients); 100,000 patients with 8 visits fit in about a second.
Results agree with lme4/lmerTest to 1e-6 or better
(tests/lmm/reference/lmm_reference.R).

Modules, in data-flow order: ``stats`` (group statistics), ``smallmat``
(batched tiny-matrix algebra), ``criterion`` (profiled REML/ML and exact
gradient), ``start`` and ``optimise`` (starting values, L-BFGS-B, boundary
escape, Newton polish), ``satterthwaite`` (lmerTest df), ``result``
(:class:`LmmFit`), ``fit`` (:func:`fit_lmm`), ``formula`` (lme4-style
formulas via patsy).

Adapting to a trajectory engine interface, field by field:

==========================  ===============================================
needed                      LmmFit
==========================  ===============================================
theta (lme4 order)          ``fit.theta``
sigma                       ``fit.residual_sd``
beta, cov(beta)             ``fit.fixed_effects``, ``fit.cov_fixed``
loglik, REML or ML          ``fit.loglik``, ``fit.reml``
BLUPs per patient           ``fit.patient_effects.loc[labels]`` (by label)
BLUPs per clinic            ``fit.clinic_effects.loc[labels]``
devfun_vp(varpar)           ``fit.varpar_deviance``
get_covbeta(varpar)         ``fit.varpar_cov_beta``
Satterthwaite df            ``fit.df_satterthwaite``, ``fit.contrast(L)``
optimiser runs              ``fit.attempts``, ``fit.converged``, ``fit.warnings``
==========================  ===============================================
"""

from stepanalytics.lmm.fit import fit_lmm
from stepanalytics.lmm.formula import LmmDesign, fit_lmm_formula, lmm_design
from stepanalytics.lmm.result import LmmFit

__all__ = ["LmmDesign", "LmmFit", "fit_lmm", "fit_lmm_formula", "lmm_design"]
