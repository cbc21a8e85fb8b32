"""Property-based tests of the cell parsers the REDCap importer is built on."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from stepanalytics.io.pseudonym import looks_like_record_number, pseudonym, pseudonymise
from stepanalytics.io.redcap_dictionary import checkbox_column, parse_choices
from stepanalytics.io.values import (
    DEFAULT_MISSING_CODES,
    age_band,
    month_of,
    parse_dates,
    parse_numbers,
    recode,
)

CODES = sorted(DEFAULT_MISSING_CODES)
EPOCH = dt.date(1970, 1, 1)
dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31))
numbers = st.one_of(
    st.integers(min_value=-(10**9), max_value=10**9).map(str),
    st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False).map(str),
)
cells = st.one_of(
    numbers.map(lambda s: ("number", s)),
    st.sampled_from(CODES).map(lambda s: ("code", s)),
    st.sampled_from(["", "  "]).map(lambda s: ("empty", s)),
)


@given(st.lists(cells, max_size=40))
def test_numbers_codes_and_empty_cells_are_told_apart(parts):
    kinds = [k for k, _ in parts]
    text = [t for _, t in parts]
    parsed = parse_numbers(pd.Series(text, dtype=object))
    for kind, cell, value, code, bad in zip(
        kinds, text, parsed.values, parsed.missing_code, parsed.invalid, strict=True
    ):
        assert not bad
        if kind == "number":
            assert value == float(cell) and code is None
        elif kind == "code":
            assert np.isnan(value) and code == cell
        else:
            assert np.isnan(value) and code is None


@given(st.text(max_size=12))
def test_any_other_text_is_invalid_never_guessed(text):
    stripped = text.strip()
    plain = re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)", stripped) is not None
    parsed = parse_numbers(pd.Series([text]))
    expect_invalid = not (plain or stripped in DEFAULT_MISSING_CODES or stripped == "")
    assert bool(parsed.invalid[0]) == expect_invalid
    if expect_invalid:
        assert np.isnan(parsed.values[0])


@given(st.lists(numbers, min_size=1, max_size=30))
def test_categorical_and_text_input_parse_alike(text):
    plain = parse_numbers(pd.Series(text, dtype=object)).values
    categorical = parse_numbers(pd.Series(text, dtype="category")).values
    np.testing.assert_array_equal(plain, categorical)


@given(dates, st.sampled_from(["ymd", "dmy", "mdy"]), st.sampled_from(["", " 08:15", " 23:59:59"]))
def test_dates_in_every_layout_give_days_since_1970(day, layout, clock):
    pattern = {"ymd": "%Y-%m-%d", "dmy": "%d/%m/%Y", "mdy": "%m/%d/%Y"}[layout]
    parsed = parse_dates(pd.Series([day.strftime(pattern) + clock]), date_format=layout)
    assert parsed.values[0] == (day - EPOCH).days
    assert not parsed.invalid[0]


@given(dates, dates)
def test_day_since_enrolment_is_the_calendar_difference(enrolled, seen):
    parsed = parse_dates(pd.Series([enrolled.isoformat(), seen.isoformat()])).values
    assert parsed[1] - parsed[0] == (seen - enrolled).days


@given(dates)
def test_enrolment_month_is_the_calendar_month(day):
    assert month_of(np.array([float((day - EPOCH).days)]))[0] == day.strftime("%Y-%m")


@given(st.sampled_from(["2024-02-30", "2023-13-01", "24-01-01", "yesterday", "2024/01/01"]))
def test_impossible_dates_are_invalid(text):
    assert parse_dates(pd.Series([text])).invalid[0]


@given(st.floats(min_value=18, max_value=130, allow_nan=False))
def test_age_band_contains_the_age(age):
    band = age_band(np.array([age]))[0]
    if age >= 90:
        assert band == "90+"
    else:
        low, high = (int(x) for x in band.split("-"))
        assert low <= age < high + 1


@given(st.floats(min_value=0, max_value=17.99))
def test_no_band_under_18(age):
    assert age_band(np.array([age]))[0] is None


@given(
    st.dictionaries(
        st.from_regex(r"[0-9]{1,3}", fullmatch=True),
        st.sampled_from(["female", "male"]),
        min_size=1,
    ),
    st.lists(st.from_regex(r"[0-9]{1,3}", fullmatch=True), max_size=20),
)
def test_recode_maps_known_codes_and_flags_unknown_ones(codes, cells):
    result = recode(pd.Series(cells, dtype=object), codes)
    for cell, value, unknown in zip(cells, result.values, result.unknown, strict=True):
        if cell in codes:
            assert value == codes[cell] and not unknown
        else:
            assert value is None and unknown


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10))
def test_checkbox_column_names_follow_redcaps_rule(code):
    column = checkbox_column("pain_sites", code)
    assert column.startswith("pain_sites___")
    assert re.fullmatch(r"[a-z0-9_]*", column[len("pain_sites___") :])


@given(
    st.dictionaries(
        st.from_regex(r"-?[0-9A-Za-z_]{1,4}", fullmatch=True),
        st.text(
            alphabet=st.characters(blacklist_characters="|\r\n", blacklist_categories=("Cs",)),
            max_size=15,
        ).map(str.strip),
        min_size=1,
        max_size=8,
    )
)
def test_choice_lists_round_trip(choices):
    text = " | ".join(f"{code}, {label}" for code, label in choices.items())
    assert parse_choices(text) == choices


@settings(max_examples=50)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30, unique=True))
def test_pseudonyms_are_letters_stable_and_distinct(ids):
    secret = "property-secret-0123"
    out = pseudonymise(pd.Series(ids, dtype=object), secret)
    assert out.str.fullmatch(r"p[a-z]{16}").all()
    assert out.nunique() == len(ids)
    assert out.tolist() == [pseudonym(i, secret) for i in ids]
    assert not looks_like_record_number(out).any()


@given(st.from_regex(r"[A-Z]{0,3}[ -]?\d{3}[ ./-]?\d{3,6}", fullmatch=True))
def test_record_number_shapes_are_caught(text):
    assert looks_like_record_number(pd.Series([text]))[0]


@given(st.from_regex(r"([A-Z]{1,3}-)?\d{1,3}(-\d{1,2})?", fullmatch=True))
def test_study_ids_pass(text):
    """Ids with five digits or fewer in a row (DAG-prefixed ones too) are study ids."""
    assert not looks_like_record_number(pd.Series([text]))[0]
