"""The identifier guard: direct identifiers never get into a cohort.

Two looks at every table: column *names* that announce an identifier
(``email``, ``date_of_birth``, ``mrn``, ...) and *values* that look like one
(an e-mail address, a phone number, a full calendar date, ...).  Values are
judged on the distinct values of each text column, so a large table costs
little more than a small one.  A refusal names the table, the column and the
reason, and never prints the offending values.

What counts as a direct identifier follows the HIPAA Safe Harbor list
(45 CFR 164.514(b)(2)) as narrowed by the data contract: ages are allowed
only as bands, the only calendar information is the enrolment month, and
postcodes only to 3 characters.
"""

from __future__ import annotations

import re

import pandas as pd

from stepanalytics.contract import TABLES
from stepanalytics.errors import Problem

# Column names (snake_case tokens) that announce a direct identifier.
_NAME_COLUMNS = {
    "name", "names", "first_name", "firstname", "last_name", "lastname", "surname",
    "full_name", "fullname", "given_name", "family_name", "middle_name", "maiden_name",
    "patient_name", "initials",
}  # fmt: skip
_IDENTIFIER_TOKENS = {
    "email": "e-mail addresses",
    "mail": "e-mail addresses",
    "phone": "phone numbers",
    "telephone": "phone numbers",
    "mobile": "phone numbers",
    "fax": "fax numbers",
    "address": "addresses",
    "street": "street addresses",
    "postcode": "postcodes finer than 3 characters",
    "zip": "postcodes finer than 3 characters",
    "zipcode": "postcodes finer than 3 characters",
    "postal": "postcodes finer than 3 characters",
    "mrn": "medical record numbers",
    "nhs": "health service numbers",
    "ssn": "social security numbers",
    "insurance": "insurance numbers",
    "passport": "passport numbers",
    "dob": "birth dates",
    "birth": "birth dates",
    "birthday": "birth dates",
    "birthdate": "birth dates",
    "ip": "IP addresses",
    "url": "web addresses",
    "website": "web addresses",
    "date": "calendar dates",
    "datetime": "calendar dates",
    "timestamp": "calendar dates",
}
_IDENTIFIER_PHRASES = {
    ("medical", "record"): "medical record numbers",
    ("record", "number"): "record numbers",
    ("social", "security"): "social security numbers",
    ("health", "number"): "health service numbers",
    ("ip", "address"): "IP addresses",
    ("date", "birth"): "birth dates",
}
_POSTCODE_TOKENS = {"postcode", "zip", "zipcode", "postal"}

_EMAIL = r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"
_URL = r"(?:https?://|ftp://|www\.)\S+"
_IPV4 = r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])"
_IPV6 = r"(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*"
_DATE = "|".join(
    [
        r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b",  # 2024-03-05, 2024/3/5
        r"\b\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b",  # 05/03/2024, 5.3.24
        rf"\b\d{{1,2}}\s*{_MONTHS}\.?\s*\d{{2,4}}\b",  # 5 March 2024
        rf"\b{_MONTHS}\.?\s+\d{{1,2}},?\s+\d{{2,4}}\b",  # March 5, 2024
        r"\b\d{8}T\d{4,6}",  # 20240305T1200
    ]
)
_PHONE = (
    r"(?:\+|\b00)\d[\d\s().-]{6,}\d|\(\d{2,5}\)\s?\d[\d\s.-]{4,}\d|\b\d{3}[\s.-]\d{3}[\s.-]\d{4}\b"
)
_SSN = r"\b\d{3}-\d{2}-\d{4}\b"
_LONG_NUMBER = r"^\s*\d{8,}\s*$"  # record, insurance or phone numbers written as bare digits
_STREET = (
    r"\b\d+[a-z]?\s+(?:[A-Za-z][\w'.-]*\s+){1,4}"
    r"(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|way|court|ct|place|pl|"
    r"terrace|crescent|close|square|strasse|straße|gasse|weg|gatan|vägen|rue|via)\b\.?"
)
_UK_POSTCODE = r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b"
_PERSON_NAME = r"^[A-Z][a-z'-]+(?:\s+[A-Z]\.?)?\s+[A-Z][a-z'-]+(?:-[A-Z][a-z'-]+)?$"

_VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE if flags else 0))
    for reason, pattern, flags in [
        ("e-mail addresses", _EMAIL, True),
        ("web addresses (URLs)", _URL, True),
        ("IP addresses", _IPV4, False),
        ("IP addresses", _IPV6, False),
        ("full calendar dates (times must be days since enrolment)", _DATE, True),
        ("social security numbers", _SSN, False),
        ("phone numbers", _PHONE, False),
        ("long digit strings such as record, insurance or phone numbers", _LONG_NUMBER, False),
        ("street addresses", _STREET, True),
        ("postcodes", _UK_POSTCODE, False),
    ]
)
_NAME_RE = re.compile(_PERSON_NAME)
# Words that make a capitalised pair a place or an organisation, not a person.
_PLACE_WORDS = (
    r"\b(?:clinic|hospital|centre|center|health|service|unit|team|site|practice|town|city|"
    r"north|south|east|west|central|pain|rehab|rehabilitation|group|trust|board)\b"
)
_AGE_TOKENS = {"age", "ages", "age_years", "years_old"}
_AGE_BAND_NAME = "age_band"


