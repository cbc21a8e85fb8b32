"""Registry-wide rules that a read of only some clinics cannot see, as DuckDB queries.

``load_cohort(path, clinics=[...])`` reads one clinic's patients and their
rows, so pandas validation sees only that clinic.  Three rules need the whole
registry, and would otherwise go unreported when a registry is loaded (or
reported on) clinic by clinic:

- a ``patient_id`` repeated in patients (possibly in two clinics);
- patients whose ``clinic_id`` is empty (no clinic filter ever loads them);
- rows of phases, assessments, items or events whose ``patient_id`` is empty
  or not in patients (orphans: no clinic filter loads them either).

The queries scan the key columns of the whole store and return only the
offending rows (count, first rows, a few values).  Each table is a
:class:`TableSource` whose ``_pos`` is the row number the pandas readers use
(DuckDB ``rowid``; position in the whole Parquet dataset; CSV row), so rows
named here are those a whole-registry validation names, in the same words
(:mod:`stepanalytics.validate`) plus :data:`REGISTRY_NOTE`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stepanalytics.errors import MAX_EXAMPLES, MAX_ROWS_SHOWN, Problem
from stepanalytics.privacy import scan_table

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "REGISTRY_NOTE",
    "REGISTRY_RULES",
    "TableSource",
    "duckdb_table_source",
    "frame_source",
    "merge_registry_problems",
    "parquet_source",
    "patient_problems",
    "registry_problems",
    "row_table_problems",
]

#: Appended to the message of every problem found by these queries.
REGISTRY_NOTE = " (found in the whole registry, not only in the clinics read)"

ROW_TABLES = ("phases", "assessments", "items", "events")
_DUPLICATE = "the key (patient_id) appears more than once"
_DUPLICATE_FIX = "keep one row per key: duplicates are an error, never averaged"
_EMPTY = "required value is empty"
_ORPHAN = "the patient is not in patients"
_ORPHAN_FIX = "add the patient to patients or remove these rows"
_PID = "CAST(patient_id AS VARCHAR)"

#: (table, column, message) of the rules checked here; the same problems
#: found by pandas in the rows read are replaced by the registry-wide ones.
REGISTRY_RULES = frozenset(
    {
        ("patients", "patient_id", _DUPLICATE),
        ("patients", "clinic_id", _EMPTY),
        *((t, "patient_id", _EMPTY) for t in ROW_TABLES),
        *((t, "patient_id", _ORPHAN) for t in ROW_TABLES),
    }
)


@dataclass(frozen=True)
class TableSource:
    """One table of the whole registry as a SQL relation.

    Attributes
    ----------
    name : str
        Contract table name.
    relation : str
        SQL text (a table or view name, or a sub-query in parentheses) with a
        ``_pos`` column (0-based row position) and the table's columns.
    columns : tuple of str
        Column names of the table (``_pos`` excluded).
    """

    name: str
    relation: str
    columns: tuple[str, ...]


def duckdb_table_source(con: duckdb.DuckDBPyConnection, name: str) -> TableSource:
    """A table of an open DuckDB store; ``_pos`` is its ``rowid``.

    Examples
    --------
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE patients AS SELECT 'P1' AS patient_id")
    >>> duckdb_table_source(con, "patients").columns
    ('patient_id',)
    """
    columns = tuple(row[0] for row in con.execute(f'DESCRIBE "{name}"').fetchall())
    return TableSource(name, f'(SELECT rowid AS _pos, * FROM "{name}")', columns)


def frame_source(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> TableSource:
    """A pandas frame read whole (e.g. from CSV); ``_pos`` is its index.

    Examples
    --------
    >>> import duckdb, pandas as pd
    >>> con = duckdb.connect()
    >>> frame_source(con, "events", pd.DataFrame({"patient_id": ["P1"]})).relation
    '_frame_events'
    """
    view = f"_frame_{name}"
    positioned = frame.reset_index(drop=False, names="_pos")
    positioned["_pos"] = positioned["_pos"].astype("int64")
    con.register(view, positioned)
    return TableSource(name, view, tuple(str(c) for c in frame.columns))


def parquet_source(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> TableSource:
    """A Parquet file, or a folder of Parquet files (hive-partitioned or not).

    The files are those Arrow lists (the pandas reader reads the same ones,
    in the same order), read by DuckDB's ``read_parquet`` with hive
    partitioning; ``_pos`` is the row's position in the whole dataset: the
    rows of the files before it (from the Parquet footers) plus its row in
    its file.

    Examples
    --------
    >>> import duckdb, tempfile, pathlib, pandas as pd
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "events.parquet"
    >>> pd.DataFrame({"patient_id": ["P1", "P2"]}).to_parquet(file)
    >>> con = duckdb.connect()
    >>> source = parquet_source(con, file, "events")
    >>> con.sql(f"SELECT _pos, patient_id FROM {source.relation} ORDER BY _pos").fetchall()
    [(0, 'P1'), (1, 'P2')]
    """
    import pyarrow.dataset as ds

    partitioning = "hive" if path.is_dir() else None
    files = list(ds.dataset(path, format="parquet", partitioning=partitioning).files)
    if not files:
        return TableSource(name, "(SELECT NULL::BIGINT AS _pos WHERE false)", ())
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    counts = dict(
        con.execute(f"SELECT file_name, num_rows FROM parquet_file_metadata({listed})").fetchall()
    )
    offsets = np.concatenate([[0], np.cumsum([counts[f] for f in files])[:-1]]).astype("int64")
    table = f"_files_{name}"
    con.register(table, pd.DataFrame({"_file": files, "_offset": offsets}))
    scan = (
        f"read_parquet({listed}, hive_partitioning={'true' if partitioning else 'false'}, "
        "file_row_number=true, filename='_file')"
    )
    columns = tuple(
        row[0]
        for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
        if row[0] not in ("_file", "file_row_number")
    )
    relation = (
        "(SELECT f._offset + t.file_row_number AS _pos, t.* EXCLUDE (_file, file_row_number) "
        f"FROM {scan} AS t JOIN {table} AS f USING (_file))"
    )
    return TableSource(name, relation, columns)


def registry_problems(
    con: duckdb.DuckDBPyConnection, sources: Mapping[str, TableSource]
) -> list[Problem]:
    """Run the registry-wide rules over ``sources``; return the problems found.

    ``sources`` are on ``con``; without patients nothing is checked.  As in
    the whole-registry validation, an empty ``patient_id`` in patients stops
    the duplicate and orphan rules, and one in a row table stops the orphan
    rule for that table (they would only echo it).

    Examples
    --------
    >>> import duckdb, pandas as pd
    >>> con = duckdb.connect()
    >>> people = frame_source(con, "patients", pd.DataFrame(
    ...     {"patient_id": ["P1", "P1"], "clinic_id": ["C1", "C2"]}))
    >>> [(p.table, p.rows) for p in registry_problems(con, {"patients": people})]
    [('patients', (1, 2))]
    """
    patients = sources.get("patients")
    if patients is None:
        return []
    found = patient_problems(con, patients)
    for name in ROW_TABLES:
        if name in sources:
            found.extend(row_table_problems(con, patients, sources[name]))
    return found


def patient_problems(con: duckdb.DuckDBPyConnection, patients: TableSource) -> list[Problem]:
    """Repeated patient ids and empty clinic ids over the whole patients table.

    Examples
    --------
    >>> import duckdb, pandas as pd
    >>> con = duckdb.connect()
    >>> people = frame_source(con, "patients", pd.DataFrame(
    ...     {"patient_id": ["P1", "P2"], "clinic_id": ["C1", None]}))
    >>> [(p.column, p.rows) for p in patient_problems(con, people)]
    [('clinic_id', (2,))]
    """
    found: list[Problem | None] = []
    if "patient_id" in patients.columns and not _has_empty_ids(con, patients):
        found.append(
            _offenders(
                con,
                patients,
                "patient_id",
                f"{_PID} IN (SELECT {_PID} FROM {patients.relation} "
                "GROUP BY 1 HAVING count(*) > 1)",
                _DUPLICATE,
                _DUPLICATE_FIX,
            )
        )
    if "clinic_id" in patients.columns:
        clinic = "CAST(clinic_id AS VARCHAR)"
        found.append(
            _offenders(
                con,
                patients,
                "clinic_id",
                f"{clinic} IS NULL OR {clinic} = ''",
                _EMPTY,
                "fill in clinic_id on these rows of patients",
            )
        )
    return [p for p in found if p is not None]


def row_table_problems(
    con: duckdb.DuckDBPyConnection, patients: TableSource, source: TableSource
) -> list[Problem]:
    """Rows of a row table with an empty patient id or one not in patients.

    Examples
    --------
    >>> import duckdb, pandas as pd
    >>> con = duckdb.connect()
    >>> people = frame_source(con, "patients", pd.DataFrame({"patient_id": ["P1"]}))
    >>> events = frame_source(con, "events", pd.DataFrame({"patient_id": ["P1", "P9"]}))
    >>> [(p.message, p.rows) for p in row_table_problems(con, people, events)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('the patient is not in patients (found in the whole registry, not only in the
      clinics read)', (2,))]
    """
    if "patient_id" not in source.columns or "patient_id" not in patients.columns:
        return []
    blank = _offenders(
        con,
        source,
        "patient_id",
        f"{_PID} IS NULL OR {_PID} = ''",
        _EMPTY,
        f"fill in patient_id on these rows of {source.name}",
    )
    if blank is not None:
        return [blank]
    if _has_empty_ids(con, patients):
        return []
    known = f"(SELECT DISTINCT {_PID} AS _id FROM {patients.relation})"
    orphans = _offenders(
        con, source, "patient_id", f"{_PID} NOT IN (SELECT _id FROM {known})", _ORPHAN, _ORPHAN_FIX
    )
    return [] if orphans is None else [orphans]


def _has_empty_ids(con: duckdb.DuckDBPyConnection, patients: TableSource) -> bool:
    return _count(con, patients.relation, f"{_PID} IS NULL OR {_PID} = ''") > 0


def _count(con: duckdb.DuckDBPyConnection, relation: str, condition: str) -> int:
    # fetchall, not fetchone: duckdb 2 keeps a half-read result open.
    return int(con.execute(f"SELECT count(*) FROM {relation} WHERE {condition}").fetchall()[0][0])


def _offenders(
    con: duckdb.DuckDBPyConnection,
    source: TableSource,
    column: str,
    condition: str,
    message: str,
    fix: str,
) -> Problem | None:
    """One problem from the rows of ``source`` meeting ``condition``, or None.

    The offending rows go to a temporary table (few, in a registry worth
    loading), from which come the count, the first row numbers and the
    first distinct values, as :meth:`Problem.from_mask` would pick them.
    """
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _offending AS SELECT _pos, "
        f'CAST("{column}" AS VARCHAR) AS value FROM {source.relation} WHERE {condition}'
    )
    total = _count(con, "_offending", "true")
    if total == 0:
        return None
    first = f"SELECT _pos FROM _offending ORDER BY _pos LIMIT {MAX_ROWS_SHOWN}"
    rows = [int(r[0]) for r in con.execute(first).fetchall()]
    distinct = "SELECT value FROM _offending GROUP BY value ORDER BY min(_pos) LIMIT ?"
    values = [r[0] for r in con.execute(distinct, [MAX_EXAMPLES]).fetchall()]
    con.execute("DROP TABLE _offending")
    shown = pd.DataFrame({column: pd.Series(values, dtype=object)})
    # The identifier guard decides, as for rows read, whether values may be shown.
    redact = bool(scan_table(source.name, shown))
    problem = Problem.from_mask(
        source.name,
        column,
        shown,
        np.ones(len(shown), dtype=bool),
        message + REGISTRY_NOTE,
        fix,
        redact=redact,
    )
    # ``shown`` has a row, so ``problem`` is never None here.
    return problem and replace(problem, rows=tuple(r + 1 for r in rows), n_rows=total)


def merge_registry_problems(local: Iterable[Problem], registry: Sequence[Problem]) -> list[Problem]:
    """Problems of the rows read, with the registry-wide rules taken from ``registry``.

    A rule checked over the whole registry replaces what pandas found for
    it in the rows read (a subset of the same rows).

    Examples
    --------
    >>> local = [Problem("patients", "patient_id", _DUPLICATE, _DUPLICATE_FIX, (3,))]
    >>> wide = [Problem("patients", "patient_id", _DUPLICATE + REGISTRY_NOTE, "", (3, 9))]
    >>> [p.rows for p in merge_registry_problems(local, wide)]
    [(3, 9)]
    """
    kept = [p for p in local if (p.table, p.column, p.message) not in REGISTRY_RULES]
    return [*kept, *registry]
