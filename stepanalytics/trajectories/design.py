"""From a long DataFrame and formulas to the arrays an engine fits.

Formulas are patsy formulas, as in statsmodels and R: ``score ~ weeks +
C(sex)`` for the fixed effects and ``~weeks`` (or ``1`` for a random
intercept only) for the random effects per group.  Every row that cannot be
used (a missing value in a column the model needs) is either refused with a
message that names the columns and counts, or - with ``missing="drop"`` -
left out and reported; nothing is dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
import patsy
from scipy import linalg

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.lmm.fit import too_many_random_effects
from stepanalytics.trajectories.engines import MixedProblem
from stepanalytics.trajectories.likelihood import COVARIANCES

MISSING_POLICIES = ("raise", "drop")


@dataclass(frozen=True)
class Design:
    """The model's data: rows used (in fitting order), matrices and how to rebuild them."""

    frame: pd.DataFrame
    problem: MixedProblem
    x_info: patsy.DesignInfo
    z_info: patsy.DesignInfo
    response: str
    formula: str
    re_formula: str
    groups: str
    time: str | None
    n_dropped_rows: int = 0
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    outer_groups: str | None = None
    covariance: str = "unstructured"

    def fixed_matrix_for(self, new: pd.DataFrame) -> np.ndarray:
        """Fixed-effect design matrix for new rows, with the fit's codings and transforms."""
        (x,) = patsy.build_design_matrices([self.x_info], new, NA_action="raise")
        return np.asarray(x, dtype=float)

    def lme4_formula(self) -> str:
        """The model in lme4's notation, e.g. ``score ~ weeks + (weeks | patient_id)``."""
        bar = "||" if self.covariance == "diagonal" else "|"
        text = f"{self.formula} + ({self.re_formula} {bar} {self.groups})"
        if self.outer_groups is not None:
            text += f" + (1 | {self.outer_groups})"
        return text

    def variables(self) -> list[str]:
        """Columns the right-hand sides of the formulas refer to (not the response)."""
        rhs = self.formula.split("~", 1)[-1]
        return _referenced_columns(f"{rhs} + {self.re_formula}", self.frame.columns)


def build_design(
    data: pd.DataFrame,
    *,
    formula: str,
    re_formula: str = "1",
    groups: str = "patient_id",
    outer_groups: str | None = None,
    re_covariance: str = "unstructured",
    time: str | None = None,
    missing: str = "raise",
) -> Design:
    """Check the data against the formulas and build a :class:`Design`.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"patient_id": list("aaabbbccc"), "weeks": [0, 4, 8] * 3,
    ...                    "score": [40.0, 35, 33, 50, 49, 44, 30, 20, 18]})
    >>> d = build_design(df, formula="score ~ weeks", re_formula="~weeks", time="weeks")
    >>> d.problem.fixed_names, d.problem.n_patients
    (('Intercept', 'weeks'), 3)
    """
    if not isinstance(data, pd.DataFrame):
        raise UsageError(
            f"data must be a pandas DataFrame in long form, not {type(data).__name__}."
        )
    if re_covariance not in COVARIANCES:
        raise UsageError(
            f"re_covariance must be one of {COVARIANCES} (correlated random effects, lme4's "
            f"'|', or uncorrelated, lme4's '||'), not {re_covariance!r}."
        )
    if missing not in MISSING_POLICIES:
        raise UsageError(f"missing must be one of {MISSING_POLICIES}, not {missing!r}.")
    if groups not in data.columns:
        raise UsageError(
            f"The grouping column {groups!r} is not in the data. "
            f"Columns present: {', '.join(map(str, data.columns))}."
        )
    if time is not None and time not in data.columns:
        raise UsageError(f"The time column {time!r} is not in the data.")
    if outer_groups is not None and outer_groups not in data.columns:
        raise UsageError(
            f"The column {outer_groups!r} for the outer random intercept is not in the data."
        )
    if outer_groups is not None and outer_groups == groups:
        raise UsageError("outer_groups must be a different column from groups.")
    id_columns = [groups] + ([outer_groups] if outer_groups is not None else [])
    re_formula = _normalise_re(re_formula)
    text = f"{formula} + {re_formula}"
    frame = _patsy_friendly(_model_columns(data, text, [*id_columns, time]), text)
    y_ser, x_df, z_df = _matrices(frame, formula, re_formula)
    kept = x_df.index.intersection(z_df.index)
    kept = kept[frame.loc[kept, id_columns].notna().all(axis=1).to_numpy()]
    notes: list[str] = []
    n_dropped = len(frame) - len(kept)
    if n_dropped:
        problems = _missing_summary(frame, f"{formula} + {re_formula}", id_columns)
        if missing == "raise":
            raise AnalysisError(
                f"{n_dropped} of {len(frame)} rows have missing values in columns the model "
                f"uses ({problems}). Fill them in, choose other covariates, or pass "
                "missing='drop' to leave those rows out (the result will say how many)."
            )
        if len(kept) == 0:
            raise AnalysisError(
                f"Every row has a missing value in a column the model uses ({problems}); "
                "nothing is left to fit. Choose other covariates or fill the values in."
            )
        lost = frame[groups].nunique() - frame.loc[kept, groups].nunique()
        notes.append(
            f"{n_dropped} rows with missing values were left out ({problems}); "
            f"{lost} patients had no row left."
        )
        frame = frame.loc[kept].reset_index(drop=True)
        y_ser, x_df, z_df = _matrices(frame, formula, re_formula)
    order_cols = [groups] + ([time] if time is not None else [])
    order = frame.sort_values(order_cols, kind="stable").index.to_numpy()
    frame = frame.loc[order].reset_index(drop=True)
    x = np.asarray(x_df.loc[order], dtype=float)
    z = np.asarray(z_df.loc[order], dtype=float)
    y = np.asarray(y_ser.loc[order], dtype=float)
    codes, labels = pd.factorize(frame[groups], sort=True)
    clinic_codes = clinic_labels = None
    if outer_groups is not None:
        clinic_codes, clinic_labels = _outer_codes(frame, groups, outer_groups, codes, labels)
        notes.extend(_outer_notes(clinic_labels, outer_groups))
    problem = MixedProblem(
        y=y,
        x=x,
        z=z,
        patient_codes=np.asarray(codes, dtype=np.intp),
        patient_labels=np.asarray(labels),
        fixed_names=tuple(x_df.columns),
        random_names=tuple(z_df.columns),
        clinic_codes=clinic_codes,
        clinic_labels=clinic_labels,
        covariance=re_covariance,
    )
    _check_problem(problem, groups)
    notes.extend(_sparse_notes(problem))
    return Design(
        frame=frame,
        problem=problem,
        x_info=x_df.design_info,
        z_info=z_df.design_info,
        response=str(y_ser.name),
        formula=formula,
        re_formula=re_formula,
        groups=groups,
        time=time,
        n_dropped_rows=n_dropped,
        notes=tuple(notes),
        outer_groups=outer_groups,
        covariance=re_covariance,
    )


