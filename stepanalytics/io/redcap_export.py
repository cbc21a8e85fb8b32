"""Reading a REDCap raw records export and describing its rows.

A longitudinal export has one row per record and event (and per instance of
a repeating instrument), with REDCap's own columns first:
``record_id`` (or whatever the project's first field is called),
``redcap_event_name`` (unique event name such as ``week_6_arm_1``),
``redcap_repeat_instrument`` and ``redcap_repeat_instance`` (filled on rows
of repeating instruments), ``redcap_data_access_group`` (when the project
has DAGs).  Cells are read as text and kept dictionary-encoded: an export
of a million rows holds a few thousand distinct values per column, and
every parser downstream works on those.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from stepanalytics.errors import CohortError, Problem
from stepanalytics.io.redcap_dictionary import FORM_STATUS, DataDictionary
from stepanalytics.io.values import where_none

EVENT_COLUMN = "redcap_event_name"
REPEAT_INSTRUMENT_COLUMN = "redcap_repeat_instrument"
REPEAT_INSTANCE_COLUMN = "redcap_repeat_instance"
DAG_COLUMN = "redcap_data_access_group"
SYSTEM_COLUMNS = (
    EVENT_COLUMN,
    REPEAT_INSTRUMENT_COLUMN,
    REPEAT_INSTANCE_COLUMN,
    DAG_COLUMN,
    "redcap_survey_identifier",
)


def read_export(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a REDCap CSV export as categorical text columns.

    Only the empty cell is null; ``NA``, ``UNK`` and the like stay text so
    the missing-data rules can see them.  The index is the 0-based data row.

    Raises
    ------
    CohortError
        When the file cannot be read, is empty or repeats a column name.
    """
    file = Path(path)
    try:
        with file.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _export_error(file, f"cannot read the file ({exc})") from exc
    if not header or all(not h.strip() for h in header):
        raise _export_error(file, "the file is empty or has no header row")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise _export_error(file, f"column names repeat: {', '.join(repeated)}")
    types = {name: pa.dictionary(pa.int32(), pa.string()) for name in header}
    try:
        table = pacsv.read_csv(
            file,
            read_options=pacsv.ReadOptions(
                column_names=header, skip_rows=1, encoding="utf8", block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise _export_error(file, f"the file cannot be parsed: {exc}") from exc
    columns = {name: table.column(name).to_pandas() for name in header}
    return pd.DataFrame(columns)


def _export_error(file: Path, message: str) -> CohortError:
    return CohortError(
        [
            Problem(
                "export",
                None,
                f"{file.name}: {message}",
                "export the records again from REDCap as 'CSV / Microsoft Excel (raw data)'",
            )
        ],
        source=str(file),
    )


def nonblank(cells: pd.Series) -> np.ndarray:
    """Cells holding anything other than nothing or spaces."""
    codes, uniques = pd.factorize(cells, use_na_sentinel=True)
    filled = pd.Series(np.asarray(uniques, dtype=object)).astype(str).str.strip() != ""
    out = np.zeros(len(codes), dtype=bool)
    has = codes >= 0
    out[has] = filled.to_numpy()[codes[has]]
    return out


def text_of(cells: pd.Series) -> np.ndarray:
    """Cells as trimmed text, None where blank."""
    codes, uniques = pd.factorize(cells, use_na_sentinel=True)
    text = pd.Series(np.asarray(uniques, dtype=object)).astype(str).str.strip()
    values = where_none((text != "").to_numpy(), text.to_numpy(dtype=object))
    out = np.full(len(codes), None, dtype=object)
    has = codes >= 0
    out[has] = values[codes[has]]
    return out


def ticked(cells: pd.Series) -> np.ndarray:
    """Checkbox cells that are ticked (``1``)."""
    return np.asarray(text_of(cells) == "1", dtype=bool)


@dataclass
class ExportRows:
    """What every export row is: record, event, repeat instance, usability.

    Attributes
    ----------
    frame : DataFrame
        The export as read.
    rows : ndarray of int
        1-based data row numbers.
    record_code : ndarray of int
        Index into ``record_ids`` per row (-1 where the record id is blank).
    record_ids : ndarray of object
        Distinct source record ids, in order of first appearance.
    event : ndarray of object
        Unique event name per row (None in a classic project).
    """

    frame: pd.DataFrame
    rows: np.ndarray
    record_code: np.ndarray
    record_ids: np.ndarray
    event: np.ndarray
    status_cache: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.rows)

    def form_status(self, form: str) -> np.ndarray | None:
        """Form status per row (complete, unverified, incomplete or ""); None without the column."""
        column = f"{form}_complete"
        if column not in self.frame.columns:
            return None
        if form not in self.status_cache:
            text = text_of(self.frame[column])
            mapped = pd.Series(text, dtype=object).map(FORM_STATUS)
            self.status_cache[form] = mapped.where(mapped.notna(), "").to_numpy(dtype=object)
        return self.status_cache[form]


def describe_rows(frame: pd.DataFrame, record_column: str) -> ExportRows:
    """Factorise record ids and read the event of every row."""
    ids = text_of(frame[record_column])
    codes, uniques = pd.factorize(pd.Series(ids, dtype=object), use_na_sentinel=True)
    event = (
        text_of(frame[EVENT_COLUMN])
        if EVENT_COLUMN in frame.columns
        else np.full(len(frame), None, dtype=object)
    )
    return ExportRows(
        frame=frame,
        rows=np.arange(1, len(frame) + 1, dtype=np.int64),
        record_code=np.asarray(codes, dtype=np.int64),
        record_ids=np.asarray(uniques, dtype=object),
        event=event,
    )


def check_export_columns(
    frame: pd.DataFrame, dictionary: DataDictionary, needed: dict[str, list[str]], source: str
) -> list[Problem]:
    """Problems for mapped fields whose export columns are absent.

    ``needed`` maps a mapping key (for the message) to the fields it uses.
    """
    problems: list[Problem] = []
    present = set(frame.columns)
    for key, fields in needed.items():
        for name in fields:
            if not dictionary.has(name):
                continue  # already reported against the dictionary
            missing = [c for c in dictionary.export_columns(name) if c not in present]
            if missing:
                problems.append(
                    Problem(
                        "export",
                        name,
                        f"used by {key} but the export has no column {', '.join(missing)}",
                        f"export all fields of the form '{dictionary.form_of(name)}' "
                        f"(raw data, not labels) from REDCap; file: {source}",
                    )
                )
    return problems


def unused_columns(
    frame: pd.DataFrame, dictionary: DataDictionary, used_fields: set[str], record_column: str
) -> dict[str, list[str]]:
    """Export columns the import leaves out, grouped by why.

    Returns a dict with keys ``identifier`` (flagged ``Identifier? = y``),
    ``unmapped`` (a dictionary field the mapping does not use), ``unknown``
    (not in the dictionary at all).  Form status columns and REDCap's own
    columns are not listed.
    """
    by_column: dict[str, str] = {}
    for name in dictionary.fields.index:
        for column in dictionary.export_columns(str(name)):
            by_column[column] = str(name)
    forms = {f"{form}_complete" for form in dictionary.forms}
    out: dict[str, list[str]] = {"identifier": [], "unmapped": [], "unknown": []}
    for column in frame.columns:
        if column in SYSTEM_COLUMNS or column == record_column or column in forms:
            continue
        field_name = by_column.get(column)
        if field_name is None:
            base = column.split("___", 1)[0]
            if dictionary.has(base) and dictionary.type_of(base) == "checkbox":
                field_name = base  # a checkbox column for a missing-data code
        if field_name is None:
            out["unknown"].append(column)
        elif dictionary.is_identifier(field_name):
            out["identifier"].append(column)
        elif field_name not in used_fields:
            out["unmapped"].append(column)
    return out
