"""REDCap import of the hand-written fixture project (tests/io/fixtures/redcap/).

The fixture is a longitudinal project with three events (baseline, week 6,
week 12), a repeating phase-stay instrument and a repeating adverse-event
instrument on the baseline event, a checkbox field (visit_events), five
identifier fields in the dictionary, missing-data codes (UNK, NASK) in
numeric, date and item fields, an incomplete form, an unverified form, a
form dated before enrolment and a row on an event the mapping does not know.
Every expected value below was worked out by hand from the export (dates:
enrolment 2024-01-08 + 42 days = 2024-02-19, + 84 days = 2024-04-01, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stepanalytics.cohort import load_cohort
from stepanalytics.io.import_writer import REPORT_FILE, write_import
from stepanalytics.io.pseudonym import pseudonym
from stepanalytics.io.redcap import import_redcap

HERE = Path(__file__).parent / "fixtures" / "redcap"
EXPORT = HERE / "export.csv"
DICTIONARY = HERE / "dictionary.csv"
MAPPING = Path(__file__).parents[2] / "examples" / "mappings" / "redcap_stepped_care.yaml"
SECRET = "fixture-secret-0123456789"


@pytest.fixture(scope="module")
def result():
    return import_redcap(EXPORT, DICTIONARY, MAPPING)


def test_patients_are_the_records_with_an_enrolment_date(result):
    patients = result.tables["patients"].set_index("patient_id")
    assert list(patients.index) == ["1", "2", "3", "5"]  # record 4: enrol_date = UNK
    assert patients["clinic_id"].tolist() == [
        "north_clinic",
        "south_clinic",
        "north_clinic",
        "south_clinic",
    ]
    assert patients["enrolled_month"].tolist() == ["2024-01", "2024-02", "2024-03", "2024-04"]
    # 1: PHQ-9 on 2024-04-02 = day 85; 2: visit 2024-04-29 = day 84;
    # 3: last visit 2024-05-27 = day 84 (last_contact.date_field); 5: visit 2024-06-03 = day 42.
    assert patients["last_contact_day"].tolist() == [85, 84, 84, 42]
    assert patients["age_band"].tolist() == ["40-49", "60-69", "90+", "30-39"]
    assert patients["sex"].tolist() == ["female", "male", "female", "unknown"]
    assert patients["employment"].tolist() == ["sick_leave", "retired", "retired", "employed"]
    assert patients["primary_condition"].tolist() == [
        "low_back",
        "widespread",
        "fibromyalgia",
        "other",
    ]
    assert patients["pain_duration_months"].tolist()[0] == 36.0
    assert np.isnan(patients.loc["2", "pain_duration_months"])  # UNK
    assert patients["compensation_claim"].tolist()[:3] == [False, True, False]
    assert patients.loc["5", "compensation_claim"] is pd.NA
    assert patients["protocol"].unique().tolist() == ["default"]
    assert patients["smoker"].tolist() == ["0", "1", "0", "0"]


def test_no_identifier_or_date_reaches_the_cohort(result):
    columns = set(result.tables["patients"].columns)
    assert not columns & {"patient_name", "mrn", "dob", "email", "enrol_date", "age", "enrol_notes"}
    text = "\n".join(t.to_csv(index=False) for t in result.tables.values())
    for secret in ("Anna", "MRN0045123", "1976-05-02", "example.org", "2024-01-08", "gardening"):
        assert secret not in text
    report = result.table.to_csv(index=False)
    for secret in ("Anna", "MRN0045123", "1976-05-02", "example.org", "2024-", "gardening"):
        assert secret not in report


def test_phase_stays(result):
    phases = result.tables["phases"]
    got = [
        (p, int(ph), int(s), None if pd.isna(e) else int(e), x)
        for p, ph, s, e, x in phases.itertuples(index=False)
    ]
    assert got == [
        ("1", 1, 0, 35, "progressed"),
        ("1", 2, 35, None, "ongoing"),
        ("2", 1, 0, 49, "paused"),
        ("2", 1, 49, None, "ongoing"),
        ("3", 1, 0, 28, "progressed"),
        ("3", 2, 28, 70, "stepped_down"),
        ("3", 1, 70, None, "ongoing"),
        ("5", 1, 0, 35, "dropped_out"),
    ]


def test_scores_and_items(result):
    scores = result.tables["assessments"]
    assert list(scores.itertuples(index=False, name=None)) == [
        ("1", 0, "nrs_pain", 7.0),
        ("1", 42, "nrs_pain", 5.0),
        ("1", 84, "nrs_pain", 3.0),
        ("2", 0, "nrs_pain", 8.0),
        ("2", 42, "nrs_pain", 6.0),  # day 84: pain_now = UNK, no score
        ("3", 0, "nrs_pain", 6.0),
        ("3", 42, "nrs_pain", 6.0),  # day 84: pain_now = NASK, no score
        ("5", 0, "nrs_pain", 4.0),
        ("5", 42, "nrs_pain", 4.0),
    ]
    items = result.tables["items"]
    sums = items.groupby(["patient_id", "day"])["value"].agg(["sum", "count", "size"])
    # (patient, day): item sum, answered items, items; 2/84 incomplete form dropped;
    # 3/0 dated 3 days before enrolment -> day 0 (rules.early_days: 7);
    # 3/42 has no PHQ-9 date -> the event's day; unverified, kept.
    assert sums.to_dict("index") == {
        ("1", 0): {"sum": 12.0, "count": 9, "size": 9},
        ("1", 42): {"sum": 8.0, "count": 9, "size": 9},
        ("1", 85): {"sum": 3.0, "count": 9, "size": 9},
        ("2", 0): {"sum": 16.0, "count": 9, "size": 9},
        ("2", 42): {"sum": 9.0, "count": 8, "size": 9},  # 2+2+UNK+2+1+1+1+0+0
        ("3", 0): {"sum": 11.0, "count": 9, "size": 9},
        ("3", 42): {"sum": 8.0, "count": 9, "size": 9},
        ("5", 0): {"sum": 2.0, "count": 9, "size": 9},
    }
    assert np.isnan(items.query("patient_id == '2' and day == 42 and item == 3")["value"]).all()


def test_events_from_a_coded_form_and_from_a_checkbox(result):
    events = result.tables["events"]
    got = [
        (p, d, e, None if s is None or pd.isna(s) else s)
        for p, d, e, s in events.itertuples(index=False)
    ]
    assert got == [
        ("1", 42, "flare_up", None),
        ("1", 84, "return_to_work", None),
        ("2", 34, "flare_up", "moderate"),
        ("2", 48, "safety_pause", "severe"),
        ("2", 84, "red_flag", None),
        ("3", 42, "booster_session", None),
    ]


def test_report_gives_every_export_row_one_verdict(result):
    verdicts = result.row_verdicts()
    assert sorted(verdicts["row"].tolist()) == list(range(1, 26))
    assert result.n_input_rows == 25
    dropped = verdicts[verdicts["outcome"] == "dropped"].set_index("row")["reason"].to_dict()
    assert dropped == {
        19: "record has no enrolment date (enrol_date = UNK)",
        20: "record has no enrolment date (enrol_date = UNK)",
        23: "unknown event 'week_26_arm_1' (not in redcap_events)",
        25: "events adverse_event: form adverse_event incomplete (adverse_event_complete = 0)",
    }
    assert set(verdicts["outcome"]) == {"imported", "dropped"}


def test_report_lists_dropped_fields_and_recoded_cells(result):
    report = result.table
    fields = report[report["part"].str.startswith("field ")]
    reasons = dict(zip(fields["part"], fields["reason"], strict=True))
    for name in ("patient_name", "mrn", "dob", "email"):
        assert reasons[f"field {name}"] == "identifier (Identifier? = y in the dictionary)"
    assert reasons["field enrol_date"].startswith("identifier date: only turned into days")
    assert reasons["field phq9_total"] == "not used by the mapping"
    recoded = report[report["outcome"] == "recoded"]
    by_row = {
        (r, p): why for r, p, why in recoded[["row", "part", "reason"]].itertuples(index=False)
    }
    assert by_row[(7, "value phq9_3")] == "missing-data code UNK (unknown): item not answered"
    assert by_row[(8, "value pain_now")] == "missing-data code UNK (unknown): no given score"
    assert by_row[(15, "value pain_now")] == "missing-data code NASK (not asked): no given score"
    assert by_row[(13, "instrument phq9")] == "dated 3 days before enrolment: counted as day 0"
    assert by_row[(6, "value pain_months")] == "missing-data code UNK read as empty"
    dropped_forms = report[(report["part"] == "instrument phq9") & (report["outcome"] == "dropped")]
    assert dropped_forms["row"].tolist() == [8]
    notes = report[report["outcome"] == "note"]
    assert (
        "ticked choice 5 (Other) is not mapped to an event: not imported"
        in notes["reason"].tolist()
    )


def test_imported_cohort_validates_and_report_is_written(result, tmp_path):
    folder = write_import(result, tmp_path / "cohort")
    cohort = load_cohort(folder)
    assert cohort.n_patients == 4
    assert (folder / REPORT_FILE).exists()
    report = pd.read_csv(folder / REPORT_FILE)
    assert (report["part"] == "row").sum() == 25


def test_pseudonymised_ids_are_keyed_hashes_of_the_record_ids():
    result = import_redcap(EXPORT, DICTIONARY, MAPPING, secret=SECRET)
    ids = result.tables["patients"]["patient_id"].tolist()
    assert ids == [pseudonym(r, SECRET) for r in ("1", "2", "3", "5")]
    again = import_redcap(EXPORT, DICTIONARY, MAPPING, secret=SECRET)
    assert again.tables["patients"]["patient_id"].tolist() == ids
    other = import_redcap(EXPORT, DICTIONARY, MAPPING, secret=SECRET + "x")
    assert not set(other.tables["patients"]["patient_id"]) & set(ids)
    report_records = set(result.table["record"].dropna())
    assert report_records <= {pseudonym(r, SECRET) for r in ("1", "2", "3", "4", "5")}
