"""Write an imported cohort only once it validates: nothing half-written is left behind.

The tables and ``import_report.csv`` go to a hidden staging folder beside
the target; the staging folder is loaded with :func:`stepanalytics.cohort.load_cohort`
(the full contract check, privacy guard included); only then does it replace
the target.  Any failure removes the staging folder and leaves the target
as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from stepanalytics.errors import UsageError
from stepanalytics.io.import_report import ImportResult
from stepanalytics.io.tables import write_tables

REPORT_FILE = "import_report.csv"


def check_target(out: str | os.PathLike[str], *, force: bool) -> Path:
    """Refuse to overwrite an existing, non-empty folder unless ``force``; return the path.

    Raises
    ------
    UsageError
    """
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder; give a folder for the cohort")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UsageError(f"{target} exists and is not empty; pass --force to replace it")
    return target


def write_import(
    result: ImportResult, out: str | os.PathLike[str], *, force: bool = False, fmt: str = "csv"
) -> Path:
    """Write the cohort tables and the import report, after validating them.

    Parameters
    ----------
    result : ImportResult
        From :func:`~stepanalytics.io.redcap.import_redcap` or
        :func:`~stepanalytics.io.fhir.import_fhir`.
    out : path
        The cohort folder to create (or replace, with ``force``).
    force : bool, keyword-only
        Replace an existing folder.
    fmt : {"csv", "parquet"}, keyword-only
        Table format; the report is always CSV.

    Returns
    -------
    Path
        The cohort folder.

    Raises
    ------
    UsageError
        The target exists and ``force`` is not set.
    CohortError
        The imported tables break the data contract (nothing is written).
    """
    from stepanalytics.cohort import load_cohort  # the loader sits above io in the flow

    target = check_target(out, force=force)
    return write_tables(
        result.tables,
        target,
        fmt=fmt,
        extra_files={REPORT_FILE: result.table.to_csv(index=False)},
        overwrite=True,
        verify=load_cohort,
    )
