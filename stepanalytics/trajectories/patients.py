"""Patient-level fitted curves and random effects (BLUPs).

These frames carry patient ids: they are for the clinical team and the
researcher, never for a committee report (the report layer shows curves
without ids, and only for samples).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError
from stepanalytics.trajectories.result import TrajectoryResult


def patient_curves(
    result: TrajectoryResult,
    *,
    patients: Sequence[object] | None = None,
    n: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Observed scores with the model's population and patient-specific fitted values.

    Parameters
    ----------
    result : TrajectoryResult
    patients : sequence, optional
        Patient ids to return (default: all, or a sample of ``n``).
    n : int, optional
        Return a random sample of ``n`` patients (seeded).
    seed : int, default 0

    Returns
    -------
    DataFrame
        ``<groups>, <time>, observed, fitted`` (X beta + Z b_i, the patient's
        own curve, plus the clinic's random intercept when one is fitted),
        ``population`` (X beta: the curve of a patient with the same
        covariates and average random effects) and ``residual``.

    Notes
    -----
    R equivalent: ``fitted(fit)`` and ``predict(fit, re.form = NA)``.
    """
    design, fit = result.design, result.fit
    if design is None or fit is None:
        raise UsageError("This result carries no fitted model.")
    problem = design.problem
    population = problem.x @ fit.beta
    effects = fit.patient_effects[problem.patient_codes]
    fitted = population + np.einsum("nq,nq->n", problem.z, effects)
    if fit.clinic_effects is not None and problem.clinic_codes is not None:
        fitted = fitted + fit.clinic_effects[problem.clinic_codes]
    frame = pd.DataFrame({design.groups: design.frame[design.groups].to_numpy()})
    if design.time is not None:
        frame[design.time] = design.frame[design.time].to_numpy()
    frame["observed"] = problem.y
    frame["fitted"] = fitted
    frame["population"] = population
    frame["residual"] = problem.y - fitted
    chosen = _chosen_patients(problem.patient_labels, patients=patients, n=n, seed=seed)
    if chosen is not None:
        frame = frame[frame[design.groups].isin(chosen)].reset_index(drop=True)
    return frame


def patient_effects(result: TrajectoryResult) -> pd.DataFrame:
    """Each patient's random effects (deviation from the fixed effects) and measurement count.

    Notes
    -----
    R equivalent: ``ranef(fit)``.  Shrunk towards zero for patients with few
    measurements, as they should be.
    """
    design, fit = result.design, result.fit
    if design is None or fit is None:
        raise UsageError("This result carries no fitted model.")
    problem = design.problem
    frame = pd.DataFrame(fit.patient_effects, columns=list(problem.random_names))
    frame.insert(0, design.groups, problem.patient_labels)
    frame["n_measurements"] = np.bincount(problem.patient_codes, minlength=problem.n_patients)
    return frame


def clinic_effects(result: TrajectoryResult) -> pd.DataFrame:
    """Each clinic's random intercept (BLUP) with its numbers of patients and measurements.

    Only for models fitted with a clinic random intercept
    (``fit_trajectory(..., clinic_effect="random")``).  Shrunk towards zero
    for small clinics; the table holds no patient ids.

    Notes
    -----
    R equivalent: ``ranef(fit)$clinic_id``.
    """
    design, fit = result.design, result.fit
    if design is None or fit is None:
        raise UsageError("This result carries no fitted model.")
    problem = design.problem
    if fit.clinic_effects is None or problem.clinic_codes is None or problem.clinic_labels is None:
        raise UsageError(
            "This model has no clinic random intercept; fit it with clinic_effect='random'."
        )
    n_clinics = problem.clinic_labels.size
    first_rows = np.r_[0, np.flatnonzero(np.diff(problem.patient_codes)) + 1]
    return pd.DataFrame(
        {
            design.outer_groups or "clinic": problem.clinic_labels,
            "Intercept": fit.clinic_effects,
            "n_patients": np.bincount(problem.clinic_codes[first_rows], minlength=n_clinics),
            "n_measurements": np.bincount(problem.clinic_codes, minlength=n_clinics),
        }
    )


def _chosen_patients(
    labels: np.ndarray, *, patients: Sequence[object] | None, n: int | None, seed: int
) -> np.ndarray | None:
    if patients is not None:
        wanted = np.asarray(list(patients), dtype=object)
        unknown = [p for p in wanted if p not in set(labels.tolist())]
        if unknown:
            raise UsageError(f"{len(unknown)} of the requested patients are not in the model.")
        return wanted
    if n is None:
        return None
    if n < 1:
        raise UsageError("n must be a positive number of patients.")
    rng = np.random.default_rng(seed)
    return rng.choice(labels, size=min(int(n), labels.size), replace=False)
