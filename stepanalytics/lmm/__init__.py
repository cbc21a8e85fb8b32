"""Fast linear mixed models from per-patient sufficient statistics.

``fit_lmm`` fits a random intercept and correlated random slopes per patient,
optionally with a random intercept per clinic (patients nested in clinics),
by REML or ML.  After one pass over the rows every likelihood evaluation
costs O(patients); 100,000 patients with 8 visits fit in about a second.

Agreement with lme4 1.1-31 / lmerTest 3.1-3 (tests/lmm/reference/lmm_reference.R,
12 fits: sleepstudy, dietox, a nested clinic model and a singular fit, REML
and ML), worst case over the fits, relative unless marked: fixed effects
1e-9, standard errors 7.6e-7, Satterthwaite df 2.4e-6, patient SDs 1.0e-6,
clinic SD 8e-7, residual SD 2e-7, correlations 3e-7 (absolute),
log-likelihood 4e-9 (absolute).  The tests assert 1e-5 (df 1e-2,
log-likelihood 1e-4), and that the optimum found is never more than 1e-7
below lme4's.

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
