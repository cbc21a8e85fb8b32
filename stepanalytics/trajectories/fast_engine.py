"""The fast engine behind ``fit_trajectory``: :func:`stepanalytics.lmm.fit_lmm` as an engine.

:mod:`stepanalytics.lmm` computes the REML/ML criterion from per-patient
sufficient statistics (Z'Z, Z'X, Z'y per patient, sums per clinic), so one
likelihood evaluation costs O(patients) rather than O(rows), and minimises
it with bounded L-BFGS-B on lme4's relative covariance factor using exact
gradients.  This module only translates: a :class:`MixedProblem` goes in,
an :class:`EngineFit` on the data's own scale comes out, field by field as
listed in :mod:`stepanalytics.lmm`.

Its class of models: one grouping factor (patients) with up to
:data:`~stepanalytics.lmm.fit.MAX_RANDOM_TERMS` correlated random effects
(unstructured covariance), optionally a random intercept per clinic with
patients nested in clinics.  :func:`fast_engine_refusal` says in words why
a problem falls outside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError
from stepanalytics.lmm import LmmFit, fit_lmm
from stepanalytics.lmm.fit import MAX_RANDOM_TERMS
from stepanalytics.trajectories.engines import (
    EngineFit,
    MixedProblem,
    VarparDerivatives,
    attempts_frame,
)

#: Log-likelihoods this close to the best count as the same optimum.
SAME_OPTIMUM = 1e-6


def fast_engine_refusal(problem: MixedProblem) -> str | None:
    """Why the fast engine cannot fit ``problem`` (a phrase), or None when it can.

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.repeat(np.arange(3), 2)
    >>> problem = MixedProblem(np.zeros(6), np.ones((6, 1)), np.ones((6, 9)), codes,
    ...                        np.array(["a", "b", "c"]), ("Intercept",),
    ...                        tuple(f"z{i}" for i in range(9)))
    >>> fast_engine_refusal(problem)
    'handles up to 8 random effects per patient, and this model has 9'
    """
    if problem.n_random > MAX_RANDOM_TERMS:
        return (
            f"handles up to {MAX_RANDOM_TERMS} random effects per patient, and this model "
            f"has {problem.n_random}"
        )
    if problem.covariance != "unstructured":
        return (
            "fits correlated random effects only (an unstructured covariance), and this "
            f"model asks for a {problem.covariance} one"
        )
    return None


def fit_with_fast_engine(
    problem: MixedProblem, *, reml: bool, optimizers: Sequence[str] | None = None
) -> EngineFit:
    """Fit ``problem`` with :func:`stepanalytics.lmm.fit_lmm`.

    Parameters
    ----------
    problem : MixedProblem
        Rows sorted by patient; ``clinic_codes`` adds a clinic random intercept.
    reml : bool
    optimizers : None
        The fast engine has one optimiser; naming statsmodels' optimizers is an error.

    Returns
    -------
    EngineFit
        With ``derivatives`` from the engine's exact gradient, so that the
        Satterthwaite step does not difference the deviance again, and
        ``raw`` the :class:`~stepanalytics.lmm.LmmFit`.

    Notes
    -----
    R equivalent: ``lmerTest::lmer(y ~ X - 1 + (Z - 1 | patient) [+ (1 | clinic)])``.
    The algorithm and its validation against lme4 are in :mod:`stepanalytics.lmm`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> codes = np.repeat(np.arange(40), 5)
    >>> weeks = np.tile(np.arange(5.0), 40)
    >>> y = 30 - weeks + rng.normal(0, 3, 40)[codes] + rng.normal(0, 1, 200)
    >>> x = np.column_stack([np.ones(200), weeks])
    >>> problem = MixedProblem(y, x, x[:, :1], codes, np.arange(40), ("Intercept", "weeks"),
    ...                        ("Intercept",))
    >>> fit = fit_with_fast_engine(problem, reml=True)
    >>> fit.engine, fit.patient_effects.shape
    ('fast', (40, 1))
    """
    if optimizers is not None:
        raise UsageError(
            "The fast engine has its own optimiser (bounded L-BFGS-B with exact gradients); "
            "optimizers= choose statsmodels' optimizers. Leave them out or use "
            "engine='statsmodels'."
        )
    refusal = fast_engine_refusal(problem)
    if refusal is not None:
        raise UsageError(f"The fast engine {refusal}. Use engine='statsmodels'.")
    # Integer codes as labels: factorising them is cheap, and the effects come back
    # indexed by code, which is the order EngineFit wants.
    lmm = fit_lmm(
        problem.y,
        problem.x,
        problem.z,
        problem.patient_codes,
        clinic=problem.clinic_codes,
        reml=reml,
        x_names=problem.fixed_names,
        z_names=problem.random_names,
    )
    derivatives = None
    if lmm.inference is not None:
        derivatives = VarparDerivatives(
            hessian=lmm.inference.hessian, cov_beta_jacobian=lmm.inference.cov_beta_jacobian
        )
    return EngineFit(
        theta=np.asarray(lmm.theta, dtype=float),
        sigma=float(lmm.residual_sd),
        beta=lmm.fixed_effects.to_numpy(dtype=float),
        cov_beta=lmm.cov_fixed.to_numpy(dtype=float),
        loglik=float(lmm.loglik),
        reml=reml,
        patient_effects=_by_code(lmm.patient_effects.to_numpy(), lmm.patient_effects.index),
        deviance_function=lmm.varpar_deviance,
        cov_beta_function=lmm.varpar_cov_beta,
        converged=bool(lmm.converged),
        engine="fast",
        attempts=_attempts(lmm),
        notes=(),
        clinic_effects=None
        if lmm.clinic_effects is None
        else _by_code(lmm.clinic_effects.to_numpy()[:, None], lmm.clinic_effects.index)[:, 0],
        raw=lmm,
        derivatives=derivatives,
    )


def _by_code(values: np.ndarray, codes: pd.Index) -> np.ndarray:
    """Rows put in code order 0..n-1 (the engine orders patients by clinic, then code)."""
    out = np.empty_like(values, dtype=float)
    out[np.asarray(codes, dtype=np.intp)] = values
    return out


def _attempts(lmm: LmmFit) -> pd.DataFrame:
    """The engine's starts in the shared attempts layout.

    The curvature (``hessian_ok``) is checked once, at the chosen optimum, so
    starts that stopped elsewhere get <NA>.
    """
    table = lmm.attempts
    hessian_ok = None
    if lmm.inference is not None:
        hessian_ok = bool(np.all(np.linalg.eigvalsh(lmm.inference.hessian) > -1e-8))
    best = float(table["loglik"].max())
    rows = []
    for row in table.itertuples(index=False):
        same = abs(float(row.loglik) - best) <= SAME_OPTIMUM * max(1.0, abs(best))
        rows.append(
            {
                "optimizer": row.optimizer,
                "start": row.start,
                "converged": bool(row.converged),
                "loglik": float(row.loglik),
                "seconds": float(row.seconds),
                "boundary": bool(row.boundary),
                "hessian_ok": hessian_ok if same else pd.NA,
                "note": str(row.note),
                "chosen": bool(row.chosen),
            }
        )
    return attempts_frame(rows)
