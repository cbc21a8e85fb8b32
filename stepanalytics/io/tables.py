"""Read and write the cohort tables (CSV, Parquet, DuckDB); nothing else.

Reading returns the tables as they are in the files, without judging them:
CSV cells arrive as text (or, on the fast path, as numbers where a contract
column is numeric and every cell parses), Parquet and DuckDB columns with
their stored types.  :mod:`stepanalytics.validate` turns them into a
checked cohort.  Writing is atomic: tables go to a temporary sibling that is
renamed into place, so a failure never leaves a half-written cohort.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from stepanalytics.contract import REQUIRED_TABLES, TABLE_ORDER, TABLES
from stepanalytics.errors import CohortError, Problem

PROTOCOL_FILE = "protocol.yaml"
_DUCKDB_PROTOCOL_TABLE = "_protocol"
_DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")
_NUMERIC_KINDS = {"int": pa.float64(), "number": pa.float64()}


@dataclass
class RawCohort:
    """The tables of a cohort as read from disk, before validation.

    Attributes
    ----------
    tables : dict of str to DataFrame
        Contract tables found, keyed by name; the index is the 0-based row
        position in the file.
    protocol_text : str or None
        The text of ``protocol.yaml`` when there is one.
    source : str
        The path read.
    fingerprint : str
        SHA-256 over the files read (or the DuckDB file), for provenance.
    notes : list of str
        Things a user should know (files ignored, ...).
    """

    tables: dict[str, pd.DataFrame]
    protocol_text: str | None
    source: str
    fingerprint: str
    notes: list[str] = field(default_factory=list)


def read_raw_cohort(path: str | os.PathLike[str]) -> RawCohort:
    """Read a cohort folder (CSV/Parquet) or DuckDB file without validating it.

    Raises
    ------
    CohortError
        When the path does not exist or a file cannot be parsed at all.
    """
    p = Path(path)
    if p.is_dir():
        return _read_folder(p)
    if p.is_file() and (p.suffix.lower() in _DUCKDB_SUFFIXES or _is_duckdb(p)):
        return _read_duckdb(p)
    raise CohortError(
        [
            Problem(
                "cohort",
                None,
                f"'{p}' is neither a folder of tables nor a DuckDB file"
                + ("" if p.exists() else " (it does not exist)"),
                "give the folder holding patients.csv, phases.csv, ... or a .duckdb file "
                "written by `stepanalytics ingest`",
            )
        ],
        source=str(p),
    )


def _is_duckdb(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(16)
    return b"DUCK" in head


def _read_folder(folder: Path) -> RawCohort:
    tables: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    digest = hashlib.sha256()
    notes: list[str] = []
    for name in TABLE_ORDER:
        candidates = [folder / f"{name}.csv", folder / f"{name}.parquet"]
        found = [c for c in candidates if c.exists()]
        if len(found) > 1:
            problems.append(
                Problem(
                    name,
                    None,
                    f"both {name}.csv and {name}.parquet are present",
                    "keep one of the two files",
                )
            )
            continue
        if not found:
            continue
        file = found[0]
        if file.stat().st_size == 0:
            if name in REQUIRED_TABLES:
                problems.append(
                    Problem(
                        name, None, f"{file.name} is empty", "write the table with its header row"
                    )
                )
            else:
                notes.append(f"{file.name} is empty and was read as an empty table")
            continue
        _update_digest(digest, file)
        try:
            tables[name] = _read_csv(file, name) if file.suffix == ".csv" else _read_parquet(file)
        except CohortError as err:
            problems.extend(err.problems)
    protocol_path = folder / PROTOCOL_FILE
    protocol_text = None
    if protocol_path.exists():
        _update_digest(digest, protocol_path)
        protocol_text = protocol_path.read_text(encoding="utf-8-sig")
    known = {f"{n}.{ext}" for n in TABLE_ORDER for ext in ("csv", "parquet")} | {PROTOCOL_FILE}
    ignored = sorted(
        f.name for f in folder.iterdir() if f.suffix in (".csv", ".parquet") and f.name not in known
    )
    if ignored:
        notes.append(f"files that are not contract tables were not read: {', '.join(ignored)}")
    if problems:
        raise CohortError(problems, source=str(folder))
    return RawCohort(tables, protocol_text, str(folder), digest.hexdigest(), notes)


def _update_digest(digest: hashlib._Hash, file: Path) -> None:
    digest.update(file.name.encode())
    with file.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)


def _read_header(file: Path, table: str) -> list[str]:
    with file.open(newline="", encoding="utf-8-sig") as fh:
        try:
            header = next(csv.reader(fh), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise _file_error(table, file, f"the header cannot be read ({exc})") from exc
    if not header or all(not h.strip() for h in header):
        raise _file_error(table, file, "the file is empty or has no header row")
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise _file_error(table, file, f"duplicated column names: {', '.join(duplicated)}")
    return header


def _file_error(table: str, file: Path, message: str) -> CohortError:
    return CohortError(
        [
            Problem(
                table,
                None,
                f"{file.name}: {message}",
                "save the table as UTF-8 CSV with one header row and comma separators",
            )
        ],
        source=str(file),
    )


def _read_csv(file: Path, table: str) -> pd.DataFrame:
    """Read a CSV table.

    The fast path lets Arrow parse the contract's numeric columns; when any
    cell does not parse, the table is read again as text so that validation
    can point at the exact rows.  Only the empty cell counts as missing:
    ``NA``, ``null`` and the like stay text and are reported, not guessed.
    """
    header = _read_header(file, table)
    kinds = {c.name: c.kind for c in TABLES[table]}
    numeric = {
        name: _NUMERIC_KINDS[kinds[name]] for name in header if kinds.get(name) in _NUMERIC_KINDS
    }
    try:
        return _arrow_csv(file, header, numeric)
    except pa.ArrowInvalid:
        pass
    try:
        return _arrow_csv(file, header, {})
    except pa.ArrowInvalid as exc:
        raise _file_error(table, file, f"the file cannot be parsed: {exc}") from exc


def _arrow_csv(file: Path, header: list[str], numeric: Mapping[str, pa.DataType]) -> pd.DataFrame:
    types = {name: numeric.get(name, pa.dictionary(pa.int32(), pa.string())) for name in header}
    arrow = pacsv.read_csv(
        file,
        read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, encoding="utf8"),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    return pd.DataFrame({name: _to_pandas(arrow.column(name)) for name in header})


def _to_pandas(column: pa.ChunkedArray) -> pd.Series:
    """Dictionary text becomes plain object strings (shared, so cheap); null stays None."""
    if pa.types.is_dictionary(column.type):
        cat = column.to_pandas()
        values = np.asarray(cat.cat.categories, dtype=object)
        codes = cat.cat.codes.to_numpy()
        out = np.empty(len(codes), dtype=object)
        has = codes >= 0
        out[has] = values[codes[has]]
        out[~has] = None
        return pd.Series(out)
    return column.to_pandas()


def _read_parquet(file: Path) -> pd.DataFrame:
    frame = pd.read_parquet(file)
    frame = frame.reset_index(drop=True)
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def _read_duckdb(path: Path) -> RawCohort:
    import duckdb

    digest = hashlib.sha256()
    _update_digest(digest, path)
    tables: dict[str, pd.DataFrame] = {}
    protocol_text = None
    with duckdb.connect(str(path), read_only=True) as con:
        present = {
            row[0]
            for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        for name in TABLE_ORDER:
            if name in present:
                tables[name] = con.execute(f'SELECT * FROM "{name}"').df()
        if _DUCKDB_PROTOCOL_TABLE in present:
            row = con.execute(f"SELECT yaml FROM {_DUCKDB_PROTOCOL_TABLE}").fetchone()
            protocol_text = row[0] if row else None
    return RawCohort(tables, protocol_text, str(path), digest.hexdigest(), [])


def write_tables(
    tables: Mapping[str, pd.DataFrame],
    folder: str | os.PathLike[str],
    *,
    fmt: str = "csv",
    protocol_text: str | None = None,
    extra_files: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write cohort tables into ``folder`` atomically.

    The tables go to a temporary folder beside the target, which then
    replaces it; a failure leaves the target as it was.

    Parameters
    ----------
    tables : mapping of str to DataFrame
        Contract tables by name.
    folder : path
        Target folder.
    fmt : {"csv", "parquet"}
        File format.
    protocol_text : str, optional
        Written as ``protocol.yaml``.
    extra_files : mapping of str to str, optional
        Further text files to write (e.g. ``truth.json``).
    overwrite : bool
        Replace an existing folder.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', not {fmt!r}")
    target = Path(folder)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (CLI: --force) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, frame in tables.items():
            if fmt == "csv":
                frame.to_csv(staging / f"{name}.csv", index=False)
            else:
                frame.to_parquet(staging / f"{name}.parquet", index=False)
        if protocol_text is not None:
            (staging / PROTOCOL_FILE).write_text(protocol_text, encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text, encoding="utf-8")
        if target.exists():
            backup = target.with_name(f".{target.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            target.rename(backup)
            staging.rename(target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def write_duckdb(
    tables: Mapping[str, pd.DataFrame],
    db_path: str | os.PathLike[str],
    *,
    protocol_text: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write cohort tables into a DuckDB file atomically (temporary file, then rename)."""
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
                con.execute(f"CREATE TABLE {_DUCKDB_PROTOCOL_TABLE} (yaml VARCHAR)")
                con.execute(f"INSERT INTO {_DUCKDB_PROTOCOL_TABLE} VALUES (?)", [protocol_text])
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
        raise
    return target
