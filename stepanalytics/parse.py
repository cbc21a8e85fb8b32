"""Turn the columns of a table as read into the contract's types.

Every change a value undergoes follows a written rule (see
``docs/data-contract.md``, section "How values are read"):

- only an empty cell is missing; ``NA``, ``null``, ``-`` are refused, not guessed;
- whole-number columns accept ``3`` and ``3.0``, nothing with a fraction;
- yes/no columns accept ``true/false``, ``yes/no``, ``y/n``, ``1/0`` in any case;
- integer ids stored as numbers (Parquet, DuckDB) become their decimal text;
- nothing else is changed: no trimming of spaces, no case folding.

A value that breaks a rule is reported, never coerced.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stepanalytics.contract import BOOL_TEXT, ColumnSpec
from stepanalytics.errors import Problem

_MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


def parse_table(
    table: str, frame: pd.DataFrame, specs: tuple[ColumnSpec, ...]
) -> tuple[pd.DataFrame, list[Problem]]:
    """Check presence and type of the contract columns of one table.

    Returns the table with contract columns in their contract types (extra
    columns untouched, in their original order after the contract ones) and
    the problems found.
    """
    problems: list[Problem] = []
    missing = [s.name for s in specs if s.required and s.name not in frame.columns]
    for name in missing:
        problems.append(
            Problem(
                table,
                name,
                "required column is missing",
                f"add the column '{name}' to {table} (see docs/data-contract.md)",
            )
        )
    out = {}
    for spec in specs:
        if spec.name not in frame.columns:
            continue
        values, found = parse_column(table, frame, spec)
        out[spec.name] = values
        problems.extend(found)
    extras = [c for c in frame.columns if c not in out]
    # Column by column, without consolidating into 2-D blocks: that copy of
    # every text column took seconds on tables of millions of item rows.
    parsed = pd.DataFrame(
        {name: _own_copy(values) for name, values in out.items()}, index=frame.index, copy=False
    )
    for column in extras:
        parsed[column] = frame[column]
    return parsed, problems


def parse_column(
    table: str, frame: pd.DataFrame, spec: ColumnSpec
) -> tuple[pd.Series, list[Problem]]:
    """Parse one contract column; return the typed values and problems."""
    raw = frame[spec.name]
    missing = _is_missing(raw)
    problems: list[Problem | None] = []
    if not spec.nullable:
        problems.append(
            Problem.from_mask(
                table,
                spec.name,
                frame,
                missing,
                "required value is empty",
                f"fill in {spec.name} on these rows of {table}",
            )
        )
    parser = _PARSERS[spec.kind]
    values, bad, expected = parser(raw, missing, spec)
    problems.append(
        Problem.from_mask(
            table,
            spec.name,
            frame,
            bad,
            f"values are not {expected}",
            _fix_for(spec, table),
        )
    )
    if spec.minimum is not None:
        numeric = pd.to_numeric(values, errors="coerce")
        below = (numeric < spec.minimum).fillna(False).to_numpy(dtype=bool) & ~bad
        problems.append(
            Problem.from_mask(
                table,
                spec.name,
                frame,
                below,
                f"values are below the minimum {spec.minimum:g}",
                f"{spec.name} must be at least {spec.minimum:g}",
            )
        )
    return values, [p for p in problems if p is not None]


def _own_copy(values: pd.Series) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The values of a parsed column as an array of their own (never shared with the input)."""
    if isinstance(values.dtype, np.dtype):
        return values.to_numpy(copy=True)
    return values.array.copy()


def _is_missing(raw: pd.Series) -> np.ndarray:
    missing = raw.isna().to_numpy()
    if raw.dtype == object:
        missing = missing | (raw.to_numpy() == "")
    return missing


def _fix_for(spec: ColumnSpec, table: str) -> str:
    if spec.kind == "category":
        return f"use one of: {', '.join(spec.allowed)} (lower case, no spaces)"
    if spec.kind == "int":
        return f"write {spec.name} as a whole number of days/units, e.g. 42"
    if spec.kind == "number":
        return f"write {spec.name} as a plain number with a dot for decimals, e.g. 12.5"
    if spec.kind == "bool":
        return "write true/false (yes/no, 1/0 are also read)"
    if spec.kind == "month":
        return "write the month as YYYY-MM, e.g. 2025-03 (no day: only the month is allowed)"
    return f"remove spaces before or after the text in {table}.{spec.name}"


