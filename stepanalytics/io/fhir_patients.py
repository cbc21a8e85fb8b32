"""Patients and phase stays for a FHIR import: from CSV files or from resources.

Patients (who, which clinic, enrolled when) come from a patients CSV or,
without one, from EpisodeOfCare resources (the programme episode:
``patient``, ``period.start`` = enrolment, ``period.end`` = last contact,
``managingOrganization`` = clinic).  Stays are read in
:mod:`stepanalytics.io.fhir_stays`.

The patients CSV has the columns ``subject`` (``Patient/123`` or ``123``),
``clinic_id``, ``enrolment_date`` (YYYY-MM-DD), optionally
``last_contact_date`` and any optional patients column of the contract
(``age_band``, ``sex``, ...).  Full dates are read and turned into days;
they are never written.

Stated rules: an entry without a subject, clinic or enrolment date is
dropped (reported); an invalid date stops the import; a second
EpisodeOfCare of one patient is dropped (the earliest start is the
enrolment); an entered-in-error or cancelled episode is dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stepanalytics.contract import TABLES
from stepanalytics.errors import CohortError, Problem
from stepanalytics.io.fhir_mapping import FhirMapping
from stepanalytics.io.fhir_read import Located, epoch_day, subject_key
from stepanalytics.io.values import add_found, month_of

PATIENT_COLUMNS = ("subject", "clinic_id", "enrolment_date")
_OPTIONAL = tuple(c.name for c in TABLES["patients"] if not c.required)
_SKIP_STATUS = ("entered-in-error", "cancelled")


@dataclass
class Verdicts:
    """Report lines gathered as Python records (FHIR inputs are small per resource)."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    n_inputs: int = 0  # resources and CSV rows read, each owed one verdict

    def add(
        self, source: str, row: int | None, key: str | None, part: str, outcome: str, reason: str
    ) -> None:
        self.lines.append(
            {
                "source": source,
                "row": row,
                "key": key,
                "part": part,
                "outcome": outcome,
                "reason": reason,
            }
        )


@dataclass
class PatientList:
    """Patients by subject key; the record code of a patient is its position."""

    keys: list[str]
    table: pd.DataFrame  # record_code, clinic_id, enrolled_month, optional columns
    enrol_epoch: np.ndarray
    last_epoch: np.ndarray
    dropped_columns: list[str] = field(default_factory=list)

    def code_of(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.keys)}


def read_csv_table(
    path: str | os.PathLike[str], required: tuple[str, ...], table: str
) -> pd.DataFrame:
    file = Path(path)
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CohortError(
            [
                Problem(
                    table,
                    None,
                    f"{file.name}: cannot read ({exc})",
                    "give a UTF-8 CSV with a header row",
                )
            ]
        ) from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CohortError(
            [
                Problem(
                    table,
                    None,
                    f"{file.name}: columns missing: {', '.join(missing)}",
                    f"the file needs the columns {', '.join(required)}",
                )
            ]
        )
    return frame.apply(lambda col: col.str.strip())


def csv_dates(frame: pd.DataFrame, column: str, table: str, problems: list[Problem]) -> np.ndarray:
    text = frame[column] if column in frame.columns else pd.Series("", index=frame.index)
    days = np.array(
        [np.nan if not t else (epoch_day(t) if epoch_day(t) is not None else -1e18) for t in text],
        dtype=float,
    )
    bad = days == -1e18
    if bad.any():
        add_found(
            problems,
            Problem.from_mask(
                table,
                column,
                frame,
                bad,
                "values that are not dates (YYYY-MM-DD)",
                "write full dates as YYYY-MM-DD",
                redact=True,
            ),
        )
        days[bad] = np.nan
    return days


