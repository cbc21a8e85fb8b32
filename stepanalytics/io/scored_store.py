"""Scores from items kept in the DuckDB store, reused while provably current.

Scoring 28 million item answers is most of the cost of loading a large
registry, yet ``stepanalytics ingest`` has validated and scored them once
already.  The store therefore also keeps what scoring produced (the
per-questionnaire report, from which the scores follow, and the red flags)
with a small metadata table: format and stepanalytics versions, a digest of
the instrument registry, and checksums of the tables the scores and their
validation depend on, each computed by DuckDB over every stored column.

A later :func:`stepanalytics.load_cohort` recomputes those checksums (one
scan inside DuckDB, no rows reach pandas) and reuses the stored scores only
if every one matches; otherwise the items are read, validated and scored as
usual, with a note saying why.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from stepanalytics.io.arrow_frames import arrow_to_frame
from stepanalytics.io.file_state import file_state, remembered

if TYPE_CHECKING:
    import duckdb

    from stepanalytics.cohort import Cohort
    from stepanalytics.instruments import Registry
    from stepanalytics.io.tables import RawCohort

#: Bumped whenever the stored tables or the checksums change meaning.
FORMAT_VERSION = "1"
META_TABLE = "_scored_meta"
REPORT_TABLE = "_scored_report"
RED_FLAG_TABLE = "_scored_red_flags"
#: The tables the stored scores or the checks the items passed depend on,
#: with the columns that matter (None: every column).  Items are scored on
#: their own but were checked against the patients' ids and last contact
#: days; given scores are merged with them (the merge is redone on load, yet
#: a changed assessments table is still treated as a reason to score anew).
CHECKED_COLUMNS: dict[str, tuple[str, ...] | None] = {
    "items": None,
    "assessments": None,
    "patients": ("patient_id", "last_contact_day"),
}


@dataclass(frozen=True)
class ScoredItems:
    """What scoring the item answers produced.

    Attributes
    ----------
    scoring : DataFrame
        One row per questionnaire and instrument with its status
        (:attr:`stepanalytics.instruments.ScoringResult.report`).
    red_flags : DataFrame
        Safety answers (:attr:`stepanalytics.instruments.ScoringResult.red_flags`).

    Examples
    --------
    >>> from stepanalytics.instruments import score_items
    >>> items = pd.DataFrame({"patient_id": "p1", "day": 0, "instrument": "gad7",
    ...                       "item": range(1, 8), "value": [1.0, 2, 0, 1, 1, 0, 3]})
    >>> result = score_items(items)
    >>> ScoredItems(result.report, result.red_flags).item_scores()
      patient_id  day instrument  score source
    0         p1    0       gad7    8.0  items
    """

    scoring: pd.DataFrame
    red_flags: pd.DataFrame

    def item_scores(self) -> pd.DataFrame:
        """The scores of every scorable form, ``source`` = ``items`` (as in ``score_items``)."""
        from stepanalytics.instruments.scoring import ASSESSMENT_COLUMNS, NOT_SCORABLE

        scorable = self.scoring["status"] != NOT_SCORABLE
        scores = self.scoring.loc[scorable, ASSESSMENT_COLUMNS].reset_index(drop=True)
        return scores.assign(source="items")


def registry_digest(registry: Registry | None = None) -> str:
    """SHA-256 of everything the instrument registry says (ranges, rules, items, flags).

    Examples
    --------
    >>> from stepanalytics.instruments import get_registry
    >>> len(registry_digest()), registry_digest() == registry_digest(get_registry())
    (64, True)
    """
    from stepanalytics.instruments import get_registry

    # Registry and its parts are frozen dataclasses of plain values and
    # tuples: their repr spells out every field, in a fixed order.
    return hashlib.sha256(repr(registry or get_registry()).encode()).hexdigest()


def table_checksum(
    con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str] | None = None
) -> str:
    """Row count, sum of row hashes and schema of a stored table, computed by DuckDB.

    A sum (not XOR) of 64-bit row hashes, so a duplicated row changes it;
    the count and column names and types are part of it too.

    Examples
    --------
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE t AS SELECT 1 AS a, 'x' AS b")
    >>> before = table_checksum(con, "t")
    >>> _ = con.execute("INSERT INTO t VALUES (1, 'x')")
    >>> before == table_checksum(con, "t"), table_checksum(con, "nope")
    (False, 'absent')
    """
    schema = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    present = [name for name, _ in schema]
    if not present:
        return "absent"
    wanted = list(columns) if columns is not None else present
    if any(c not in present for c in wanted):
        return "columns missing"
    listed = ", ".join('"' + c.replace('"', '""') + '"' for c in wanted)
    # fetchall, not fetchone: duckdb 2 refuses new work while a result is unfinished.
    [(count, total)] = con.execute(
        f'SELECT count(*), sum(hash({listed}))::VARCHAR FROM "{table}"'
    ).fetchall()
    kinds = ",".join(f"{n}:{t}" for n, t in schema if n in wanted)
    return f"{count}:{total or 0}:{hashlib.sha256(kinds.encode()).hexdigest()[:16]}"


def write_scored_tables(
    con: duckdb.DuckDBPyConnection, cohort: Cohort, *, registry: Registry | None = None
) -> bool:
    """Store a cohort's scoring of items and the metadata to check it by, in an open store.

    Called by :func:`stepanalytics.io.write_duckdb` (``scored=cohort``) after
    the contract tables are written, inside the same temporary file.
    Nothing is stored when the cohort has no items (nothing to save).

    Returns
    -------
    bool
        Whether scores were stored.

    Examples
    --------
    >>> import duckdb
    >>> from stepanalytics.synth import synthesize_cohort
    >>> cohort = synthesize_cohort(n_patients=20, n_clinics=2, seed=1)
    >>> con = duckdb.connect()
    >>> for name, frame in cohort.to_tables().items():
    ...     _ = con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
    >>> write_scored_tables(con, cohort), dict(read_metadata(con))["format_version"]
    (True, '1')
    """
    from stepanalytics import __version__

    if "items" not in cohort.tables_read or cohort.items.empty:
        return False
    for name, frame in ((REPORT_TABLE, cohort.scoring), (RED_FLAG_TABLE, cohort.red_flags)):
        con.register("_frame", frame)
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _frame')
        con.unregister("_frame")
    meta = {
        "format_version": FORMAT_VERSION,
        "stepanalytics_version": __version__,
        "registry_digest": registry_digest(registry),
        "written_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **{f"checksum_{t}": table_checksum(con, t, c) for t, c in CHECKED_COLUMNS.items()},
    }
    con.execute(f'CREATE TABLE "{META_TABLE}" (key VARCHAR, value VARCHAR)')
    con.executemany(f'INSERT INTO "{META_TABLE}" VALUES (?, ?)', list(meta.items()))
    return True


def read_metadata(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The stored-scores metadata of an open store (empty when there is none)."""
    [(found,)] = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [META_TABLE]
    ).fetchall()
    if not found:
        return {}
    return dict(con.execute(f'SELECT key, value FROM "{META_TABLE}"').fetchall())


