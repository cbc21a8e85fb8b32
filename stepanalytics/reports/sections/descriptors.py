"""Privacy rules for what is not a plain count: ranges, medians, zeros beside hidden cells.

The small-cell rule (:mod:`stepanalytics.qi.suppression`) protects counts.
Three other things in a committee report can describe individual patients:

* **range descriptors.**  "Enrolment months 2025-06 to 2025-06" is the first
  and the last patient's own month.  An end of a range is shown only when
  more than ``threshold`` patients share it: at month resolution when the
  first (last) month holds that many, else widened to the quarter, else to
  the year, else hidden (:func:`shared_range`).  A median (follow-up) is
  shown only when more than ``threshold`` patients contribute.
* **zeros beside hidden cells.**  In a clinic's case-mix column where some
  categories are hidden, a shown 0 for the others narrows down the hidden
  patients' categories (with one patient, it tells exactly which one).
  Where a line (column of a case-mix table, row of a phase table) has a
  hidden cell, its zeros are hidden too (:func:`hide_zeros_beside_hidden`).
  Hiding a zero never lets a reader recover another cell: it adds an
  unknown that is 0 to the hidden cells, whose sum is unchanged.
* **percentages of a hidden total.**  "11 (28%)" gives the column total
  back (11 / 0.28); a percentage is shown only beside a shown total.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from stepanalytics.qi.suppression import SUPPRESSED_MARK


def _quarter(month: str) -> str:
    return f"{month[:4]}Q{(int(month[5:7]) - 1) // 3 + 1}"


def _year(month: str) -> str:
    return month[:4]


_RESOLUTIONS: tuple[Callable[[str], str], ...] = (str, _quarter, _year)


def _shared_end(months: pd.Series, threshold: int, *, last: bool) -> str | None:
    """The first (last) month, quarter or year shared by more than ``threshold`` patients."""
    for coarsen in _RESOLUTIONS:
        labels = months.map(coarsen)
        end = labels.max() if last else labels.min()
        if int((labels == end).sum()) > threshold:
            return str(end)
    return None


def shared_range(months: pd.Series, *, threshold: int | None) -> str:
    """The range of enrolment months, each end shared by more than ``threshold`` patients.

    Parameters
    ----------
    months : Series of str
        ``YYYY-MM`` of each patient.
    threshold : int or None
        None (research reports) gives the exact first and last month.

    Examples
    --------
    >>> months = pd.Series(["2024-07"] + ["2024-08"] * 11 + ["2025-01"] * 12)
    >>> shared_range(months, threshold=10)
    '2024Q3 to 2025-01'
    >>> shared_range(months, threshold=None)
    '2024-07 to 2025-01'
    >>> shared_range(pd.Series(["2025-06"]), threshold=10)
    '*'
    """
    values = months.dropna().astype(str)
    if values.empty:
        return "none"
    if threshold is None:
        low, high = str(values.min()), str(values.max())
    else:
        found = (
            _shared_end(values, threshold, last=False),
            _shared_end(values, threshold, last=True),
        )
        if found[0] is None or found[1] is None:
            return SUPPRESSED_MARK
        low, high = found[0], found[1]
    return low if low == high else f"{low} to {high}"


def shared_median(values: pd.Series, *, threshold: int | None, scale: float = 1.0) -> str:
    """A median, shown only when more than ``threshold`` values contribute.

    Examples
    --------
    >>> shared_median(pd.Series([7.0, 14.0, 21.0]), threshold=2, scale=7)
    '2'
    >>> shared_median(pd.Series([7.0]), threshold=10)
    '*'
    """
    present = values.dropna()
    if present.empty:
        return "–"
    if threshold is not None and len(present) <= threshold:
        return SUPPRESSED_MARK
    return f"{float(present.median()) / scale:.0f}"


def hide_zeros_beside_hidden(
    values: pd.DataFrame, hidden: pd.DataFrame, *, axis: str
) -> pd.DataFrame:
    """Hide the zeros of every line that has a hidden cell.

    Parameters
    ----------
    values : DataFrame
        The counts, same shape and labels as ``hidden``.
    hidden : DataFrame of bool
        Cells already hidden.
    axis : {"columns", "rows"}
        Lines are columns (a case-mix column) or rows (a phase's exits).

    Returns
    -------
    DataFrame of bool
        ``hidden`` with those zeros added.

    Examples
    --------
    >>> v = pd.DataFrame({"clinic": [1, 0, 0], "all": [20, 12, 30]})
    >>> h = pd.DataFrame({"clinic": [True, False, False], "all": [False] * 3})
    >>> hide_zeros_beside_hidden(v, h, axis="columns")["clinic"].tolist()
    [True, True, True]
    """
    if axis not in ("columns", "rows"):
        raise ValueError(f"axis must be 'columns' or 'rows', not {axis!r}")
    numbers = values.apply(pd.to_numeric, errors="coerce")
    zero = numbers.eq(0).fillna(False).astype(bool)
    line_hidden = hidden.any(axis=0) if axis == "columns" else hidden.any(axis=1)
    if axis == "columns":
        beside = pd.DataFrame(
            {c: [bool(line_hidden[c])] * len(hidden) for c in hidden.columns}, index=hidden.index
        )
    else:
        beside = pd.DataFrame(
            {c: line_hidden.to_numpy() for c in hidden.columns}, index=hidden.index
        )
    return hidden | (zero & beside)