def _model_columns(data: pd.DataFrame, text: str, extra: list[str | None]) -> pd.DataFrame:
    """Only the columns the formulas (and grouping, time) use: at registry scale every
    copy of a wide frame costs time and memory.  Formulas that quote names with Q() keep
    every column (their names need not look like identifiers)."""
    if "Q(" in text:
        return data.reset_index(drop=True)
    wanted = [*_referenced_columns(text, data.columns), *(c for c in extra if c is not None)]
    return data[list(dict.fromkeys(wanted))].reset_index(drop=True)


def _normalise_re(re_formula: str) -> str:
    text = str(re_formula).strip()
    return text[1:].strip() if text.startswith("~") else text


def _matrices(
    frame: pd.DataFrame, formula: str, re_formula: str
) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    try:
        y_df, x_df = patsy.dmatrices(formula, frame, NA_action="drop", return_type="dataframe")
        z_df = patsy.dmatrix(re_formula, frame, NA_action="drop", return_type="dataframe")
    except (patsy.PatsyError, NameError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"Could not build the model from formula {formula!r} and random effects "
            f"{re_formula!r}: {exc}. Check the column names and the formula syntax."
        ) from exc
    if y_df.shape[1] != 1:
        raise UsageError(f"The response of {formula!r} must be one numeric column.")
    if z_df.shape[1] == 0:
        raise UsageError("The random-effects formula has no terms; use '1' for a random intercept.")
    y = y_df.iloc[:, 0]
    if not np.all(np.isfinite(y.to_numpy(dtype=float))):
        raise AnalysisError(f"The response {y.name!r} has infinite values; fix or remove them.")
    return y, x_df, z_df


def _patsy_friendly(frame: pd.DataFrame, text: str) -> pd.DataFrame:
    """pandas' nullable dtypes (Int64, boolean, string) as plain numpy ones patsy reads."""
    frame = frame.copy()
    for column in _referenced_columns(text, frame.columns):
        values = frame[column]
        if not isinstance(values.dtype, pd.api.extensions.ExtensionDtype) or isinstance(
            values.dtype, pd.CategoricalDtype
        ):
            continue
        if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype):
            frame[column] = values.astype(object).where(values.notna(), np.nan)
        elif pd.api.types.is_integer_dtype(values.dtype) and not values.isna().any():
            frame[column] = values.astype("int64")
        else:
            frame[column] = values.astype("float64")
    return frame


def _referenced_columns(text: str, columns: pd.Index) -> list[str]:
    tokens = set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", text))
    return [str(c) for c in columns if str(c) in tokens]


