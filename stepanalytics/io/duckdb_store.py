"""The embedded DuckDB store: a cohort's tables in one file.

Written atomically (temporary file, then rename).  Read whole, or only some
clinics and some tables: the filter runs inside DuckDB, so pandas sees only
the rows needed, and tables not asked for are never scanned.  A read of some
clinics also runs the registry-wide rules over the whole store.
The protocol text is kept in a table ``_protocol``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from stepanalytics.contract import TABLE_ORDER
from stepanalytics.errors import CohortError, Problem
from stepanalytics.io.arrow_frames import arrow_to_frame
from stepanalytics.io.file_state import file_state, remembered
from stepanalytics.io.registry_checks import duckdb_table_source, registry_problems

if TYPE_CHECKING:
    import duckdb

    from stepanalytics.cohort import Cohort
    from stepanalytics.instruments import Registry

PROTOCOL_TABLE = "_protocol"


def read_duckdb_tables(
    path: Path,
    *,
    clinics: Sequence[str] | None = None,
    tables: Collection[str] = TABLE_ORDER,
) -> tuple[dict[str, pd.DataFrame], str | None, list[Problem]]:
    """Read the contract tables (and protocol text) from a DuckDB file.

    Parameters
    ----------
    path : Path
        The DuckDB file.
    clinics : sequence of str, optional
        Read only those clinics' patients and their rows; the registry-wide
        rules (:mod:`stepanalytics.io.registry_checks`) then run over the
        whole store, on the tables in ``tables``.
    tables : collection of str
        Names of the tables to read; the others are not touched.

    Returns
    -------
    tables : dict of str to DataFrame
        Indexed by the table's DuckDB row id, so problem reports point at
        stored rows.
    protocol_text : str or None
    registry_problems : list of Problem
        Empty unless ``clinics`` is given.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> db = write_duckdb({"patients": pd.DataFrame({"patient_id": ["P1", "P2"],
    ...     "clinic_id": ["C1", "C2"]})}, pathlib.Path(tempfile.mkdtemp()) / "r.duckdb")
    >>> read, _, wide = read_duckdb_tables(db, clinics=["C2"])
    >>> read["patients"]["patient_id"].tolist(), wide
    (['P2'], [])
    """
    import duckdb

    out: dict[str, pd.DataFrame] = {}
    protocol_text = None
    problems: list[Problem] = []
    with duckdb.connect(str(path), read_only=True) as con:
        present = {
            row[0]
            for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        wanted = [name for name in TABLE_ORDER if name in present and name in tables]
        columns = {name: _columns(con, name) for name in wanted}
        where = ""
        if clinics is not None:
            if "clinic_id" not in columns.get("patients", ("clinic_id",)):
                raise CohortError(
                    [Problem("patients", "clinic_id", "required column is missing",
                             "add the column 'clinic_id' to patients (see docs/data-contract.md)")],
                    source=str(path),
                )  # fmt: skip
            # The same for every clinic read from this file: checked once per process.
            problems = remembered(
                f"registry checks {','.join(wanted)}",
                file_state(path),
                lambda: registry_problems(
                    con, {name: duckdb_table_source(con, name) for name in wanted}
                ),
            )
            con.execute("CREATE TEMP TABLE _clinics (clinic_id VARCHAR)")
            con.executemany("INSERT INTO _clinics VALUES (?)", [[c] for c in clinics])
            where = "WHERE clinic_id IN (SELECT clinic_id FROM _clinics)"
        for name in wanted:
            # Name the columns present (extras included: the contract keeps them).
            listed = ", ".join('"' + c.replace('"', '""') + '"' for c in columns[name])
            query = f'SELECT rowid AS _row, {listed} FROM "{name}"'
            if clinics is not None and name == "patients":
                query += f" {where}"
            elif clinics is not None and "patient_id" in columns[name]:
                query += f" WHERE patient_id IN (SELECT patient_id FROM patients {where})"
            relation = con.sql(query)
            # duckdb 2 names it to_arrow_table; 1.x only has fetch_arrow_table.
            to_arrow = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
            frame = arrow_to_frame(to_arrow())
            out[name] = frame.set_index("_row").rename_axis(None).sort_index()
        if PROTOCOL_TABLE in present:
            row = con.execute(f"SELECT yaml FROM {PROTOCOL_TABLE}").fetchone()
            protocol_text = row[0] if row else None
    return out, protocol_text, problems


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> tuple[str, ...]:
    return tuple(row[0] for row in con.execute(f'DESCRIBE "{name}"').fetchall())


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks; computed once per process while the file is unchanged.

    A registry is read clinic by clinic, each read fingerprinting the same
    files: hashing gigabytes sixty times would cost more than the reads.
    """

    def digest_of_file() -> str:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    return remembered("sha256", file_state(path), digest_of_file)


def write_duckdb(
    tables: Mapping[str, pd.DataFrame],
    db_path: str | os.PathLike[str],
    *,
    protocol_text: str | None = None,
    overwrite: bool = False,
    scored: Cohort | None = None,
    registry: Registry | None = None,
) -> Path:
    """Write cohort tables into a DuckDB file atomically (temporary file, then rename).

    Parameters
    ----------
    tables : mapping of str to DataFrame
        Contract tables by name.
    db_path : path
        The file to write.
    protocol_text : str, optional
        Kept in the table ``_protocol``.
    overwrite : bool
        Replace an existing file.
    scored : Cohort, optional
        The validated cohort whose ``to_tables()`` are written: its scoring
        of items is stored too, so later loads need not score the items
        again while they are unchanged (:mod:`stepanalytics.io.scored_store`).
    registry : Registry, optional
        The instrument registry ``scored`` was loaded with (default: built-in).

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> db = pathlib.Path(tempfile.mkdtemp()) / "c.duckdb"
    >>> write_duckdb({"events": pd.DataFrame({"patient_id": ["P1"]})}, db).name
    'c.duckdb'
    """
    import duckdb

    # Imported here: scored_store reads through tables.py, which imports this module.
    from stepanalytics.io.scored_store import write_scored_tables

    if scored is not None and len(tables.get("items", ())) != len(scored.items):
        raise ValueError("scored= must be the cohort whose to_tables() are written")

    target = Path(db_path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (CLI: --force) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".duckdb", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        with duckdb.connect(str(tmp)) as con:
            for name, frame in tables.items():
                con.register("_frame", frame)
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _frame')
                con.unregister("_frame")
            if protocol_text is not None:
                con.execute(f"CREATE TABLE {PROTOCOL_TABLE} (yaml VARCHAR)")
                con.execute(f"INSERT INTO {PROTOCOL_TABLE} VALUES (?)", [protocol_text])
            if scored is not None:
                write_scored_tables(con, scored, registry=registry)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
        raise
    return target
