"""What the report layer learns about the input once, before any notebook runs.

Loading the cohort here validates it (a data problem stops the command with
the loader's list of problems, before a kernel is started), gives the patient
ids that the privacy check looks for in rendered pages, and the clinics and
enrolment months that requests are checked against.  A batch does this once
and hands the result to every worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stepanalytics.errors import StepAnalyticsError, UsageError
from stepanalytics.reports.period import ReportPeriod
from stepanalytics.reports.provenance import DataFingerprint, fingerprint_data

if TYPE_CHECKING:
    from stepanalytics.cohort import Cohort
    from stepanalytics.reports.period import ReportPeriod


class ReportError(StepAnalyticsError):
    """A report could not be produced; the message says why and what was kept.

    Attributes
    ----------
    failed_notebook : Path or None
        The executed notebook kept for debugging, when a notebook ran.
    """

    def __init__(self, message: str, *, failed_notebook: Path | None = None) -> None:
        super().__init__(message)
        self.failed_notebook = failed_notebook


@dataclass(frozen=True)
class ReportInputs:
    """Facts about a validated cohort that every report of a run needs.

    Attributes
    ----------
    data : Path
        Absolute path of the cohort.
    fingerprint : DataFingerprint
        Digest of the input files, for provenance.
    patient_ids : frozenset of str
        Every pseudonymous id, so rendered pages can be checked for them.
    clinic_ids : tuple of str
        Clinics present, sorted.
    enrolled_counts : dict
        For each clinic, its patients per enrolment month (``YYYY-MM``), months sorted.
    """

    data: Path
    fingerprint: DataFingerprint
    patient_ids: frozenset[str]
    clinic_ids: tuple[str, ...]
    enrolled_counts: dict[str, dict[str, int]]

    @property
    def enrolled_months(self) -> dict[str, tuple[str, ...]]:
        """For each clinic, its sorted enrolment months."""
        return {clinic: tuple(months) for clinic, months in self.enrolled_counts.items()}

    def patients_in(self, clinic: str, period: ReportPeriod | None) -> int:
        """How many of the clinic's patients were enrolled in the period (all when None)."""
        months = self.enrolled_counts.get(clinic, {})
        return sum(n for m, n in months.items() if period is None or period.contains(m))

    def too_small(self, clinic: str, period: ReportPeriod | None, threshold: int) -> bool:
        """Whether the clinic's patient count in the period is itself a small cell.

        Such a clinic gets no committee report of its own: nearly every number
        in it would be hidden, and what remained (the months it enrolled in,
        the categories nobody falls into) would describe its few patients.
        Its patients are counted in the all-clinics reports.
        """
        return 1 <= self.patients_in(clinic, period) <= threshold

    def check_clinic_size(
        self, *, clinic: str | None, period: ReportPeriod | None, threshold: int
    ) -> None:
        """Refuse a committee report about a clinic with too few patients.

        Raises
        ------
        ReportError
            The clinic's patient count in the period is from 1 to ``threshold``.
            The message does not say how many (that count is a small cell).
        """
        if clinic is None or not self.too_small(clinic, period, threshold):
            return
        when = period.label if period else "all enrolment periods"
        longer = " Choose a longer period to report on this clinic." if period else ""
        raise ReportError(
            f"Clinic {clinic} has too few patients enrolled in {when} for a committee report "
            f"of its own: it needs more than {threshold} (the suppression threshold), else its "
            "report would describe individual patients. Its patients are included in the "
            "all-clinics reports (`stepanalytics report qi` without --clinic, and the "
            f"benchmark).{longer}"
        )

    def clinics_in_period(self, period: ReportPeriod | None) -> list[str]:
        """Clinics with at least one patient enrolled in the period."""
        if period is None:
            return list(self.clinic_ids)
        return [
            c for c in self.clinic_ids if any(period.contains(m) for m in self.enrolled_counts[c])
        ]

    def check_request(self, *, clinic: str | None, period: ReportPeriod | None) -> None:
        """Refuse a clinic that is not in the data or a selection without patients.

        Raises
        ------
        UsageError
            Unknown clinic.
        ReportError
            No patient of the clinic was enrolled in the period.
        """
        if clinic is not None and clinic not in self.clinic_ids:
            shown = ", ".join(self.clinic_ids[:20]) + (" ..." if len(self.clinic_ids) > 20 else "")
            raise UsageError(f"Clinic {clinic!r} is not in the data. Clinics present: {shown}.")
        if period is None:
            return
        clinics = [clinic] if clinic is not None else list(self.clinic_ids)
        months = sorted({m for c in clinics for m in self.enrolled_counts[c]})
        if not any(period.contains(m) for m in months):
            who = f"clinic {clinic}" if clinic else "the cohort"
            span = f"{months[0]} to {months[-1]}" if months else "none"
            raise ReportError(
                f"No patient of {who} was enrolled in {period.label} "
                f"({period.first_month} to {period.last_month}); "
                f"enrolment months in the data: {span}. Choose another period."
            )


