"""load_cohort(tables=...): read only the tables an analysis needs, and say so."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stepanalytics import CohortError, load_cohort
from stepanalytics.errors import UsageError
from stepanalytics.io import write_duckdb, write_tables

TABLES = ("patients", "phases", "assessments", "items", "events")


@pytest.fixture(scope="module")
def full(small_cohort_dir: Path):
    return load_cohort(small_cohort_dir)


@pytest.fixture(scope="module")
def stores(small_cohort_dir: Path, full, tmp_path_factory: pytest.TempPathFactory):
    """The small cohort as CSV, a DuckDB file and a Parquet folder partitioned by clinic."""
    where = tmp_path_factory.mktemp("stores")
    protocol = (small_cohort_dir / "protocol.yaml").read_text()
    db = write_duckdb(full.to_tables(), where / "r.duckdb", protocol_text=protocol)
    folder = where / "registry"
    folder.mkdir()
    (folder / "protocol.yaml").write_text(protocol)
    clinic_of = full.patients.set_index("patient_id")["clinic_id"]
    for name, frame in full.to_tables().items():
        frame = frame.assign(clinic_id=frame["patient_id"].map(clinic_of))
        pq.write_to_dataset(
            pa.Table.from_pandas(frame, preserve_index=False),
            folder / name,
            partition_cols=["clinic_id"],
        )
    return {"csv": small_cohort_dir, "duckdb": db, "parquet": folder}


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("patient_id", "start_day", "day", "instrument", "item", "event")]
    keys = [k for k in keys if k in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True) if keys else frame


def _assert_restricted(part, whole, read: tuple[str, ...]) -> None:
    for name in TABLES:
        got, want = getattr(part, name), getattr(whole, name)
        if name in read:
            got = _sorted(got)[list(want.columns)]
            pdt.assert_frame_equal(got, _sorted(want), check_dtype=False, obj=name)
        else:
            assert got.empty and set(want.columns) <= set(got.columns) | {"source"}, name


@pytest.mark.parametrize("kind", ["csv", "duckdb", "parquet"])
@pytest.mark.parametrize(
    ("asked", "read"),
    [
        (["events"], ("patients", "phases", "events")),
        (["assessments"], ("patients", "phases", "assessments", "items")),
        (["items"], ("patients", "phases", "assessments", "items")),
        ([], ("patients", "phases")),
    ],
)
def test_selection_equals_the_full_load_restricted(
    stores, full, kind: str, asked: list[str], read: tuple[str, ...]
) -> None:
    part = load_cohort(stores[kind], tables=asked)
    assert part.tables_read == read
    _assert_restricted(part, full, read)
    skipped = [n for n in TABLES if n not in read]
    if skipped:
        assert any("were not read" in n and skipped[0] in n for n in part.notes)
    if set(asked) ^ {"assessments", "items"} and set(asked) & {"assessments", "items"}:
        assert any("scores come from assessments and items together" in n for n in part.notes)


@pytest.mark.parametrize("kind", ["duckdb", "parquet", "csv"])
def test_selection_with_clinics(stores, full, kind: str) -> None:
    part = load_cohort(stores[kind], clinics=["C02"], tables=["events"])
    _assert_restricted(part, full.subset(clinics=["C02"]), ("patients", "phases", "events"))


def test_full_default_reads_everything(stores) -> None:
    assert load_cohort(stores["duckdb"]).tables_read == TABLES


def test_subset_and_to_tables_keep_working(stores) -> None:
    part = load_cohort(stores["duckdb"], tables=["events"])
    small = part.subset(clinics=["C01"])
    assert small.tables_read == part.tables_read
    assert set(small.patients["clinic_id"]) == {"C01"}
    out = small.to_tables()
    # Tables not read are left out (written back, they would say "no scores").
    assert set(out) == {"patients", "phases", "events"} and not out["events"].empty


@pytest.mark.parametrize("bad", [["scores"], "events"])
def test_unknown_selection_is_a_usage_error(stores, bad) -> None:
    with pytest.raises(UsageError, match="tables="):
        load_cohort(stores["duckdb"], tables=bad)


def test_scores_not_read_are_not_missing(tmp_path: Path, full, small_cohort_dir: Path) -> None:
    tables = {k: v for k, v in full.to_tables().items() if k in ("patients", "phases", "events")}
    protocol = (small_cohort_dir / "protocol.yaml").read_text()
    folder = write_tables(tables, tmp_path / "no_scores", protocol_text=protocol)
    with pytest.raises(CohortError, match="neither assessments nor items is present"):
        load_cohort(folder)
    assert load_cohort(folder, tables=["events"]).assessments.empty


# -- the tables not asked for are never opened --------------------------------------


def test_duckdb_table_not_asked_for_is_not_scanned(stores, tmp_path: Path) -> None:
    db = tmp_path / "trap.duckdb"
    shutil.copy(stores["duckdb"], db)
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE items")
        # Any scan of this view fails (a view has no rowid either), so reading
        # "items" raises.
        con.execute(
            "CREATE VIEW items AS SELECT error('items was read') AS patient_id, 1 AS day, "
            "'x' AS instrument, 1 AS item, 1.0 AS value"
        )
    with pytest.raises(duckdb.Error):
        load_cohort(db)  # the trap works
    assert not load_cohort(db, tables=["events"]).events.empty
    assert not load_cohort(db, clinics=["C01"], tables=["events"]).events.empty


@pytest.mark.parametrize("layout", ["partitioned", "csv"])
def test_folder_table_not_asked_for_is_not_opened(stores, tmp_path: Path, layout: str) -> None:
    source = stores["parquet" if layout == "partitioned" else "csv"]
    folder = tmp_path / "trap"
    shutil.copytree(source, folder)
    if layout == "partitioned":
        shutil.rmtree(folder / "items")
        (folder / "items.parquet").write_bytes(b"this is not parquet")
    else:
        (folder / "items.csv").write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(CohortError, match="items"):
        load_cohort(folder, clinics=["C01"])  # the trap works
    assert not load_cohort(folder, tables=["events"]).events.empty
    assert not load_cohort(folder, clinics=["C01"], tables=["events"]).events.empty


def test_unreadable_parquet_is_a_cohort_error(stores, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(stores["parquet"], folder)
    shutil.rmtree(folder / "items")
    (folder / "items.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(CohortError, match=r"items\.parquet: the Parquet data cannot be read"):
        load_cohort(folder)
