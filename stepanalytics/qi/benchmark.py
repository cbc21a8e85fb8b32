"""Fair clinic comparison: case mix, funnel plot and shrinkage in one call.

:func:`compare_clinics` works on any patient-level frame;
:func:`benchmark_outcome` builds that frame from a cohort (change from
baseline per patient, with the baseline characteristics as case mix).
The result is never a league table: clinics are listed by id, and each is
described by where it lies relative to the funnel limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.qi.casemix import RiskAdjustment, risk_adjust
from stepanalytics.qi.funnel import (
    DEFAULT_LEVELS,
    DispersionMethod,
    FunnelKind,
    FunnelResult,
    funnel_compare,
)
from stepanalytics.qi.shrinkage import ShrinkageResult, shrink_estimates
from stepanalytics.qi.suppression import DEFAULT_THRESHOLD, ProtectedFrame, protect_frame
from stepanalytics.results import AnalysisResult

#: Patient characteristics used for case mix when present in the cohort.
DEFAULT_CASE_MIX = (
    "baseline_score",
    "age_band",
    "sex",
    "compensation_claim",
    "pain_duration_months",
)
Indicator = Literal["responder", "change", "improvement", "deteriorated", "recovered"]
_BINARY = ("responder", "deteriorated", "recovered")


@dataclass(frozen=True)
class ClinicComparison(AnalysisResult):
    """Risk-adjusted clinic comparison, one row per clinic (not ranked).

    ``table`` joins the case-mix table (``n``, ``observed``, ``expected``,
    ``oe_ratio``, ``risk_adjusted``, ``crude``) with the funnel columns
    (``z``, ``z_adjusted``, limits, ``position``) and the empirical-Bayes
    columns (``shrunken``, ``shrunken_lower``, ``shrunken_upper``).
    """

    funnel: FunnelResult | None = None
    shrinkage: ShrinkageResult | None = None
    adjustment: RiskAdjustment | None = None
    kind: str = "binary"
    unit: str = "clinic_id"
    scale: str = "share"

    def committee_table(self, *, threshold: int = DEFAULT_THRESHOLD) -> ProtectedFrame:
        """The table as a committee may see it: small cells and their echoes hidden."""
        t = self.table
        counts = ["n", "observed"] if self.kind == "binary" else ["n"]
        # Everything but the clinic id and the overall target depends on the
        # clinic's counts: the standard error and the funnel limits give n
        # back (SE = sqrt(p(1 - p) / n)), so they are hidden with the counts.
        keep_open = {self.unit, "clinic_id", "target"}
        exact = [c for c in t.columns if c not in keep_open and c not in counts]
        derived = {c: counts for c in exact}
        parts = [("observed", "n")] if self.kind == "binary" else []
        # The target is the pooled value (all clinics' responders over all
        # patients): with the shown clinics it gives the hidden clinics'
        # total, so the grand total counts as published, and the target is
        # hidden if that total is small.
        return protect_frame(
            t,
            counts=counts,
            derived=derived,
            parts=parts,
            margins=[()],
            group_values={"target": ()},
            threshold=threshold,
        )


def compare_clinics(
    data: pd.DataFrame,
    *,
    outcome: str,
    kind: Literal["binary", "continuous"] = "binary",
    covariates: Sequence[str] = (),
    unit: str = "clinic_id",
    levels: Sequence[float] = DEFAULT_LEVELS,
    overdispersion: DispersionMethod = "additive",
    shrinkage: Literal["REML", "DL"] | None = "REML",
    scale: Literal["share", "ratio"] = "share",
    title: str | None = None,
) -> ClinicComparison:
    """Compare clinics fairly on one outcome.

    Parameters
    ----------
    data : DataFrame
        One row per patient.
    outcome : str, keyword-only
        0/1 outcome (``kind="binary"``) or a number (``"continuous"``).
    covariates : sequence of str
        Case-mix variables (see :func:`~stepanalytics.qi.casemix.risk_adjust`).
    levels, overdispersion
        Passed to :func:`~stepanalytics.qi.funnel.funnel_compare`.
    shrinkage : {"REML", "DL"} or None
        Estimator of the between-clinic variance for the empirical-Bayes
        estimates; None skips them.
    scale : {"share", "ratio"}
        Binary outcomes only: plot the risk-adjusted share against n
        (binomial limits, default) or the indirectly standardised ratio
        O / E against E (Poisson limits around 1).

    Returns
    -------
    ClinicComparison

    Notes
    -----
    Binary outcomes: the risk-adjusted share ``(O / E) x overall share`` is
    compared with the overall share on a proportion funnel (exact binomial
    limits, precision n); with ``scale="ratio"`` O / E is compared with 1
    (exact Poisson limits, precision E; ``sqrt(1 / E)`` as standard error,
    conservative when outcomes are common).  Continuous outcomes: the risk-adjusted mean
    ``overall + mean(O) - mean(E)`` on a mean funnel with the model's
    residual SD.  Shrinkage uses the sampling variance on target
    (``p (1 - p) / n`` or ``sd^2 / n``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"clinic_id": rng.choice(list("ABCDEFGHIJKL"), 2400)})
    >>> df["responder"] = rng.random(2400) < np.where(df["clinic_id"] == "L", 0.3, 0.5)
    >>> cmp = compare_clinics(df, outcome="responder")
    >>> cmp.funnel.outside(0.998)
    ['L']
    """
    if scale not in ("share", "ratio") or (scale == "ratio" and kind != "binary"):
        raise UsageError("scale='ratio' is for binary outcomes; use 'share' (the default).")
    adjustment = risk_adjust(data, outcome=outcome, covariates=covariates, kind=kind, unit=unit)
    table = adjustment.table
    ratio = scale == "ratio"
    funnel_kind: FunnelKind = "ratio" if ratio else "proportion" if kind == "binary" else "mean"
    estimate = "oe_ratio" if ratio else "risk_adjusted"
    sd = adjustment.residual_sd
    funnel = funnel_compare(
        table,
        estimate=estimate,
        precision="expected" if ratio else "n",
        kind=funnel_kind,
        unit=unit,
        target=1.0 if ratio else adjustment.overall,
        sd=sd,
        levels=levels,
        overdispersion=overdispersion,
        title=title,
    )
    merged = table.merge(funnel.table.drop(columns=["precision", "estimate"]), on=unit, how="left")
    warnings = [*adjustment.warnings, *funnel.warnings]
    shrunk: ShrinkageResult | None = None
    if shrinkage is not None:
        p = adjustment.overall
        if ratio:
            variance = 1.0 / table["expected"]
        else:
            base_var = p * (1.0 - p) if kind == "binary" else (sd or np.nan) ** 2
            variance = base_var / table["n"]
        table_for_eb = table.assign(_variance=variance)
        try:
            shrunk = shrink_estimates(
                table_for_eb,
                estimate=estimate,
                variance="_variance",
                unit=unit,
                method=shrinkage,
            )
        except AnalysisError as exc:
            warnings.append(f"No empirical-Bayes estimates: {exc}")
        else:
            eb = shrunk.table[[unit, "shrunken", "ci_lower", "ci_upper"]].rename(
                columns={"ci_lower": "shrunken_lower", "ci_upper": "shrunken_upper"}
            )
            merged = merged.merge(eb, on=unit, how="left")
            warnings.extend(shrunk.warnings)
    return ClinicComparison(
        table=merged.sort_values(unit, kind="stable").reset_index(drop=True),
        warnings=tuple(warnings),
        model=adjustment.model,
        title=title or f"Clinic comparison: {outcome} (case-mix adjusted)",
        funnel=funnel,
        shrinkage=shrunk,
        adjustment=adjustment,
        kind=kind,
        unit=unit,
        scale=scale,
    )


def benchmark_outcome(
    cohort: Any,
    *,
    instrument: str,
    indicator: Indicator = "responder",
    follow_up: str | int = "last",
    covariates: Sequence[str] | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    overdispersion: DispersionMethod = "additive",
    shrinkage: Literal["REML", "DL"] | None = "REML",
) -> ClinicComparison:
    """Compare a cohort's clinics on change in one instrument.

    Parameters
    ----------
    cohort : Cohort
    instrument : str, keyword-only
        Instrument code, e.g. ``odi``.
    indicator : {"responder", "deteriorated", "recovered", "change", "improvement"}
        ``responder``: reached the MCID; ``deteriorated``: reliable change
        for the worse; ``recovered``: reliable improvement into the normal
        range; ``change`` / ``improvement``: follow-up minus baseline, raw or
        signed so that positive is better.
    follow_up : {"last", "phase_end"} or int
        Follow-up point (see :func:`stepanalytics.instruments.change.measure_change`).
    covariates : sequence of str, optional
        Case-mix columns; default those of :data:`DEFAULT_CASE_MIX` present.

    Returns
    -------
    ClinicComparison

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> cohort = synthesize_cohort(n_patients=300, n_clinics=6, seed=2026)
    >>> res = benchmark_outcome(cohort, instrument="odi", indicator="change")
    >>> "rank" in res.table.columns
    False
    """
    from stepanalytics.instruments.change import measure_change

    if indicator not in (*_BINARY, "change", "improvement"):
        raise UsageError(f"Unknown indicator {indicator!r}.")
    change = measure_change(cohort, follow_up=follow_up, instruments=[instrument])
    return benchmark_from_change(
        change.patients,
        cohort.patients,
        instrument=instrument,
        indicator=indicator,
        follow_up=follow_up,
        covariates=covariates,
        levels=levels,
        overdispersion=overdispersion,
        shrinkage=shrinkage,
    )


def benchmark_from_change(
    pairs: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    instrument: str,
    indicator: Indicator = "responder",
    follow_up: str | int = "last",
    covariates: Sequence[str] | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    overdispersion: DispersionMethod = "additive",
    shrinkage: Literal["REML", "DL"] | None = "REML",
) -> ClinicComparison:
    """Compare clinics on measured change (the second half of :func:`benchmark_outcome`).

    Parameters
    ----------
    pairs : DataFrame
        The ``patients`` frame of :func:`~stepanalytics.instruments.measure_change`
        for ``instrument`` (or of
        :func:`~stepanalytics.instruments.change_parts.rescore_change` for a cohort
        measured in parts).
    patients : DataFrame
        The cohort's patients table (clinic and case-mix columns).
    instrument, indicator, follow_up, covariates, levels, overdispersion, shrinkage
        As in :func:`benchmark_outcome`.

    Returns
    -------
    ClinicComparison

    Examples
    --------
    >>> from stepanalytics.instruments import measure_change
    >>> from stepanalytics.synth import synthesize_cohort
    >>> cohort = synthesize_cohort(n_patients=300, n_clinics=6, seed=2026)
    >>> pairs = measure_change(cohort, instruments=["odi"]).patients
    >>> res = benchmark_from_change(pairs, cohort.patients, instrument="odi")
    >>> res.table.equals(benchmark_outcome(cohort, instrument="odi").table)
    True
    """
    if indicator not in (*_BINARY, "change", "improvement"):
        raise UsageError(f"Unknown indicator {indicator!r}.")
    pairs = pairs[pairs["instrument"] == instrument]
    complete = pairs[pairs["status"] == "complete"].copy()
    if follow_up == "phase_end":
        complete = complete.sort_values("stay_number").drop_duplicates("patient_id", keep="last")
    _check_comparable(pairs, complete, instrument, patients)
    lost = int((pairs["status"] == "no_follow_up").sum())
    if indicator == "responder":
        complete["outcome"] = complete["responder"].astype(float)
    elif indicator == "deteriorated":
        complete["outcome"] = (complete["category"] == "deteriorated").astype(float)
    elif indicator == "recovered":
        complete["outcome"] = (complete["category"] == "recovered").astype(float)
    else:
        complete["outcome"] = complete[indicator].astype(float)
    wanted = DEFAULT_CASE_MIX if covariates is None else tuple(covariates)
    # Only the clinic and the case-mix columns the pairs lack: a patients column named like
    # a pair column (outcome, baseline_score) must not shadow it.
    taken = ["clinic_id", *(c for c in wanted if c in patients.columns)]
    taken = [c for c in dict.fromkeys(taken) if c not in complete.columns]
    frame = complete.merge(patients[["patient_id", *taken]], on="patient_id", how="left")
    used = [c for c in wanted if c in frame.columns and frame[c].notna().any()]
    result = compare_clinics(
        frame,
        outcome="outcome",
        kind="binary" if indicator in _BINARY else "continuous",
        covariates=used,
        levels=levels,
        overdispersion=overdispersion,
        shrinkage=shrinkage,
        title=f"{instrument}: {indicator} by clinic (case-mix adjusted)",
    )
    notes = list(result.warnings)
    if lost:
        notes.insert(
            0,
            f"{lost} patients with a baseline {instrument} score have no follow-up score and are "
            "not in this comparison; see the completeness and attrition checks.",
        )
    skipped = [c for c in wanted if c not in used]
    if skipped and covariates is not None:
        notes.append(f"Case-mix columns not available and not used: {', '.join(skipped)}.")
    return ClinicComparison(
        table=result.table,
        warnings=tuple(notes),
        model=result.model,
        title=result.title,
        funnel=result.funnel,
        shrinkage=result.shrinkage,
        adjustment=result.adjustment,
        kind=result.kind,
        unit=result.unit,
        scale=result.scale,
    )


def _check_comparable(
    pairs: pd.DataFrame, complete: pd.DataFrame, instrument: str, patients: pd.DataFrame
) -> None:
    """Say plainly why clinics cannot be compared on change in ``instrument``.

    Change needs a baseline and a follow-up score; a comparison needs two
    clinics with such patients.  The message names what is missing, not a
    symptom of it further down (an empty model, one clinic left).
    """
    if pairs.empty:
        raise AnalysisError(
            f"No {instrument} scores in this cohort: there is no change to compare clinics on."
        )
    if complete.empty:
        if (pairs["status"] == "no_baseline").all():
            reason = f"no patient has a baseline {instrument} score (a score early in care)"
        else:
            reason = f"no patient has a follow-up {instrument} score after the baseline yet"
        raise AnalysisError(
            f"Clinics cannot be compared on {instrument}: {reason}, so change from baseline "
            "cannot be measured."
        )
    clinic_of = patients.set_index("patient_id")["clinic_id"]
    k = int(complete["patient_id"].map(clinic_of).nunique())
    if k < 2:
        raise AnalysisError(
            f"Clinics cannot be compared on {instrument}: only {k} clinic (of "
            f"{patients['clinic_id'].nunique()} in this cohort) has patients with a baseline "
            "and a follow-up score; at least 2 are needed."
        )