def patients_from_csv(
    path: str | os.PathLike[str], mapping: FhirMapping, verdicts: Verdicts
) -> PatientList:
    """Patients from a CSV file (see the module docstring for its columns)."""
    name = Path(path).name
    frame = read_csv_table(path, PATIENT_COLUMNS, "patients")
    verdicts.n_inputs += len(frame)
    problems: list[Problem] = []
    keys = [subject_key(s) if s else None for s in frame["subject"]]
    enrol = csv_dates(frame, "enrolment_date", "patients", problems)
    last = csv_dates(frame, "last_contact_date", "patients", problems)
    key_series = pd.Series(keys, dtype=object)
    repeated = key_series.notna().to_numpy() & key_series.duplicated(keep=False).to_numpy()
    if repeated.any():
        add_found(
            problems,
            Problem.from_mask(
                "patients",
                "subject",
                frame,
                repeated,
                "a subject appears in more than one row",
                "give each patient one row",
                redact=True,
            ),
        )
    if problems:
        raise CohortError(problems, source=name)
    keep_columns = [
        c for c in frame.columns if c in _OPTIONAL or c in mapping.extra_patient_columns
    ]
    dropped = [
        c
        for c in frame.columns
        if c not in keep_columns and c not in (*PATIENT_COLUMNS, "last_contact_date")
    ]
    kept_rows: list[int] = []
    clinics = frame["clinic_id"].to_numpy(dtype=object)
    for i, key in enumerate(keys):
        row = i + 1
        why = None
        if key is None:
            why = "no subject"
        elif not clinics[i]:
            why = "no clinic_id"
        elif np.isnan(enrol[i]):
            why = "no enrolment_date"
        if why is not None:
            verdicts.add(name, row, key, "row", "dropped", why)
            continue
        verdicts.add(name, row, key, "row", "imported", "gave: patient")
        kept_rows.append(i)
    picked = frame.iloc[kept_rows]
    table = pd.DataFrame(
        {
            "record_code": np.arange(len(kept_rows)),
            "clinic_id": picked["clinic_id"].to_numpy(dtype=object),
            "enrolled_month": month_of(enrol[kept_rows]),
        }
    )
    for column in keep_columns:
        table[column] = picked[column].replace("", None).to_numpy(dtype=object)
    return PatientList(
        [str(keys[i]) for i in kept_rows], table, enrol[kept_rows], last[kept_rows], dropped
    )


def patients_from_episodes(
    episodes: list[Located], mapping: FhirMapping, verdicts: Verdicts
) -> PatientList:
    """Patients from EpisodeOfCare resources (the earliest episode of each patient)."""
    candidates = []
    for loc in episodes:
        res = loc.resource
        key = subject_key(res.get("patient"))
        period = res.get("period") or {}
        start = epoch_day(period.get("start"))
        org = subject_key(res.get("managingOrganization"))
        why = None
        if res.get("status") in _SKIP_STATUS:
            why = f"EpisodeOfCare status {res.get('status')}"
        elif key is None:
            why = "EpisodeOfCare without a patient reference"
        elif start is None:
            why = "EpisodeOfCare without a full period.start date"
        elif org is None:
            why = "EpisodeOfCare without managingOrganization (the clinic)"
        if why is not None:
            verdicts.add(loc.source, loc.row, key, "row", "dropped", why)
            continue
        clinic = mapping.clinics.get(str(org), str(org).split("/", 1)[-1])
        candidates.append((key, start, epoch_day(period.get("end")), clinic, loc))
    candidates.sort(key=lambda c: (c[0], c[1]))
    keys: list[str] = []
    rows: list[tuple[float, float, str]] = []
    for key, start, end, clinic, loc in candidates:
        if keys and keys[-1] == key:
            verdicts.add(
                loc.source,
                loc.row,
                key,
                "row",
                "dropped",
                "a further EpisodeOfCare of this patient (the earliest is the enrolment)",
            )
            continue
        keys.append(str(key))
        rows.append((float(start or 0), np.nan if end is None else float(end), clinic))
        verdicts.add(loc.source, loc.row, key, "row", "imported", "gave: patient")
    enrol = np.array([r[0] for r in rows], dtype=float)
    table = pd.DataFrame(
        {
            "record_code": np.arange(len(rows)),
            "clinic_id": [r[2] for r in rows],
            "enrolled_month": month_of(enrol),
        }
    )
    return PatientList(keys, table, enrol, np.array([r[1] for r in rows], dtype=float))
