"""Per-patient sufficient statistics of a linear mixed model.

After one pass over the rows, everything the REML/ML criterion needs lives in
a few small arrays per patient (Z'Z, Z'[X y], and with a clinic level also the
column sums of [X y 1]), so each later evaluation of the likelihood costs
O(patients), not O(rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from stepanalytics.errors import AnalysisError, UsageError

Array = NDArray[np.floating[Any]]


@dataclass(frozen=True)
class GroupStats:
    """Sufficient statistics in entry-major layout (see :mod:`.smallmat`).

    Attributes
    ----------
    n_obs, p, q : int
        Rows, fixed-effect columns, random-effect columns per patient.
    ztz : ndarray (q, q, N)
        Z_i'Z_i per patient.
    ztr : ndarray (q, k, N)
        Z_i'R_i with R = [X, y] (k = p + 1) or, with clinics, R = [X, y, 1] (k = p + 2).
    rtr : ndarray (k, k)
        R'R summed over all rows.
    r_sums : ndarray (k, N) or None
        1'R_i per patient (clinic model only).
    clinic_starts : ndarray (J,) or None
        Position of each clinic's first patient; patients are sorted by clinic.
    clinic_of_patient : ndarray (N,) or None
        Clinic index of each patient.
    patient_labels, clinic_labels : ndarray
        Labels in the internal order (patients sorted by clinic, then label).
    n_per_patient : ndarray (N,)
        Number of rows of each patient.
    y_shift, intercept_column, intercept_value : float, int or None, float
        When X has a constant column (value ``intercept_value``), y is centred
        before the cross products are formed (their differences then lose
        fewer digits); that column's coefficient must be raised by
        ``y_shift / intercept_value``.
    """

    n_obs: int
    p: int
    q: int
    ztz: Array
    ztr: Array
    rtr: Array
    r_sums: Array | None
    clinic_starts: NDArray[np.intp] | None
    clinic_of_patient: NDArray[np.intp] | None
    patient_labels: NDArray[np.object_]
    clinic_labels: NDArray[np.object_] | None
    n_per_patient: NDArray[np.intp]
    y_shift: float = 0.0
    intercept_column: int | None = None
    intercept_value: float = 1.0

    @property
    def n_patients(self) -> int:
        return int(self.ztz.shape[2])

    @property
    def n_clinics(self) -> int:
        return 0 if self.clinic_starts is None else int(self.clinic_starts.size)


def _as_matrix(values: ArrayLike, name: str, n_rows: int | None) -> Array:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2:
        raise UsageError(
            f"{name} must be a 1- or 2-dimensional array, got {matrix.ndim} dimensions."
        )
    if n_rows is not None and matrix.shape[0] != n_rows:
        raise UsageError(
            f"{name} has {matrix.shape[0]} rows but y has {n_rows}; pass arrays built from the "
            "same rows."
        )
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        rows = ", ".join(str(int(r) + 1) for r in np.flatnonzero(bad)[:10])
        raise AnalysisError(
            f"{name} has missing or infinite values in {int(bad.sum())} rows (rows {rows}). "
            "Drop or impute those rows before fitting; nothing is dropped silently."
        )
    return np.ascontiguousarray(matrix)


def _labels(values: ArrayLike, name: str, n_rows: int) -> tuple[NDArray[np.intp], np.ndarray]:
    # Keep the labels' own dtype: factorising integers is much faster than objects.
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(values)
    if len(series) != n_rows:
        raise UsageError(f"{name} has {len(series)} entries but y has {n_rows}.")
    missing = series.isna().to_numpy()
    if missing.any():
        rows = ", ".join(str(int(r) + 1) for r in np.flatnonzero(missing)[:10])
        raise AnalysisError(
            f"{name} is missing in {int(missing.sum())} rows (rows {rows}); every row needs a "
            f"{name} label."
        )
    codes, labels = pd.factorize(series, sort=True)
    return codes.astype(np.intp), np.asarray(labels, dtype=object)


def _check_nesting(
    patient_codes: NDArray[np.intp], clinic_codes: NDArray[np.intp], labels: np.ndarray
) -> None:
    pairs = pd.DataFrame({"p": patient_codes, "c": clinic_codes}).drop_duplicates()
    clinics_per_patient = pairs.groupby("p").size()
    crossed = clinics_per_patient[clinics_per_patient > 1]
    if len(crossed):
        examples = ", ".join(str(labels[i]) for i in crossed.index[:5])
        raise AnalysisError(
            f"{len(crossed)} patients appear in more than one clinic (e.g. {examples}). The "
            "clinic model needs patients nested in clinics: give each patient one clinic_id "
            "(or label a transferred patient's stays as separate patients)."
        )


def group_statistics(
    y: ArrayLike,
    x: ArrayLike,
    z: ArrayLike,
    groups: ArrayLike,
    clinic: ArrayLike | None = None,
) -> GroupStats:
    """Compute per-patient sufficient statistics from row-level arrays.

    Parameters
    ----------
    y : array (n,)
        Response.
    x : array (n, p)
        Fixed-effects design.
    z : array (n, q)
        Random-effects design of the patient level.
    groups : array (n,)
        Patient labels.
    clinic : array (n,), optional
        Clinic labels; patients must be nested in clinics.

    Returns
    -------
    GroupStats

    Examples
    --------
    Patient a has rows (x, y) = (0, 1), (1, 2), patient b has (2, 4); Z is 1:

    >>> s = group_statistics([1.0, 2.0, 4.0], [0.0, 1.0, 2.0], [1.0, 1.0, 1.0], ["a", "a", "b"])
    >>> s.ztz[0, 0]
    array([2., 1.])
    >>> s.ztr[0]
    array([[1., 2.],
           [3., 4.]])
    """
    y_vec = np.asarray(y, dtype=np.float64).ravel()
    n_obs = y_vec.size
    y_col = _as_matrix(y_vec, "y", None)
    x_mat = _as_matrix(x, "X", n_obs)
    z_mat = _as_matrix(z, "Z", n_obs)
    intercept_column, y_shift = _centring(y_vec, x_mat)
    y_col = y_col - y_shift
    intercept_value = 1.0 if intercept_column is None else float(x_mat[0, intercept_column])
    patient_codes, patient_labels = _labels(groups, "patient", n_obs)
    clinic_codes: NDArray[np.intp] | None = None
    clinic_labels = None
    if clinic is not None:
        clinic_codes, clinic_labels = _labels(clinic, "clinic", n_obs)
        _check_nesting(patient_codes, clinic_codes, patient_labels)
        order = np.lexsort((patient_codes, clinic_codes))
    else:
        order = np.argsort(patient_codes, kind="stable")

    sorted_codes = patient_codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    patient_in_order = patient_labels[sorted_codes[starts]]

    parts = [x_mat[order], y_col[order]]
    if clinic_codes is not None:
        parts.append(np.ones((n_obs, 1)))
    r_rows = np.hstack(parts)
    z_rows = z_mat[order]
    q = z_rows.shape[1]
    ztz = np.stack([np.add.reduceat(z_rows[:, [a]] * z_rows, starts, axis=0).T for a in range(q)])
    ztr = np.stack([np.add.reduceat(z_rows[:, [a]] * r_rows, starts, axis=0).T for a in range(q)])

    r_sums = clinic_starts = clinic_of_patient = None
    if clinic_codes is not None:
        r_sums = np.add.reduceat(r_rows, starts, axis=0).T.copy()
        clinic_of_patient = clinic_codes[order][starts].astype(np.intp)
        clinic_starts = np.flatnonzero(
            np.r_[True, clinic_of_patient[1:] != clinic_of_patient[:-1]]
        ).astype(np.intp)
        # Clinic codes in patient order are sorted, so runs are the clinics 0..J-1.
        clinic_labels = np.asarray(clinic_labels)[clinic_of_patient[clinic_starts]]
        clinic_of_patient = (np.cumsum(np.r_[True, np.diff(clinic_of_patient) != 0]) - 1).astype(
            np.intp
        )

    return GroupStats(
        n_obs=n_obs,
        p=x_mat.shape[1],
        q=q,
        ztz=np.ascontiguousarray(ztz),
        ztr=np.ascontiguousarray(ztr),
        rtr=r_rows.T @ r_rows,
        r_sums=r_sums,
        clinic_starts=clinic_starts,
        clinic_of_patient=clinic_of_patient,
        patient_labels=np.asarray(patient_in_order, dtype=object),
        clinic_labels=None if clinic_labels is None else np.asarray(clinic_labels, dtype=object),
        n_per_patient=np.diff(np.r_[starts, n_obs]).astype(np.intp),
        y_shift=y_shift,
        intercept_column=intercept_column,
        intercept_value=intercept_value,
    )


def _centring(y: Array, x: Array) -> tuple[int | None, float]:
    """Find a constant column of X; centre y on its mean if there is one.

    The likelihood is unchanged by y -> y - c X_j for a column X_j of X (only
    beta_j moves), so with an intercept y can be centred for free.
    """
    constant = np.flatnonzero((x == x[:1]).all(axis=0) & (x[0] != 0))
    if constant.size == 0:
        return None, 0.0
    return int(constant[0]), float(np.mean(y))
