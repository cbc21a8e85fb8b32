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
    enrolled_months : dict
        For each clinic, its sorted enrolment months (``YYYY-MM``).
    """

    data: Path
    fingerprint: DataFingerprint
    patient_ids: frozenset[str]
    clinic_ids: tuple[str, ...]
    enrolled_months: dict[str, tuple[str, ...]]

    def clinics_in_period(self, period: ReportPeriod | None) -> list[str]:
        """Clinics with at least one patient enrolled in the period."""
        if period is None:
            return list(self.clinic_ids)
        return [
            c for c in self.clinic_ids if any(period.contains(m) for m in self.enrolled_months[c])
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
        months = sorted({m for c in clinics for m in self.enrolled_months[c]})
        if not any(period.contains(m) for m in months):
            who = f"clinic {clinic}" if clinic else "the cohort"
            span = f"{months[0]} to {months[-1]}" if months else "none"
            raise ReportError(
                f"No patient of {who} was enrolled in {period.label} "
                f"({period.first_month} to {period.last_month}); "
                f"enrolment months in the data: {span}. Choose another period."
            )


def read_report_inputs(data: str | Path) -> ReportInputs:
    """Load and validate the cohort at ``data`` and keep what reports need.

    Raises
    ------
    CohortError
        The loader's list of problems when the data breaks the contract.
    UsageError
        When the path does not exist.
    """
    from stepanalytics.cohort import load_cohort

    path = _existing(data)
    return inputs_from_cohort(load_cohort(path), path)


def _existing(data: str | Path) -> Path:
    path = Path(data).expanduser().resolve()
    if not path.exists():
        raise UsageError(f"The data path {str(data)!r} does not exist. Give a cohort folder.")
    return path


def inputs_from_cohort(cohort: Cohort, data: str | Path) -> ReportInputs:
    """The facts reports need, from a cohort already loaded from ``data``."""
    path = _existing(data)
    patients = cohort.patients
    months: dict[str, set[str]] = {}
    for clinic, month in zip(patients["clinic_id"], patients["enrolled_month"], strict=True):
        months.setdefault(str(clinic), set()).add(str(month))
    return ReportInputs(
        data=path,
        fingerprint=fingerprint_data(path),
        patient_ids=frozenset(map(str, patients["patient_id"])),
        clinic_ids=tuple(sorted(map(str, patients["clinic_id"].unique()))),
        enrolled_months={k: tuple(sorted(v)) for k, v in sorted(months.items())},
    )
