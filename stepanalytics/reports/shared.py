"""Peer results: what every clinic's report compares against, computed once.

A clinic is judged among its peers on risk-adjusted outcomes: one case-mix
model per outcome fitted on all clinics, observed / expected per clinic,
funnel limits with overdispersion, and empirical-Bayes shrunken estimates.
These do not depend on which clinic a report is about, so a batch computes
them once (:func:`compute_peer_results`), writes them to a file that lives
while the batch runs (:func:`write_shared`), and every notebook reads them
(:func:`read_shared`) instead of refitting.

The artefact holds clinic-level tables only: the patient-level frames and
fitted models (which keep the patient rows) are dropped before writing, so
it never holds a patient id.  Its counts are not suppressed (every report
protects what it shows), so the batch deletes it when it ends.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.reports.clinic_parts import PART_PATIENTS
from stepanalytics.reports.context import OUTCOME_INSTRUMENTS
from stepanalytics.reports.inputs import ReportError
from stepanalytics.reports.period import ReportPeriod

if TYPE_CHECKING:
    from stepanalytics.cohort import Cohort

#: Indicators compared per outcome (see :func:`stepanalytics.qi.benchmark.benchmark_outcome`).
PEER_INDICATORS = ("responder",)
#: The outcome is change from baseline to the score closest to this day (12 weeks).
OUTCOME_DAY = 84
_FORMAT_VERSION = 2
INDICATOR_LABELS = {
    "responder": "reached the minimal important change",
    "deteriorated": "reliably deteriorated",
    "recovered": "recovered (reliable change into the normal range)",
    "change": "mean change",
    "improvement": "mean improvement",
}


@dataclass(frozen=True)
class OutcomeComparison:
    """One indicator of one outcome compared among clinics.

    Attributes
    ----------
    instrument, indicator : str
        Instrument code and indicator (``responder``, ...).
    label : str
        What is compared, for people.
    result : ClinicComparison or None
        From :func:`stepanalytics.qi.benchmark.benchmark_outcome`, with the
        fitted model and the patient rows removed.
    problem : str or None
        Why the comparison could not be made, in plain words.
    """

    instrument: str
    indicator: str
    label: str
    result: Any = None
    problem: str | None = None


@dataclass(frozen=True)
class PeerResults:
    """Everything a report compares a clinic against; clinic-level, no patient ids.

    Attributes
    ----------
    cohort_fingerprint, period, outcome_day
        What the results were computed from (checked when read back).
    comparisons : tuple of OutcomeComparison
        The risk-adjusted comparison of each outcome.
    instruments : tuple of str
        The outcomes the clinic-by-clinic tables cover.
    patients : DataFrame
        Patients per clinic (``clinic_id``, ``patients``) in the period.
    categories : DataFrame
        Patients per clinic and case-mix category (``column``, ``category``,
        ``clinic_id``, ``patients``).
    completeness, outcomes, adherence, safety
        The clinic-by-clinic results of
        :func:`~stepanalytics.qi.completeness.completeness_funnel`,
        :func:`~stepanalytics.qi.indicators.outcome_indicators` (end of each
        phase), :func:`~stepanalytics.qi.adherence.protocol_adherence` (without
        its patient-level stays) and :func:`~stepanalytics.qi.safety.safety_rates`.
        Their counts are not suppressed: every report protects what it shows.
    """

    cohort_fingerprint: str
    period: str | None
    outcome_day: int
    comparisons: tuple[OutcomeComparison, ...] = ()
    created_utc: str = ""
    format_version: int = _FORMAT_VERSION
    instruments: tuple[str, ...] = ()
    patients: pd.DataFrame = field(default_factory=pd.DataFrame)
    categories: pd.DataFrame = field(default_factory=pd.DataFrame)
    completeness: Any = None
    outcomes: Any = None
    adherence: Any = None
    safety: Any = None

    def comparison(self, instrument: str, indicator: str = "responder") -> OutcomeComparison | None:
        """The comparison of one instrument and indicator, or None."""
        return next(
            (
                c
                for c in self.comparisons
                if c.instrument == instrument and c.indicator == indicator
            ),
            None,
        )

    @property
    def n_patients(self) -> int:
        """Patients of every clinic in the period."""
        return int(self.patients["patients"].sum()) if not self.patients.empty else 0

    def category_totals(self, column: str) -> pd.Series:
        """Patients per category of a case-mix column, over every clinic."""
        rows = self.categories[self.categories["column"] == column]
        return rows.groupby("category")["patients"].sum().astype("int64")


def compute_peer_results(
    source: Cohort | str | Path,
    *,
    period: ReportPeriod | None = None,
    instruments: Sequence[str] = (),
    indicators: Sequence[str] = PEER_INDICATORS,
    outcome_day: int = OUTCOME_DAY,
    part_patients: int = PART_PATIENTS,
    workers: int = 1,
    on_part: Callable[[int, int], None] | None = None,
) -> PeerResults:
    """Every clinic's tables and the risk-adjusted comparison, computed once.

    Parameters
    ----------
    source : Cohort or path
        The whole cohort in memory, or its folder / DuckDB file.  A DuckDB
        file or Parquet folder is read one clinic at a time
        (:mod:`stepanalytics.reports.clinic_parts`), so a registry never sits
        in memory whole; each clinic is validated as it is read.
    period : ReportPeriod, optional
        Patients enrolled in this period (all when None); recorded so that a
        report can refuse results of another period.
    instruments : sequence of str
        Outcomes to cover; default those of :data:`OUTCOME_INSTRUMENTS`.
    indicators : sequence of str
        Indicators compared per outcome (default: reaching the MCID).
    outcome_day : int
        Follow-up day of the compared outcome (the closest score within the
        window of :func:`~stepanalytics.instruments.measure_change`).
    part_patients : int
        Clinics are read and reduced in groups of about this many patients
        (never splitting a clinic); the results do not depend on it.
    workers : int
        Parts of a stored registry (DuckDB, Parquet) read at once, each in a
        worker process; 1 reads them in this process.  Results do not depend
        on it.
    on_part : callable, optional
        Called as ``on_part(done, total)`` when a part of a stored registry
        has been read and reduced (for a progress bar).

    Returns
    -------
    PeerResults

    Raises
    ------
    CohortError
        A clinic's data breaks the contract.
    UsageError
        An instrument code the registry does not know.
    ReportError
        No patient was enrolled in the period.

    Notes
    -----
    Each comparison is :func:`stepanalytics.qi.benchmark.benchmark_outcome`:
    a case-mix model fitted on all clinics (indirect standardisation),
    funnel limits after Spiegelhalter (2005) with additive overdispersion,
    and empirical-Bayes shrunken estimates.  A comparison that cannot be
    made (too few clinics or events) is kept with its reason.
    """
    from stepanalytics.instruments import get_registry
    from stepanalytics.reports.clinic_parts import combine_parts, gather_parts

    registry = get_registry()
    unknown = [c for c in instruments if c not in registry]
    if unknown:
        # A typo must not quietly shrink the comparison (the whole-cohort functions refuse it too).
        raise UsageError(
            f"instruments: unknown instrument code(s) {unknown}; the instrument registry knows "
            f"{', '.join(sorted(registry.codes))}."
        )
    # Each outcome once, in the order given; the defaults are those the registry knows.
    codes = tuple(dict.fromkeys(c for c in (instruments or OUTCOME_INSTRUMENTS) if c in registry))
    parts, fingerprint = gather_parts(
        source,
        period,
        codes=codes,
        outcome_day=outcome_day,
        part_patients=part_patients,
        workers=workers,
        on_part=on_part,
    )
    if not parts.patients:
        when = period.label if period else "any period"
        raise ReportError(f"No patient was enrolled in {when}: there is nothing to compare.")
    tables = combine_parts(parts)
    present = parts.scored_codes
    comparisons = [
        _compare(tables, code, indicator, outcome_day)
        for code in codes
        if code in present
        for indicator in indicators
    ]
    return PeerResults(
        cohort_fingerprint=fingerprint,
        period=period.label if period else None,
        outcome_day=outcome_day,
        comparisons=tuple(comparisons),
        created_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        instruments=codes,
        patients=tables["patients"],
        categories=tables["categories"],
        completeness=tables["completeness"],
        outcomes=tables["outcomes"],
        adherence=tables["adherence"],
        safety=tables["safety"],
    )


def _compare(
    tables: dict[str, Any], code: str, indicator: str, outcome_day: int
) -> OutcomeComparison:
    from stepanalytics.qi.benchmark import benchmark_from_change

    weeks = outcome_day / 7
    label = f"{code}: {INDICATOR_LABELS.get(indicator, indicator)} at about {weeks:.0f} weeks"
    try:
        with warnings.catch_warnings():
            # A case-mix model near separation (a small cohort where a covariate predicts
            # the outcome) overflows exp() when statsmodels computes its fitted values
            # (qi.casemix, outside the fit whose warnings it records).  The result is
            # right (probabilities of 0 or 1) and the fit's own separation warning is
            # among the comparison's notes; the raw RuntimeWarning would only reach the
            # terminal of a batch.
            warnings.filterwarnings(
                "ignore", message="overflow encountered in exp", category=RuntimeWarning
            )
            result = benchmark_from_change(
                tables["day_pairs"],
                tables["patient_table"],
                instrument=code,
                indicator=indicator,  # type: ignore[arg-type]
                follow_up=outcome_day,
            )
    except (AnalysisError, UsageError) as err:
        return OutcomeComparison(code, indicator, label, problem=str(err))
    return OutcomeComparison(code, indicator, label, _without_patients(result))


def _without_patients(result: Any) -> Any:
    """Drop fitted models and patient rows: they carry patient ids."""
    adjustment = result.adjustment
    if adjustment is not None:
        adjustment = replace(adjustment, patients=pd.DataFrame(), model=None)
    funnel = None if result.funnel is None else replace(result.funnel, model=None)
    shrinkage = None if result.shrinkage is None else replace(result.shrinkage, model=None)
    return replace(result, model=None, adjustment=adjustment, funnel=funnel, shrinkage=shrinkage)


def shared_file(folder: Path, period: ReportPeriod | None) -> Path:
    """Where the peer results of a period are written."""
    return folder / f"peers_{period.label if period else 'all-periods'}.pkl"


def write_shared(peers: PeerResults, folder: str | Path) -> Path:
    """Write peer results atomically (temporary sibling, then rename).

    Returns
    -------
    Path
        The file written, to pass to notebooks as their ``shared`` parameter.
    """
    from stepanalytics.reports.period import parse_period
    from stepanalytics.reports.report_files import temporary_sibling

    target_dir = Path(folder)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = shared_file(target_dir, parse_period(peers.period))
    temporary = temporary_sibling(target)
    with temporary.open("wb") as handle:
        pickle.dump(peers, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(temporary, target)
    return target


def read_shared(path: str | Path, *, cohort: Cohort, period: ReportPeriod | None) -> PeerResults:
    """Read peer results and check they belong to this cohort and period.

    Raises
    ------
    ReportError
        When the file is missing, unreadable, or made from other data or
        another period (a stale artefact must not be reported silently).
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            peers = pickle.load(handle)  # our own artefact, written by write_shared
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as err:
        raise ReportError(f"The shared peer results at {file} cannot be read: {err}") from None
    if not isinstance(peers, PeerResults) or peers.format_version != _FORMAT_VERSION:
        raise ReportError(f"{file} is not a peer-results file of this stepanalytics version.")
    label = period.label if period else None
    if peers.cohort_fingerprint != cohort.fingerprint or peers.period != label:
        raise ReportError(
            f"The shared peer results at {file} were computed from other data or another "
            f"period (period {peers.period!r}, this report {label!r}). Run the batch again."
        )
    return peers
