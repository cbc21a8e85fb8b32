"""Read and write the cohort tables (CSV, Parquet, DuckDB); nothing else.

Reading returns the tables as they are in the files, without judging them
(except the registry-wide rules of :mod:`stepanalytics.io.registry_checks`,
which run over the whole store when only some clinics are read):
CSV cells arrive as text (or, on the fast path, as numbers where a contract
column is numeric and every cell parses), Parquet and DuckDB columns with
their stored types.  :mod:`stepanalytics.validate` turns them into a
checked cohort.  Writing is atomic: tables go to a temporary sibling that is
renamed into place, so a failure never leaves a half-written cohort.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from stepanalytics.contract import REQUIRED_TABLES, TABLE_ORDER
from stepanalytics.errors import CohortError, Problem, UsageError
from stepanalytics.io.csv_reader import read_csv_table
from stepanalytics.io.duckdb_store import file_digest, read_duckdb_tables, write_duckdb
from stepanalytics.io.parquet_reader import read_parquet_table
from stepanalytics.io.registry_folder import FolderChecks

__all__ = [
    "PROTOCOL_FILE",
    "RawCohort",
    "read_raw_cohort",
    "tables_to_read",
    "write_duckdb",
    "write_tables",
]

PROTOCOL_FILE = "protocol.yaml"
_DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")
#: Given scores and item answers are read together: a cohort's scores are
#: the given ones plus those computed from items (and a score given both
#: ways must agree), so reading one without the other would leave the
#: scores silently incomplete.
SCORE_TABLES = ("assessments", "items")


@dataclass
class RawCohort:
    """The tables of a cohort as read from disk, before validation.

    Attributes
    ----------
    tables : dict of str to DataFrame
        Contract tables found, keyed by name; the index is the 0-based row
        position in the file (the row id in DuckDB).
    protocol_text : str or None
        The text of ``protocol.yaml`` when there is one.
    source : str
        The path read.
    fingerprint : str
        SHA-256 over the files read (or the DuckDB file), for provenance.
    notes : list of str
        Things a user should know (files ignored, clinics selected, ...).
    tables_read : tuple of str
        The tables looked for (:func:`tables_to_read`); the others were not read.
    registry_problems : list of Problem
        Found by the registry-wide rules (:mod:`stepanalytics.io.registry_checks`).
    registry_checked : bool
        Whether those rules ran over the whole store (some clinics were read).
    """

    tables: dict[str, pd.DataFrame]
    protocol_text: str | None
    source: str
    fingerprint: str
    notes: list[str] = field(default_factory=list)
    tables_read: tuple[str, ...] = TABLE_ORDER
    registry_problems: list[Problem] = field(default_factory=list)
    registry_checked: bool = False


def tables_to_read(tables: Collection[str] | None) -> tuple[str, ...]:
    """The tables to read for an analysis that needs ``tables``.

    patients and phases are always read (every analysis needs them and the
    cross-table rules hang on them); asking for assessments or items reads
    both (see :data:`SCORE_TABLES`).

    Parameters
    ----------
    tables : collection of str or None
        Some of assessments, items, events (patients and phases change
        nothing); None for all.

    Raises
    ------
    UsageError
        For a name that is not a contract table, or a bare string.

    Examples
    --------
    >>> tables_to_read(["events"])
    ('patients', 'phases', 'events')
    >>> tables_to_read(["assessments"])
    ('patients', 'phases', 'assessments', 'items')
    """
    if tables is None:
        return TABLE_ORDER
    if isinstance(tables, str):
        raise UsageError(f"tables= takes a list of table names, e.g. [{tables!r}]")
    asked = set(tables)
    unknown = sorted(asked - set(TABLE_ORDER))
    if unknown:
        raise UsageError(
            f"tables= names unknown tables: {', '.join(unknown)}; "
            "choose from assessments, items, events"
        )
    if asked & set(SCORE_TABLES):
        asked |= set(SCORE_TABLES)
    return tuple(n for n in TABLE_ORDER if n in REQUIRED_TABLES or n in asked)


def read_raw_cohort(
    path: str | os.PathLike[str],
    *,
    clinics: Sequence[str] | None = None,
    tables: Collection[str] | None = None,
    skip_items: bool = False,
) -> RawCohort:
    """Read a cohort folder (CSV/Parquet) or DuckDB file without validating it.

    Parameters
    ----------
    path : path
        Folder of tables or DuckDB file.
    clinics : sequence of str, optional
        Read only these clinics' patients and their rows.  DuckDB files and
        Parquet tables filter while reading; CSV files are read whole and
        then filtered.  The registry-wide rules (repeated patient ids, empty
        clinic ids, rows of unknown patients) then run over the whole store.
    tables : collection of str, optional
        Read only these tables (see :func:`tables_to_read`); the files of
        the others are not opened.
    skip_items : bool
        Leave items out even where ``tables`` implies them (their scores
        come from the store: :mod:`stepanalytics.io.scored_store`).

    Raises
    ------
    CohortError
        When the path does not exist or a file cannot be parsed at all.
    UsageError
        When ``tables`` names an unknown table.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from stepanalytics.synth import write_synthetic_cohort
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "demo"
    >>> _ = write_synthetic_cohort(folder, n_patients=20, n_clinics=2, seed=3)
    >>> sorted(read_raw_cohort(folder, tables=["events"]).tables)
    ['events', 'patients', 'phases']
    """
    p = Path(path)
    wanted = tuple(n for n in tables_to_read(tables) if not (skip_items and n == "items"))
    if p.is_dir():
        raw = _read_folder(p, clinics, wanted)
    elif p.is_file() and (p.suffix.lower() in _DUCKDB_SUFFIXES or _is_duckdb(p)):
        found, protocol_text, wide = read_duckdb_tables(p, clinics=clinics, tables=wanted)
        raw = RawCohort(found, protocol_text, str(p), file_digest(p), _clinic_note(clinics))
        raw.registry_problems, raw.registry_checked = wide, clinics is not None
    else:
        raise _not_a_cohort(p)
    raw.tables_read = wanted
    raw.notes.extend(_selection_notes(tables, wanted))
    patients = raw.tables.get("patients")
    if clinics is not None and patients is not None and patients.empty:
        raise CohortError(
            [
                *raw.registry_problems,
                Problem(
                    "patients",
                    "clinic_id",
                    f"no patient belongs to the clinics asked for: {', '.join(clinics)}",
                    "check the clinic ids (`stepanalytics summary PATH` lists the clinics)",
                ),
            ],
            source=str(p),
        )
    return raw


def _selection_notes(asked: Collection[str] | None, wanted: tuple[str, ...]) -> list[str]:
    if asked is None:
        return []
    notes = []
    added = sorted(set(wanted) & set(SCORE_TABLES) - set(asked))
    if added:
        notes.append(
            f"{', '.join(added)} also read: scores come from assessments and items together"
        )
    skipped = [n for n in TABLE_ORDER if n not in wanted]
    if skipped:
        notes.append(
            f"only tables {', '.join(wanted)} were read; {', '.join(skipped)} "
            "were not read and are empty in this cohort"
        )
    return notes


def _not_a_cohort(p: Path) -> CohortError:
    where = f"'{p}' is neither a folder of tables nor a DuckDB file"
    where += "" if p.exists() else " (it does not exist)"
    fix = "give the folder holding patients.csv, phases.csv, ... or a .duckdb file written by "
    return CohortError([Problem("cohort", None, where, fix + "`stepanalytics ingest`")], str(p))


def _clinic_note(clinics: Sequence[str] | None) -> list[str]:
    if clinics is None:
        return []
    return [
        f"only clinics {', '.join(clinics)} were read and validated; repeated patient ids, "
        "empty clinic ids and rows of unknown patients were checked in the whole registry"
    ]


def _is_duckdb(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(16)
    return b"DUCK" in head


def _table_paths(folder: Path, name: str) -> list[Path]:
    candidates = [folder / f"{name}.csv", folder / f"{name}.parquet", folder / name]
    return [c for c in candidates if c.is_file() or (c.is_dir() and any(c.rglob("*.parquet")))]


def _read_folder(
    folder: Path, clinics: Sequence[str] | None, wanted: tuple[str, ...] = TABLE_ORDER
) -> RawCohort:
    tables: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    digest = hashlib.sha256()
    notes = _clinic_note(clinics)
    patient_ids: pa.Array | None = None
    registry = FolderChecks() if clinics is not None else None
    for name in (n for n in TABLE_ORDER if n in wanted):
        found = _table_paths(folder, name)
        if len(found) > 1:
            shown = " and ".join(f.name for f in found)
            problems.append(Problem(name, None, f"both {shown} are present", "keep one of them"))
            continue
        if not found:
            continue
        file = found[0]
        if file.is_file() and file.stat().st_size == 0:
            if name in REQUIRED_TABLES:
                message = f"{file.name} is empty"
                problems.append(Problem(name, None, message, "write the table with its header row"))
            else:
                notes.append(f"{file.name} is empty and was read as an empty table")
            continue
        for part in sorted(file.rglob("*")) if file.is_dir() else [file]:
            if part.is_file():
                _update_digest(digest, part)
        try:
            if file.suffix == ".csv":
                frame = read_csv_table(file, name)
                if registry is not None:
                    registry.add_frame(name, frame)
                if clinics is not None:
                    frame = _filter_frame(frame, name, clinics, patient_ids)
            else:
                if registry is not None:
                    registry.add_parquet(name, file)
                # The clinic filter also prunes partitions of tables stored
                # by clinic; the patient filter catches the rest.
                frame = read_parquet_table(
                    file,
                    name,
                    clinics=clinics,
                    patient_ids=None if name == "patients" else patient_ids,
                )
        except CohortError as err:
            problems.extend(err.problems)
            continue
        if name == "patients" and clinics is not None and "patient_id" in frame.columns:
            patient_ids = pa.array(frame["patient_id"].dropna().astype(str), pa.string())
        tables[name] = frame
    protocol_path = folder / PROTOCOL_FILE
    protocol_text = None
    if protocol_path.exists():
        _update_digest(digest, protocol_path)
        protocol_text = protocol_path.read_text(encoding="utf-8-sig")
    # import_report.csv is written beside the tables by `stepanalytics import`.
    known = {f"{n}.{ext}" for n in TABLE_ORDER for ext in ("csv", "parquet")} | {
        PROTOCOL_FILE,
        "import_report.csv",
    }
    ignored = sorted(
        f.name for f in folder.iterdir() if f.suffix in (".csv", ".parquet") and f.name not in known
    )
    if ignored:
        notes.append(f"files that are not contract tables were not read: {', '.join(ignored)}")
    if problems:
        raise CohortError(problems, source=str(folder))
    raw = RawCohort(tables, protocol_text, str(folder), digest.hexdigest(), notes)
    if registry is not None:
        raw.registry_problems, raw.registry_checked = registry.close(), True
    return raw


def _filter_frame(
    frame: pd.DataFrame, name: str, clinics: Sequence[str], patient_ids: pa.Array | None
) -> pd.DataFrame:
    """Keep the rows of the selected clinics (original row numbers are kept)."""
    if name == "patients" and "clinic_id" in frame.columns:
        return frame[frame["clinic_id"].isin(list(clinics))]
    if patient_ids is not None and "patient_id" in frame.columns:
        return frame[frame["patient_id"].isin(patient_ids.to_pylist())]
    return frame


def _update_digest(digest: hashlib._Hash, file: Path) -> None:
    digest.update(file.name.encode())
    digest.update(file_digest(file).encode())


def write_tables(
    tables: Mapping[str, pd.DataFrame],
    folder: str | os.PathLike[str],
    *,
    fmt: str = "csv",
    protocol_text: str | None = None,
    extra_files: Mapping[str, str] | None = None,
    overwrite: bool = False,
    verify: Callable[[Path], object] | None = None,
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
    verify : callable, optional
        Called with the staging folder once every file is written and before
        it replaces the target (e.g. :func:`stepanalytics.load_cohort`); an
        exception it raises leaves the target as it was.
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
        if verify is not None:
            verify(staging)
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