def read_cohort_with_scores(
    path: str | os.PathLike[str],
    *,
    clinics: Sequence[str] | None = None,
    tables: Collection[str] | None = None,
    registry: Registry | None = None,
) -> tuple[RawCohort, ScoredItems | None]:
    """Read a cohort; from a store with current stored scores, read those instead of items.

    Parameters
    ----------
    path, clinics, tables
        As :func:`stepanalytics.io.read_raw_cohort`.  Asking for ``items``
        in ``tables`` reads them (and scores them again).
    registry : Registry, optional
        The registry the load scores with; must be the one used at ingest.

    Returns
    -------
    raw : RawCohort
        Without ``items`` when stored scores are used (``tables_read`` says so).
    stored : ScoredItems or None
        The stored scoring, restricted to ``clinics``; None when the items
        must be scored (folders, stores without or with stale scores).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from stepanalytics.io import write_duckdb
    >>> from stepanalytics.synth import synthesize_cohort
    >>> cohort = synthesize_cohort(n_patients=30, n_clinics=2, seed=2)
    >>> db = pathlib.Path(tempfile.mkdtemp()) / "c.duckdb"
    >>> _ = write_duckdb(cohort.to_tables(), db, scored=cohort)
    >>> raw, stored = read_cohort_with_scores(db)
    >>> "items" in raw.tables_read, len(stored.scoring) == len(cohort.scoring)
    (False, True)
    """
    from stepanalytics.io.tables import read_raw_cohort, tables_to_read

    file = Path(path)
    wanted = tables_to_read(tables)
    asked_items = tables is not None and "items" in tables
    if not file.is_file() or "assessments" not in wanted or asked_items:
        return read_raw_cohort(file, clinics=clinics, tables=tables), None
    state = file_state(file)
    stored, notes = _current_scores(file, clinics, registry)
    raw = read_raw_cohort(file, clinics=clinics, tables=tables, skip_items=stored is not None)
    if stored is not None and file_state(file) != state:  # replaced while being read
        stored, notes = None, ["the DuckDB file changed while it was read: items were scored"]
        raw = read_raw_cohort(file, clinics=clinics, tables=tables)
    raw.notes.extend(notes)
    return raw, stored


