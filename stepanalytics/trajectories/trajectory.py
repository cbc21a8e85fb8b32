"""fit_trajectory: the mixed model of one instrument's scores over time in a cohort."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.trajectories.design import build_design
from stepanalytics.trajectories.engines import MixedModelEngine, check_optimizers
from stepanalytics.trajectories.mixed import _check_level, fit_design
from stepanalytics.trajectories.phase_time import (
    OUTSIDE_COLUMN,
    add_phase_clocks,
    typical_path,
)
from stepanalytics.trajectories.result import FitOptions, TrajectoryResult

if TYPE_CHECKING:
    from stepanalytics.cohort import Cohort

#: Case-mix covariates used with ``covariates=True``.
DEFAULT_CASE_MIX = ("baseline_score", "age_band", "sex", "primary_condition", "compensation_claim")
BASELINE_TERM = "baseline_centred"
COMPARE_COLUMNS = {"clinic": "clinic_id", "protocol": "protocol"}


def fit_trajectory(
    cohort: Cohort,
    instrument: str,
    *,
    piecewise: bool = False,
    covariates: Sequence[str] | bool = (),
    compare: str | None = None,
    clinic_effect: str | None = None,
    random_slope: bool = True,
    re_covariance: str = "unstructured",
    formula: str | None = None,
    re_formula: str | None = None,
    groups: str = "patient_id",
    reml: bool = True,
    engine: str | MixedModelEngine = "auto",
    optimizers: Sequence[str] | None = None,
    level: float = 0.95,
    missing: str = "raise",
) -> TrajectoryResult:
    """Fit how an instrument's scores change over time, with a mixed model per patient.

    The default model is ``score ~ weeks + (weeks | patient_id)``: an average
    straight line over weeks since enrolment, and each patient with their own
    level and slope (correlated), fitted by REML.

    Parameters
    ----------
    cohort : Cohort
    instrument : str
        Instrument code, e.g. ``"odi"``.
    piecewise : bool, default False
        One slope per phase: time is split into the weeks spent in each phase
        (``weeks_phase1`` ...) and outside any phase (pauses, follow-up after
        discharge, ``weeks_outside_phases``); the level stays continuous.
    covariates : sequence of str or True
        Case-mix adjustment (main effects): any patient column, or
        ``"baseline_score"``.  ``True`` means baseline severity, age band, sex,
        condition and compensation claim.  With baseline severity the baseline
        measurement becomes a covariate (centred) and is no longer an outcome
        (longitudinal ANCOVA, Twisk et al. 2018).
    compare : {"clinic", "protocol"}, optional
        Fixed effects for clinic (or protocol) on level and on every slope;
        the reference is the largest clinic.
    clinic_effect : {None, "random"}
        ``"random"`` adds a random intercept per clinic with patients nested
        in clinics: lme4's ``(1 | clinic_id) + (weeks | patient_id)``.  The
        clinics' spread then shows as an SD in ``variance_components`` and
        the fixed effects are averaged over clinics.  Only the fast engine
        fits it (``engine="statsmodels"`` is refused).
    random_slope : bool, default True
        Random slope of ``weeks`` per patient (else a random intercept only).
    re_covariance : {"unstructured", "diagonal"}
        Correlated patient random effects (default) or uncorrelated ones
        (lme4's ``||``; fitted by statsmodels, see :func:`fit_mixed_model`).
    formula, re_formula : str, optional
        Free formulas (patsy) replacing the above; columns available are those
        of ``cohort.measurements``, the patient table and the phase clocks.
    groups : str, default ``"patient_id"``
    reml, engine, optimizers, level, missing
        As in :func:`fit_mixed_model`; ``engine="auto"`` uses the fast
        engine (:mod:`stepanalytics.lmm`) for every model it can fit.

    Returns
    -------
    TrajectoryResult

    Notes
    -----
    R equivalent: ``lmerTest::lmer(score ~ weeks + (weeks | patient_id))``, with
    ``clinic_effect="random"`` ``lmerTest::lmer(score ~ weeks + (1 | clinic_id) +
    (weeks | patient_id))``.
    Whether a positive slope is an improvement depends on the instrument; the
    result's ``higher_is_better`` and notes say which.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> cohort = synthesize_cohort(n_patients=60, n_clinics=3, seed=1)
    >>> fit = fit_trajectory(cohort, "odi")
    >>> fit.to_frame()["term"].tolist()
    ['Intercept', 'weeks']
    >>> nested = fit_trajectory(cohort, "odi", clinic_effect="random")
    >>> nested.variance_components["group"].tolist()
    ['patient_id', 'patient_id', 'patient_id', 'clinic_id', 'Residual']
    """
    outer = _outer_groups(clinic_effect, compare)
    data = trajectory_data(cohort, instrument)
    notes: list[str] = []
    chosen = _covariates(covariates)
    if formula is None:
        formula, data, built_notes = _default_formula(
            data, chosen, piecewise=piecewise, compare=compare
        )
        notes.extend(built_notes)
    elif piecewise or chosen or compare:
        raise UsageError(
            "Give either formula= or the options piecewise/covariates/compare, not both: "
            "write the terms you want into the formula."
        )
    if re_formula is None:
        re_formula = "~weeks" if random_slope else "~1"
    design = build_design(
        data,
        formula=formula,
        re_formula=re_formula,
        groups=groups,
        outer_groups=outer,
        re_covariance=re_covariance,
        time="weeks",
        missing=missing,
    )
    options = FitOptions(
        reml=reml,
        engine=engine,
        optimizers=None if optimizers is None else check_optimizers(optimizers),
        level=_check_level(level),
    )
    spec = _instrument(instrument)
    better = None if spec is None else bool(spec.higher_is_better)
    if better is not None:
        notes.append(
            f"On {spec.name if spec else instrument} higher scores are "
            f"{'better' if better else 'worse'}: a {'positive' if better else 'negative'} "
            "slope means improvement."
        )
    path = typical_path(cohort.phases, names=cohort.phase_names())
    name = spec.name if spec is not None else instrument
    return fit_design(
        design,
        options,
        phase_path=path,
        title=f"Trajectory of {name} ({instrument})",
        notes=notes,
        instrument=instrument,
        higher_is_better=better,
    )


def trajectory_data(cohort: Cohort, instrument: str) -> pd.DataFrame:
    """The long table the model sees: measurements of one instrument, patient columns, clocks.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> data = trajectory_data(synthesize_cohort(n_patients=20, n_clinics=2, seed=1), "odi")
    >>> {"score", "weeks", "weeks_phase1", "sex"} <= set(data.columns)
    True
    """
    measured = cohort.measurements
    rows = measured[measured["instrument"] == instrument]
    if rows.empty:
        available = ", ".join(sorted(measured["instrument"].unique()))
        raise AnalysisError(
            f"The cohort has no scores for instrument {instrument!r}. "
            f"Instruments with scores: {available or 'none'}."
        )
    extra = [c for c in cohort.patients.columns if c not in rows.columns or c == "patient_id"]
    data = rows.merge(cohort.patients[extra], on="patient_id", how="left")
    phases = sorted(int(p) for p in cohort.phases["phase"].unique())
    data = add_phase_clocks(data, cohort.phases, phase_numbers=phases)
    return data


def _outer_groups(clinic_effect: str | None, compare: str | None) -> str | None:
    """The column of the random clinic intercept, or None."""
    if clinic_effect is None:
        return None
    if clinic_effect != "random":
        raise UsageError(
            f"clinic_effect must be None or 'random', not {clinic_effect!r} "
            "(clinics as fixed effects: compare='clinic')."
        )
    if compare == "clinic":
        raise UsageError(
            "Clinic cannot be both a fixed effect (compare='clinic') and a random intercept "
            "(clinic_effect='random'); choose one."
        )
    return "clinic_id"


def _covariates(covariates: Sequence[str] | bool) -> list[str]:
    if covariates is True:
        return list(DEFAULT_CASE_MIX)
    if covariates is False:
        return []
    if isinstance(covariates, str):
        return [covariates]
    return [("baseline_score" if c == "baseline" else str(c)) for c in covariates]


def _default_formula(
    data: pd.DataFrame, covariates: list[str], *, piecewise: bool, compare: str | None
) -> tuple[str, pd.DataFrame, list[str]]:
    notes: list[str] = []
    data = data.copy()
    unknown = [c for c in covariates if c not in data.columns]
    if unknown:
        raise UsageError(
            f"Unknown covariate(s): {', '.join(unknown)}. Use patient columns "
            f"({', '.join(c for c in data.columns if c not in ('score', 'day'))}) "
            "or 'baseline_score'."
        )
    if compare is not None and compare not in COMPARE_COLUMNS:
        raise UsageError(f"compare must be one of {sorted(COMPARE_COLUMNS)}, not {compare!r}.")
    # Baseline rows leave the outcome first, so that every level counted below (the
    # reference of a factor, the clinics compared) is one the model really sees.
    if "baseline_score" in covariates:
        data, note = _baseline_as_covariate(data)
        notes.append(note)
    time_terms = _time_terms(data, piecewise, notes)
    rhs = time_terms
    if compare is not None:
        column = COMPARE_COLUMNS[compare]
        data[column] = _reference_first(data[column], data["patient_id"])
        levels = list(data[column].cat.categories)
        if len(levels) < 2:
            found = f"one {compare}, {levels[0]}" if levels else f"no {column} values"
            raise AnalysisError(
                f"compare='{compare}' gives each {compare} its own level and slope and tests "
                f"how they differ, but these measurements come from {found}: there is "
                f"nothing to compare. Fit without compare='{compare}', or use a cohort with "
                f"two or more {compare}s (column {column})."
            )
        rhs = f"({time_terms}) * {column}" if " + " in time_terms else f"{time_terms} * {column}"
        notes.append(
            f"Each {compare} has its own level and slope; the terms compare it with "
            f"{column} {levels[0]} (the largest)."
        )
    terms = []
    for c in covariates:
        if c == "baseline_score":
            terms.append(BASELINE_TERM)
        elif _is_numeric(data[c]):
            terms.append(c)
        else:
            data[c] = _reference_first(data[c], data["patient_id"])
            _check_covariate_levels(data[c], c)
            terms.append(c)
            notes.append(f"Reference level of {c}: {data[c].cat.categories[0]} (the most common).")
    if terms:
        rhs = f"{rhs} + {' + '.join(terms)}"
    return f"score ~ {rhs}", data, notes


def _time_terms(data: pd.DataFrame, piecewise: bool, notes: list[str]) -> str:
    if not piecewise:
        return "weeks"
    clocks = [c for c in data.columns if c.startswith("weeks_phase")]
    if data[OUTSIDE_COLUMN].gt(0).any():
        clocks.append(OUTSIDE_COLUMN)
    if not clocks:
        notes.append("No phase stays were found; the piecewise model fell back to weeks.")
        return "weeks"
    return " + ".join(clocks)


def _baseline_as_covariate(data: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Baseline measurements out of the outcome, centred baseline score in as a covariate."""
    is_baseline = (data["day"].astype("Int64") == data["baseline_day"]).fillna(False)
    n_base = int(is_baseline.sum())
    per_patient = data.drop_duplicates("patient_id")["baseline_score"]
    centre = float(per_patient.mean())
    data = data[~is_baseline.to_numpy(dtype=bool)].copy()
    if data.empty:
        raise AnalysisError(
            f"All {n_base} measurements are baselines (each patient's first score within days "
            "0-14), so adjusting for baseline severity leaves no later measurement to model. "
            "Leave 'baseline' out of covariates (covariates=True includes it), or fit again "
            "once follow-up measurements are in."
        )
    data[BASELINE_TERM] = data["baseline_score"] - centre
    note = (
        f"Adjusted for baseline severity ({BASELINE_TERM} = baseline score - "
        f"{centre:.2f}, the patients' mean): the {n_base} baseline measurements are "
        "used as the covariate, not as outcomes."
    )
    return data, note


def _check_covariate_levels(column: pd.Series, name: str) -> None:
    """A categorical covariate with fewer than two levels adjusts for nothing: refuse it.

    (patsy would give it no column at all, so the model would silently lack it.)
    """
    levels = list(column.cat.categories)
    if len(levels) >= 2:
        return
    found = f"the single value {levels[0]!r}" if levels else "no values"
    raise AnalysisError(
        f"The covariate {name} has {found} among the patients measured, so it cannot "
        f"adjust for anything. Leave {name} out of covariates (with covariates=True, list "
        f"the ones you want: {', '.join(c for c in DEFAULT_CASE_MIX if c != name)})."
    )


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _reference_first(column: pd.Series, patient: pd.Series) -> pd.Series:
    """A categorical with the most common level (counted in patients) first: the reference."""
    values = column.astype(object).where(column.notna(), None)
    counts = pd.DataFrame({"v": values, "p": patient}).dropna().drop_duplicates()["v"]
    order = counts.value_counts()
    levels = sorted(order.index.tolist(), key=lambda v: (-int(order[v]), str(v)))
    return pd.Series(pd.Categorical(values, categories=levels), index=column.index)


def _instrument(code: str) -> Any:
    try:
        from stepanalytics.instruments import get_registry

        registry = get_registry()
        return registry.get(code) if code in registry else None
    except ImportError:  # pragma: no cover - the registry ships with the package
        return None
