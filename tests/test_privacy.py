"""The identifier guard, value by value, with property-based checks."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepanalytics.privacy import identifier_reason_for_name, scan_table

CONTRACT_NAMES = [
    "patient_id", "clinic_id", "enrolled_month", "last_contact_day", "protocol", "age_band",
    "sex", "pain_duration_months", "primary_condition", "compensation_claim", "employment",
    "phase", "start_day", "end_day", "exit_reason", "day", "instrument", "score", "item",
    "value", "event", "severity",
]  # fmt: skip


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_contract_column_names_are_not_identifiers(name: str) -> None:
    assert identifier_reason_for_name(name) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("first_name", "person names"),
        ("Surname", "person names"),
        ("email_address", "e-mail addresses"),
        ("phone_mobile", "phone numbers"),
        ("home_address", "addresses"),
        ("medical_record_number", "medical record numbers"),
        ("nhs_no", "health service numbers"),
        ("date_of_birth", "birth dates"),
        ("dob", "birth dates"),
        ("ip_address", "IP addresses"),
        ("admission_date", "calendar dates"),
    ],
)
def test_identifier_column_names(name: str, reason: str) -> None:
    assert identifier_reason_for_name(name) == reason


def test_ordinary_values_pass() -> None:
    frame = pd.DataFrame(
        {
            "patient_id": ["P00042", "P00043", "X-17", "r12"],
            "clinic_id": ["North Clinic", "C02", "Site 3", "C04"],
            "enrolled_month": ["2025-01", "2025-02", "2024-12", "2025-03"],
            "referral": ["GP", "self", "orthopaedics", "GP"],
            "score_text": ["12.5", "3", "40", "0"],
            "site_name": ["Oslo Pain Centre", "Bergen Rehab Unit", "Tromso Clinic", "C4"],
        }
    )
    assert scan_table("patients", frame) == []


PSEUDONYMS = st.from_regex(r"[A-Z]{1,3}[0-9]{1,7}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(PSEUDONYMS, min_size=1, max_size=20))
def test_pseudonymous_ids_never_refused(ids: list[str]) -> None:
    assert scan_table("patients", pd.DataFrame({"patient_id": ids})) == []


EMAILS = st.emails()


@settings(max_examples=200, deadline=None)
@given(emails=st.lists(EMAILS, min_size=1, max_size=5), position=st.integers(0, 10))
def test_any_email_in_any_column_is_refused(emails: list[str], position: int) -> None:
    values = ["ok"] * 10
    values.insert(position, emails[0])
    problems = scan_table("events", pd.DataFrame({"note": values}))
    assert len(problems) == 1
    assert problems[0].column == "note"
    assert emails[0] not in problems[0].render()


@settings(max_examples=200, deadline=None)
@given(
    day=st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)),
    style=st.sampled_from(["%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d %B %Y", "%B %d, %Y"]),
)
def test_any_full_date_is_refused(day, style: str) -> None:
    text = day.strftime(style)
    problems = scan_table("assessments", pd.DataFrame({"comment": ["fine", text]}))
    assert problems and "calendar dates" in problems[0].message


@settings(max_examples=100, deadline=None)
@given(
    month=st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)).map(
        lambda d: d.strftime("%Y-%m")
    )
)
def test_enrolment_months_are_allowed(month: str) -> None:
    assert scan_table("patients", pd.DataFrame({"enrolled_month": [month]})) == []
