"""Case-mix adjustment: observed versus expected outcomes per clinic.

Clinics treat different patients.  A clinic seeing many patients with
compensation claims, long pain duration and severe baseline disability will
have fewer responders through no fault of its own.  Indirect
standardisation fixes this: one model of the outcome on patient
characteristics is fitted on *all* clinics together (no clinic term), each
patient gets an expected outcome from it, and each clinic's observed total
is compared with the sum of its patients' expectations.

* binary outcome (e.g. MCID responder): logistic regression; O = responders,
  E = sum of predicted probabilities; risk-adjusted share = (O / E) x overall share.
* continuous outcome (e.g. change in ODI): linear regression; risk-adjusted
  mean = overall mean + (mean observed - mean expected).
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.results import AnalysisResult

OutcomeKind = Literal["binary", "continuous"]


@dataclass(frozen=True)
class RiskAdjustment(AnalysisResult):
    """Observed and expected outcomes per clinic after case-mix adjustment.

    ``table`` (one row per clinic, counts only): unit column, ``n``,
    ``observed`` (responders, or mean outcome), ``expected`` (sum of
    probabilities, or mean prediction), ``variance`` (sum p(1 - p) for
    binary; residual variance / n for continuous), ``oe_ratio`` (binary),
    ``risk_adjusted`` and ``crude``.

    ``patients`` holds one row per patient used with its ``expected`` value:
    it carries patient ids and is for analysts and clinic worklists only.
    """

    kind: str = "binary"
    formula: str = ""
    overall: float = float("nan")
    residual_sd: float | None = None
    unit: str = "clinic_id"
    patients: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)


def risk_adjust(
    data: pd.DataFrame,
    *,
    outcome: str,
    covariates: Sequence[str] = (),
    kind: OutcomeKind = "binary",
    unit: str = "clinic_id",
    title: str | None = None,
) -> RiskAdjustment:
    """Fit a case-mix model on all clinics and compare observed with expected.

    Parameters
    ----------
    data : DataFrame
        One row per patient with the outcome, covariates and clinic.
    outcome : str, keyword-only
        Outcome column: 0/1 (or boolean) for ``binary``, numeric for
        ``continuous``.
    covariates : sequence of str, keyword-only
        Patient characteristics.  Text, boolean and categorical columns
        enter as factors (first level as reference), numbers as linear
        terms.  Empty: no adjustment (expected = overall mean).
    kind : {"binary", "continuous"}, keyword-only
    unit : str, keyword-only
        Clinic column.

    Returns
    -------
    RiskAdjustment

    Raises
    ------
    AnalysisError
        When fewer than 2 clinics or no events remain, or the model fails.

    Notes
    -----
    Rows with a missing outcome or covariate are left out of the model and
    counted in ``warnings`` (never silently).  R equivalent:
    ``glm(y ~ x, family = binomial)`` (or ``lm``), then
    ``tapply(fitted(fit), clinic, sum)`` for E.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"clinic_id": rng.choice(list("ABC"), 300),
    ...                    "claim": rng.random(300) < 0.3})
    >>> df["responder"] = rng.random(300) < np.where(df["claim"], 0.2, 0.5)
    >>> ra = risk_adjust(df, outcome="responder", covariates=["claim"])
    >>> list(ra.table.columns[:4])
    ['clinic_id', 'n', 'observed', 'expected']
    """
    if kind not in ("binary", "continuous"):
        raise UsageError(f"kind must be 'binary' or 'continuous'; got {kind!r}.")
    needed = [unit, outcome, *covariates]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise UsageError(f"risk_adjust: column(s) {missing} not found in the data.")
    frame = data.copy()
    complete = frame[needed].notna().all(axis=1)
    notes = []
    if not complete.all():
        notes.append(
            f"{int((~complete).sum())} of {len(frame)} patients lack the outcome or a "
            f"covariate ({', '.join(needed[1:])}) and are left out of the comparison."
        )
    frame = frame.loc[complete].reset_index(drop=True)
    if frame[unit].nunique() < 2:
        raise AnalysisError(
            "Risk adjustment compares clinics, so at least 2 clinics must have patients with "
            f"the outcome and every covariate ({', '.join(needed[1:])}); found "
            f"{frame[unit].nunique()}."
        )
    y = _outcome(frame[outcome], kind)
    frame["_y"] = y
    formula = "_y ~ " + (" + ".join(_term(frame, c) for c in covariates) or "1")
    model, fit_notes = _fit(frame, formula, kind)
    notes.extend(fit_notes)
    fitted: Any = model
    frame["expected"] = np.asarray(fitted.fittedvalues, dtype=np.float64)
    overall = float(y.mean())
    scale = float(fitted.scale)
    residual_sd = None if kind == "binary" else float(np.sqrt(scale))
    groups = frame.groupby(unit, sort=True)
    table = pd.DataFrame({"n": groups.size()})
    if kind == "binary":
        p = frame["expected"]
        frame["_var"] = p * (1.0 - p)
        table["observed"] = groups["_y"].sum()
        table["expected"] = groups["expected"].sum()
        table["variance"] = frame.groupby(unit, sort=True)["_var"].sum()
        table["oe_ratio"] = table["observed"] / table["expected"]
        table["risk_adjusted"] = table["oe_ratio"] * overall
        table["crude"] = table["observed"] / table["n"]
    else:
        table["observed"] = groups["_y"].mean()
        table["expected"] = groups["expected"].mean()
        table["variance"] = (residual_sd or 0.0) ** 2 / table["n"]
        table["risk_adjusted"] = overall + table["observed"] - table["expected"]
        table["crude"] = table["observed"]
    table = table.reset_index()
    patients = frame.drop(columns=["_y", "_var"], errors="ignore")
    return RiskAdjustment(
        table=table,
        warnings=tuple(notes),
        model=model,
        title=title or f"Case-mix adjusted {outcome} by clinic",
        kind=kind,
        formula=formula.replace("_y", outcome),
        overall=overall,
        residual_sd=residual_sd,
        unit=unit,
        patients=patients,
    )


def _outcome(values: pd.Series, kind: str) -> pd.Series:
    if kind == "continuous":
        return values.astype(float)
    as_float = values.astype(float)
    if not as_float.isin([0.0, 1.0]).all():
        raise UsageError("A binary outcome must hold only 0/1 or True/False values.")
    if as_float.sum() == 0 or as_float.sum() == len(as_float):
        raise AnalysisError("The outcome is the same for every patient; nothing to adjust.")
    return as_float


def _term(frame: pd.DataFrame, column: str) -> str:
    values = frame[column]
    if (
        pd.api.types.is_bool_dtype(values)
        or isinstance(values.dtype, pd.CategoricalDtype)
        or not pd.api.types.is_numeric_dtype(values)
    ):
        if values.nunique() < 2:
            return "1"
        frame[column] = values.astype(str)
        return f"C(Q('{column}'))"
    return f"Q('{column}')"


def _fit(frame: pd.DataFrame, formula: str, kind: str) -> tuple[object, list[str]]:
    """Fit the model; warnings from statsmodels come back as plain notes."""
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        try:
            if kind == "binary":
                model = smf.glm(formula, data=frame, family=sm.families.Binomial()).fit()
            else:
                model = smf.ols(formula, data=frame).fit()
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise AnalysisError(
                f"The case-mix model could not be fitted ({exc}). Use fewer covariates or "
                "merge rare categories."
            ) from exc
    notes = sorted({f"Case-mix model: {w.message}" for w in caught})
    return model, notes
