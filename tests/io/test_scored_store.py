"""Scores from items stored by ingest and reused by load_cohort while provably current."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pandas.testing as pdt
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepanalytics import load_cohort
from stepanalytics.cli import main
from stepanalytics.errors import CohortError
from stepanalytics.instruments import get_registry
from stepanalytics.io import write_duckdb
from stepanalytics.io.scored_store import META_TABLE, REPORT_TABLE, table_checksum
from stepanalytics.synth import write_synthetic_cohort

COMPARED = ("patients", "phases", "assessments", "scoring", "red_flags", "events", "measurements")
STORED_NOTE = "scores from items come from the validated ingest"

EXTRA_INSTRUMENT = """
questionnaires:
  wai: {name: Work ability index, single item, n_items: 1, item_min: 0, item_max: 10}
instruments:
  wai:
    name: Work ability score
    questionnaire: wai
    items: [1]
    method: sum
    score_min: 0
    score_max: 10
    higher_is_better: true
"""


@pytest.fixture(scope="module")
def cohort_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scored") / "cohort"
    write_synthetic_cohort(folder, n_patients=150, n_clinics=3, seed=5)
    return folder


@pytest.fixture(scope="module")
def ingested(cohort_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cohort ingested by the CLI (read-only: copy it before changing it)."""
    db = tmp_path_factory.mktemp("db") / "registry.duckdb"
    result = CliRunner().invoke(main, ["ingest", str(cohort_folder), "--db", str(db)])
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def db_copy(ingested: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.duckdb"
    target.write_bytes(ingested.read_bytes())
    return target


def _assert_same_cohort(full, fast) -> None:
    for name in COMPARED:
        pdt.assert_frame_equal(getattr(full, name), getattr(fast, name), obj=name)


def _stored_used(cohort) -> bool:
    return "items" not in cohort.tables_read and any(STORED_NOTE in n for n in cohort.notes)


def test_cli_ingest_writes_the_scored_tables(ingested: Path, cohort_folder: Path) -> None:
    full = load_cohort(cohort_folder)
    with duckdb.connect(str(ingested), read_only=True) as con:
        meta = dict(con.execute(f"SELECT key, value FROM {META_TABLE}").fetchall())
        [(n_report,)] = con.execute(f"SELECT count(*) FROM {REPORT_TABLE}").fetchall()
    assert n_report == len(full.scoring) > 0
    assert meta["format_version"] == "1"
    assert meta["checksum_items"].startswith(f"{len(full.items)}:")


def test_stored_scores_load_equals_the_full_load(ingested: Path, cohort_folder: Path) -> None:
    full = load_cohort(cohort_folder)
    fast = load_cohort(ingested)
    assert _stored_used(fast)
    assert fast.items.empty and fast.tables_read == ("patients", "phases", "assessments", "events")
    assert set(fast.assessments["source"]) == {"given", "items"}
    _assert_same_cohort(full, fast)
    # Asking for the items reads and scores them: the same cohort, items included.
    with_items = load_cohort(ingested, tables=["assessments", "items", "events"])
    assert not _stored_used(with_items)
    pdt.assert_frame_equal(with_items.items, full.items)
    _assert_same_cohort(full, with_items)


def test_stored_scores_for_some_clinics(ingested: Path, cohort_folder: Path) -> None:
    full = load_cohort(cohort_folder)
    clinics = full.clinics[1:]
    fast = load_cohort(ingested, clinics=clinics)
    assert _stored_used(fast)
    _assert_same_cohort(full.subset(clinics=clinics), fast)
    assert not load_cohort(ingested, tables=["events"]).scoring.size  # scores not asked for


def test_a_changed_item_value_is_rescored(db_copy: Path) -> None:
    with duckdb.connect(str(db_copy)) as con:
        [(row, value)] = con.execute(
            "SELECT rowid, value FROM items WHERE instrument = 'phq9' AND value = 0 LIMIT 1"
        ).fetchall()
        con.execute("UPDATE items SET value = 1 WHERE rowid = ?", [row])
    cohort = load_cohort(db_copy)
    assert not _stored_used(cohort)
    assert "items" in cohort.tables_read and len(cohort.items) > 0
    assert any("items changed since ingest" in n for n in cohort.notes)
    assert value == 0


def test_an_out_of_range_item_value_is_reported(db_copy: Path) -> None:
    with duckdb.connect(str(db_copy)) as con:
        [(row,)] = con.execute(
            "SELECT rowid FROM items WHERE instrument = 'phq9' LIMIT 1"
        ).fetchall()
        con.execute("UPDATE items SET value = 9 WHERE rowid = ?", [row])
    with pytest.raises(CohortError) as err:
        load_cohort(db_copy)
    problem = next(p for p in err.value.problems if p.table == "items")
    assert problem.column == "value" and problem.rows == (row + 1,)  # rows count from 1


def test_a_different_registry_rescored(ingested: Path, tmp_path: Path) -> None:
    extra = tmp_path / "mine.yaml"
    extra.write_text(EXTRA_INSTRUMENT)
    cohort = load_cohort(ingested, registry=get_registry(extra=extra))
    assert not _stored_used(cohort)
    assert any("registry differs" in n for n in cohort.notes)


def test_a_plain_store_loads_as_before(cohort_folder: Path, tmp_path: Path) -> None:
    full = load_cohort(cohort_folder)
    protocol = (cohort_folder / "protocol.yaml").read_text()
    db = write_duckdb(full.to_tables(), tmp_path / "plain.duckdb", protocol_text=protocol)
    cohort = load_cohort(db)
    assert cohort.tables_read == full.tables_read and cohort.notes == full.notes
    _assert_same_cohort(full, cohort)
    pdt.assert_frame_equal(cohort.items, full.items)


ITEMS = pd.DataFrame(
    {
        "patient_id": ["P1", "P1", "P2", "P2"],
        "day": [0, 0, 7, 7],
        "instrument": ["gad7", "gad7", "phq9", "phq9"],
        "item": [1, 2, 1, 2],
        "value": [1.0, float("nan"), 3.0, 0.0],
    }
)


def _checksum(frame: pd.DataFrame) -> str:
    with duckdb.connect() as con:
        con.register("_frame", frame)
        con.execute("CREATE TABLE items AS SELECT * FROM _frame")
        return table_checksum(con, "items")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    row=st.integers(0, len(ITEMS) - 1),
    column=st.sampled_from(list(ITEMS.columns)),
    change=st.sampled_from(["alter", "add", "duplicate"]),
)
def test_checksum_sees_any_single_row_change(row: int, column: str, change: str) -> None:
    changed = ITEMS.copy()
    if change == "duplicate":
        changed = pd.concat([changed, changed.iloc[[row]]], ignore_index=True)
    elif change == "add":
        extra = changed.iloc[[row]].copy()
        extra["item"] = 5
        changed = pd.concat([changed, extra], ignore_index=True)
    else:
        old = changed.at[row, column]
        new = {"patient_id": "P9", "instrument": "odi"}.get(column)
        if new is None:
            new = 2.0 if pd.isna(old) else old + 1
        changed.at[row, column] = new
    assert _checksum(changed) != _checksum(ITEMS)
