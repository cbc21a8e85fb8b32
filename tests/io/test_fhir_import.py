"""FHIR import of the hand-written fixtures (tests/io/fixtures/fhir/).

``bundle.json`` is a collection Bundle with a Patient, four EpisodeOfCare
(one entered-in-error), six Encounters (five phase stays, one
consultation) and eleven QuestionnaireResponses: PHQ-9 with nested groups,
answers as LOINC codings, integers and a data-absent coding, nested
answer.item, a ``|version`` questionnaire URL, an entered-in-error, an
in-progress and a stopped response, an unmapped questionnaire, a subject
without an episode, an amended response that supersedes an earlier one on
the same day, and one authored two days before enrolment.  Expected values
were worked out by hand (enrolment 2024-01-08 + 42 days = 2024-02-19, ...).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stepanalytics.cohort import load_cohort
from stepanalytics.errors import CohortError, UsageError
from stepanalytics.io.fhir import import_fhir
from stepanalytics.io.import_writer import write_import
from stepanalytics.io.mapping import read_mapping_file
from stepanalytics.io.pseudonym import pseudonym

HERE = Path(__file__).parent / "fixtures" / "fhir"
MAPPING = Path(__file__).parents[2] / "examples" / "mappings" / "fhir_stepped_care.yaml"
SECRET = "fhir-fixture-secret-0123"
P1, P2, P3 = (pseudonym(f"Patient/pat-00{k}", SECRET) for k in (1, 2, 3))


@pytest.fixture(scope="module")
def bundle():
    return import_fhir(HERE / "bundle.json", MAPPING, secret=SECRET)


def csv_mapping() -> dict:
    data = read_mapping_file(MAPPING)
    data["phases"] = {"from": "csv"}
    return data


def test_patients_come_from_the_episodes_of_care(bundle):
    patients = bundle.tables["patients"]
    assert patients["patient_id"].tolist() == [P1, P2, P3]
    assert patients["clinic_id"].tolist() == ["north_clinic", "south_clinic", "north_clinic"]
    assert patients["enrolled_month"].tolist() == ["2024-01", "2024-02", "2024-03"]
    # P1: PHQ-9 and NRS on day 42; P2: episode and last stay end 2024-05-20 = day 105; P3: day 0.
    assert patients["last_contact_day"].tolist() == [42, 105, 0]


def test_stays_come_from_encounters_of_phase_types(bundle):
    stays = bundle.tables["phases"]
    got = [
        (p, ph, s, None if pd.isna(e) else int(e), x)
        for p, ph, s, e, x in stays.itertuples(index=False)
    ]
    assert got == [
        (P1, 1, 0, 35, "progressed"),
        (P1, 2, 35, None, "ongoing"),
        (P2, 1, 0, 49, "progressed"),
        (P2, 2, 49, 105, "dropped_out"),
        (P3, 1, 0, None, "ongoing"),
    ]


def test_responses_become_items_and_scores(bundle):
    items = bundle.tables["items"]
    got = {
        (p, d): v for (p, d), v in items.groupby(["patient_id", "day"])["value"].apply(list).items()
    }
    assert got[(P1, 0)] == [2.0, 2.0, 1.0, 3.0, 1.0, 2.0, 1.0, 0.0, 0.0]  # LOINC answer codes
    assert got[(P1, 42)] == [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 0.0, 0.0]  # valueInteger
    p2 = got[(P2, 1)]  # authored 2024-02-06, the day after enrolment
    assert np.isnan(p2[2]) and [v for v in p2 if not np.isnan(v)] == [3, 2, 3, 2, 1, 2, 1, 0]
    scores = bundle.tables["assessments"]
    assert list(scores.itertuples(index=False, name=None)) == [
        (P1, 0, "phq9", 12.0),
        (P1, 42, "nrs_pain", 5.0),  # the amended response (09:00) beats the completed one (08:00)
        (P1, 42, "phq9", 8.0),
        (P3, 0, "nrs_pain", 7.0),  # authored 2 days before enrolment: day 0
    ]


def test_every_resource_has_one_verdict(bundle):
    verdicts = bundle.row_verdicts()
    assert sorted(verdicts["row"].tolist()) == list(range(1, 23))
    assert bundle.n_input_rows == 22
    dropped = verdicts[verdicts["outcome"] == "dropped"].set_index("row")["reason"].to_dict()
    assert dropped == {
        1: "Patient resources are not read (they hold identifiers)",
        5: "EpisodeOfCare status entered-in-error",
        10: "not a phase stay (no Encounter.type code in phases.phase_codes)",
        14: "status entered-in-error (only completed and amended responses count)",
        16: "status in-progress (only completed and amended responses count)",
        18: "same patient, instrument and day as bundle.json entry 17: the later response was kept",
        19: "status stopped (only completed and amended responses count)",
        20: "questionnaire https://example.org/fhir/Questionnaire/service-satisfaction "
        "is not in the mapping",
        21: "subject is not an imported patient",
    }
    recoded = bundle.table[bundle.table["outcome"] == "recoded"]
    assert recoded[["row", "part"]].values.tolist() == [
        [15, "value /44259-0"],
        [22, "instrument nrs_pain"],
    ]
    unmapped = bundle.table[bundle.table["part"].str.startswith("linkId")]
    assert sorted(unmapped["part"]) == ["linkId /44260-8/comment", "linkId comments"]


def test_nothing_identifying_is_written(bundle, tmp_path):
    folder = write_import(bundle, tmp_path / "cohort")
    text = "\n".join(f.read_text() for f in folder.iterdir())
    for secret in ("pat-00", "Anna", "0045123", "1976", "rough week"):
        assert secret not in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)  # no full date, only enrolment months
    assert load_cohort(folder).n_patients == 3


def test_csv_route_with_ndjson(tmp_path):
    result = import_fhir(
        HERE / "responses.ndjson",
        csv_mapping(),
        patients=HERE / "patients.csv",
        phases=HERE / "phases.csv",
        secret=SECRET,
    )
    patients = result.tables["patients"]
    assert patients["patient_id"].tolist() == [P1, P2]  # pat-003 and pat-004 lack a date / clinic
    assert patients["last_contact_day"].tolist() == [84, 0]  # last_contact_date 2024-04-01
    assert patients["age_band"].tolist() == ["40-49", "60-69"]
    assert "nhs_number" not in patients.columns
    items = result.tables["items"]
    week6 = items[items["day"] == 42]["value"].tolist()
    assert week6[0] == 1.0  # ordinalValue extension of an unmapped coding
    assert np.isnan(week6[4])  # valueString "UNK"
    assert result.tables["phases"]["exit_reason"].tolist() == ["progressed", "ongoing", "ongoing"]
    verdicts = result.row_verdicts()
    assert len(verdicts) == result.n_input_rows == 6 + 4 + 4
    by_source = verdicts.groupby("source")["outcome"].apply(list).to_dict()
    assert by_source["patients.csv"] == ["imported", "imported", "dropped", "dropped"]
    assert by_source["phases.csv"] == ["imported", "imported", "imported", "dropped"]
    assert by_source["responses.ndjson"] == [
        "imported",
        "imported",
        "imported",
        "dropped",
        "dropped",
        "dropped",
    ]
    assert sorted(verdicts[verdicts["source"] == "responses.ndjson"]["row"]) == [1, 2, 3, 4, 5, 7]
    assert load_cohort(write_import(result, tmp_path / "c")).n_patients == 2


def test_the_same_secret_gives_the_same_ids_from_csv_and_from_episodes(bundle):
    result = import_fhir(
        HERE / "responses.ndjson",
        csv_mapping(),
        patients=HERE / "patients.csv",
        phases=HERE / "phases.csv",
        secret=SECRET,
    )
    assert set(result.tables["patients"]["patient_id"]) <= set(
        bundle.tables["patients"]["patient_id"]
    )


def test_a_secret_is_required_unless_subjects_are_pseudonymous(tmp_path):
    with pytest.raises(UsageError, match="secret"):
        import_fhir(HERE / "bundle.json", MAPPING)
    data = read_mapping_file(MAPPING)
    data["subjects"] = "as_is"
    result = import_fhir(HERE / "bundle.json", data)
    assert result.tables["patients"]["patient_id"].tolist() == ["pat-001", "pat-002", "pat-003"]


def test_as_is_refuses_record_number_ids(tmp_path):
    patients = tmp_path / "patients.csv"
    patients.write_text("subject,clinic_id,enrolment_date\nPatient/0045123,north,2024-01-08\n")
    data = csv_mapping()
    data["subjects"] = "as_is"
    data["phases"] = {"single_phase": 1}
    with pytest.raises(CohortError) as err:
        import_fhir(HERE / "responses.ndjson", data, patients=patients)
    assert "0045123" not in str(err.value) and "record" in str(err.value)


def test_unreadable_and_out_of_range_answers_stop_the_import(tmp_path):
    lines = [
        '{"resourceType":"QuestionnaireResponse","status":"completed","questionnaire":'
        '"http://loinc.org/q/44249-1","subject":{"reference":"Patient/pat-001"},'
        '"authored":"2024-01-09","item":[{"linkId":"/44250-9","answer":[{"valueInteger":4}]},'
        '{"linkId":"/44255-8","answer":[{"valueCoding":{"code":"LA9999-9"}}]}]}',
    ]
    responses = tmp_path / "r.ndjson"
    responses.write_text("\n".join(lines) + "\n")
    data = csv_mapping()
    data["phases"] = {"single_phase": 1}
    with pytest.raises(CohortError) as err:
        import_fhir(responses, data, patients=HERE / "patients.csv", secret=SECRET)
    text = str(err.value)
    assert "phq9 linkId /44250-9" in text and "outside the instrument's range" in text
    assert "phq9 linkId /44255-8" in text and "cannot be read as numbers" in text


def test_lines_that_are_not_json_stop_the_import(tmp_path):
    responses = tmp_path / "broken.ndjson"
    responses.write_text('{"resourceType":"QuestionnaireResponse"}\n{not json\n')
    with pytest.raises(CohortError, match="lines that are not FHIR resources"):
        import_fhir(responses, MAPPING, secret=SECRET)


def test_duplicates_error_rule(tmp_path):
    data = read_mapping_file(MAPPING)
    data["rules"] = {"duplicates": "error", "early_days": 7}
    with pytest.raises(CohortError, match="two responses of one patient on one day"):
        import_fhir(HERE / "bundle.json", data, secret=SECRET)


def test_overlapping_stays_in_the_phases_csv_name_its_rows(tmp_path):
    phases = tmp_path / "phases.csv"
    phases.write_text(
        "subject,phase,start_date,end_date,exit_reason\n"
        "Patient/pat-001,1,2024-01-08,2024-02-12,progressed\n"
        "Patient/pat-001,2,2024-02-01,,\n"
        "pat-002,1,2024-02-05,,\n"
    )
    with pytest.raises(CohortError) as err:
        import_fhir(
            HERE / "responses.ndjson",
            csv_mapping(),
            patients=HERE / "patients.csv",
            phases=phases,
            secret=SECRET,
        )
    problem = err.value.problems[0]
    # the validator flags the stay that the next one overlaps: CSV row 1
    assert (problem.table, problem.column, problem.rows) == ("phases.csv", "start_date", (1,))
