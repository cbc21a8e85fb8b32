"""Cox proportional-hazards models: Efron or Breslow ties, robust variances and PH test.

Notes
-----
R equivalent: ``coxph(Surv(time, event) ~ x1 + x2 + strata(s), ties =
"efron", cluster = c)`` and ``cox.zph(fit)`` (survival >= 3.0).

With Efron ties (the default, as R) lifelines (``CoxPHFitter``) gives the
coefficients, the log-likelihood and the concordance.  lifelines has no
Breslow ties: with ``ties="breslow"`` the whole fit is ours (Newton-Raphson
on the Breslow partial likelihood, Breslow 1974), the concordance is
lifelines' ``concordance_index`` of the linear predictor.  Two things are
computed here for both tie methods:

* robust and cluster-robust standard errors: lifelines' sandwich is not
  consistent with Efron's handling of ties (on the ``rossi`` data its
  cluster-robust SEs are 2-3% below R's); ours use Efron score residuals
  and agree with R ``coxph(..., cluster=)`` (tests/progression);
* the proportional-hazards test: lifelines' ``proportional_hazard_test``
  is not R's ``cox.zph``; ours is the survival 3.x score test with the
  Kaplan-Meier time transform, per term and globally.

Too few events make a Cox model meaningless: fewer than ``min_events``
events is refused, and fewer than 10 events per coefficient earns a
warning (Peduzzi et al. 1996; Vittinghoff & McCulloch 2007).
"""

from __future__ import annotations

import warnings as pywarnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index
from scipy.stats import chi2, norm

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression.cox_efron import (
    efron_sums,
    fit_breslow,
    robust_variance,
    zph_test,
)
from stepanalytics.progression.results import CoxModel

MIN_EVENTS = 10
EVENTS_PER_COEFFICIENT = 10
FEW_CLUSTERS = 20
FEW_LEVEL_EVENTS = 5
PH_ALPHA = 0.05
TIES = ("efron", "breslow")


