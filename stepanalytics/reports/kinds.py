"""The reports stepanalytics renders and where their notebooks live."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from stepanalytics.errors import UsageError

#: Environment variable naming another folder of report notebooks.
NOTEBOOKS_ENV = "STEPANALYTICS_NOTEBOOKS"
#: The notebook kernel every report runs on (named explicitly, never "whatever is default").
KERNEL_NAME = "python3"
#: Seconds a single notebook cell may run before the report is abandoned.
DEFAULT_CELL_TIMEOUT = 600


@dataclass(frozen=True)
class ReportKind:
    """One kind of report.

    Parameters
    ----------
    name : str
        Short name used on the command line (``qi``).
    notebook : str
        File name of its notebook in ``notebooks/``.
    title : str
        Title for people.
    committee : bool
        True when the report goes to a committee: small cells are suppressed
        and the run is refused when a patient id would appear.
    per_clinic : bool
        True when the report is about one clinic (``clinic`` parameter).
    """

    name: str
    notebook: str
    title: str
    committee: bool
    per_clinic: bool


REPORT_KINDS: dict[str, ReportKind] = {
    kind.name: kind
    for kind in (
        ReportKind("qi", "qi_report.ipynb", "QI committee report", True, True),
        ReportKind("benchmark", "clinic_benchmark.ipynb", "Clinic benchmark", True, False),
        ReportKind("explorer", "cohort_explorer.ipynb", "Cohort explorer", False, True),
    )
}


def get_kind(name: str) -> ReportKind:
    """Look up a report kind by name.

    Examples
    --------
    >>> get_kind("qi").notebook
    'qi_report.ipynb'
    """
    try:
        return REPORT_KINDS[name]
    except KeyError:
        known = ", ".join(REPORT_KINDS)
        raise UsageError(f"Unknown report kind {name!r}; choose one of: {known}.") from None


def notebooks_dir() -> Path:
    """The folder holding the report notebooks.

    ``$STEPANALYTICS_NOTEBOOKS`` when set, else ``notebooks/`` of the source
    checkout this package was imported from.
    """
    override = os.environ.get(NOTEBOOKS_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "notebooks"


def notebook_path(kind: ReportKind) -> Path:
    """Absolute path of a kind's notebook; a clear error when it is missing."""
    path = notebooks_dir() / kind.notebook
    if not path.is_file():
        raise UsageError(
            f"The notebook for the {kind.title} was not found at {path}. Run from a source "
            f"checkout or set {NOTEBOOKS_ENV} to the folder holding {kind.notebook}."
        )
    return path


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def report_stem(kind: str, clinic: str | None, period: str | None) -> str:
    """File name stem of a report, safe on every file system.

    Examples
    --------
    >>> report_stem("qi", "C01", "2025Q4")
    'qi_C01_2025Q4'
    >>> report_stem("benchmark", None, None)
    'benchmark_all-clinics_all-periods'
    """
    clinic_part = _UNSAFE.sub("-", clinic) if clinic else "all-clinics"
    period_part = _UNSAFE.sub("-", period) if period else "all-periods"
    return f"{kind}_{clinic_part}_{period_part}"
