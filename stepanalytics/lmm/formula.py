"""Build the fast engine's X, Z and grouping arrays from a DataFrame and an lme4-style formula.

``"score ~ weeks + (weeks | patient_id) + (1 | clinic_id)"`` reads as in
lme4: the fixed part goes to patsy, each ``(terms | factor)`` names the
random terms of a grouping factor.  One patient-level term (any terms,
correlated) and optionally one clinic-level ``(1 | factor)`` are supported,
with the clinic factor nesting the patient factor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import patsy

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.lmm.fit import fit_lmm
from stepanalytics.lmm.result import LmmFit

_BAR = re.compile(r"\(\s*([^()|]*?)\s*(\|\|?)\s*([A-Za-z_.][\w.]*)\s*\)")


@dataclass(frozen=True)
class LmmDesign:
    """Arrays for :func:`~stepanalytics.lmm.fit_lmm`, and how they were built.

    ``fixed_info`` and ``random_info`` are patsy DesignInfo objects; pass new
    data to :meth:`matrices` to build X and Z for predictions.
    """

    y: np.ndarray
    x: pd.DataFrame
    z: pd.DataFrame
    groups: np.ndarray
    clinic: np.ndarray | None
    response: str
    patient_column: str
    clinic_column: str | None
    fixed_info: Any
    random_info: Any

    def matrices(self, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """X and Z for new rows (e.g. a prediction grid)."""
        (x,) = patsy.build_design_matrices([self.fixed_info], data, return_type="dataframe")
        (z,) = patsy.build_design_matrices([self.random_info], data, return_type="dataframe")
        return _r_names(x), _r_names(z)


def _r_names(design: pd.DataFrame) -> pd.DataFrame:
    """patsy's 'Intercept' becomes R's '(Intercept)', so names read as in lme4 output."""
    return design.rename(columns={"Intercept": "(Intercept)"})


def _split(formula: str) -> tuple[str, str, list[tuple[str, str]]]:
    if "~" not in formula:
        raise UsageError(
            f"The formula {formula!r} needs a response: 'score ~ weeks + (weeks | patient_id)'."
        )
    response, rhs = (part.strip() for part in formula.split("~", 1))
    bars = []
    for terms, bar, factor in _BAR.findall(rhs):
        if bar == "||":
            raise UsageError(
                "Uncorrelated random effects '||' are not supported by the fast engine."
            )
        bars.append((terms or "1", factor))
    fixed = _BAR.sub("", rhs)
    fixed = re.sub(r"\+\s*(?=\+|$)", "", re.sub(r"^\s*\+", "", fixed.strip())).strip() or "1"
    if not bars:
        raise UsageError(
            f"The formula {formula!r} has no random term; add one such as '(1 | patient_id)'."
        )
    return response, fixed, bars


def _nested(fine: pd.Series, coarse: pd.Series) -> bool:
    return bool((pd.DataFrame({"f": fine, "c": coarse}).groupby("f")["c"].nunique() <= 1).all())


def _assign_levels(
    data: pd.DataFrame, bars: list[tuple[str, str]]
) -> tuple[tuple[str, str], str | None]:
    for _, factor in bars:
        if factor not in data.columns:
            raise UsageError(f"The grouping column {factor!r} is not in the data.")
    if len(bars) == 1:
        return bars[0], None
    if len(bars) > 2:
        raise UsageError("The fast engine fits at most two random terms: patient and clinic.")
    first, second = bars
    if data[first[1]].nunique() < data[second[1]].nunique():
        first, second = second, first
    if second[0].replace(" ", "") not in ("1", "1+0", "0+1"):
        raise UsageError(
            f"The coarser grouping {second[1]!r} may only have a random intercept "
            f"'(1 | {second[1]})'."
        )
    if not _nested(data[first[1]], data[second[1]]):
        raise AnalysisError(
            f"Every {first[1]} must belong to one {second[1]} for the nested model; some "
            f"{first[1]} values appear under several {second[1]} values."
        )
    return first, second[1]


def lmm_design(data: pd.DataFrame, formula: str) -> LmmDesign:
    """Turn a DataFrame and an lme4-style formula into the arrays ``fit_lmm`` takes.

    Parameters
    ----------
    data : DataFrame
        One row per measurement.
    formula : str
        e.g. ``"score ~ weeks + (weeks | patient_id) + (1 | clinic_id)"``.

    Returns
    -------
    LmmDesign

    Raises
    ------
    AnalysisError
        Rows with missing values in the columns the formula uses (listed, not
        dropped), or a clinic factor that does not nest the patient factor.

    Examples
    --------
    >>> df = pd.DataFrame({"score": [3.0, 2.0, 4.0, 1.0], "weeks": [0, 1, 0, 1],
    ...                    "patient_id": ["a", "a", "b", "b"]})
    >>> d = lmm_design(df, "score ~ weeks + (weeks | patient_id)")
    >>> list(d.x.columns), list(d.z.columns)
    (['(Intercept)', 'weeks'], ['(Intercept)', 'weeks'])
    """
    response, fixed, bars = _split(formula)
    # Positional index, so that the rows named in errors are 1-based positions.
    data = data.reset_index(drop=True)
    (random_terms, patient), clinic = _assign_levels(data, bars)
    used = data[[patient] + ([clinic] if clinic else [])].isna().any(axis=1)
    y, x = patsy.dmatrices(f"{response} ~ {fixed}", data, NA_action="drop", return_type="dataframe")
    z = patsy.dmatrix(random_terms, data, NA_action="drop", return_type="dataframe")
    complete = data.index.isin(x.index) & data.index.isin(z.index) & ~used.to_numpy()
    if not complete.all():
        rows = ", ".join(str(int(r) + 1) for r in np.flatnonzero(~complete)[:10])
        raise AnalysisError(
            f"{int((~complete).sum())} rows have missing values in the columns of {formula!r} "
            f"(rows {rows}). Filter them out before fitting; nothing is dropped silently."
        )
    return LmmDesign(
        y=y.iloc[:, 0].to_numpy(dtype=np.float64),
        x=_r_names(x),
        z=_r_names(z),
        groups=data[patient].to_numpy(),
        clinic=None if clinic is None else data[clinic].to_numpy(),
        response=response,
        patient_column=patient,
        clinic_column=clinic,
        fixed_info=x.design_info,
        random_info=z.design_info,
    )


def fit_lmm_formula(
    data: pd.DataFrame, formula: str, *, reml: bool = True, level: float = 0.95
) -> LmmFit:
    """Fit an lme4-style formula with the fast engine; the design is kept in ``fit.model``.

    ``reml`` and ``level`` (of the intervals) are as in :func:`~stepanalytics.lmm.fit_lmm`.

    Notes
    -----
    R equivalent: ``lmerTest::lmer(formula, data, REML = reml)``.  The
    fixed-effects formula is read by patsy (``I(weeks**2)`` for a square,
    ``C(phase)`` for a factor); the intercept is named ``(Intercept)`` as in R.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> df = pd.DataFrame({"patient_id": np.repeat(np.arange(20), 5),
    ...                    "weeks": np.tile(np.arange(5.0), 20)})
    >>> df["score"] = 30 - df.weeks + rng.normal(0, 3, 20)[df.patient_id] + rng.normal(0, 1, 100)
    >>> fit = fit_lmm_formula(df, "score ~ weeks + (1 | patient_id)")
    >>> round(float(fit.fixed_effects["weeks"]), 2)
    -1.03
    """
    design = lmm_design(data, formula)
    fit = fit_lmm(
        design.y,
        design.x,
        design.z,
        design.groups,
        clinic=design.clinic,
        reml=reml,
        level=level,
    )
    return replace(fit, model=design)