ParseOutput = tuple[pd.Series, np.ndarray, str]


def _parse_string(raw: pd.Series, missing: np.ndarray, spec: ColumnSpec) -> ParseOutput:
    bad = np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_integer_dtype(raw.dtype):
        values = raw.astype("Int64").astype(str).astype(object)
        values[missing] = None
        return values, bad, "text"
    if raw.dtype != object and not pd.api.types.is_string_dtype(raw.dtype):
        bad = ~missing
        return raw.astype(object), bad, "text or whole-number ids"
    bad = _padded(raw, missing)
    if not missing.any():
        return raw, bad, "text without spaces at either end"
    values = raw.astype(object).where(~missing, None)
    return values, bad, "text without spaces at either end"


def _padded(raw: pd.Series, missing: np.ndarray) -> np.ndarray:
    """Text with spaces at either end: refused, not trimmed (' C01' is not 'C01').

    Judged on the distinct values, so large tables stay cheap.
    """
    distinct = pd.unique(raw.to_numpy())
    text = pd.Series(distinct).astype(str)
    padded = set(distinct[(text != text.str.strip()).to_numpy() & pd.notna(distinct)])
    if not padded:
        return np.zeros(len(raw), dtype=bool)
    return raw.isin(padded).to_numpy() & ~missing


def _to_float(raw: pd.Series, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if pd.api.types.is_bool_dtype(raw.dtype):
        return np.full(len(raw), np.nan), ~missing
    if pd.api.types.is_numeric_dtype(raw.dtype):
        numbers = raw.astype("float64").to_numpy()
    else:
        numbers = pd.to_numeric(raw.where(~missing, None), errors="coerce").to_numpy(
            dtype="float64"
        )
    bad = ~missing & ~np.isfinite(numbers)
    return numbers, bad


# Whole numbers beyond 2**53 cannot be told apart as floats; no day or count
# in this field comes near it.
_LARGEST_WHOLE = 2.0**53


def _parse_int(raw: pd.Series, missing: np.ndarray, spec: ColumnSpec) -> ParseOutput:
    numbers, bad = _to_float(raw, missing)
    with np.errstate(invalid="ignore"):
        fractional = ~missing & ~bad & (np.floor(numbers) != numbers)
        huge = ~missing & ~bad & (np.abs(numbers) > _LARGEST_WHOLE)
    bad = bad | fractional | huge
    absent = missing | bad
    # Whole numbers up to 2**53 convert exactly; the mask is built directly
    # rather than by astype("Int64"), which re-checks every float.
    whole = np.where(absent, 0.0, numbers).astype(np.int64)
    if not spec.nullable and not absent.any():
        return pd.Series(whole, index=raw.index), bad, "whole numbers of a sensible size"
    series = pd.Series(pd.arrays.IntegerArray(whole, absent.copy()), index=raw.index)
    return series, bad, "whole numbers of a sensible size"


def _parse_number(raw: pd.Series, missing: np.ndarray, spec: ColumnSpec) -> ParseOutput:
    numbers, bad = _to_float(raw, missing)
    return pd.Series(np.where(bad, np.nan, numbers), index=raw.index), bad, "numbers"


def _parse_bool(raw: pd.Series, missing: np.ndarray, spec: ColumnSpec) -> ParseOutput:
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("boolean"), np.zeros(len(raw), dtype=bool), "true/false"
    text = raw.astype(str).str.lower()
    mapped = text.map(BOOL_TEXT)
    bad = ~missing & mapped.isna().to_numpy()
    values = mapped.where(~missing & ~bad, None).astype("boolean")
    return values, bad, "true/false"


def _parse_month(raw: pd.Series, missing: np.ndarray, spec: ColumnSpec) -> ParseOutput:
    text = raw.astype(str)
    bad = ~missing & ~text.str.match(_MONTH).to_numpy(dtype=bool)
    return raw.astype(object).where(~missing, None), bad, "months written YYYY-MM"


def _parse_category(raw: pd.Series, missing: np.ndarray, spec: ColumnSpec) -> ParseOutput:
    values = raw.astype(object).where(~missing, None)
    bad = ~missing & ~raw.isin(spec.allowed).to_numpy()
    return values, bad, f"one of the allowed values ({', '.join(spec.allowed)})"


_PARSERS = {
    "string": _parse_string,
    "int": _parse_int,
    "number": _parse_number,
    "bool": _parse_bool,
    "month": _parse_month,
    "category": _parse_category,
}
