"""REDCap records to the patients table: enrolment, clinic and attributes.

Patient-level fields (enrolment date, clinic, sex, ...) are usually on one
form of the first event, but REDCap allows them anywhere, so each is read
from every row of the record that is not dropped for an unknown event:
the non-empty values must agree (a record with two different enrolment
dates is refused, with its rows listed), and the first one is taken.

A record without an enrolment date or without a clinic cannot be placed in
time or in a site; it is dropped with all its rows, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stepanalytics.contract import BOOL_TEXT
from stepanalytics.errors import Problem
from stepanalytics.io.redcap_dictionary import DataDictionary
from stepanalytics.io.redcap_export import DAG_COLUMN, ExportRows, nonblank, text_of
from stepanalytics.io.redcap_mapping import PATIENT_ATTRIBUTES, AttributeSource, RedcapMapping
from stepanalytics.io.values import (
    ParsedValues,
    add_found,
    age_band,
    month_of,
    parse_dates,
    parse_numbers,
    recode,
)


@dataclass
class FieldValues:
    """One field read over every row: values, and what was blank or coded missing."""

    values: np.ndarray
    present: np.ndarray
    missing_code: np.ndarray


@dataclass
class PatientPart:
    """The patients table and what the export rows gave to it."""

    table: pd.DataFrame  # one row per kept record, column record_code first
    record_ok: np.ndarray  # per record
    record_drop_reason: np.ndarray  # per record, None when kept
    enrol_epoch: np.ndarray  # per record, days since 1970 (NaN when none)
    last_contact_epoch: np.ndarray  # per record, NaN when not mapped / empty
    contributed: np.ndarray  # per row: gave a patient-level value to a kept record
    recoded: list[pd.DataFrame] = field(default_factory=list)  # report lines (row, part, reason)
    problems: list[Problem] = field(default_factory=list)


def first_per_record(
    record_code: np.ndarray, values: np.ndarray, present: np.ndarray, n_records: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first present value of each record, and the rows of records whose values disagree.

    Examples
    --------
    >>> import numpy as np
    >>> first, clash = first_per_record(np.array([0, 0, 1, 1]), np.array(["a", "a", "b", "c"],
    ...     dtype=object), np.array([True, True, True, True]), 2)
    >>> first.tolist(), clash.tolist()
    (['a', 'b'], [False, False, True, True])
    """
    selected = present & (record_code >= 0)
    codes = record_code[selected]
    picked = values[selected]
    value_codes, _ = pd.factorize(pd.Series(picked, dtype=object), use_na_sentinel=True)
    pairs = pd.DataFrame({"p": codes, "v": value_codes}).drop_duplicates()
    clashing = pairs["p"][pairs["p"].duplicated()].unique()
    is_first = ~pd.Series(codes).duplicated().to_numpy()
    is_text = values.dtype == np.dtype(object)
    out = np.full(n_records, None if is_text else np.nan, dtype=values.dtype)
    out[codes[is_first]] = picked[is_first]
    clash_rows = selected & np.isin(record_code, clashing)
    return out, clash_rows


def _slug(label: str) -> str:
    return "_".join(label.strip().lower().replace("-", " ").split())