def _tokens(column: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", column.lower()) if t]


def identifier_reason_for_name(column: str) -> str | None:
    """Why a column name announces a direct identifier, or None.

    Examples
    --------
    >>> identifier_reason_for_name("email_address")
    'e-mail addresses'
    >>> identifier_reason_for_name("patient_id") is None
    True
    """
    lowered = column.lower().strip()
    if lowered in _NAME_COLUMNS or lowered.endswith(("_surname", "_first_name", "_last_name")):
        return "person names"
    tokens = _tokens(lowered)
    for phrase, reason in _IDENTIFIER_PHRASES.items():
        if all(t in tokens for t in phrase):
            return reason
    for token in tokens:
        if token in _IDENTIFIER_TOKENS:
            return _IDENTIFIER_TOKENS[token]
    return None


def scan_table(table: str, frame: pd.DataFrame) -> list[Problem]:
    """Look for direct identifiers in one table; every finding is a problem.

    Parameters
    ----------
    table : str
        Contract table name, for the messages.
    frame : DataFrame
        The table as read (text or typed columns).

    Returns
    -------
    list of Problem
        Empty when nothing looks identifying.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"patient_id": ["P1"], "contact": ["ann@example.org"]})
    >>> [p.column for p in scan_table("patients", df)]
    ['contact']
    """
    problems: list[Problem] = []
    contract = {c.name for c in TABLES.get(table, ())}
    for column in frame.columns:
        name = str(column)
        series = frame[column]
        found = _check_column(table, name, series, is_contract=name in contract)
        if found is not None:
            problems.append(found)
    return problems


def _check_column(table: str, name: str, series: pd.Series, *, is_contract: bool) -> Problem | None:
    if is_contract:
        fix = (
            f"replace these values in {table}.{name}: ids must be pseudonymous (e.g. P00042) "
            "and times whole days since enrolment"
        )
    else:
        fix = (
            f"remove column '{name}' from {table} (keep identifiers in the clinic's own system; "
            "stepanalytics needs only pseudonymous ids and days since enrolment)"
        )
    if not is_contract:
        reason = identifier_reason_for_name(name)
        if reason is not None and not _is_coarse_postcode(name, series):
            return Problem(table, name, f"the column name says it holds {reason}", fix)
        if name.lower() != _AGE_BAND_NAME and set(_tokens(name)) & _AGE_TOKENS:
            return Problem(
                table,
                name,
                "ages are not allowed as numbers",
                f"replace '{name}' by the column age_band with bands such as 40-49 or 90+",
            )
        if _is_coarse_postcode(name, series):
            return None
    if pd.api.types.is_datetime64_any_dtype(series):
        return Problem(table, name, "the column holds calendar dates", fix)
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return None
    # Site names ("North Clinic") would look like person names; only free
    # columns and the patient id are checked for those.
    check_names = not is_contract or name == "patient_id"
    return _check_values(table, name, series, fix, check_names=check_names)


def _check_values(
    table: str, name: str, series: pd.Series, fix: str, *, check_names: bool
) -> Problem | None:
    # Judge the distinct values only: a large table costs little more than a small one.
    distinct = pd.unique(series.to_numpy())
    values = pd.Series(distinct[pd.notna(distinct)]).astype(str)
    if values.empty:
        return None
    for reason, pattern in _VALUE_PATTERNS:
        hits = values.str.contains(pattern, regex=True).to_numpy()
        if hits.any():
            mask = series.isin(set(distinct[pd.notna(distinct)][hits]))
            return Problem.from_mask(
                table, name, series.to_frame(), mask, f"values look like {reason}", fix, redact=True
            )
    if not check_names:
        return None
    names = values.str.match(_NAME_RE) & ~values.str.contains(_PLACE_WORDS, case=False)
    if len(values) >= 3 and names.mean() >= 0.5:
        mask = series.isin(set(distinct[pd.notna(distinct)][names.to_numpy()]))
        return Problem.from_mask(
            table, name, series.to_frame(), mask, "values look like person names", fix, redact=True
        )
    return None


def _is_coarse_postcode(name: str, series: pd.Series) -> bool:
    """A postcode column is allowed when every value has at most 3 characters."""
    if not set(_tokens(name)) & _POSTCODE_TOKENS:
        return False
    text = series.dropna().astype(str).str.replace(r"\s", "", regex=True)
    return bool((text.str.len() <= 3).all())


def scan_tables(tables: dict[str, pd.DataFrame]) -> list[Problem]:
    """Run :func:`scan_table` over every table."""
    return [p for table, frame in tables.items() for p in scan_table(table, frame)]
