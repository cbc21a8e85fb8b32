"""Put imported pieces together as contract tables (shared by the REDCap and FHIR importers).

Importers work with integer record codes (one per source record or FHIR
subject); this module swaps them for patient ids, derives
``last_contact_day``, orders columns as the contract does and gives every
column its contract type.

``last_contact_day`` is the latest day anything was recorded for the
patient (an assessment, item, event, stay start or end) or the mapped last
contact date, whichever is later; a patient with nothing after enrolment
has 0.  The contract asks for "the last day the patient was seen or the
extract day, whichever is earlier": an export knows the first, not the
second, so the first is what is written.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from stepanalytics.contract import DEFAULT_PROTOCOL, TABLES
from stepanalytics.errors import Problem
from stepanalytics.privacy import scan_table
from stepanalytics.protocol import default_protocols
from stepanalytics.validate import check_phases

_OUTPUT_ORDER = ("patients", "phases", "assessments", "items", "events")


def scan_extra_columns(
    patients: pd.DataFrame, extra: tuple[str, ...] | list[str]
) -> dict[str, str]:
    """Extra patient columns the identifier guard refuses, with the reason.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"smoker": ["yes"], "contact": ["ann@example.org"]})
    >>> scan_extra_columns(frame, ["smoker", "contact"])
    {'contact': 'values look like e-mail addresses'}
    """
    columns = [c for c in extra if c in patients.columns]
    if not columns:
        return {}
    found = scan_table("patients", patients[columns].astype(object))
    return {str(p.column): p.message for p in found if p.column is not None}


def last_contact_days(
    n_records: int, parts: dict[str, pd.DataFrame], mapped_day: np.ndarray | None = None
) -> np.ndarray:
    """Latest recorded day per record code (0 when there is none).

    Examples
    --------
    >>> import pandas as pd, numpy as np
    >>> parts = {"items": pd.DataFrame({"record_code": [0, 0], "day": [3, 9]}),
    ...          "phases": pd.DataFrame({"record_code": [1], "start_day": [0],
    ...                                  "end_day": pd.array([40], dtype="Int64")})}
    >>> last_contact_days(3, parts, np.array([np.nan, 12.0, np.nan])).tolist()
    [9, 40, 0]
    """
    latest = np.zeros(n_records, dtype=np.int64)
    for name, frame in parts.items():
        if frame is None or len(frame) == 0:
            continue
        columns = ["start_day", "end_day"] if name == "phases" else ["day"]
        for column in columns:
            days = pd.to_numeric(frame[column], errors="coerce").to_numpy(
                dtype=float, na_value=np.nan
            )
            ok = ~np.isnan(days)
            np.maximum.at(
                latest, frame["record_code"].to_numpy(dtype=np.int64)[ok], days[ok].astype(np.int64)
            )
    if mapped_day is not None:
        ok = ~np.isnan(mapped_day)
        latest[ok] = np.maximum(latest[ok], mapped_day[ok].astype(np.int64))
    return latest


def assemble_tables(
    patients: pd.DataFrame,
    parts: dict[str, pd.DataFrame],
    patient_ids: np.ndarray,
    last_contact_day: np.ndarray,
    *,
    refused: dict[str, str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Contract tables from record-coded pieces.

    Parameters
    ----------
    patients : DataFrame
        ``record_code`` and patient columns (clinic_id, enrolled_month, ...).
    parts : dict
        ``phases``, ``assessments``, ``items``, ``events`` with ``record_code``
        (extra working columns such as ``position`` are dropped).
    patient_ids : ndarray
        Patient id per record code.
    last_contact_day : ndarray
        Per record code.
    refused : dict, optional
        Extra patient columns to leave out (the privacy guard's findings).
    """
    out: dict[str, pd.DataFrame] = {}
    codes = patients["record_code"].to_numpy(dtype=np.int64)
    table = patients.drop(columns=["record_code", *(refused or {})]).copy()
    table.insert(0, "patient_id", patient_ids[codes])
    table.insert(3, "last_contact_day", last_contact_day[codes].astype(np.int64))
    if "compensation_claim" in table.columns:
        table["compensation_claim"] = table["compensation_claim"].astype("boolean")
    if "pain_duration_months" in table.columns:
        table["pain_duration_months"] = pd.to_numeric(table["pain_duration_months"]).astype(float)
    out["patients"] = table.reset_index(drop=True)
    kept = np.zeros(len(patient_ids), dtype=bool)
    kept[codes] = True
    for name in _OUTPUT_ORDER[1:]:
        columns = [c.name for c in TABLES[name] if c.required or c.name in ("end_day", "severity")]
        frame = parts.get(name)
        if frame is None or len(frame) == 0:
            out[name] = _empty(name, columns)
            continue
        # Plain arrays, selected and ordered once: no intermediate frames to copy.
        arrays = {c: frame[c].to_numpy() for c in frame.columns}
        take = np.flatnonzero(kept[arrays["record_code"].astype(np.int64)])
        take = take[_row_order({c: v[take] for c, v in arrays.items()})]
        data = {"patient_id": patient_ids[arrays["record_code"].astype(np.int64)[take]]}
        for column in columns[1:]:
            data[column] = _typed_column(name, column, arrays[column][take])
        out[name] = pd.DataFrame(data)
    return out