def read_attribute(
    name: str,
    src: AttributeSource,
    rows: ExportRows,
    dictionary: DataDictionary,
    mapping: RedcapMapping,
    problems: list[Problem],
) -> FieldValues:
    """Read one patient attribute over every row, recoding and checking as stated."""
    frame = rows.frame
    n = rows.n
    none = np.full(n, None, dtype=object)
    if src.value is not None:
        return FieldValues(np.full(n, src.value, dtype=object), np.ones(n, bool), none)
    if src.dag:
        text = text_of(frame[DAG_COLUMN])
        return FieldValues(text, text != None, none)  # noqa: E711 (elementwise)
    column = src.field or src.age_field or ""
    cells = frame[column]
    codes = mapping.missing_codes
    if src.age_field is not None or name == "pain_duration_months":
        parsed = parse_numbers(cells, missing_codes=codes)
        _invalid_problem(problems, column, rows, parsed, "a number")
        values = parsed.values
        if src.age_field is not None:
            too_young = parsed.answered & (values < 18)
            if too_young.any():
                add_found(
                    problems,
                    Problem.from_mask(
                        "export",
                        column,
                        frame,
                        too_young,
                        "ages under 18 have no age band",
                        "correct the age, or leave the patient out of the export",
                        redact=True,
                    ),
                )
            return FieldValues(age_band(values), parsed.answered & ~too_young, parsed.missing_code)
        negative = parsed.answered & (values < 0)
        if negative.any():
            add_found(
                problems,
                Problem.from_mask(
                    "export",
                    column,
                    frame,
                    negative,
                    "pain duration below 0 months",
                    "correct the value at the source",
                ),
            )
        return FieldValues(values, parsed.answered, parsed.missing_code)
    choice_codes = src.codes
    if choice_codes is None and name == "compensation_claim":
        choice_codes = {"1": "true", "0": "false"}
    if choice_codes is None and dictionary.choices(column):
        choice_codes = {code: _slug(label) for code, label in dictionary.choices(column).items()}
    if choice_codes is None:
        text = text_of(cells)
        return FieldValues(text, text != None, none)  # noqa: E711
    result = recode(cells, choice_codes, missing_codes=codes)
    if result.unknown.any():
        add_found(
            problems,
            Problem.from_mask(
                "export",
                column,
                frame,
                result.unknown,
                f"codes not in the mapping of patients.{name}",
                f"add them to patients.{name}.codes in the mapping",
                values=cells,
            ),
        )
    values = result.values
    vocabulary = PATIENT_ATTRIBUTES[name]
    if name == "compensation_claim":
        as_bool = pd.Series(values, dtype=object).map(
            lambda v: BOOL_TEXT.get(str(v).lower()) if v is not None else None
        )
        values = as_bool.to_numpy(dtype=object)
    elif vocabulary is not None and src.codes is None:
        outside = pd.Series(values, dtype=object).notna().to_numpy() & ~np.isin(
            values.astype(str), vocabulary
        )
        if outside.any():
            add_found(
                problems,
                Problem.from_mask(
                    "export",
                    column,
                    frame,
                    outside,
                    f"the dictionary's labels do not match the contract's {name} vocabulary",
                    f"add patients.{name}.codes to the mapping, mapping each code to one of "
                    f"{', '.join(vocabulary)}",
                    values=pd.Series(values),
                ),
            )
    present = pd.Series(values, dtype=object).notna().to_numpy()
    return FieldValues(values, present, result.missing_code)


def _invalid_problem(
    problems: list[Problem], column: str, rows: ExportRows, parsed: ParsedValues, what: str
) -> None:
    if parsed.invalid.any():
        add_found(
            problems,
            Problem.from_mask(
                "export",
                column,
                rows.frame,
                parsed.invalid,
                f"values that are not {what}",
                "correct them in REDCap, or add the code to missing_codes in the mapping",
            ),
        )