def _missing_summary(frame: pd.DataFrame, text: str, id_columns: list[str]) -> str:
    used = [*_referenced_columns(text, frame.columns), *id_columns]
    counts = {c: int(frame[c].isna().sum()) for c in dict.fromkeys(used)}
    parts = [f"{c}: {n} missing" for c, n in counts.items() if n]
    return "; ".join(parts) if parts else "values patsy could not use"


def _outer_codes(
    frame: pd.DataFrame, groups: str, outer: str, codes: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the outer factor per row; every group must sit inside one outer level."""
    outer_codes, outer_labels = pd.factorize(frame[outer], sort=True)
    # Rows are sorted by group: a change of outer level inside a run of one group
    # means that group belongs to several outer levels (crossed, not nested).
    changes = (np.diff(codes) == 0) & (np.diff(outer_codes) != 0)
    if changes.any():
        crossed = np.unique(codes[1:][changes])
        examples = ", ".join(str(labels[c]) for c in crossed[:5])
        raise AnalysisError(
            f"{crossed.size} {groups} values appear under more than one {outer} (e.g. "
            f"{examples}). A random intercept per {outer} needs each {groups} nested in one "
            f"{outer}: give each {groups} a single {outer} (or treat a transferred patient's "
            f"stays as separate {groups} values), or make {outer} a fixed effect."
        )
    if outer_labels.size < 2:
        raise AnalysisError(
            f"A random intercept per {outer} needs at least two {outer} values; the data hold "
            f"{outer_labels.size}. Drop the {outer} random effect."
        )
    return np.asarray(outer_codes, dtype=np.intp), np.asarray(outer_labels)


def _outer_notes(labels: np.ndarray, outer: str) -> list[str]:
    if labels.size >= 5:
        return []
    return [
        f"Only {labels.size} {outer} values carry the {outer} random intercept: its SD rests "
        "on very few groups and is imprecise (a fixed effect may serve better)."
    ]


def _check_problem(problem: MixedProblem, groups: str) -> None:
    if problem.n_patients < 3:
        raise AnalysisError(
            f"A mixed model needs several groups; the data hold {problem.n_patients} "
            f"distinct {groups} value(s). Use more patients or an ordinary regression."
        )
    if problem.n_obs <= problem.n_fixed + 1:
        raise AnalysisError(
            f"{problem.n_obs} measurements are too few for {problem.n_fixed} fixed effects."
        )
    collinear = _collinear_columns(problem.x, problem.fixed_names)
    if collinear:
        raise AnalysisError(
            "These fixed-effect terms can be written as combinations of the others, so "
            f"they cannot be estimated: {', '.join(collinear)}. Typical causes: a covariate "
            "that is constant in the data, a category with no rows, or two codings of the "
            "same thing. Remove them from the formula."
        )
    q = problem.n_random
    if q > 1:
        informative = _groups_with_full_rank_z(problem)
        if informative < q + 1:
            raise AnalysisError(
                f"Only {informative} {groups} groups have measurements that can show their own "
                f"{', '.join(problem.random_names[1:])} (e.g. at two or more different times); "
                "random slopes cannot be estimated. Use re_formula='1' (random intercept only)."
            )
    # lme4's check.nobs.vs.nRE, in the same words as the fast engine: every engine
    # refuses, so engine="auto" never meets a model one engine fits and another refuses.
    too_many = too_many_random_effects(
        problem.n_obs,
        problem.n_random,
        problem.n_patients,
        f"values of {groups}",
        simpler="re_formula='1', a random intercept only",
    )
    if too_many is not None:
        raise AnalysisError(too_many)


def _collinear_columns(x: np.ndarray, names: tuple[str, ...]) -> list[str]:
    if x.shape[1] == 0:
        return []
    scale = np.maximum(np.abs(x).max(axis=0), 1e-300)
    _, r, pivot = linalg.qr(x / scale, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int(np.sum(diag > diag[0] * 1e-9 * max(x.shape)))
    return [names[i] for i in sorted(pivot[rank:])]


def _groups_with_full_rank_z(problem: MixedProblem) -> int:
    starts = np.flatnonzero(np.r_[True, np.diff(problem.patient_codes) != 0])
    bounds = np.r_[starts, problem.n_obs]
    count = 0
    q = problem.n_random
    for lo, hi in pairwise(bounds):
        if hi - lo >= q and np.linalg.matrix_rank(problem.z[lo:hi]) == q:
            count += 1
            if count > q:
                break
    return count


def _sparse_notes(problem: MixedProblem) -> list[str]:
    sizes = np.bincount(problem.patient_codes)
    notes = []
    single = int(np.sum(sizes == 1))
    if single:
        notes.append(
            f"{single} of {problem.n_patients} patients have a single measurement; they "
            "inform the average level and the spread between patients, not the slopes."
        )
    return notes