def read_report_inputs(data: str | Path) -> ReportInputs:
    """Read the patients at ``data`` (validated) and keep what reports need.

    Raises
    ------
    CohortError
        The loader's list of problems when the data breaks the contract.
    UsageError
        When the path does not exist.
    """
    return scan_report_data(data)[0]


def scan_report_data(data: str | Path) -> tuple[ReportInputs, Cohort | Path]:
    """What reports need to know of the data, and where their analyses read it from.

    A DuckDB file or a folder of Parquet tables can be read one clinic at a
    time, so only its patients and phase stays are read here (validated);
    each clinic's other rows are validated when the clinic is read.  A folder
    of CSV files is read and validated whole, once, and the loaded cohort is
    returned for the analyses to use.

    Returns
    -------
    ReportInputs, Cohort or Path
        The facts, and the loaded cohort (CSV) or the path (DuckDB, Parquet).

    Raises
    ------
    CohortError
        The loader's list of problems when the data breaks the contract.
    UsageError
        When the path does not exist.
    """
    from stepanalytics.cohort import load_cohort
    from stepanalytics.reports.clinic_parts import reads_in_part

    path = _existing(data)
    if reads_in_part(path):
        return inputs_from_cohort(load_cohort(path, tables=()), path), path
    cohort = load_cohort(path)
    return inputs_from_cohort(cohort, path), cohort


def _existing(data: str | Path) -> Path:
    path = Path(data).expanduser().resolve()
    if not path.exists():
        raise UsageError(f"The data path {str(data)!r} does not exist. Give a cohort folder.")
    return path


def inputs_from_cohort(cohort: Cohort, data: str | Path) -> ReportInputs:
    """The facts reports need, from a cohort already loaded from ``data``."""
    path = _existing(data)
    patients = cohort.patients
    months: dict[str, dict[str, int]] = {}
    for clinic, month in zip(patients["clinic_id"], patients["enrolled_month"], strict=True):
        counts = months.setdefault(str(clinic), {})
        counts[str(month)] = counts.get(str(month), 0) + 1
    return ReportInputs(
        data=path,
        fingerprint=fingerprint_data(path),
        patient_ids=frozenset(map(str, patients["patient_id"])),
        clinic_ids=tuple(sorted(map(str, patients["clinic_id"].unique()))),
        enrolled_counts={k: dict(sorted(v.items())) for k, v in sorted(months.items())},
    )


def prepare_report_data(
    inputs: ReportInputs,
    source: Cohort | Path | None,
    *,
    compare: bool,
    period: ReportPeriod | None,
    instruments: tuple[str, ...],
    work: Path,
    progress: bool = False,
) -> Path | None:
    """Validate the data and compute the peer results a notebook will read.

    Reports about a clinic, and committee reports, compare with every clinic:
    the peer results are computed here, before any kernel starts, clinic by
    clinic for a stored registry
    (:func:`~stepanalytics.reports.shared.compute_peer_results`), validating
    each clinic as it is read; the clinic's notebook then reads only the
    clinic.  Other reports (the explorer of all clinics) load the whole
    cohort in their notebook; it is validated here first.

    Parameters
    ----------
    inputs, source
        From :func:`scan_report_data` (``source`` None: read ``inputs.data``).
    compare : bool
        Whether the report compares with the other clinics.
    period : ReportPeriod or None
    instruments : tuple of str
        The notebook's ``instruments`` parameter.
    work : Path
        Folder for the peer-results file (a temporary folder of the caller).
    progress : bool
        Show a progress bar while a stored registry is read part by part.

    Returns
    -------
    Path or None
        The peer-results file written in ``work``, or None.
    """
    from stepanalytics.cohort import load_cohort
    from stepanalytics.reports.batch_index import part_progress
    from stepanalytics.reports.clinic_parts import PEER_WORKERS
    from stepanalytics.reports.shared import compute_peer_results, write_shared

    if source is None:
        source = inputs.data
    if compare:
        with part_progress(enabled=progress) as on_part:
            peers = compute_peer_results(
                source,
                period=period,
                instruments=instruments,
                workers=PEER_WORKERS,
                on_part=on_part,
            )
        return write_shared(peers, work)
    if isinstance(source, Path):
        load_cohort(source)
    return None