def build_patients(
    rows: ExportRows, dictionary: DataDictionary, mapping: RedcapMapping, readable: np.ndarray
) -> PatientPart:
    """The patients table (without last_contact_day, which needs every other table).

    Parameters
    ----------
    readable : ndarray of bool
        Rows whose patient-level fields may be read (a record id, not an
        unknown event).
    """
    problems: list[Problem] = []
    n_records = len(rows.record_ids)
    code = np.where(readable, rows.record_code, -1)
    dates = parse_dates(
        rows.frame[mapping.enrolment_date_field],
        date_format=mapping.date_format,
        missing_codes=mapping.missing_codes,
    )
    _invalid_problem(problems, mapping.enrolment_date_field, rows, dates, "dates")
    enrol, clash = first_per_record(code, dates.values, dates.answered, n_records)
    _clash_problem(problems, mapping.enrolment_date_field, rows, clash, redact=True)
    last_contact = np.full(n_records, np.nan)
    if mapping.last_contact_date_field is not None:
        last = parse_dates(
            rows.frame[mapping.last_contact_date_field],
            date_format=mapping.date_format,
            missing_codes=mapping.missing_codes,
        )
        _invalid_problem(problems, mapping.last_contact_date_field, rows, last, "dates")
        sel = readable & last.answered & (rows.record_code >= 0)
        series = pd.Series(last.values[sel]).groupby(rows.record_code[sel]).max()
        last_contact[series.index.to_numpy()] = series.to_numpy()
        # Only the row holding a record's latest contact date gives it to the patient.
        latest_row = np.zeros(rows.n, dtype=bool)
        latest_row[sel] = last.values[sel] == last_contact[rows.record_code[sel]]
    attributes: dict[str, np.ndarray] = {}
    contributed = readable & dates.answered
    if mapping.last_contact_date_field is not None:
        contributed |= latest_row
    recoded = [_coded_lines(rows, readable, dates.missing_code, mapping.enrolment_date_field)]
    for name, src in mapping.patients.items():
        found = read_attribute(name, src, rows, dictionary, mapping, problems)
        first, clash = first_per_record(code, found.values, found.present, n_records)
        _clash_problem(
            problems, src.field or src.age_field or DAG_COLUMN, rows, clash, redact=False
        )
        attributes[name] = first
        if src.field is not None or src.age_field is not None:
            contributed |= readable & found.present
            recoded.append(_coded_lines(rows, readable, found.missing_code, src.field or name))
    extras = _extra_fields(rows, mapping, code, n_records, readable, contributed)
    reason = np.full(n_records, None, dtype=object)
    clinic = attributes["clinic_id"]
    no_clinic = pd.Series(clinic, dtype=object).isna().to_numpy()
    clinic_from = (
        "redcap_data_access_group"
        if mapping.patients["clinic_id"].dag
        else (mapping.patients["clinic_id"].field or "clinic_id")
    )
    reason[no_clinic] = f"record has no clinic ({clinic_from} empty)"
    reason[np.isnan(enrol)] = f"record has no enrolment date ({mapping.enrolment_date_field} empty)"
    coded_enrol = _codes_per_record(code, dates.missing_code, n_records)
    has_code = np.isnan(enrol) & (coded_enrol != None)  # noqa: E711
    reason[has_code] = [
        f"record has no enrolment date ({mapping.enrolment_date_field} = {c})"
        for c in coded_enrol[has_code]
    ]
    seen = np.zeros(n_records, dtype=bool)
    seen[rows.record_code[readable & (rows.record_code >= 0)]] = True
    reason[~seen] = "record has rows only on unknown events"
    ok = pd.Series(reason, dtype=object).isna().to_numpy()
    table = pd.DataFrame({"record_code": np.flatnonzero(ok)})
    table["clinic_id"] = clinic[ok]
    table["enrolled_month"] = month_of(enrol[ok])
    for name in PATIENT_ATTRIBUTES:
        if name != "clinic_id" and name in attributes:
            table[name] = attributes[name][ok]
    for name, values in extras.items():
        table[name] = values[ok]
    contributed &= ok[np.maximum(rows.record_code, 0)] & (rows.record_code >= 0)
    return PatientPart(table, ok, reason, enrol, last_contact, contributed, recoded, problems)


def _extra_fields(
    rows: ExportRows,
    mapping: RedcapMapping,
    code: np.ndarray,
    n_records: int,
    readable: np.ndarray,
    gave: np.ndarray,
) -> dict[str, np.ndarray]:
    """Extra fields kept as text (first value per record); ``gave`` marks the rows used."""
    out = {}
    for name in mapping.extra_patient_fields:
        text = text_of(rows.frame[name])
        filled = readable & (text != None)  # noqa: E711
        first, _ = first_per_record(code, text, filled, n_records)
        out[name] = first
        gave |= filled
    return out


def _codes_per_record(code: np.ndarray, missing_code: np.ndarray, n_records: int) -> np.ndarray:
    has = (missing_code != None) & (code >= 0)  # noqa: E711
    first, _ = first_per_record(code, missing_code, has, n_records)
    return first


def _clash_problem(
    problems: list[Problem], column: str, rows: ExportRows, clash: np.ndarray, *, redact: bool
) -> None:
    if clash.any():
        add_found(
            problems,
            Problem.from_mask(
                "export",
                column,
                rows.frame,
                clash,
                "one record has different values in different rows",
                "give the patient-level field one value per record in REDCap",
                redact=redact,
            ),
        )


def _coded_lines(
    rows: ExportRows, readable: np.ndarray, missing_code: np.ndarray, column: str
) -> pd.DataFrame:
    """Report lines for cells that held a missing-data code (row, part, reason)."""
    hit = readable & (missing_code != None)  # noqa: E711
    reasons = pd.Series(missing_code[hit], dtype=object).map(
        lambda c: f"missing-data code {c} read as empty"
    )
    return pd.DataFrame(
        {
            "row": rows.rows[hit],
            "record_code": rows.record_code[hit],
            "part": f"value {column}",
            "reason": reasons.to_numpy(dtype=object),
        }
    )


__all__ = ["FieldValues", "PatientPart", "build_patients", "first_per_record", "nonblank"]