def fit_cox(
    data: pd.DataFrame,
    *,
    duration: str,
    event: str,
    covariates: Sequence[str],
    strata: str | None = None,
    cluster: str | None = None,
    robust: bool = False,
    entry: str | None = None,
    ties: str = "efron",
    conf_level: float = 0.95,
    min_events: int = MIN_EVENTS,
    title: str | None = None,
) -> CoxModel:
    """Fit a Cox model with Efron or Breslow ties; robust SEs and the PH test as in R.

    Parameters
    ----------
    data : DataFrame
        One row per subject (or episode).
    duration, event : str
        Follow-up time and event indicator (True/1 = event).
    covariates : sequence of str
        Numeric, boolean or categorical columns.  A categorical column gets
        one indicator per level except its first (sorted) level, named
        ``column[level]``; the PH test treats its indicators as one term.
    strata : str, optional
        A separate baseline hazard per value (R ``strata()``).
    cluster : str, optional
        Cluster-robust standard errors with these clusters (R ``cluster=``).
    robust : bool
        Robust standard errors with every row its own cluster.
    entry : str, optional
        Delayed-entry time (rows at risk only after it).
    ties : {"efron", "breslow"}
        Handling of tied event times, as R ``coxph(ties=)``.  Efron (R's
        default) is closer to the exact partial likelihood when ties are
        many; Breslow matches older software (SAS ``PROC PHREG``'s default,
        Stata's ``stcox``).  Both give the same answer without ties.
    conf_level : float
        Level of the hazard-ratio intervals.
    min_events : int
        Refuse to fit with fewer events.
    title : str, optional

    Returns
    -------
    CoxModel

    Raises
    ------
    AnalysisError
        Too few events, or a covariate without variation.

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> fit = fit_cox(load_rossi(), duration="week", event="arrest",
    ...               covariates=["fin", "age", "prio"])
    >>> fit.table.set_index("term")["estimate"].round(4).to_dict()
    {'fin': -0.347, 'age': -0.0671, 'prio': 0.0969}
    >>> breslow = fit_cox(load_rossi(), duration="week", event="arrest",
    ...                   covariates=["fin", "age", "prio"], ties="breslow")
    >>> breslow.table.set_index("term")["estimate"].round(4).to_dict()
    {'fin': -0.3464, 'age': -0.0669, 'prio': 0.0965}
    """
    if ties not in TIES:
        raise UsageError(f"ties must be 'efron' or 'breslow', not {ties!r}")
    columns = [duration, event, *covariates, *(c for c in (strata, cluster, entry) if c)]
    missing = [c for c in dict.fromkeys(columns) if c not in data.columns]
    if missing:
        raise UsageError(f"column(s) {', '.join(missing)} not in the data")
    if not covariates:
        raise UsageError("give at least one covariate")
    notes: list[str] = []
    frame = data[list(dict.fromkeys(columns))]
    complete = frame.notna().all(axis=1)
    if not complete.all():
        empty = [c for c in frame.columns if frame[c].isna().any()]
        notes.append(
            f"{int((~complete).sum())} of {len(frame)} rows were left out because of missing "
            f"values in {', '.join(empty)} (complete-case analysis)"
        )
        frame = frame[complete]
    design, terms = _design_matrix(frame, covariates)
    time = frame[duration].to_numpy(dtype=float)
    happened = frame[event].astype(bool).to_numpy()
    n_events = int(happened.sum())
    _check_events(n_events, len(design.columns), min_events, notes)
    _check_sparse_levels(design, terms, covariates, happened, notes)

    strata_codes = None if strata is None else pd.factorize(frame[strata])[0]
    entry_times = None if entry is None else frame[entry].to_numpy(dtype=float)
    x = design.to_numpy(dtype=float)
    fitted: CoxPHFitter | None = None
    if ties == "efron":
        fitted = _lifelines_fit(design, time, happened, frame, strata, entry, notes)
        beta = fitted.params_[design.columns].to_numpy()
        sums = efron_sums(time, happened, x, beta, strata=strata_codes, entry=entry_times)
        log_likelihood = float(fitted.log_likelihood_)
        concordance = float(fitted.concordance_index_)
    else:
        try:
            beta, sums, _ = fit_breslow(time, happened, x, strata=strata_codes, entry=entry_times)
        except (ArithmeticError, np.linalg.LinAlgError) as error:
            raise AnalysisError(
                f"the Cox model could not be fitted ({error}). Often a covariate separates "
                "events from non-events; simplify the model."
            ) from error
        log_likelihood = sums.log_likelihood
        concordance = float(concordance_index(time, -(x @ beta), happened))
    model_var = np.asarray(np.linalg.inv(sums.information), dtype=np.float64)
    variance = "model"
    cov = model_var
    if cluster is not None:
        codes = pd.factorize(frame[cluster])[0]
        cov = robust_variance(sums.score_residuals, model_var, codes)
        variance = f"cluster-robust ({cluster})"
        n_clusters = int(codes.max()) + 1
        if n_clusters < FEW_CLUSTERS:
            notes.append(
                f"only {n_clusters} clusters of {cluster}: cluster-robust standard errors are "
                f"too small with fewer than about {FEW_CLUSTERS} clusters; consider "
                f"strata={cluster!r} instead"
            )
    elif robust:
        cov = robust_variance(sums.score_residuals, model_var)
        variance = "robust"
    table = _coefficients(design.columns, beta, cov, model_var, variance != "model", conf_level)
    ph = _ph_table(sums, time, happened, terms, entry_times, notes)
    return CoxModel(
        table=table,
        warnings=tuple(notes),
        model=fitted,
        title=title or f"Cox proportional-hazards model ({ties.capitalize()} ties)",
        ph_test=ph,
        n=len(frame),
        n_events=n_events,
        log_likelihood=log_likelihood,
        concordance=concordance,
        variance=variance,
    )


def _design_matrix(
    frame: pd.DataFrame, covariates: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, list[int]]]:
    blocks: list[pd.DataFrame] = []
    terms: dict[str, list[int]] = {}
    position = 0
    for name in covariates:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            block = pd.DataFrame({name: column.astype(float)}, index=frame.index)
        else:
            levels = sorted(column.astype(str).unique())
            if len(levels) < 2:
                raise AnalysisError(
                    f"covariate {name!r} has one value ({levels[0] if levels else 'none'}) in "
                    "these rows: it cannot be estimated; leave it out"
                )
            block = pd.DataFrame(
                {f"{name}[{level}]": (column.astype(str) == level).astype(float)
                 for level in levels[1:]},
                index=frame.index,
            )  # fmt: skip
        constant = [c for c in block.columns if block[c].nunique() < 2]
        if constant:
            raise AnalysisError(
                f"covariate {', '.join(constant)} does not vary in these rows: "
                "it cannot be estimated; leave it out or merge rare levels"
            )
        blocks.append(block)
        terms[name] = list(range(position, position + block.shape[1]))
        position += block.shape[1]
    return pd.concat(blocks, axis=1), terms


