"""Clinic-by-clinic tables of a cohort, computed a few whole clinics at a time.

A committee report about one clinic compares it with every other clinic:
completeness, outcome indicators, adherence and safety by clinic, patient
counts by case-mix category, and the risk-adjusted peer comparison.  Only
the clinic-level numbers of the other clinics are needed, never their
patients, so a registry is read a few whole clinics at a time (the DuckDB
and Parquet readers filter while reading) and each part's patient-level
data is reduced to what the tables are made of before the next part is
read.  Memory then grows with the part size, not with the registry.

The tables equal those computed on the whole cohort at once (tested):

* counts (completeness, adherence, safety, case mix) are per clinic and are
  put together, with the zero rows the whole cohort would give;
* the pooled values (the safety centre and limits, the funnel's target and
  the case-mix model) are computed after all clinics are in;
* the reliable change index rests on the SD of every baseline in the cohort:
  each clinic contributes its baseline moments, the pooled SD is formed at
  the end (:func:`~stepanalytics.instruments.change_parts.pooled_baseline_sd`) and
  the clinics' baseline / follow-up pairs are scored again with it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from stepanalytics.errors import CohortError, Problem, merge_problems

if TYPE_CHECKING:
    from stepanalytics.cohort import Cohort
    from stepanalytics.reports.period import ReportPeriod

#: Patient columns kept from each clinic for the pooled analyses (with the case-mix
#: columns of :data:`stepanalytics.qi.benchmark.DEFAULT_CASE_MIX`).
_PATIENT_KEYS = ("patient_id", "clinic_id", "enrolled_month")
NOT_RECORDED = "not recorded"
#: Patients read together at most (roughly): clinics are read in groups this large,
#: which keeps memory low (about 1 GB for a part with item answers) and reads few.
PART_PATIENTS = 10_000
#: Worker processes reading parts of a stored registry at once (one per core, at most 2:
#: each holds a part in memory).
PEER_WORKERS = max(1, min(2, os.cpu_count() or 1))


def category_counts(values: pd.Series) -> pd.Series:
    """Patients per category of one patient column; missing values as "not recorded"."""
    if pd.api.types.is_bool_dtype(values):
        values = values.map({True: "yes", False: "no"})
    return values.astype("string").fillna(NOT_RECORDED).value_counts()


@dataclass
class ClinicParts:
    """What each clinic contributes, gathered while the clinics are read in turn."""

    codes: tuple[str, ...]
    outcome_day: int
    patients: list[pd.DataFrame] = field(default_factory=list)
    categories: list[pd.DataFrame] = field(default_factory=list)
    funnel_counts: list[pd.DataFrame] = field(default_factory=list)
    scored_codes: set[str] = field(default_factory=set)
    moments: list[pd.DataFrame] = field(default_factory=list)
    phase_end_pairs: list[pd.DataFrame] = field(default_factory=list)
    day_pairs: list[pd.DataFrame] = field(default_factory=list)
    adherence: list[pd.DataFrame] = field(default_factory=list)
    adherence_settings: tuple[int, int] = (14, 8)
    safety_counts: list[pd.DataFrame] = field(default_factory=list)
    events_after_care: int = 0

    def merge(self, other: ClinicParts) -> None:
        """Take in the contributions gathered by another reader (a worker process)."""
        for name in ("patients", "categories", "funnel_counts", "moments", "phase_end_pairs",
                     "day_pairs", "adherence", "safety_counts"):  # fmt: skip
            getattr(self, name).extend(getattr(other, name))
        self.scored_codes |= other.scored_codes
        self.events_after_care += other.events_after_care
        self.adherence_settings = other.adherence_settings

    def add(self, part: Cohort) -> None:
        """Reduce one part (one or more whole clinics) to its contributions."""
        from stepanalytics.instruments.change import measure_change
        from stepanalytics.instruments.change_parts import PAIR_COLUMNS, baseline_moments
        from stepanalytics.qi.adherence import protocol_adherence
        from stepanalytics.qi.benchmark import DEFAULT_CASE_MIX
        from stepanalytics.qi.completeness import completeness_funnel
        from stepanalytics.qi.safety import safety_counts
        from stepanalytics.reports.sections.overview import CASE_MIX_COLUMNS

        patients = part.patients
        wanted = dict.fromkeys((*_PATIENT_KEYS, *DEFAULT_CASE_MIX))
        kept = [c for c in wanted if c in patients.columns]
        self.patients.append(patients[kept])
        for clinic, own in patients.groupby("clinic_id", sort=True):
            for column in CASE_MIX_COLUMNS:
                if column in own.columns:
                    counts = category_counts(own[column])
                    self.categories.append(
                        pd.DataFrame(
                            {
                                "column": column,
                                "category": counts.index.astype(str),
                                "clinic_id": str(clinic),
                                "patients": counts.to_numpy(),
                            }
                        )
                    )
        self.scored_codes |= set(part.instruments)
        codes = list(self.codes)
        if codes:
            funnel = completeness_funnel(part, instruments=codes)
            self.funnel_counts.append(
                funnel.table[
                    ["clinic_id", "instrument", "stage_order", "stage", "eligible", "measured"]
                ]
            )
            self.moments.append(baseline_moments(part, instruments=codes))
            # Only what the pairs are scored from is kept: they are scored again at the end.
            for kept_pairs, follow_up in (
                (self.phase_end_pairs, "phase_end"),
                (self.day_pairs, self.outcome_day),
            ):
                change = measure_change(part, follow_up=follow_up, instruments=codes)
                kept_pairs.append(change.patients[PAIR_COLUMNS])
        adherence = protocol_adherence(part)
        self.adherence.append(adherence.table)
        self.adherence_settings = (adherence.delay_days, adherence.stall_weeks)
        counts, after = safety_counts(part)
        self.safety_counts.append(counts)
        self.events_after_care += after


def gather_parts(
    source: Cohort | str | Path,
    period: ReportPeriod | None,
    *,
    codes: tuple[str, ...],
    outcome_day: int,
    part_patients: int = PART_PATIENTS,
    workers: int = 1,
    on_part: Callable[[int, int], None] | None = None,
) -> tuple[ClinicParts, str]:
    """Every part's contributions, and the fingerprint of the data they came from.

    A part is one clinic, or consecutive clinics together up to about
    ``part_patients`` patients (a clinic is never split).  A Cohort in memory
    is cut into parts; a folder of CSV files is read once (CSV cannot be read
    in part) and cut.  A DuckDB file or a folder of Parquet tables is read
    part by part (only those clinics' rows leave the file), in ``workers``
    processes at once when above 1 (each reads its own clinics; only the
    reduced contributions travel back), and ``on_part(done, total)`` is
    called as each part is done.  A part's problems do not stop the others:
    one :class:`~stepanalytics.errors.CohortError` lists them all.
    """
    from stepanalytics.cohort import Cohort, load_cohort

    gathered = ClinicParts(codes=codes, outcome_day=outcome_day)
    if isinstance(source, Cohort) or not reads_in_part(Path(source)):
        whole = source if isinstance(source, Cohort) else load_cohort(source)
        for part in _cut(whole, period, part_patients):
            gathered.add(part)
        return gathered, whole.fingerprint
    path = Path(source)
    sizes = load_cohort(path, tables=()).patients["clinic_id"].value_counts()
    groups = clinic_groups(sizes, part_patients)
    jobs = [(path, group, period, codes, outcome_day) for group in groups]
    problems: list[Problem] = []
    fingerprint = ""
    with _part_runner(workers, len(jobs)) as run:
        for done, (found, part_problems, part_fingerprint) in enumerate(run(jobs), start=1):
            # Go on after a part's problems: the user fixes the data once.
            problems.extend(part_problems)
            if found is not None:
                gathered.merge(found)
                fingerprint = part_fingerprint
            if on_part is not None:
                on_part(done, len(jobs))
    if problems:
        raise CohortError(merge_problems(problems), source=str(path))
    return gathered, fingerprint


@contextlib.contextmanager
def _part_runner(workers: int, n_jobs: int) -> Iterator[Callable[[list[Any]], Iterable[Any]]]:
    """Map :func:`_reduce_part` over jobs here, or in worker processes."""
    if workers <= 1 or n_jobs <= 1:
        yield lambda jobs: map(_reduce_part, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may hold DuckDB connections and threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, n_jobs), mp_context=context) as pool:
        yield lambda jobs: pool.map(_reduce_part, jobs)


def _reduce_part(
    job: tuple[Path, list[str], ReportPeriod | None, tuple[str, ...], int],
) -> tuple[ClinicParts | None, list[Problem], str]:
    """Read one part of a store and reduce it (run in a worker process)."""
    from stepanalytics.cohort import load_cohort
    from stepanalytics.reports.context import restrict_to_period

    path, clinics, period, codes, outcome_day = job
    try:
        part = restrict_to_period(load_cohort(path, clinics=clinics), period)
    except CohortError as err:
        return None, list(err.problems), ""
    if not part.n_patients:
        return None, [], part.fingerprint
    reduced = ClinicParts(codes=codes, outcome_day=outcome_day)
    reduced.add(replace(part, items=part.items.iloc[:0]))
    return reduced, [], part.fingerprint


def _cut(whole: Cohort, period: ReportPeriod | None, part_patients: int) -> Iterator[Cohort]:
    """The clinics of a cohort in memory, a part at a time."""
    from stepanalytics.reports.context import restrict_to_period

    # Item answers are scored already; cutting millions of them per part
    # would cost more than everything else together.
    slim = replace(whole, items=whole.items.iloc[:0])
    sizes = slim.patients["clinic_id"].value_counts()
    for clinics in clinic_groups(sizes, part_patients):
        part = restrict_to_period(slim.subset(clinics=clinics), period)
        if part.n_patients:
            yield part


def clinic_groups(sizes: pd.Series, part_patients: int) -> list[list[str]]:
    """Clinics in id order, grouped until a group holds ``part_patients`` patients.

    Examples
    --------
    >>> clinic_groups(pd.Series({"C1": 4, "C2": 3, "C3": 9, "C4": 1}), 6)
    [['C1', 'C2'], ['C3'], ['C4']]
    """
    groups: list[list[str]] = []
    current: list[str] = []
    total = 0
    for clinic, n in sorted(sizes.items()):
        current.append(str(clinic))
        total += int(n)
        if total >= part_patients:
            groups.append(current)
            current, total = [], 0
    if current:
        groups.append(current)
    return groups


def reads_in_part(path: Path) -> bool:
    """Whether the readers can read one clinic without the rest (DuckDB, Parquet)."""
    if path.is_file():
        return True  # a DuckDB file (anything else is refused by load_cohort)
    return not (path / "patients.csv").exists()


def combine_parts(parts: ClinicParts) -> dict[str, Any]:
    """The clinic-by-clinic tables from every clinic's contributions.

    Returns
    -------
    dict
        ``patients`` (clinic_id, patients), ``categories``, ``completeness``,
        ``outcomes``, ``adherence``, ``safety``, ``baseline_sd``,
        ``day_pairs`` and ``patient_table`` (the last two patient-level, for
        the peer comparison only; never stored).
    """
    from stepanalytics.instruments.change_parts import pooled_baseline_sd, rescore_change
    from stepanalytics.qi.adherence import Adherence
    from stepanalytics.qi.indicators import indicators_from_change
    from stepanalytics.qi.safety import safety_rates_from_counts

    patient_table = _concat(parts.patients)
    moments = _concat(parts.moments)
    sds = pooled_baseline_sd(moments) if parts.moments else {}
    outcomes = None
    day_pairs = pd.DataFrame()
    if parts.codes and parts.phase_end_pairs:
        # The warnings are the whole cohort's: an SD that cannot be used names its
        # baselines in every clinic, as measure_change(baseline_sd="cohort") does.
        pairs, warnings = rescore_change(_concat(parts.phase_end_pairs), moments=moments)
        outcomes = indicators_from_change(
            pairs,
            patient_table,
            by=("clinic_id",),
            follow_up="phase_end",
            warnings=warnings,
            title="Outcome indicators (change from baseline to the end of each phase stay)",
        )
        day_pairs, _ = rescore_change(_concat(parts.day_pairs), moments=moments)
    delay, stall = parts.adherence_settings
    adherence_table = _concat(parts.adherence).sort_values(["clinic_id", "phase"], kind="stable")
    adherence = Adherence(
        table=adherence_table.reset_index(drop=True),
        title="Protocol adherence by clinic and phase",
        delay_days=delay,
        stall_weeks=stall,
    )
    safety = safety_rates_from_counts(
        _concat(parts.safety_counts), events_after_care=parts.events_after_care
    )
    by_clinic = patient_table.groupby("clinic_id").size().rename("patients").reset_index()
    return {
        "patients": by_clinic,
        "categories": _concat(parts.categories),
        "completeness": _completeness(parts) if parts.codes else None,
        "outcomes": outcomes,
        "adherence": adherence,
        "safety": safety,
        "baseline_sd": sds,
        "day_pairs": day_pairs,
        "patient_table": patient_table,
    }


def _completeness(parts: ClinicParts) -> Any:
    """The funnel of all clinics, with the zero rows of stages a clinic never reached.

    Counted on the whole cohort, every clinic has a row for every stage any
    clinic has (the phases reached differ between clinics); counted clinic
    by clinic the missing stages are zero for that clinic.
    """
    from stepanalytics.qi.completeness import completeness_from_counts

    counts = _concat(parts.funnel_counts)
    stages = counts[["instrument", "stage_order", "stage"]].drop_duplicates()
    clinics = counts[["clinic_id"]].drop_duplicates()
    grid = clinics.merge(stages, how="cross")
    keys = ["clinic_id", "instrument", "stage_order", "stage"]
    full = grid.merge(counts, on=keys, how="left")
    for column in ("eligible", "measured"):
        full[column] = full[column].fillna(0).astype("int64")
    warnings = [
        f"{code}: no patient has a score in this cohort; every patient due is counted as "
        "not measured."
        for code in parts.codes
        if code not in parts.scored_codes
    ]
    return completeness_from_counts(full, by=("clinic_id",), warnings=warnings)


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty] or list(frames[:1])
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
