"""The registry-wide rules over a folder of tables, table by table as they are read.

:mod:`stepanalytics.io.registry_checks` holds the rules; this class feeds
them the tables of a folder (CSV frames or Parquet files) in the order the
folder reader meets them, and remembers each Parquet table's result for the
file's state, so that reading a registry clinic by clinic checks it once.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stepanalytics.errors import CohortError, Problem
from stepanalytics.io.file_state import FileState, file_state, remembered
from stepanalytics.io.registry_checks import (
    TableSource,
    frame_source,
    parquet_source,
    patient_problems,
    row_table_problems,
)


class FolderChecks:
    """The registry-wide rules over a folder's tables, run table by table as read.

    CSV tables are checked on the whole frame before the clinic filter (and
    let go right after); Parquet tables by DuckDB over their files, without
    loading them.

    Examples
    --------
    >>> import pandas as pd
    >>> checks = FolderChecks()
    >>> checks.add_frame("patients", pd.DataFrame({"patient_id": ["P1"], "clinic_id": [""]}))
    >>> [p.column for p in checks.close()]
    ['clinic_id']
    """

    def __init__(self) -> None:
        import duckdb

        self.con = duckdb.connect()
        self.patients: TableSource | None = None
        self.patients_state: FileState = ()
        self.patients_file: Path | None = None
        self.problems: list[Problem] = []

    def add_frame(self, name: str, frame: pd.DataFrame) -> None:
        self._check(frame_source(self.con, name, frame))
        if name != "patients":
            self.con.unregister(f"_frame_{name}")

    def add_parquet(self, name: str, file: Path) -> None:
        if name == "patients":
            self.patients_file, self.patients_state = file, file_state(file)
        # Clinic after clinic reads the same files: their checks are done once per process.
        state = (*self.patients_state, *file_state(file))
        self.problems.extend(
            remembered(f"registry checks {name}", state, lambda: self._parquet_problems(name, file))
        )

    def _parquet_problems(self, name: str, file: Path) -> list[Problem]:
        before = len(self.problems)
        if name != "patients" and self.patients is None and self.patients_file is not None:
            # The patients' own checks were remembered; their rows are still needed here.
            self.patients = parquet_source(self.con, self.patients_file, "patients")
        try:
            source = parquet_source(self.con, file, name)
        except Exception as exc:  # duckdb and Arrow raise their own errors on a bad file
            raise CohortError(
                [Problem(name, None, f"{file.name}: the Parquet data cannot be read ({exc})",
                         "write the table again as Parquet (e.g. `stepanalytics ingest`)")],
                source=str(file),
            ) from exc  # fmt: skip
        self._check(source)
        found = self.problems[before:]
        del self.problems[before:]
        return found

    def _check(self, source: TableSource) -> None:
        if source.name == "patients":
            self.patients = source
            self.problems.extend(patient_problems(self.con, source))
        elif self.patients is not None:
            self.problems.extend(row_table_problems(self.con, self.patients, source))

    def close(self) -> list[Problem]:
        self.con.close()
        return self.problems
