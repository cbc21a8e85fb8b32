"""Time-to-event analyses of the episodes in one phase, on the table from build_stays.

Time runs from the start of the episode (clock reset at entry into the
phase): the question is "how long do patients stay in phase 2 and how do
they leave it".  First episodes and re-entries are analysed apart
(``entry="first"`` by default); ``entry="all"`` pools them and then treats
a patient's episodes as a cluster where the method allows.

Progression out of the last phase is its completion, so ``progressed`` and
``completed`` both count as progression by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression.competing_risks import cumulative_incidence
from stepanalytics.progression.cox import MIN_EVENTS, fit_cox
from stepanalytics.progression.kaplan_meier import kaplan_meier
from stepanalytics.progression.results import CoxModel, CumulativeIncidence, SurvivalCurves

Entry = Literal["first", "re-entry", "all"]
PROGRESSION = ("progressed", "completed")
DEFAULT_DAYS = (28, 56, 84, 112)


def select_stays(stays: pd.DataFrame, *, phase: int, entry: Entry = "first") -> pd.DataFrame:
    """Episodes of one phase, first entries, re-entries or all.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.progression import build_stays
    >>> stays = build_stays(synthesize_cohort(n_patients=60, n_clinics=3, seed=1))
    >>> select_stays(stays, phase=1)["patient_id"].is_unique
    True
    """
    if entry not in ("first", "re-entry", "all"):
        raise UsageError(f"entry must be 'first', 're-entry' or 'all', not {entry!r}")
    for column in ("phase", "entry", "duration_days", "outcome"):
        if column not in stays.columns:
            raise UsageError(f"the stays table lacks {column!r}; build it with build_stays(cohort)")
    chosen = stays[stays["phase"] == phase]
    if entry != "all":
        chosen = chosen[chosen["entry"] == entry]
    if chosen.empty:
        phases = sorted(stays["phase"].unique().tolist())
        raise AnalysisError(
            f"no {'' if entry == 'all' else entry + ' '}stays in phase {phase} "
            f"(phases present: {phases}): nobody is at risk, nothing to analyse"
        )
    return chosen.reset_index(drop=True)


def time_to_progression(
    stays: pd.DataFrame,
    *,
    phase: int,
    by: str | None = None,
    entry: Entry = "first",
    outcomes: Sequence[str] = PROGRESSION,
    at: Sequence[float] = DEFAULT_DAYS,
    conf_type: str = "log",
    conf_level: float = 0.95,
) -> SurvivalCurves:
    """Kaplan-Meier time to progression out of a phase, optionally by group.

    Every other way of leaving the phase (dropout, step-down, a pause when
    pauses are split) censors the episode, so ``1 - estimate`` is the
    probability of progression if nobody left otherwise.  For the real
    share progressing when people also drop out, use
    :func:`phase_exit_incidence`.

    Parameters
    ----------
    stays : DataFrame
        From :func:`build_stays`.
    phase : int
        Phase analysed.
    by : str, optional
        Group column of the stays table (clinic_id, protocol, ...): one curve
        per group and a log-rank test.
    entry : {"first", "re-entry", "all"}
        Which episodes.
    outcomes : sequence of str
        Outcomes that count as progression.
    at : sequence of float
        Days in phase at which to report the probability of not having
        progressed yet.
    conf_type, conf_level
        Pointwise limits (``"log"``, R's default).

    Returns
    -------
    SurvivalCurves

    Notes
    -----
    R: ``survfit(Surv(duration_days, outcome %in% outcomes) ~ by,
    data = subset(stays, phase == k & entry == "first"))``.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.progression import build_stays
    >>> stays = build_stays(synthesize_cohort(n_patients=200, n_clinics=3, seed=1))
    >>> fit = time_to_progression(stays, phase=1, by="protocol")
    >>> list(fit.medians.columns)
    ['group', 'n', 'events', 'median', 'ci_lower', 'ci_upper']
    """
    chosen = select_stays(stays, phase=phase, entry=entry)
    frame = chosen.assign(progressed=chosen["outcome"].isin(list(outcomes)))
    fit = kaplan_meier(
        frame,
        duration="duration_days",
        event="progressed",
        by=by,
        at=at,
        conf_type=conf_type,
        conf_level=conf_level,
        title=f"Time to progression out of phase {phase} ({_entry_words(entry)})",
    )
    if entry == "all" and chosen["patient_id"].duplicated().any():
        return _with_warning(
            fit,
            "some patients have several episodes in this phase; the confidence limits treat "
            "them as independent (analyse entry='first' and entry='re-entry' apart to avoid it)",
        )
    return fit


def phase_exit_incidence(
    stays: pd.DataFrame,
    *,
    phase: int,
    by: str | None = None,
    entry: Entry = "first",
    at: Sequence[float] = DEFAULT_DAYS,
    variance: str = "ij",
    strata: str | None = None,
    rho: float = 0.0,
    conf_type: str = "log",
    conf_level: float = 0.95,
) -> CumulativeIncidence:
    """Cumulative incidence of each way of leaving a phase (progression, dropout, ...).

    Aalen-Johansen, deterministic; see :func:`cumulative_incidence`.  With
    ``entry="all"`` a patient's episodes form one cluster for the
    standard errors.  With ``by``, ``tests`` holds Gray's test of equal
    incidence across the groups for each way of leaving (stratified by
    ``strata``, weight power ``rho``; R ``cmprsk::cuminc(..., group,
    strata)$Tests``).

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.progression import build_stays
    >>> stays = build_stays(synthesize_cohort(n_patients=200, n_clinics=3, seed=1))
    >>> fit = phase_exit_incidence(stays, phase=2, at=[60])
    >>> bool(abs(fit.at_times["estimate"].sum() - 1) < 1e-12)
    True
    """
    chosen = select_stays(stays, phase=phase, entry=entry)
    return cumulative_incidence(
        chosen,
        duration="duration_days",
        outcome="outcome",
        censored="censored",
        by=by,
        cluster="patient_id" if entry == "all" else None,
        at=at,
        variance=variance,
        strata=strata,
        rho=rho,
        conf_type=conf_type,
        conf_level=conf_level,
        title=f"How patients leave phase {phase} ({_entry_words(entry)})",
    )


def fit_progression_cox(
    stays: pd.DataFrame,
    *,
    phase: int,
    covariates: Sequence[str],
    outcomes: Sequence[str] = PROGRESSION,
    entry: Entry = "first",
    clinic: Literal["cluster", "strata"] | None = "cluster",
    ties: str = "efron",
    conf_level: float = 0.95,
    min_events: int = MIN_EVENTS,
) -> CoxModel:
    """Cox model of progression out of a phase with case-mix covariates.

    Parameters
    ----------
    stays : DataFrame
        From :func:`build_stays`, with any extra covariate columns (e.g.
        from :func:`add_baselines`).
    phase : int
        Phase analysed.
    covariates : sequence of str
        Case-mix columns (baseline scores, age_band, compensation_claim, ...).
    outcomes : sequence of str
        Outcomes that count as the event (others censor: a cause-specific
        hazard).  Pass e.g. ``("dropped_out",)`` for a dropout model.
    entry : {"first", "re-entry", "all"}
        Which episodes; with ``"all"`` and no clinic clustering, patients are
        the clusters.
    clinic : {"cluster", "strata", None}
        Clinic as clusters for robust standard errors, as strata (own
        baseline hazard), or ignored.
    ties : {"efron", "breslow"}
        Tied durations, as R ``coxph(ties=)``; see :func:`fit_cox`.

    Returns
    -------
    CoxModel

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.progression import build_stays
    >>> stays = build_stays(synthesize_cohort(n_patients=300, n_clinics=3, seed=1))
    >>> fit = fit_progression_cox(stays, phase=1, covariates=["compensation_claim"],
    ...                           clinic="strata")
    >>> fit.table["term"].tolist()
    ['compensation_claim']
    """
    if clinic not in ("cluster", "strata", None):
        raise UsageError(f"clinic must be 'cluster', 'strata' or None, not {clinic!r}")
    chosen = select_stays(stays, phase=phase, entry=entry)
    frame = chosen.assign(event=chosen["outcome"].isin(list(outcomes)))
    cluster = "clinic_id" if clinic == "cluster" else None
    if cluster is None and entry == "all":
        cluster = "patient_id"
    return fit_cox(
        frame,
        duration="duration_days",
        event="event",
        covariates=covariates,
        strata="clinic_id" if clinic == "strata" else None,
        cluster=cluster,
        ties=ties,
        conf_level=conf_level,
        min_events=min_events,
        title=f"Cox model: {' or '.join(outcomes)} out of phase {phase} ({_entry_words(entry)})",
    )


def add_baselines(
    stays: pd.DataFrame, cohort: Any, instruments: Sequence[str] | None = None
) -> pd.DataFrame:
    """Add each patient's baseline scores as ``baseline_<instrument>`` columns.

    Patients without a baseline score get NaN (a Cox model then leaves
    them out and says how many).
    """
    wide = cohort.wide_baselines()
    if instruments is not None:
        wanted = [f"baseline_{code}" for code in instruments]
        unknown = [w for w in wanted if w not in wide.columns]
        if unknown:
            raise UsageError(
                f"no baseline scores for {', '.join(unknown)}; available: "
                f"{', '.join(c for c in wide.columns if c != 'patient_id')}"
            )
        wide = wide[["patient_id", *wanted]]
    clash = [c for c in wide.columns if c != "patient_id" and c in stays.columns]
    return stays.drop(columns=clash).merge(wide, on="patient_id", how="left")


def _entry_words(entry: str) -> str:
    return {"first": "first stays", "re-entry": "re-entries", "all": "all stays"}[entry]


def _with_warning(fit: SurvivalCurves, note: str) -> SurvivalCurves:
    from dataclasses import replace

    return replace(fit, warnings=(*fit.warnings, note))