def _check_events(n_events: int, n_coefficients: int, min_events: int, notes: list[str]) -> None:
    if n_events < min_events:
        raise AnalysisError(
            f"only {n_events} events: a Cox model needs at least {min_events}. "
            "Pool phases or clinics, use a longer period, or report Kaplan-Meier curves only."
        )
    if n_events <= n_coefficients:
        raise AnalysisError(
            f"{n_events} events for {n_coefficients} coefficients: the model cannot be "
            "estimated; use fewer covariates"
        )
    per = n_events / n_coefficients
    if per < EVENTS_PER_COEFFICIENT:
        notes.append(
            f"{n_events} events for {n_coefficients} coefficients ({per:.1f} per coefficient, "
            f"fewer than {EVENTS_PER_COEFFICIENT}): estimates may be biased and unstable"
        )


def _check_sparse_levels(
    design: pd.DataFrame,
    terms: dict[str, list[int]],
    covariates: Sequence[str],
    happened: np.ndarray,
    notes: list[str],
) -> None:
    """Warn about indicator columns with few events (their hazard ratio is unstable)."""
    sparse = []
    for name in covariates:
        columns = design.columns[terms[name]]
        if len(columns) == 1 and columns[0] == name:
            continue  # numeric or boolean covariate
        for column in columns:
            events = int(happened[design[column].to_numpy() == 1].sum())
            if events < FEW_LEVEL_EVENTS:
                sparse.append(f"{column} ({events})")
    if sparse:
        notes.append(
            f"levels with fewer than {FEW_LEVEL_EVENTS} events: {', '.join(sparse)}; their "
            "hazard ratios are unstable: merge rare levels"
        )


def _lifelines_fit(
    design: pd.DataFrame,
    time: np.ndarray,
    happened: np.ndarray,
    frame: pd.DataFrame,
    strata: str | None,
    entry: str | None,
    notes: list[str],
) -> CoxPHFitter:
    data = design.copy()
    data["__time"] = time
    data["__event"] = happened.astype(int)
    options: dict[str, object] = {}
    if strata is not None:
        data["__strata"] = frame[strata].astype(str).to_numpy()
        options["strata"] = ["__strata"]
    if entry is not None:
        data["__entry"] = frame[entry].to_numpy(dtype=float)
        options["entry_col"] = "__entry"
    fitter = CoxPHFitter()
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        try:
            fitter.fit(data, "__time", "__event", **options)  # type: ignore[arg-type]
        except Exception as error:  # lifelines raises plain exceptions on divergence
            raise AnalysisError(
                f"the Cox model could not be fitted ({type(error).__name__}: {error}). "
                "Often a covariate separates events from non-events; simplify the model."
            ) from error
    for warning in caught:
        if "lifelines" in type(warning.message).__module__ or "converge" in str(warning.message):
            notes.append(f"fit: {str(warning.message).splitlines()[0]}")
    return fitter


def _coefficients(
    names: pd.Index,
    beta: np.ndarray,
    cov: np.ndarray,
    model_var: np.ndarray,
    robust: bool,
    conf_level: float,
) -> pd.DataFrame:
    se = np.sqrt(np.diag(cov))
    z_crit = norm.ppf(1 - (1 - conf_level) / 2)
    z = beta / se
    table = pd.DataFrame(
        {
            "term": list(names),
            "estimate": beta,
            "std_error": se,
            "hazard_ratio": np.exp(beta),
            "ci_lower": np.exp(beta - z_crit * se),
            "ci_upper": np.exp(beta + z_crit * se),
            "z": z,
            "p_value": 2 * norm.sf(np.abs(z)),
        }
    )
    if robust:
        table["naive_std_error"] = np.sqrt(np.diag(model_var))
    return table


def _ph_table(
    sums: object,
    time: np.ndarray,
    happened: np.ndarray,
    terms: dict[str, list[int]],
    entry: np.ndarray | None,
    notes: list[str],
) -> pd.DataFrame:
    rows = zph_test(sums, time, happened, terms, entry=entry)  # type: ignore[arg-type]
    table = pd.DataFrame(rows, columns=["term", "chisq", "df"])
    table["p_value"] = chi2.sf(table["chisq"], table["df"])
    table["verdict"] = np.where(
        table["p_value"] < PH_ALPHA,
        "hazard ratio changes over time",
        "no evidence against proportional hazards",
    )
    doubtful = table[(table["term"] != "GLOBAL") & (table["p_value"] < PH_ALPHA)]
    if not doubtful.empty:
        notes.append(
            "proportional hazards doubtful for "
            + ", ".join(
                f"{t} (p = {p:.3f})"
                for t, p in zip(doubtful["term"], doubtful["p_value"], strict=True)
            )
            + ": their hazard ratio is an average over follow-up; consider strata or "
            "a time-split model for them"
        )
    return table
