"""Reading only some clinics: DuckDB, Parquet files and Parquet folders partitioned by clinic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stepanalytics import CohortError, load_cohort
from stepanalytics.io import write_duckdb, write_tables

TABLES = ("patients", "phases", "assessments", "items", "events")


def _same(a, b) -> None:
    for name in TABLES:
        pdt.assert_frame_equal(
            getattr(a, name).reset_index(drop=True),
            getattr(b, name).reset_index(drop=True),
            check_dtype=False,
            obj=name,
        )


@pytest.fixture(scope="module")
def full(small_cohort_dir: Path):
    return load_cohort(small_cohort_dir)


@pytest.mark.parametrize("clinics", [["C02"], ["C01", "C04"]])
def test_csv_clinic_read_equals_subset(small_cohort_dir: Path, full, clinics: list[str]) -> None:
    part = load_cohort(small_cohort_dir, clinics=clinics)
    _same(part, full.subset(clinics=clinics))
    assert any("only clinics" in n for n in part.notes)


def test_duckdb_clinic_read_equals_subset(small_cohort_dir: Path, full, tmp_path: Path) -> None:
    protocol = (small_cohort_dir / "protocol.yaml").read_text()
    db = write_duckdb(full.to_tables(), tmp_path / "r.duckdb", protocol_text=protocol)
    _same(load_cohort(db, clinics=["C03"]), full.subset(clinics=["C03"]))


def test_partitioned_parquet_clinic_read(small_cohort_dir: Path, full, tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    folder.mkdir()
    (folder / "protocol.yaml").write_text((small_cohort_dir / "protocol.yaml").read_text())
    clinic_of = full.patients.set_index("patient_id")["clinic_id"]
    for name, frame in full.to_tables().items():
        frame = frame.copy()
        if "clinic_id" not in frame.columns:
            frame["clinic_id"] = frame["patient_id"].map(clinic_of)
        pq.write_to_dataset(
            pa.Table.from_pandas(frame, preserve_index=False),
            folder / name,
            partition_cols=["clinic_id"],
        )
    whole = load_cohort(folder)
    assert "clinic_id" not in whole.assessments.columns  # partition key is layout, not data
    assert len(whole.patients) == len(full.patients)
    part = load_cohort(folder, clinics=["C02"])
    expected = full.subset(clinics=["C02"])
    for name in TABLES:
        got = getattr(part, name)
        want = getattr(expected, name)
        keys = [
            c
            for c in ("patient_id", "day", "start_day", "instrument", "item", "event")
            if c in want.columns
        ]
        got = got.sort_values(keys).reset_index(drop=True)[list(want.columns)]
        want = want.sort_values(keys).reset_index(drop=True)
        pdt.assert_frame_equal(got, want, check_dtype=False, obj=name)


def test_unknown_clinic_loads_nothing_and_says_so(small_cohort_dir: Path) -> None:
    with pytest.raises(CohortError, match="no patient belongs to the clinics asked for: C99"):
        load_cohort(small_cohort_dir, clinics=["C99"])


def test_parquet_single_file_filter(small_cohort_dir: Path, full, tmp_path: Path) -> None:
    folder = write_tables(
        full.to_tables(),
        tmp_path / "pq",
        fmt="parquet",
        protocol_text=(small_cohort_dir / "protocol.yaml").read_text(),
    )
    _same(load_cohort(folder, clinics=["C01"]), full.subset(clinics=["C01"]))


def test_errors_in_filtered_duckdb_point_at_stored_rows(tmp_path: Path) -> None:
    patients = pd.DataFrame(
        {
            "patient_id": ["A", "B"],
            "clinic_id": ["C1", "C2"],
            "enrolled_month": ["2025-01"] * 2,
            "last_contact_day": [10, 10],
        }
    )
    phases = pd.DataFrame(
        {
            "patient_id": ["A", "B"],
            "phase": [1, 1],
            "start_day": [0, 0],
            "end_day": [None, None],
            "exit_reason": ["ongoing", "ongoing"],
        }
    )
    scores = pd.DataFrame(
        {
            "patient_id": ["A", "B"],
            "day": [1, 99],
            "instrument": ["odi", "odi"],
            "score": [10.0, 10.0],
        }
    )
    db = write_duckdb(
        {"patients": patients, "phases": phases, "assessments": scores}, tmp_path / "e.duckdb"
    )
    with pytest.raises(CohortError) as info:
        load_cohort(db, clinics=["C2"])
    assert "assessments.day" in str(info.value) and "rows: 2" in str(info.value)


def test_errors_in_filtered_parquet_point_at_stored_rows(tmp_path: Path) -> None:
    patients = pd.DataFrame(
        {
            "patient_id": ["A", "B", "C"],
            "clinic_id": ["C1", "C2", "C2"],
            "enrolled_month": ["2025-01"] * 3,
            "last_contact_day": [10, 10, -1],
        }
    )
    phases = pd.DataFrame(
        {
            "patient_id": ["A", "B", "C"],
            "phase": [1, 1, 1],
            "start_day": [0, 0, 0],
            "end_day": [None, None, None],
            "exit_reason": ["ongoing"] * 3,
        }
    )
    scores = pd.DataFrame(
        {"patient_id": ["A", "B"], "day": [1, 1], "instrument": ["odi"] * 2, "score": [10.0] * 2}
    )
    folder = write_tables(
        {"patients": patients, "phases": phases, "assessments": scores},
        tmp_path / "pq",
        fmt="parquet",
    )
    with pytest.raises(CohortError) as info:
        load_cohort(folder, clinics=["C2"])
    assert "patients.last_contact_day" in str(info.value) and "rows: 3 " in str(info.value)


def test_partition_keys_are_read_as_text(small_cohort_dir: Path, full, tmp_path: Path) -> None:
    """clinic_id=007 is the clinic '007', not the number 7 (Arrow would infer an integer)."""
    renamed = {c: f"{k:03d}" for k, c in enumerate(full.clinics, start=7)}
    folder = tmp_path / "registry"
    folder.mkdir()
    (folder / "protocol.yaml").write_text((small_cohort_dir / "protocol.yaml").read_text())
    clinic_of = full.patients.set_index("patient_id")["clinic_id"].map(renamed)
    for name, frame in full.to_tables().items():
        frame = frame.copy()
        frame["clinic_id"] = frame["patient_id"].map(clinic_of)
        pq.write_to_dataset(
            pa.Table.from_pandas(frame, preserve_index=False),
            folder / name,
            partition_cols=["clinic_id"],
        )
    first = renamed[full.clinics[0]]
    assert first == "007"
    whole = load_cohort(folder)
    assert whole.clinics == sorted(renamed.values())
    assert load_cohort(folder, clinics=[first]).clinics == ["007"]