def _row_order(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Patient, then day, instrument, item / event: one stable lexsort on integer keys."""
    keys = []
    for column in ("record_code", "day", "start_day", "instrument", "item", "event"):
        if column in arrays:
            values = arrays[column]
            if values.dtype == object:
                values = pd.factorize(values, sort=True)[0]
            keys.append(np.asarray(values, dtype=np.int64))
    return np.lexsort(keys[::-1])


def _typed_column(
    table: str, column: str, values: np.ndarray
) -> pd.api.extensions.ExtensionArray | np.ndarray:
    kind = {c.name: c.kind for c in TABLES[table]}.get(column)
    if column == "end_day":
        return pd.array(pd.to_numeric(pd.Series(values)), dtype="Float64").astype("Int64")
    if kind == "int":
        return np.asarray(values, dtype=np.int64)
    if kind == "number":
        return np.asarray(values, dtype=float)
    return np.asarray(values, dtype=object)


def _empty(name: str, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: _typed_column(name, c, np.empty(0, dtype=object)) for c in columns})


def stay_problems(
    stays: pd.DataFrame,
    patients: pd.DataFrame,
    patient_ids: np.ndarray,
    *,
    table: str,
    columns: dict[str, str] | None = None,
) -> list[Problem]:
    """The contract's rules for phase stays, reported against the input rows.

    The loader would find the same problems, but would point at rows of a
    phases table the user never saw; here each problem names the input
    (``table``), the input's own column names (``columns`` maps contract
    names such as ``start_day`` to them) and the input rows.

    Parameters
    ----------
    stays : DataFrame
        ``record_code``, ``phase``, ``start_day``, ``end_day``, ``exit_reason``
        and ``row0``, the 0-based input row of each stay.
    patients : DataFrame
        ``record_code`` and, optionally, ``protocol`` of the kept patients.
    patient_ids : ndarray
        Patient id per record code.
    """
    if stays.empty:
        return []
    codes = stays["record_code"].to_numpy(dtype=np.int64)
    frame = pd.DataFrame(
        {
            "patient_id": patient_ids[codes],
            "phase": stays["phase"].to_numpy(dtype=np.int64),
            "start_day": stays["start_day"].to_numpy(dtype=float),
            "end_day": _typed_column("phases", "end_day", stays["end_day"].to_numpy()),
            "exit_reason": stays["exit_reason"].to_numpy(dtype=object),
        },
        index=stays["row0"].to_numpy(dtype=np.int64),
    )
    lookup = pd.DataFrame(
        {
            "patient_id": patient_ids[patients["record_code"].to_numpy(dtype=np.int64)],
            "protocol": patients["protocol"].fillna(DEFAULT_PROTOCOL).to_numpy(dtype=object)
            if "protocol" in patients.columns
            else DEFAULT_PROTOCOL,
        }
    ).set_index("patient_id", drop=False)
    found = check_phases(frame, lookup, default_protocols())
    names = columns or {}
    return [
        replace(p, table=table, column=names.get(p.column or "", p.column))
        for p in found
        if p.table == "phases"  # patients without a stay are reported by the importer
    ]


def without_stays(patients: pd.DataFrame, stays: pd.DataFrame) -> np.ndarray:
    """Record codes of kept patients that have no phase stay."""
    codes = patients["record_code"].to_numpy(dtype=np.int64)
    return codes[~np.isin(codes, stays["record_code"].to_numpy(dtype=np.int64))]
