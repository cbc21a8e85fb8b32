"""Cox models for single transitions of the multi-state model (clock forward).

Time is days since enrolment; a patient is at risk for a transition out of
a state from the day the state was entered (delayed entry) until leaving
it.  Patients who enter a state more than once (after a step-down) have
several rows, so their rows form one cluster for the robust standard
errors unless clinics are the clusters.

Notes
-----
R equivalent: ``coxph(Surv(tstart, tstop, to_state == "phase 2") ~ x,
data = subset(rows, from_state == "phase 1"), cluster = patient_id)``;
Putter, Fiocco & Geskus (2007), section 4 ("Markov" transition models).
For the clock-reset (time in phase) version, use
:func:`stepanalytics.progression.fit_progression_cox` with ``outcomes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression.cox import MIN_EVENTS, fit_cox
from stepanalytics.progression.results import CoxModel


def fit_transition_cox(
    rows: pd.DataFrame,
    *,
    transition: tuple[str, str],
    covariates: Sequence[str],
    clinic: Literal["cluster", "strata"] | None = None,
    ties: str = "efron",
    conf_level: float = 0.95,
    min_events: int = MIN_EVENTS,
) -> CoxModel:
    """Cox model of one transition, e.g. ``("phase 1", "phase 2")``.

    Parameters
    ----------
    rows : DataFrame
        Counting-process rows from :func:`multistate_data` (patient columns
        included; add baseline scores with :func:`add_baselines`).
    transition : (str, str)
        From-state and to-state.  Leaving the from-state any other way
        censors the row (a cause-specific hazard).
    covariates : sequence of str
        Case-mix columns.
    clinic : {"cluster", "strata", None}
        Clinic as clusters (else patients are), as strata, or ignored.
    ties : {"efron", "breslow"}
        Tied days, as R ``coxph(ties=)``; see :func:`fit_cox`.

    Returns
    -------
    CoxModel

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> from stepanalytics.progression import multistate_data
    >>> rows, _ = multistate_data(synthesize_cohort(n_patients=300, n_clinics=3, seed=1))
    >>> fit = fit_transition_cox(rows, transition=("phase 1", "phase 2"),
    ...                          covariates=["compensation_claim"])
    >>> fit.variance
    'cluster-robust (patient_id)'
    """
    if clinic not in ("cluster", "strata", None):
        raise UsageError(f"clinic must be 'cluster', 'strata' or None, not {clinic!r}")
    source, target = transition
    part = rows[rows["from_state"] == source]
    if part.empty:
        states = sorted(rows["from_state"].unique().tolist())
        raise AnalysisError(f"nobody is ever in {source!r} (states: {states}): nothing to model")
    events = part["to_state"].eq(target)
    if not events.any():
        raise AnalysisError(f"no transition {source} -> {target} was observed")
    return fit_cox(
        part.assign(event=events),
        duration="tstop",
        event="event",
        entry="tstart",
        covariates=covariates,
        strata="clinic_id" if clinic == "strata" else None,
        cluster="clinic_id" if clinic == "cluster" else "patient_id",
        ties=ties,
        conf_level=conf_level,
        min_events=min_events,
        title=f"Cox model of the transition {source} -> {target} (time since enrolment)",
    )
