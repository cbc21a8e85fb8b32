"""Loading a cohort: formats, odd-but-legal files, derived columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from stepanalytics import load_cohort
from stepanalytics.cli import main
from stepanalytics.errors import UsageError
from stepanalytics.io.tables import write_duckdb, write_tables


def _tables_equal(a, b) -> None:
    for name in ("patients", "phases", "assessments", "items", "events"):
        left = getattr(a, name).reset_index(drop=True)
        right = getattr(b, name).reset_index(drop=True)
        pdt.assert_frame_equal(left, right, check_dtype=False, obj=name)


def test_loads_synthetic_csv(small_cohort_dir: Path) -> None:
    cohort = load_cohort(small_cohort_dir)
    assert cohort.n_patients == 120
    assert set(cohort.clinics) == {"C01", "C02", "C03", "C04"}
    assert cohort.phases["stay_number"].min() == 1
    assert (cohort.phases.groupby("patient_id")["start_day"].min() == 0).all()
    assert set(cohort.assessments["source"]) == {"given", "items"}
    assert len(cohort.fingerprint) == 64


def test_parquet_and_duckdb_read_back_identically(small_cohort_dir: Path, tmp_path: Path) -> None:
    cohort = load_cohort(small_cohort_dir)
    protocol = (small_cohort_dir / "protocol.yaml").read_text()
    pq = write_tables(cohort.to_tables(), tmp_path / "pq", fmt="parquet", protocol_text=protocol)
    _tables_equal(cohort, load_cohort(pq))
    db = write_duckdb(cohort.to_tables(), tmp_path / "c.duckdb", protocol_text=protocol)
    from_db = load_cohort(db)
    _tables_equal(cohort, from_db)
    assert from_db.protocols.keys() == cohort.protocols.keys()


def test_ingest_command_round_trip(small_cohort_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    db = tmp_path / "cohort.duckdb"
    result = CliRunner().invoke(main, ["ingest", str(small_cohort_dir), "--db", str(db)])
    assert result.exit_code == 0, result.output
    every_table = ("assessments", "items", "events")
    _tables_equal(load_cohort(small_cohort_dir), load_cohort(db, tables=every_table))
    # By default the stored scoring is used and the item answers stay on disk ...
    fast = load_cohort(db)
    assert fast.items.empty and "items" not in fast.tables_read
    pd.testing.assert_frame_equal(fast.assessments, load_cohort(small_cohort_dir).assessments)
    with pytest.raises(UsageError, match="item answers were not read"):
        fast.to_tables()  # ... so writing it out would lose them: refused
    # Ingesting the ingested file again keeps the item answers.
    copy = tmp_path / "copy.duckdb"
    result = CliRunner().invoke(main, ["ingest", str(db), "--db", str(copy)])
    assert result.exit_code == 0, result.output
    _tables_equal(load_cohort(small_cohort_dir), load_cohort(copy, tables=every_table))
    again = CliRunner().invoke(main, ["ingest", str(small_cohort_dir), "--db", str(db)])
    assert again.exit_code == 1
    assert "--force" in again.output


def _write(folder: Path, name: str, text: str, *, bom: bool = False, crlf: bool = False) -> None:
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8")
    (folder / f"{name}.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


MINIMAL_PATIENTS = (
    "patient_id,clinic_id,enrolled_month,last_contact_day\nP1,C1,2025-01,100\nP2,C1,2025-02,50\n"
)
MINIMAL_PHASES = (
    "patient_id,phase,start_day,end_day,exit_reason\n"
    "P1,1,0,40,progressed\nP1,2,40,,ongoing\nP2,1,0,50,dropped_out\n"
)
MINIMAL_SCORES = "patient_id,day,instrument,score\nP1,0,odi,40\nP1,45,odi,30\nP2,3,odi,52\n"


def minimal_cohort(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder, "patients", MINIMAL_PATIENTS)
    _write(folder, "phases", MINIMAL_PHASES)
    _write(folder, "assessments", MINIMAL_SCORES)
    return folder


def test_odd_but_legal_files_load(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    # BOM, CRLF, quoted fields, columns in another order, an extra column.
    _write(
        folder,
        "patients",
        'clinic_id,"patient_id",last_contact_day,enrolled_month,referral_source\n'
        '"C1",P1,100,2025-01,"GP, urban"\nC1,P2,50,2025-02,self\n',
        bom=True,
        crlf=True,
    )
    _write(folder, "phases", MINIMAL_PHASES, crlf=True)
    _write(folder, "assessments", MINIMAL_SCORES, bom=True)
    _write(folder, "events", "patient_id,day,event,severity\n")  # empty optional table
    cohort = load_cohort(folder)
    assert cohort.patients["patient_id"].tolist() == ["P1", "P2"]
    assert cohort.patients["referral_source"].tolist() == ["GP, urban", "self"]
    assert cohort.events.empty
    assert cohort.patients["protocol"].tolist() == ["default", "default"]
    assert any("protocol" in note for note in cohort.notes)


def test_phase_at_measurement_is_latest_stay_started(tmp_path: Path) -> None:
    cohort = load_cohort(minimal_cohort(tmp_path / "m"))
    m = cohort.measurements.set_index(["patient_id", "day"])
    assert m.loc[("P1", 0), "phase"] == 1
    assert m.loc[("P1", 45), "phase"] == 2
    assert m.loc[("P1", 45), "days_in_phase"] == 5
    assert m.loc[("P1", 45), "weeks"] == pytest.approx(45 / 7)
    assert m.loc[("P1", 45), "baseline_score"] == 40
    assert m.loc[("P2", 3), "baseline_day"] == 3
    assert m.loc[("P1", 45), "stay_number"] == 2


def test_score_on_transition_day_belongs_to_new_phase(tmp_path: Path) -> None:
    folder = minimal_cohort(tmp_path / "t")
    _write(folder, "assessments", "patient_id,day,instrument,score\nP1,40,odi,35\nP1,39,odi,36\n")
    m = load_cohort(folder).measurements.set_index("day")
    assert m.loc[40, "phase"] == 2
    assert m.loc[39, "phase"] == 1


def test_baseline_outside_window_is_missing(tmp_path: Path) -> None:
    folder = minimal_cohort(tmp_path / "b")
    _write(folder, "assessments", "patient_id,day,instrument,score\nP1,15,odi,35\nP1,30,odi,30\n")
    m = load_cohort(folder).measurements
    assert m["baseline_score"].isna().all()


def test_measurements_match_brute_force(small_cohort_dir: Path) -> None:
    cohort = load_cohort(small_cohort_dir)
    m = cohort.measurements.sample(200, random_state=1)
    for row in m.itertuples():
        stays = cohort.phases[
            (cohort.phases["patient_id"] == row.patient_id)
            & (cohort.phases["start_day"] <= row.day)
        ]
        latest = stays.sort_values("start_day").iloc[-1]
        assert row.phase == latest["phase"]
        assert row.days_in_phase == row.day - latest["start_day"]


def test_subset_keeps_only_the_clinic(small_cohort_dir: Path) -> None:
    cohort = load_cohort(small_cohort_dir)
    sub = cohort.subset(clinics=["C02"])
    assert set(sub.patients["clinic_id"]) == {"C02"}
    assert set(sub.phases["patient_id"]) <= set(sub.patients["patient_id"])
    assert len(sub.measurements) == (cohort.measurements["clinic_id"] == "C02").sum()


def test_wide_baselines_one_row_per_patient(small_cohort_dir: Path) -> None:
    wide = load_cohort(small_cohort_dir).wide_baselines()
    assert wide["patient_id"].is_unique
    assert "baseline_odi" in wide.columns
    assert np.nanmax(wide["baseline_odi"]) <= 100


def test_missing_table_error_lists_tables(tmp_path: Path) -> None:
    from stepanalytics.errors import CohortError

    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(CohortError) as info:
        load_cohort(folder)
    text = str(info.value)
    assert "patients: required table is missing" in text
    assert "phases: required table is missing" in text


def test_given_and_item_scores_that_agree_are_kept_once(tmp_path: Path) -> None:
    folder = minimal_cohort(tmp_path / "g")
    items = "patient_id,day,instrument,item,value\n" + "".join(
        f"P1,0,gad7,{i},1\n" for i in range(1, 8)
    )
    _write(folder, "items", items)
    _write(folder, "assessments", MINIMAL_SCORES + "P1,0,gad7,7\n")
    cohort = load_cohort(folder)
    gad = cohort.assessments[cohort.assessments["instrument"] == "gad7"]
    assert len(gad) == 1 and gad["score"].iat[0] == 7
    assert any("equal values" in n for n in cohort.notes)


def test_given_and_item_scores_that_differ_are_refused(tmp_path: Path) -> None:
    from stepanalytics.errors import CohortError

    folder = minimal_cohort(tmp_path / "d")
    items = "patient_id,day,instrument,item,value\n" + "".join(
        f"P1,0,gad7,{i},1\n" for i in range(1, 8)
    )
    _write(folder, "items", items)
    _write(folder, "assessments", MINIMAL_SCORES + "P1,0,gad7,9\n")
    with pytest.raises(CohortError, match="they differ"):
        load_cohort(folder)


def test_parquet_typed_columns(tmp_path: Path) -> None:
    folder = minimal_cohort(tmp_path / "p")
    patients = pd.read_csv(folder / "patients.csv")
    (folder / "patients.csv").unlink()
    patients["compensation_claim"] = [True, False]
    patients.to_parquet(folder / "patients.parquet")
    cohort = load_cohort(folder)
    assert cohort.patients["compensation_claim"].tolist() == [True, False]
    assert cohort.patients["last_contact_day"].tolist() == [100, 50]


def test_loaded_tables_meet_the_pandera_schemas(small_cohort_dir: Path) -> None:
    from stepanalytics.schemas import table_schema

    cohort = load_cohort(small_cohort_dir)
    for name in ("patients", "phases", "assessments", "items", "events"):
        frame = getattr(cohort, name)
        if name == "assessments":
            frame = frame.drop(columns="source")
        table_schema(name).validate(frame, lazy=True)


def test_pandera_schema_rejects_bad_frame() -> None:
    import pandera.errors

    from stepanalytics.schemas import table_schema

    bad = pd.DataFrame({"patient_id": ["P1"], "day": [-3], "event": ["party"], "severity": [None]})
    with pytest.raises(pandera.errors.SchemaErrors) as info:
        table_schema("events").validate(bad, lazy=True)
    failed = set(info.value.failure_cases["column"])
    assert {"day", "event"} <= failed
