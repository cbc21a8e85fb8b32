"""The embedded DuckDB store: a cohort's tables in one file.

Written atomically (temporary file, then rename).  Read whole, or only some
clinics: the filter runs inside DuckDB, so pandas sees only the rows needed.
The protocol text is kept in a table ``_protocol``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from stepanalytics.contract import TABLE_ORDER
from stepanalytics.io.arrow_frames import arrow_to_frame

PROTOCOL_TABLE = "_protocol"


def read_duckdb_tables(
    path: Path, *, clinics: Sequence[str] | None = None
) -> tuple[dict[str, pd.DataFrame], str | None]:
    """Read the contract tables (and protocol text) from a DuckDB file.

    With ``clinics``, only those clinics' patients and their rows are read.
    The index of each frame is the table's DuckDB row id, so problem reports
    point at stored rows.
    """
    import duckdb

    tables: dict[str, pd.DataFrame] = {}
    protocol_text = None
    with duckdb.connect(str(path), read_only=True) as con:
        present = {
            row[0]
            for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        where = ""
        if clinics is not None:
            con.execute("CREATE TEMP TABLE _clinics (clinic_id VARCHAR)")
            con.executemany("INSERT INTO _clinics VALUES (?)", [[c] for c in clinics])
            where = "WHERE clinic_id IN (SELECT clinic_id FROM _clinics)"
        for name in TABLE_ORDER:
            if name not in present:
                continue
            if clinics is None or name == "patients":
                query = (
                    f'SELECT rowid AS _row, * FROM "{name}" {where if name == "patients" else ""}'
                )
            else:
                query = (
                    f'SELECT rowid AS _row, * FROM "{name}" WHERE patient_id IN '
                    f"(SELECT patient_id FROM patients {where})"
                )
            relation = con.sql(query)
            # duckdb 2 names it to_arrow_table; 1.x only has fetch_arrow_table.
            to_arrow = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
            arrow = to_arrow()
            frame = arrow_to_frame(arrow)
            tables[name] = frame.set_index("_row").rename_axis(None).sort_index()
        if PROTOCOL_TABLE in present:
            row = con.execute(f"SELECT yaml FROM {PROTOCOL_TABLE}").fetchone()
            protocol_text = row[0] if row else None
    return tables, protocol_text


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_duckdb(
    tables: Mapping[str, pd.DataFrame],
    db_path: str | os.PathLike[str],
    *,
    protocol_text: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write cohort tables into a DuckDB file atomically (temporary file, then rename).

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> db = pathlib.Path(tempfile.mkdtemp()) / "c.duckdb"
    >>> write_duckdb({"events": pd.DataFrame({"patient_id": ["P1"]})}, db).name
    'c.duckdb'
    """
    import duckdb

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
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
        raise
    return target