def _current_scores(
    file: Path, clinics: Sequence[str] | None, registry: Registry | None
) -> tuple[ScoredItems | None, list[str]]:
    """The stored scoring if every check holds, else None and the reason (a note)."""
    import duckdb

    from stepanalytics import __version__

    try:
        con = duckdb.connect(str(file), read_only=True)
    except duckdb.Error:
        return None, []  # not a DuckDB file: read_raw_cohort says what it is
    with con:
        meta = read_metadata(con)
        if not meta:
            return None, []  # written without scores: loads as it always did
        stale = []
        if meta.get("format_version") != FORMAT_VERSION:
            stale.append(f"stored-scores format {meta.get('format_version')}")
        if meta.get("stepanalytics_version") != __version__:
            stale.append(f"written by stepanalytics {meta.get('stepanalytics_version')}")
        if meta.get("registry_digest") != registry_digest(registry):
            stale.append("the instrument registry differs from the one used at ingest")
        # The same for every clinic read from this file: summed once per process.
        current = remembered(
            "stored-score checksums",
            file_state(file),
            lambda: {t: table_checksum(con, t, c) for t, c in CHECKED_COLUMNS.items()},
        )
        for table in CHECKED_COLUMNS:
            if meta.get(f"checksum_{table}") != current[table]:
                stale.append(f"{table} changed since ingest")
        if stale:
            reason = "; ".join(stale)
            return None, [f"stored scores were not used ({reason}): items were read and scored"]
        scoring = _read_rows(con, REPORT_TABLE, clinics)
        red_flags = _read_rows(con, RED_FLAG_TABLE, clinics)
    note = (
        f"scores from items come from the validated ingest of {meta.get('written_at', '?')} "
        "(items, given scores, patients' days and the instrument registry are unchanged "
        "since); items were not read (ask for tables=['items'] to read them)"
    )
    return ScoredItems(scoring, red_flags), [note]


def _read_rows(
    con: duckdb.DuckDBPyConnection, table: str, clinics: Sequence[str] | None
) -> pd.DataFrame:
    """A stored table in stored order, only the rows of ``clinics``' patients when given."""
    query = f'SELECT * EXCLUDE (_row) FROM (SELECT rowid AS _row, * FROM "{table}")'
    params: list[object] = []
    if clinics is not None:
        picked = "SELECT patient_id FROM patients WHERE list_contains(?, clinic_id)"
        query += f" WHERE patient_id IN ({picked})"
        params.append(list(clinics))
    relation = con.sql(query + " ORDER BY _row", params=params)
    # duckdb 2 names it to_arrow_table; 1.x only has fetch_arrow_table.
    to_arrow = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return arrow_to_frame(to_arrow())
