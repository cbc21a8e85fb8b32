"""Property-based tests of the FHIR reading helpers."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given
from hypothesis import strategies as st

from stepanalytics.io.fhir_read import (
    answer_number,
    epoch_day,
    flatten_answers,
    read_resources,
    subject_key,
)

EPOCH = dt.date(1970, 1, 1)
ids = st.from_regex(r"[A-Za-z0-9\-.]{1,20}", fullmatch=True)
zones = st.sampled_from(["", "Z", "+01:00", "-11:30", "+14:00"])


@given(
    ids,
    st.sampled_from(["", "https://ehr.example.org/fhir/", "http://x/baseR4/"]),
    st.sampled_from(["", "/_history/3"]),
)
def test_every_spelling_of_a_reference_gives_one_key(pid, base, history):
    expected = f"Patient/{pid}"
    assert subject_key({"reference": f"{base}Patient/{pid}{history}"}) == expected
    assert subject_key(f"Patient/{pid}") == expected


@given(ids)
def test_bare_ids_in_a_csv_are_patient_references(pid):
    assert subject_key(pid) == f"Patient/{pid}"


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1)), st.times(), zones)
def test_authored_day_is_the_written_date_whatever_the_time_and_zone(day, clock, zone):
    text = f"{day.isoformat()}T{clock.strftime('%H:%M:%S')}{zone}"
    assert epoch_day(text) == (day - EPOCH).days
    assert epoch_day(day.isoformat()) == (day - EPOCH).days


@given(st.from_regex(r"\d{4}(-\d{2})?", fullmatch=True))
def test_partial_dates_have_no_day(text):
    assert epoch_day(text) is None


@given(
    st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)),
    st.sampled_from(["valueInteger", "valueDecimal"]),
)
def test_numeric_answers_are_their_value(value, kind):
    assert answer_number({kind: value}, {}, {}) == (float(value), None, None)


@given(st.sampled_from(["asked-unknown", "unknown", "asked-declined", "not-asked"]))
def test_data_absent_codings_are_missing_not_zero(code):
    coding = {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": code}
    assert answer_number({"valueCoding": coding}, {code: 0.0}, {}) == (None, code, None)


@given(st.from_regex(r"LA\d{4,5}-\d", fullmatch=True), st.integers(0, 6))
def test_mapped_codes_win_over_ordinal_extensions(code, value):
    coding = {
        "system": "http://loinc.org",
        "code": code,
        "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 99}
        ],
    }
    assert answer_number({"valueCoding": coding}, {code: float(value)}, {})[0] == value
    assert answer_number({"valueCoding": coding}, {}, {})[0] == 99.0


def _tree(depth: int) -> st.SearchStrategy:
    leaf = st.fixed_dictionaries({"linkId": ids, "answer": st.just([{"valueInteger": 1}])})
    if depth == 0:
        return leaf
    group = st.fixed_dictionaries({"linkId": ids, "item": st.lists(_tree(depth - 1), max_size=3)})
    nested_answer = st.fixed_dictionaries(
        {
            "linkId": ids,
            "answer": st.lists(
                st.fixed_dictionaries(
                    {"valueInteger": st.just(0), "item": st.lists(_tree(depth - 1), max_size=2)}
                ),
                max_size=1,
            ),
        }
    )
    return st.one_of(leaf, group, nested_answer)


def _count(items: list[dict]) -> int:
    total = 0
    for item in items:
        total += 1 + _count(item.get("item", []))
        for answer in item.get("answer", []):
            total += _count(answer.get("item", []))
    return total


@given(st.lists(_tree(3), max_size=4))
def test_flattening_visits_every_item_at_any_depth(items):
    assert len(list(flatten_answers(items))) == _count(items)


@given(
    st.lists(
        st.fixed_dictionaries({"resourceType": st.just("QuestionnaireResponse"), "id": ids}),
        min_size=1,
        max_size=6,
    )
)
def test_ndjson_and_bundle_give_the_same_resources(tmp_path_factory, resources):
    folder = tmp_path_factory.mktemp("fhir")
    (folder / "r.ndjson").write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }
    (folder / "b.json").write_text(json.dumps(bundle, indent=2))
    lines = read_resources([folder / "r.ndjson"])
    entries = read_resources([folder / "b.json"])
    assert [x.resource for x in lines] == [x.resource for x in entries] == resources
    assert [x.row for x in lines] == [x.row for x in entries] == list(range(1, len(resources) + 1))
