"""Turn exported text cells into numbers, days and bands, all at once.

Exports repeat the same few values millions of times (``"0"``, ``"UNK"``,
``"2024-03-05"``), so every parser here works on the *distinct* values of a
column and spreads the answer back with an integer take.  That keeps
importing a million rows a matter of seconds and leaves no per-row Python
in the hot path.

The rules are deliberately strict and stated once:

* an empty cell (or one holding only spaces) is *empty*: not answered;
* a cell equal to one of the project's missing-data codes (``UNK``, ``NA``,
  ``NASK``, ...; exact, case-sensitive match after trimming spaces) is a
  *missing code*: not answered, and counted in the import report;
* anything else that does not parse is *invalid*: the importer stops and
  lists the rows, because guessing would alter data silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stepanalytics.errors import Problem

#: Missing-data codes REDCap offers by default (HL7 v3 NullFlavor), code -> meaning.
DEFAULT_MISSING_CODES: dict[str, str] = {
    "NI": "no information",
    "INV": "invalid",
    "UNK": "unknown",
    "NASK": "not asked",
    "ASKU": "asked but unknown",
    "NAV": "temporarily unavailable",
    "MSK": "masked",
    "NA": "not applicable",
    "NAVU": "not available",
    "NP": "not present",
    "OTH": "other",
}

#: Date layouts a REDCap export can be written in (chosen in the export dialog).
DATE_FORMATS: dict[str, str] = {"ymd": "%Y-%m-%d", "dmy": "%d/%m/%Y", "mdy": "%m/%d/%Y"}

_AGE_BAND_EDGES = np.array([18, 30, 40, 50, 60, 70, 80, 90])
_AGE_BAND_LABELS = np.array(
    ["18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90+"], dtype=object
)


@dataclass(frozen=True)
class ParsedValues:
    """Cell-by-cell outcome of parsing one column.

    Attributes
    ----------
    values : ndarray
        Parsed values (float64 numbers, or int64-valued float days); NaN where
        the cell was empty, a missing code or invalid.
    missing_code : ndarray of object
        The missing-data code found in the cell, or None.
    invalid : ndarray of bool
        Cells that hold something that is neither empty, a code nor parseable.
    """

    values: np.ndarray
    missing_code: np.ndarray
    invalid: np.ndarray

    @property
    def answered(self) -> np.ndarray:
        """Cells that gave a value."""
        return ~np.isnan(self.values)


def _distinct(cells: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Integer codes (-1 = null) and the distinct values, trimmed, as text."""
    codes, uniques = pd.factorize(cells, use_na_sentinel=True)
    text = pd.Series(np.asarray(uniques, dtype=object)).astype(str).str.strip()
    return np.asarray(codes), text


def _spread(codes: np.ndarray, per_unique: np.ndarray, fill: object) -> np.ndarray:
    """Take ``per_unique[codes]``, with ``fill`` where the code is -1 (null cell)."""
    out = np.empty(codes.shape, dtype=per_unique.dtype)
    has = codes >= 0
    out[has] = per_unique[codes[has]]
    out[~has] = fill
    return out


def parse_numbers(
    cells: pd.Series,
    *,
    missing_codes: Mapping[str, str] = DEFAULT_MISSING_CODES,
    decimal_comma: bool = False,
) -> ParsedValues:
    """Parse exported text cells as numbers, separating missing codes.

    Parameters
    ----------
    cells : Series
        Text (object, string or categorical); None / NaN cells count as empty.
    missing_codes : mapping of str to str, keyword-only
        The project's missing-data codes (code -> meaning).
    decimal_comma : bool, keyword-only
        Read ``3,5`` as 3.5 (REDCap ``number_comma_decimal`` fields).

    Returns
    -------
    ParsedValues

    Examples
    --------
    >>> import pandas as pd
    >>> p = parse_numbers(pd.Series(["3", " 2.5", "UNK", "", "abc"]))
    >>> p.values.tolist()[:2], p.missing_code.tolist()[2], p.invalid.tolist()
    ([3.0, 2.5], 'UNK', [False, False, False, False, True])
    """
    codes, text = _distinct(cells)
    is_code = text.isin(list(missing_codes)).to_numpy()
    is_empty = (text == "").to_numpy()
    numeric_text = text.str.replace(",", ".", regex=False) if decimal_comma else text
    # Only plain decimal notation counts: "inf", "nan" or "1e3" are not what a clinician typed.
    plain = numeric_text.str.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)").to_numpy(dtype=bool)
    numbers = pd.to_numeric(numeric_text.where(plain), errors="coerce").to_numpy(dtype=float)
    numbers[is_code | is_empty] = np.nan
    bad = ~(plain | is_code | is_empty)
    code_values = where_none(is_code, text.to_numpy(dtype=object))
    return ParsedValues(
        values=_spread(codes, numbers, np.nan),
        missing_code=_spread(codes, code_values.astype(object), None),
        invalid=_spread(codes, bad, False),
    )


