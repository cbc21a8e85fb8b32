"""The stated REDCap rules, one small hand-made project per rule.

Each test writes a tiny data dictionary and export (REDCap's real headers)
and a mapping, imports them, and checks the one rule it is about.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stepanalytics.errors import CohortError, UsageError
from stepanalytics.io.mapping import MappingError
from stepanalytics.io.redcap import import_redcap

HEADER = [
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
]
RMDQ_CHOICES = " | ".join(f"{k}, Statement {k}" for k in range(1, 25))
PSEQ_CHOICES = " | ".join(f"{k}, {k}" for k in range(1, 8))
BASE_FIELDS = [
    ("record_id", "enrolment", "text", "", "", ""),
    ("enrol_date", "enrolment", "text", "", "date_ymd", ""),
    ("contact", "enrolment", "text", "", "", ""),
    ("age", "enrolment", "text", "", "integer", ""),
    ("visit_date", "visit", "text", "", "date_ymd", ""),
    ("pain_now", "visit", "text", "", "integer", ""),
    ("rmdq_items", "rmdq", "checkbox", RMDQ_CHOICES, "", ""),
    ("pseq_1", "pseq", "radio", PSEQ_CHOICES, "", ""),
    ("pseq_2", "pseq", "radio", PSEQ_CHOICES, "", ""),
]
SECRET = "rules-secret-0123456789"


def write_project(folder: Path, rows: list[dict[str, str]], fields=BASE_FIELDS, extra_cols=()):
    """Dictionary and export CSVs; export columns follow REDCap's order."""
    with (folder / "dictionary.csv").open("w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
        w.writerow(HEADER)
        for name, form, kind, choices, validation, ident in fields:
            w.writerow(
                [name, form, "", kind, name, choices, "", validation, "", "", ident] + [""] * 7
            )
    columns = [
        "record_id",
        "redcap_event_name",
        "redcap_repeat_instrument",
        "redcap_repeat_instance",
        "redcap_data_access_group",
    ]
    forms: list[str] = []
    for name, form, kind, choices, _, _ in fields[1:]:
        if forms and forms[-1] != form:
            columns.append(f"{forms[-1]}_complete")
        if not forms or forms[-1] != form:
            forms.append(form)
        if kind == "checkbox":
            columns += [f"{name}___{c.split(',')[0].strip()}" for c in choices.split("|")]
        else:
            columns.append(name)
    columns.append(f"{forms[-1]}_complete")
    columns += list(extra_cols)
    with (folder / "export.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)
    return folder / "export.csv", folder / "dictionary.csv"


def mapping(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": "redcap",
        "redcap_events": {"baseline_arm_1": {"day": 0}, "week_6_arm_1": {"day": 42}},
        "enrolment": {"date_field": "enrol_date"},
        "patients": {"clinic_id": {"dag": True}},
        "instruments": {
            "nrs_pain": {"form": "visit", "date_field": "visit_date", "score": "pain_now"}
        },
        "phases": {"single_phase": 1},
    }
    base.update(changes)
    return base


def baseline(record: str = "1", **cells: str) -> dict[str, str]:
    row = {
        "record_id": record,
        "redcap_event_name": "baseline_arm_1",
        "redcap_data_access_group": "north",
        "enrol_date": "2024-01-08",
        "enrolment_complete": "2",
    }
    row.update(cells)
    return row


def visit(record: str, event: str, date: str, pain: str, status: str = "2", **cells: str):
    row = {
        "record_id": record,
        "redcap_event_name": event,
        "redcap_data_access_group": "north",
        "visit_date": date,
        "pain_now": pain,
        "visit_complete": status,
    }
    row.update(cells)
    return row


def test_checkbox_items_ticked_is_one_unticked_is_zero(tmp_path):
    ticks = {f"rmdq_items___{k}": "1" if k in (2, 5, 24) else "0" for k in range(1, 25)}
    nothing = {f"rmdq_items___{k}": "0" for k in range(1, 25)}
    rows = [
        baseline(rmdq_complete="2", **ticks),
        {
            "record_id": "1",
            "redcap_event_name": "week_6_arm_1",
            "redcap_data_access_group": "north",
            "rmdq_complete": "2",
            **nothing,
        },  # complete with no box ticked: all "no"
        baseline("2", rmdq_complete="0", **nothing),  # never opened: no form
    ]
    export, dictionary = write_project(tmp_path, rows)
    m = mapping(instruments={"rmdq": {"form": "rmdq", "checkbox": "rmdq_items"}})
    result = import_redcap(export, dictionary, m)
    items = result.tables["items"]
    day0 = items[items["day"] == 0].set_index("item")["value"]
    assert day0.sum() == 3 and day0[[2, 5, 24]].tolist() == [1.0, 1.0, 1.0] and len(day0) == 24
    day42 = items[items["day"] == 42]["value"]
    assert len(day42) == 24 and day42.sum() == 0
    assert set(items["patient_id"]) == {"1"}
    verdicts = result.row_verdicts().set_index("row")
    assert verdicts.loc[3, "outcome"] == "imported"  # patient 2's enrolment fields
    assert "rmdq" not in verdicts.loc[3, "reason"]


def test_ticked_missing_code_choice_leaves_the_whole_form_unanswered(tmp_path):
    ticks = {f"rmdq_items___{k}": "0" for k in range(1, 25)}
    rows = [baseline(rmdq_complete="2", rmdq_items___unk="1", **ticks)]
    export, dictionary = write_project(tmp_path, rows, extra_cols=["rmdq_items___unk"])
    m = mapping(instruments={"rmdq": {"form": "rmdq", "checkbox": "rmdq_items"}})
    result = import_redcap(export, dictionary, m)
    assert result.tables["items"].empty
    report = result.table
    assert "value rmdq_items___unk" in report["part"].tolist()
    assert "no item answered and no score given" in report["reason"].tolist()


def test_item_values_recode_project_codes_onto_the_published_scale(tmp_path):
    rows = [baseline(pseq_1="1", pseq_2="7", pseq_complete="2")]
    export, dictionary = write_project(tmp_path, rows)
    recode = {str(k): k - 1 for k in range(1, 8)}
    m = mapping(
        instruments={
            "pseq": {"form": "pseq", "items": {"pseq_1": 1, "pseq_2": 2}, "item_values": recode}
        }
    )
    items = import_redcap(export, dictionary, m).tables["items"]
    assert items["value"].tolist() == [0.0, 6.0]


def test_values_outside_the_item_range_stop_the_import(tmp_path):
    rows = [baseline(pseq_1="1", pseq_2="7", pseq_complete="2")]  # 7 > PSEQ item max 6
    export, dictionary = write_project(tmp_path, rows)
    m = mapping(instruments={"pseq": {"form": "pseq", "items": ["pseq_1", "pseq_2"]}})
    with pytest.raises(CohortError) as err:
        import_redcap(export, dictionary, m)
    text = str(err.value)
    assert "pseq_2" in text and "outside the range 0 to 6" in text and "never clipped" in text


def test_text_that_is_neither_a_number_nor_a_missing_code_stops_the_import(tmp_path):
    rows = [baseline(), visit("1", "baseline_arm_1", "2024-01-08", "seven")]
    export, dictionary = write_project(tmp_path, rows)
    with pytest.raises(CohortError) as err:
        import_redcap(export, dictionary, mapping())
    problem = err.value.problems[0]
    assert problem.column == "pain_now" and problem.rows == (2,)
    assert "missing_codes" in problem.fix


def test_duplicate_instrument_on_one_day_keeps_the_later_row(tmp_path):
    rows = [
        baseline(),
        visit("1", "baseline_arm_1", "2024-01-08", "7"),
        visit("1", "week_6_arm_1", "2024-01-08", "4"),  # same date as the baseline visit
    ]
    export, dictionary = write_project(tmp_path, rows)
    result = import_redcap(export, dictionary, mapping())
    assert result.tables["assessments"]["score"].tolist() == [4.0]
    lines = result.table
    dropped = lines[(lines["part"] == "instrument nrs_pain") & (lines["outcome"] == "dropped")]
    assert dropped["row"].tolist() == [2]
    assert dropped["reason"].tolist() == [
        "same patient, instrument and day as row 3: the later row was kept"
    ]
    with pytest.raises(CohortError, match="same instrument twice"):
        import_redcap(export, dictionary, mapping(rules={"duplicates": "error"}))


def test_incomplete_forms_are_dropped_or_kept_as_the_rule_says(tmp_path):
    rows = [baseline(), visit("1", "week_6_arm_1", "2024-02-19", "5", status="0")]
    export, dictionary = write_project(tmp_path, rows)
    dropped = import_redcap(export, dictionary, mapping())
    assert dropped.tables["assessments"].empty
    verdict = dropped.row_verdicts().set_index("row").loc[2]
    assert verdict["outcome"] == "dropped"
    assert verdict["reason"] == "instrument nrs_pain: form visit incomplete (visit_complete = 0)"
    kept = import_redcap(export, dictionary, mapping(rules={"incomplete_forms": "keep"}))
    assert kept.tables["assessments"][["day", "score"]].values.tolist() == [[42, 5.0]]
    assert "form visit incomplete, kept by rule" in kept.table["reason"].tolist()


def test_unknown_events_are_dropped_or_refused(tmp_path):
    rows = [baseline(), visit("1", "week_52_arm_1", "2025-01-06", "2")]
    export, dictionary = write_project(tmp_path, rows)
    result = import_redcap(export, dictionary, mapping())
    assert result.row_verdicts().set_index("row").loc[2, "reason"] == (
        "unknown event 'week_52_arm_1' (not in redcap_events)"
    )
    with pytest.raises(MappingError, match=r"week_52_arm_1 \(1 rows\)"):
        import_redcap(export, dictionary, mapping(rules={"unknown_events": "error"}))


def test_forms_without_a_date_take_the_event_day_and_early_forms_follow_early_days(tmp_path):
    rows = [
        baseline(),
        visit("1", "week_6_arm_1", "", "5"),  # no date: event day 42
        visit("1", "baseline_arm_1", "2024-01-01", "6"),  # 7 days before enrolment
    ]
    export, dictionary = write_project(tmp_path, rows)
    result = import_redcap(export, dictionary, mapping())
    assert result.tables["assessments"][["day", "score"]].values.tolist() == [[42, 5.0]]
    assert result.row_verdicts().set_index("row").loc[3, "reason"] == (
        "instrument nrs_pain: dated 7 days before enrolment"
    )
    early = import_redcap(export, dictionary, mapping(rules={"early_days": 7}))
    assert early.tables["assessments"][["day", "score"]].values.tolist() == [[0, 6.0], [42, 5.0]]


def test_record_ids_that_look_like_record_numbers_need_a_secret(tmp_path):
    rows = [baseline("MRN0045123"), visit("MRN0045123", "baseline_arm_1", "2024-01-08", "3")]
    export, dictionary = write_project(tmp_path, rows)
    with pytest.raises(CohortError) as err:
        import_redcap(export, dictionary, mapping())
    assert "MRN0045123" not in str(err.value) and "secret" in str(err.value)
    result = import_redcap(export, dictionary, mapping(), secret=SECRET)
    assert "MRN0045123" not in result.table.to_csv() + result.tables["patients"].to_csv()
    with pytest.raises(UsageError):
        import_redcap(export, dictionary, mapping(pseudonymise="always"))


def test_mapping_mistakes_are_listed_together(tmp_path):
    export, dictionary = write_project(tmp_path, [baseline()])
    fields = [*BASE_FIELDS[:2], ("contact", "enrolment", "text", "", "", "y"), *BASE_FIELDS[3:]]
    export, dictionary = write_project(tmp_path, [baseline()], fields=fields)
    m = mapping(
        patients={"clinic_id": {"field": "contact"}, "sex": {"field": "gender"}},
        instruments={
            "nrs_pain": {"form": "visit", "score": "pseq_1"},
            "bogus": {"form": "visit", "score": "pain_now"},
        },
        rules={"incomplete_form": "keep"},
    )
    with pytest.raises(MappingError) as err:
        import_redcap(export, dictionary, m)
    keys = [p.column for p in err.value.problems]
    assert "rules.incomplete_form" in keys  # a typo is not ignored
    m.pop("rules")
    with pytest.raises(MappingError) as err:
        import_redcap(export, dictionary, m)
    messages = " | ".join(p.message for p in err.value.problems)
    assert "'contact' is flagged as an identifier" in messages
    assert "field 'gender' is not in the data dictionary" in messages
    assert "field 'pseq_1' is on form 'pseq', not 'visit'" in messages
    assert "'bogus' is not an instrument of the registry" in messages


def test_extra_fields_refused_by_the_privacy_guard_are_dropped_and_listed(tmp_path):
    rows = [baseline(contact="ann@example.org")]
    export, dictionary = write_project(tmp_path, rows)
    m = mapping(patients={"clinic_id": {"dag": True}, "extra": ["contact"]})
    result = import_redcap(export, dictionary, m)
    assert "contact" not in result.tables["patients"].columns
    line = result.table[result.table["part"] == "field contact"]
    assert line["reason"].tolist() == [
        "refused by the privacy guard: values look like e-mail addresses"
    ]


def test_ages_become_bands_and_under_18_is_refused(tmp_path):
    rows = [baseline("1", age="89"), baseline("2", age="90"), baseline("3", age="UNK")]
    export, dictionary = write_project(tmp_path, rows)
    m = mapping(patients={"clinic_id": {"dag": True}, "age_band": {"age_field": "age"}})
    bands = import_redcap(export, dictionary, m).tables["patients"]["age_band"].tolist()
    assert bands == ["80-89", "90+", None]
    export, dictionary = write_project(tmp_path, [baseline("1", age="17")])
    with pytest.raises(CohortError, match="ages under 18 have no age band"):
        import_redcap(export, dictionary, m)


def test_conflicting_enrolment_dates_of_one_record_are_refused(tmp_path):
    rows = [
        baseline("1"),
        {**baseline("1"), "redcap_event_name": "week_6_arm_1", "enrol_date": "2024-02-01"},
    ]
    export, dictionary = write_project(tmp_path, rows)
    with pytest.raises(CohortError, match="different values in different rows"):
        import_redcap(export, dictionary, mapping())


def test_classic_project_without_events_uses_dates_and_dmy_layout(tmp_path):
    rows = [
        {
            "record_id": "1",
            "redcap_data_access_group": "north",
            "enrol_date": "08/01/2024",
            "enrolment_complete": "2",
            "visit_date": "19/02/2024 14:30",
            "pain_now": "4",
            "visit_complete": "2",
        },
    ]
    export, dictionary = write_project(tmp_path, rows)
    text = export.read_text().replace("redcap_event_name,", "", 1).replace("1,,", "1,", 1)
    export.write_text(text)
    m = mapping(date_format="dmy")
    m.pop("redcap_events")
    result = import_redcap(export, dictionary, m)
    assert result.tables["assessments"][["day", "score"]].values.tolist() == [[42, 4.0]]
    assert result.tables["patients"]["enrolled_month"].tolist() == ["2024-01"]
    assert np.all(result.tables["phases"]["exit_reason"] == "ongoing")
    assert any("single_phase" in w for w in result.warnings)


STAY_FIELDS = [
    *BASE_FIELDS[:2],
    ("stay_phase", "phase_stay", "dropdown", "1, Foundation | 2, Building", "", ""),
    ("stay_start", "phase_stay", "text", "", "date_ymd", ""),
    ("stay_end", "phase_stay", "text", "", "date_ymd", ""),
    ("stay_exit", "phase_stay", "dropdown", "1, Progressed | 2, Completed | 5, Paused", "", ""),
]
STAY_MAPPING = {
    "form": "phase_stay",
    "phase_field": "stay_phase",
    "start_date_field": "stay_start",
    "end_date_field": "stay_end",
    "exit_reason_field": "stay_exit",
}


def stay(record: str, instance: str, phase: str, start: str, end: str, exit_code: str):
    return {
        "record_id": record,
        "redcap_event_name": "baseline_arm_1",
        "redcap_repeat_instrument": "phase_stay",
        "redcap_repeat_instance": instance,
        "redcap_data_access_group": "north",
        "stay_phase": phase,
        "stay_start": start,
        "stay_end": end,
        "stay_exit": exit_code,
        "phase_stay_complete": "2",
    }


def test_broken_stays_are_reported_with_their_export_rows(tmp_path):
    rows = [
        baseline("1"),
        stay("1", "1", "1", "2024-01-08", "2024-02-12", "1"),
        stay("1", "2", "2", "2024-02-01", "", ""),  # starts before the first stay ends
        baseline("2", enrol_date="2024-01-15"),  # no stay at all
    ]
    export, dictionary = write_project(tmp_path, rows, fields=STAY_FIELDS)
    m = mapping(instruments={}, phases=STAY_MAPPING)
    with pytest.raises(CohortError) as err:
        import_redcap(export, dictionary, m)
    found = {(p.column, p.message): p.rows for p in err.value.problems}
    # flagged on the stay that the next one overlaps (export row 2)
    assert found[("stay_start", "stays of the same patient overlap")] == (2,)
    assert found[("enrol_date", "1 records have an enrolment date but no phase stay")] == (4,)
    assert all(p.table == "export" for p in err.value.problems)


def test_stay_labels_become_exit_reasons(tmp_path):
    rows = [
        baseline("1"),
        stay("1", "1", "1", "2024-01-08", "2024-02-12", "5"),
        stay("1", "2", "1", "2024-02-12", "", ""),
    ]
    export, dictionary = write_project(tmp_path, rows, fields=STAY_FIELDS)
    m = mapping(instruments={}, phases=STAY_MAPPING)  # no exit_reason_codes: labels
    stays = import_redcap(export, dictionary, m).tables["phases"]
    assert stays[["phase", "start_day", "exit_reason"]].values.tolist() == [
        [1, 0, "paused"],
        [1, 35, "ongoing"],
    ]
