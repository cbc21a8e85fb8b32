"""Read one CSV table with Arrow, keeping every cell as written.

The fast path lets Arrow parse the contract's numeric columns; when any cell
does not parse, the table is read again as text so that validation can point
at the exact rows.  Only the empty cell counts as missing: ``NA``, ``null``
and the like stay text and are reported, not guessed.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from stepanalytics.contract import TABLES
from stepanalytics.errors import CohortError, Problem
from stepanalytics.io.arrow_frames import arrow_to_frame

_NUMERIC_KINDS = {"int": pa.float64(), "number": pa.float64()}


def read_csv_table(file: Path, table: str) -> pd.DataFrame:
    """Read a contract table from CSV; the index is the 0-based data row."""
    header = _read_header(file, table)
    kinds = {c.name: c.kind for c in TABLES[table]}
    numeric = {
        name: _NUMERIC_KINDS[kinds[name]] for name in header if kinds.get(name) in _NUMERIC_KINDS
    }
    try:
        return _arrow_csv(file, header, numeric)
    except pa.ArrowInvalid:
        pass
    try:
        return _arrow_csv(file, header, {})
    except pa.ArrowInvalid as exc:
        raise _file_error(table, file, f"the file cannot be parsed: {exc}") from exc


def _read_header(file: Path, table: str) -> list[str]:
    with file.open(newline="", encoding="utf-8-sig") as fh:
        try:
            header = next(csv.reader(fh), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise _file_error(table, file, f"the header cannot be read ({exc})") from exc
    if not header or all(not h.strip() for h in header):
        raise _file_error(table, file, "the file is empty or has no header row")
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise _file_error(table, file, f"duplicated column names: {', '.join(duplicated)}")
    return header


def _file_error(table: str, file: Path, message: str) -> CohortError:
    return CohortError(
        [
            Problem(
                table,
                None,
                f"{file.name}: {message}",
                "save the table as UTF-8 CSV with one header row and comma separators",
            )
        ],
        source=str(file),
    )


def _arrow_csv(file: Path, header: list[str], numeric: Mapping[str, pa.DataType]) -> pd.DataFrame:
    types = {name: numeric.get(name, pa.dictionary(pa.int32(), pa.string())) for name in header}
    arrow = pacsv.read_csv(
        file,
        read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, encoding="utf8"),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    for name in numeric:
        column = arrow.column(name)
        if pa.types.is_floating(column.type) and not pc.all(pc.is_finite(column)).as_py():
            # Arrow reads "nan" and "inf" as floats; the reading rules refuse them,
            # so such a file takes the text path, where they are reported.
            raise pa.ArrowInvalid(f"non-finite number in {name}")
    return arrow_to_frame(arrow.select(header))