def parse_dates(
    cells: pd.Series,
    *,
    date_format: str = "ymd",
    missing_codes: Mapping[str, str] = DEFAULT_MISSING_CODES,
) -> ParsedValues:
    """Parse exported dates (or date-times) as whole days since 1970-01-01.

    A time of day after the date (``2024-03-05 14:30``) is ignored: the
    contract's clock is whole days.

    Parameters
    ----------
    cells : Series
        Text cells.
    date_format : {"ymd", "dmy", "mdy"}, keyword-only
        Layout of the date part; REDCap raw exports use ``ymd`` unless another
        layout was chosen in the export dialog.
    missing_codes : mapping, keyword-only
        Missing-data codes (code -> meaning).

    Returns
    -------
    ParsedValues
        ``values`` holds days since the Unix epoch as float (NaN if none).

    Examples
    --------
    >>> import pandas as pd
    >>> parse_dates(pd.Series(["1970-01-02", "1970-01-31 08:00", "UNK"])).values.tolist()
    [1.0, 30.0, nan]
    """
    if date_format not in DATE_FORMATS:
        raise ValueError(f"date_format must be one of {sorted(DATE_FORMATS)}, not {date_format!r}")
    codes, text = _distinct(cells)
    is_code = text.isin(list(missing_codes)).to_numpy()
    is_empty = (text == "").to_numpy()
    date_part = text.str.split(r"[ T]", n=1, regex=True).str[0]
    parsed = pd.to_datetime(date_part, format=DATE_FORMATS[date_format], errors="coerce")
    ok = parsed.notna().to_numpy()
    days = np.full(len(text), np.nan)
    days[ok] = parsed[ok].to_numpy().astype("datetime64[D]").astype(np.int64)
    days[is_code | is_empty] = np.nan
    bad = ~(ok | is_code | is_empty)
    code_values = where_none(is_code, text.to_numpy(dtype=object))
    return ParsedValues(
        values=_spread(codes, days, np.nan),
        missing_code=_spread(codes, code_values.astype(object), None),
        invalid=_spread(codes, bad, False),
    )


def month_of(epoch_days: np.ndarray) -> np.ndarray:
    """``YYYY-MM`` of each day since 1970-01-01 (None where NaN).

    Examples
    --------
    >>> import numpy as np
    >>> month_of(np.array([0.0, 59.0, np.nan])).tolist()
    ['1970-01', '1970-03', None]
    """
    days = np.asarray(epoch_days, dtype=float)
    out = np.full(days.shape, None, dtype=object)
    ok = ~np.isnan(days)
    months = days[ok].astype(np.int64).astype("datetime64[D]").astype("datetime64[M]")
    out[ok] = np.datetime_as_string(months, unit="M")
    return out


def age_band(ages: np.ndarray) -> np.ndarray:
    """The contract's age band of each age in years (None where NaN).

    Ages under 18 have no band and give None; the caller reports them.

    Examples
    --------
    >>> import numpy as np
    >>> age_band(np.array([18, 29.9, 45, 89, 90, 104, 17, np.nan])).tolist()
    ['18-29', '18-29', '40-49', '80-89', '90+', '90+', None, None]
    """
    values = np.asarray(ages, dtype=float)
    out = np.full(values.shape, None, dtype=object)
    ok = ~np.isnan(values) & (values >= _AGE_BAND_EDGES[0])
    position = np.searchsorted(_AGE_BAND_EDGES, values[ok], side="right") - 1
    out[ok] = _AGE_BAND_LABELS[position]
    return out


@dataclass(frozen=True)
class RecodedValues:
    """Cell-by-cell outcome of mapping coded cells to their meaning.

    Attributes
    ----------
    values : ndarray of object
        The meaning, or None for empty, missing-coded and unknown cells.
    empty : ndarray of bool
        Cells that were empty.
    missing_code : ndarray of object
        The missing-data code found in the cell, or None.
    unknown : ndarray of bool
        Cells holding a code that is neither mapped nor a missing code.
    """

    values: np.ndarray
    empty: np.ndarray
    missing_code: np.ndarray
    unknown: np.ndarray


def recode(
    cells: pd.Series,
    codes: Mapping[str, object],
    *,
    missing_codes: Mapping[str, str] = DEFAULT_MISSING_CODES,
) -> RecodedValues:
    """Map coded text cells to their meaning through ``codes``.

    A mapped code wins over a missing-data code of the same spelling, so a
    project whose choice list really uses ``NA`` as an answer keeps it.

    Examples
    --------
    >>> import pandas as pd
    >>> r = recode(pd.Series(["1", "2", "", "7", "UNK"]), {"1": "female", "2": "male"})
    >>> r.values.tolist(), r.unknown.tolist(), r.missing_code.tolist()[4]
    (['female', 'male', None, None, None], [False, False, False, True, False], 'UNK')
    """
    factor_codes, text = _distinct(cells)
    lookup = {str(k): v for k, v in codes.items()}
    meaning = text.map(lookup)
    known = meaning.notna().to_numpy()
    is_empty = (text == "").to_numpy()
    is_code = text.isin(list(missing_codes)).to_numpy() & ~known
    meaning_values = where_none(known, meaning.to_numpy(dtype=object))
    code_values = where_none(is_code, text.to_numpy(dtype=object))
    return RecodedValues(
        values=_spread(factor_codes, meaning_values, None),
        empty=_spread(factor_codes, is_empty, True),
        missing_code=_spread(factor_codes, code_values, None),
        unknown=_spread(factor_codes, ~known & ~is_empty & ~is_code, False),
    )


def add_found(problems: list[Problem], found: Problem | None) -> None:
    """Append a problem built by :meth:`Problem.from_mask` when one was found."""
    if found is not None:
        problems.append(found)


def where_none(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` where ``mask``, None elsewhere, as an object array."""
    out = np.full(len(mask), None, dtype=object)
    out[mask] = np.asarray(values, dtype=object)[mask]
    return out
