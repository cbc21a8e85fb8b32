"""Every refusal rule of the data contract, each with a bad file.

Each case damages a valid minimal cohort in one way and checks that loading
fails with a message naming the table, the column, the row and the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests_helpers import EVENTS, PATIENTS, PHASES, SCORES, add_column, build, refusal

from stepanalytics import load_cohort


def test_valid_minimal_cohort_loads(tmp_path: Path) -> None:
    assert load_cohort(build(tmp_path / "ok")).n_patients == 2


IDENTIFIER_COLUMNS = [
    ("full_name", ["Ann Smith", "Bob Jones"], "person names"),
    ("contact", ["ann@example.org", "bob@example.org"], "e-mail"),
    ("email", ["", ""], "e-mail"),
    ("tel", ["+44 20 7946 0958", "020 7946 0958"], "phone"),
    ("home", ["12 High Street", "3 Park Road"], "street addresses"),
    ("postcode", ["SW1A 1AA", "N1 9GU"], "postcodes"),
    ("zip", ["90210", "10001"], "postcodes"),
    ("mrn", ["A123", "B456"], "medical record"),
    ("hospital_number", ["123456789", "987654321"], "long digit strings"),
    ("insurance_no", ["X1", "X2"], "insurance"),
    ("date_of_birth", ["1970", "1980"], "birth dates"),
    ("client", ["192.168.1.20", "10.0.0.1"], "IP addresses"),
    ("homepage", ["https://example.org/ann", "www.example.org"], "web addresses"),
    ("seen", ["2025-03-01", "2025-04-11"], "calendar dates"),
    ("seen_on", ["03/01/2025", "11.4.2025"], "calendar dates"),
    ("visit", ["5 March 2025", '"March 5, 2025"'], "calendar dates"),
    ("age", ["44", "91"], "ages are not allowed as numbers"),
    ("age_years", ["44", "55"], "ages are not allowed as numbers"),
]


@pytest.mark.parametrize(("column", "values", "reason"), IDENTIFIER_COLUMNS)
def test_identifiers_are_refused(
    tmp_path: Path, column: str, values: list[str], reason: str
) -> None:
    folder = build(tmp_path / "c", patients=add_column(PATIENTS, column, values))
    text = refusal(folder)
    assert f"patients.{column}" in text
    assert reason in text
    for value in values:  # the identifying values themselves are never printed
        if len(value) > 3:
            assert value not in text


def test_coarse_postcode_is_allowed(tmp_path: Path) -> None:
    folder = build(tmp_path / "c", patients=add_column(PATIENTS, "postcode", ["SW1", "902"]))
    assert "postcode" in load_cohort(folder).patients.columns


def test_pseudonymous_ids_are_not_refused(tmp_path: Path) -> None:
    text = PATIENTS + "P00042,C1,2025-02,10,,,,,\n"
    phases = PHASES + "P00042,1,0,,ongoing\n"
    cohort = load_cohort(build(tmp_path / "c", patients=text, phases=phases))
    assert "P00042" in set(cohort.patients["patient_id"])


def test_date_inside_a_contract_column_is_refused(tmp_path: Path) -> None:
    scores = SCORES.replace("P00001,45,odi,30", "P00001,2025-03-01,odi,30")
    text = refusal(build(tmp_path / "c", assessments=scores))
    assert "assessments.day" in text
    assert "calendar dates" in text
    assert "rows: 2" in text


def test_age_band_over_89_must_be_90_plus(tmp_path: Path) -> None:
    text = refusal(build(tmp_path / "c", patients=PATIENTS.replace("90+", "90-99")))
    assert "patients.age_band" in text and "rows: 2" in text and "90+" in text


CASES = [
    # (name, table, old, new, expected pieces)
    ("unknown sex", "patients", "female", "F", ["patients.sex", "rows: 1", "'F'", "female, male"]),
    ("bad month", "patients", "2025-01", "2025-13", ["patients.enrolled_month", "YYYY-MM"]),
    ("negative days", "patients", ",100,", ",-5,", ["patients.last_contact_day", "minimum 0"]),
    (
        "fractional int",
        "phases",
        "P00001,1,0,40",
        "P00001,1,0,40.5",
        ["phases.end_day", "whole numbers"],
    ),
    (
        "text number",
        "assessments",
        "P00002,3,odi,52",
        "P00002,3,odi,fifty",
        ["assessments.score", "'fifty'"],
    ),
    (
        "NA is not empty",
        "assessments",
        "P00002,3,odi,52",
        "P00002,3,odi,NA",
        ["assessments.score", "'NA'"],
    ),
    (
        "empty required",
        "assessments",
        "P00002,3,odi,52",
        "P00002,3,odi,",
        ["required value is empty"],
    ),
    ("bad bool", "patients", ",false,", ",maybe,", ["patients.compensation_claim", "true/false"]),
    ("unknown exit", "phases", "dropped_out", "left", ["phases.exit_reason", "'left'"]),
    ("unknown event", "events", "flare_up", "flare", ["events.event", "'flare'"]),
    ("unknown severity", "events", ",mild", ",light", ["events.severity"]),
    (
        "score out of range",
        "assessments",
        "P00002,3,odi,52",
        "P00002,3,odi,140",
        ["assessments", "odi", "140"],
    ),
    (
        "unknown instrument",
        "assessments",
        "P00002,3,odi,52",
        "P00002,3,xyz,5",
        ["assessments.instrument", "xyz"],
    ),
    (
        "unknown patient",
        "assessments",
        "P00002,3,odi,52",
        "P00009,3,odi,52",
        ["assessments.patient_id", "not in patients"],
    ),
    (
        "day after last contact",
        "assessments",
        "P00002,3,odi,52",
        "P00002,60,odi,52",
        ["assessments.day", "last_contact_day"],
    ),
    (
        "event after last contact",
        "events",
        "P00001,10,",
        "P00001,101,",
        ["events.day", "last_contact_day"],
    ),
    (
        "stay after last contact",
        "phases",
        "P00002,1,0,50",
        "P00002,1,0,70",
        ["phases.end_day", "last_contact_day"],
    ),
    (
        "duplicate score",
        "assessments",
        "P00001,45,odi,30",
        "P00001,0,odi,30",
        ["(patient_id, day, instrument)", "rows: 1, 2"],
    ),
    (
        "duplicate patient",
        "patients",
        "P00002,C1",
        "P00001,C1",
        ["patients.patient_id", "more than once"],
    ),
    (
        "end before start",
        "phases",
        "P00001,1,0,40,progressed\nP00001,2,40",
        "P00001,1,0,40,progressed\nP00001,2,40",
        [],
    ),
    ("overlap", "phases", "P00001,2,40,", "P00001,2,30,", ["overlap"]),
    (
        "first stay not day 0",
        "phases",
        "P00002,1,0,50",
        "P00002,1,5,50",
        ["does not start on day 0"],
    ),
    (
        "progression skips a phase",
        "phases",
        "P00001,2,40,,ongoing",
        "P00001,3,40,,ongoing",
        ["'progressed' is not followed"],
    ),
    (
        "ongoing with end",
        "phases",
        "P00001,2,40,,ongoing",
        "P00001,2,40,45,ongoing",
        ["ongoing stay has an end_day"],
    ),
    (
        "ended without end",
        "phases",
        "P00002,1,0,50,dropped_out",
        "P00002,1,0,,dropped_out",
        ["has no end_day"],
    ),
    (
        "stay after dropout",
        "phases",
        "P00002,1,0,50,dropped_out",
        "P00002,1,0,20,dropped_out\nP00002,1,20,50,dropped_out",
        ["followed by another stay"],
    ),
    (
        "phase beyond protocol",
        "phases",
        "P00001,2,40,,ongoing",
        "P00001,2,40,45,progressed\nP00001,3,45,46,progressed\nP00001,4,46,47,progressed\nP00001,5,47,,ongoing",
        ["beyond the protocol"],
    ),
    (
        "missing column",
        "patients",
        "last_contact_day,",
        "contact_days,",
        ["patients.last_contact_day", "required column is missing"],
    ),
]


@pytest.mark.parametrize(
    ("name", "table", "old", "new", "pieces"), CASES, ids=[c[0] for c in CASES]
)
def test_contract_violations_are_refused(
    tmp_path: Path, name: str, table: str, old: str, new: str, pieces: list[str]
) -> None:
    texts = {"patients": PATIENTS, "phases": PHASES, "assessments": SCORES, "events": EVENTS}
    assert old in texts[table], f"test case {name!r} does not apply"
    if name == "end before start":
        texts["phases"] = PHASES.replace("P00002,1,0,50", "P00002,1,30,20")
        pieces = ["phases.end_day", "ends before it starts"]
    else:
        texts[table] = texts[table].replace(old, new, 1)
    text = refusal(build(tmp_path / "c", **{table: texts[table]}))
    for piece in pieces:
        assert piece in text
    assert "fix:" in text


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    patients = PATIENTS.replace("female", "F").replace("2025-02", "Feb 2025")
    scores = SCORES.replace("P00002,3,odi,52", "P00009,3,odi,999")
    text = refusal(build(tmp_path / "c", patients=patients, assessments=scores))
    for piece in ("patients.sex", "patients.enrolled_month", "assessments.patient_id", "odi"):
        assert piece in text


def test_problem_report_shows_row_numbers_and_few_examples(tmp_path: Path) -> None:
    many = (
        PATIENTS.split("\n")[0]
        + "\n"
        + "".join(f"P{i:05d},C1,2025-01,10,40-49,woman,employed,false,1\n" for i in range(1, 40))
    )
    phases = "patient_id,phase,start_day,end_day,exit_reason\n" + "".join(
        f"P{i:05d},1,0,,ongoing\n" for i in range(1, 40)
    )
    text = refusal(
        build(
            tmp_path / "c",
            patients=many,
            phases=phases,
            assessments=SCORES.split("\n")[0] + "\n",
            events="",
        )
    )
    assert "rows: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 29 more (39 in all)" in text
    assert "examples: 'woman'" in text


def test_both_csv_and_parquet_is_an_error(tmp_path: Path) -> None:
    folder = build(tmp_path / "c")
    import pandas as pd

    pd.read_csv(folder / "events.csv").to_parquet(folder / "events.parquet")
    assert "both events.csv and events.parquet" in refusal(folder)


def test_ragged_csv_is_refused_cleanly(tmp_path: Path) -> None:
    folder = build(
        tmp_path / "c", events="patient_id,day,event,severity\nP00001,10,flare_up,mild,extra,more\n"
    )
    assert "events" in refusal(folder)


def test_invalid_protocol_yaml(tmp_path: Path) -> None:
    folder = build(tmp_path / "c")
    (folder / "protocol.yaml").write_text("phases:\n  - {phase: 2, name: x}\n")
    assert "numbered 1..K" in refusal(folder)


def test_unknown_protocol_name(tmp_path: Path) -> None:
    folder = build(tmp_path / "c", patients=add_column(PATIENTS, "protocol", ["default", "fast"]))
    text = refusal(folder)
    assert "patients.protocol" in text and "'fast'" in text
