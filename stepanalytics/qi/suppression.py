"""Small-cell protection: the one gate every report table and figure passes.

A count from 1 to ``threshold`` (default 10) could identify patients in a
small clinic, so it is not published (*primary* suppression).  Hiding it is
not enough when totals are shown: a single hidden cell in a row is the row
total minus the others.  *Complementary* suppression hides further cells
until no hidden cell can be recovered exactly from the published values.
The check is exact: the published cells and totals form a linear system
in the hidden cells, and a hidden cell is recoverable precisely when it is
fixed by that system (zero in every null-space direction).

Why 10: the issue asks for 10 by default, and "counts from 1 to 10 are not
shown" is the CMS cell-size suppression policy; many registries use 5.
Zero is published: a zero count discloses nothing about a person.  The
threshold is a keyword argument everywhere.

Two entry points:

* :func:`suppress_table` for a two-way table of counts with margins
  (clinic x phase, clinic x event type);
* :func:`protect_frame` for a tidy table with one row per clinic (or
  clinic and phase): count columns are protected down each column against
  its total, a derived column (rate, interval, z-score) is blanked with its
  count, and a part that is small relative to its whole (``n - events``) is
  treated as a small cell too.

:func:`check_no_identifiers` refuses any table with a patient identifier;
committee-facing functions call it on every output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import linalg

from stepanalytics.errors import UsageError

DEFAULT_THRESHOLD = 10
#: What a suppressed cell shows in a rendered table (same mark for primary
#: and complementary cells, so the mark itself does not tell which is small).
SUPPRESSED_MARK = "*"
IDENTIFIER_COLUMNS = ("patient_id", "pseudonym", "worklist_id", "mrn", "name")
BoolArray = npt.NDArray[np.bool_]


def small_cells(counts: npt.ArrayLike, *, threshold: int = DEFAULT_THRESHOLD) -> BoolArray:
    """True where a count lies in ``1..threshold`` (a cell to suppress).

    Examples
    --------
    >>> small_cells([0, 1, 10, 11]).tolist()
    [False, True, True, False]
    """
    x = np.asarray(counts, dtype=float)
    if threshold < 1:
        raise UsageError("threshold must be at least 1.")
    return (x >= 1) & (x <= threshold)


def recoverable_cells(values: npt.ArrayLike, hidden: npt.ArrayLike) -> BoolArray:
    """Which hidden cells of a table with margins are fixed by the rest.

    Parameters
    ----------
    values : array_like, shape (R + 1, C + 1)
        Counts with the row totals in the last column and the column totals
        in the last row (grand total bottom right).
    hidden : array_like of bool, same shape
        Cells not published.  Totals that are not published at all are
        simply hidden cells.

    Returns
    -------
    ndarray of bool
        True for a hidden cell whose value follows exactly from the
        published cells.

    Notes
    -----
    Each row and column of the bordered table gives one linear equation
    (cells sum to the total).  Restricted to the hidden cells the system
    is ``A x = b``; cell k is determined iff the unit vector e_k lies in the
    row space of A, i.e. every null-space vector of A is 0 at k.

    Examples
    --------
    >>> v = np.array([[3, 20, 23], [15, 30, 45], [18, 50, 68]])
    >>> h = np.zeros_like(v, dtype=bool); h[0, 0] = True
    >>> recoverable_cells(v, h)[0, 0]
    np.True_
    """
    table = np.asarray(values, dtype=float)
    mask = np.asarray(hidden, dtype=bool)
    if table.shape != mask.shape or table.ndim != 2:
        raise UsageError("values and hidden must be 2-D arrays of the same shape.")
    n_rows, n_cols = table.shape
    positions = np.argwhere(mask)
    out = np.zeros_like(mask)
    if positions.size == 0:
        return out
    index = {tuple(p): k for k, p in enumerate(positions)}
    equations = []
    for r in range(n_rows):
        row = np.zeros(len(positions))
        for c in range(n_cols):
            k = index.get((r, c))
            if k is not None:
                row[k] = -1.0 if c == n_cols - 1 else 1.0
        equations.append(row)
    for c in range(n_cols):
        row = np.zeros(len(positions))
        for r in range(n_rows):
            k = index.get((r, c))
            if k is not None:
                row[k] = -1.0 if r == n_rows - 1 else 1.0
        equations.append(row)
    matrix = np.vstack(equations)
    null = linalg.null_space(matrix)
    if null.size == 0:
        fixed = np.ones(len(positions), dtype=bool)
    else:
        fixed = np.all(np.abs(null) < 1e-9, axis=1)
    for (r, c), is_fixed in zip(positions, fixed, strict=True):
        out[r, c] = is_fixed
    return out


@dataclass(frozen=True)
class SuppressedTable:
    """A two-way count table after primary and complementary suppression.

    Attributes
    ----------
    table : DataFrame
        Counts with a ``total`` row and column (when published); hidden cells
        are ``<NA>`` (nullable Int64).
    primary, complementary : DataFrame of bool
        Where cells were hidden because they are small, and where to protect
        them.  Internal: never publish these masks (they tell which cells
        are small).
    threshold : int
    """

    table: pd.DataFrame
    primary: pd.DataFrame = field(repr=False)
    complementary: pd.DataFrame = field(repr=False)
    threshold: int = DEFAULT_THRESHOLD

    @property
    def hidden(self) -> pd.DataFrame:
        """All hidden cells."""
        return self.primary | self.complementary

    def to_display(self) -> pd.DataFrame:
        """The table as text, every hidden cell shown as ``*``."""
        shown = self.table.astype(object).where(~self.hidden, SUPPRESSED_MARK)
        return shown.astype(str)


def suppress_table(
    counts: pd.DataFrame,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    row_totals: bool = True,
    column_totals: bool = True,
    total_label: str = "total",
) -> SuppressedTable:
    """Suppress small cells of a two-way count table, then protect them.

    Parameters
    ----------
    counts : DataFrame
        Interior counts (non-negative integers); rows and columns labelled.
    threshold : int, keyword-only
        Counts from 1 to ``threshold`` are hidden (default 10).
    row_totals, column_totals : bool, keyword-only
        Whether the table will be published with these margins.  Every
        published margin is itself checked for small values.
    total_label : str
        Label of the margin row / column.

    Returns
    -------
    SuppressedTable

    Notes
    -----
    Complementary cells are chosen greedily: while some hidden cell is
    recoverable (see :func:`recoverable_cells`), hide the cheapest
    rectangle having it as a corner, preferring interior cells over totals,
    fewer cells, non-zero cells over zeros and small counts (least
    information lost).  This is the two-way case of the hypercube method
    of tau-argus (Repsilber 1994).  The result is checked exactly; it is
    not guaranteed to hide the fewest cells (that problem is NP-hard).

    Examples
    --------
    >>> t = pd.DataFrame({"p1": [3, 15, 20], "p2": [20, 30, 25]}, index=["A", "B", "C"])
    >>> s = suppress_table(t)
    >>> s.to_display().loc["A"].tolist()
    ['*', '*', '23']
    """
    values = counts.to_numpy(dtype=float)
    if np.isnan(values).any() or (values < 0).any():
        raise UsageError("suppress_table needs non-negative counts without missing values.")
    n_rows, n_cols = values.shape
    bordered = np.zeros((n_rows + 1, n_cols + 1))
    bordered[:n_rows, :n_cols] = values
    bordered[:n_rows, n_cols] = values.sum(axis=1)
    bordered[n_rows, :n_cols] = values.sum(axis=0)
    bordered[n_rows, n_cols] = values.sum()
    published = np.ones_like(bordered, dtype=bool)
    if not row_totals:
        published[:, n_cols] = False
    if not column_totals:
        published[n_rows, :] = False
    if not (row_totals and column_totals):
        published[n_rows, n_cols] = row_totals or column_totals
    primary = small_cells(bordered, threshold=threshold) & published
    hidden = primary | ~published
    hidden = _complete(bordered, hidden, published)
    complementary = hidden & published & ~primary
    rows = [*map(str, counts.index), total_label]
    cols = [*map(str, counts.columns), total_label]
    keep_rows = rows if column_totals else rows[:-1]
    keep_cols = cols if row_totals else cols[:-1]
    frame = pd.DataFrame(bordered, index=rows, columns=cols).astype("Int64")
    frame = frame.mask(pd.DataFrame(hidden, index=rows, columns=cols))
    as_frame = lambda m: pd.DataFrame(m, index=rows, columns=cols).loc[keep_rows, keep_cols]  # noqa: E731
    return SuppressedTable(
        table=frame.loc[keep_rows, keep_cols],
        primary=as_frame(primary),
        complementary=as_frame(complementary),
        threshold=threshold,
    )


def _complete(values: np.ndarray, hidden: BoolArray, published: BoolArray) -> BoolArray:
    """Add complementary cells until no published-but-hidden cell is recoverable.

    Each step takes one recoverable cell and hides the cheapest rectangle
    with it as a corner (the 2-D case of the hypercube method): the four
    corners then lie on a cycle of the table, so none of them is fixed by
    the row and column equations.  Hiding more cells never makes a hidden
    cell recoverable again, so the loop ends.
    """
    hidden = hidden.copy()
    n_rows, n_cols = values.shape
    for _ in range(values.size):
        exposed = recoverable_cells(values, hidden) & published
        if not exposed.any():
            return hidden
        r, c = map(int, np.argwhere(exposed)[0])
        best: tuple[tuple[int, int, int, float], list[tuple[int, int]]] | None = None
        for i in range(n_rows):
            for j in range(n_cols):
                if i == r or j == c:
                    continue
                new = [cell for cell in ((r, j), (i, c), (i, j)) if not hidden[cell]]
                cost = _cost(values, new, n_rows, n_cols)
                if best is None or cost < best[0]:
                    best = (cost, new)
        if best is None:
            break
        for cell in best[1]:
            hidden[cell] = True
    if (recoverable_cells(values, hidden) & published).any():
        raise UsageError(
            "Complementary suppression could not protect this table; publish it without totals."
        )
    return hidden


def _cost(
    values: np.ndarray, new: list[tuple[int, int]], n_rows: int, n_cols: int
) -> tuple[int, int, int, float]:
    """Order candidate rectangles: fewest totals, fewest cells, fewest zeros, smallest sum."""
    margins = sum(1 for r, c in new if r == n_rows - 1 or c == n_cols - 1)
    zeros = sum(1 for cell in new if values[cell] == 0)
    return (margins, len(new), zeros, float(sum(values[cell] for cell in new)))


@dataclass(frozen=True)
class ProtectedFrame:
    """A tidy report table after small-cell protection.

    Attributes
    ----------
    table : DataFrame
        Same columns; hidden counts ``<NA>``, hidden derived values NaN.
    hidden : DataFrame of bool
        Which cells are hidden (internal; do not publish).
    threshold : int
    notes : tuple of str
        Plain-language footnotes for the report.
    """

    table: pd.DataFrame
    hidden: pd.DataFrame = field(repr=False)
    threshold: int = DEFAULT_THRESHOLD
    notes: tuple[str, ...] = ()

    def to_display(self) -> pd.DataFrame:
        """The table with every hidden cell shown as ``*``."""
        return self.table.astype(object).where(~self.hidden, SUPPRESSED_MARK)


def protect_frame(
    frame: pd.DataFrame,
    *,
    counts: Sequence[str],
    derived: Mapping[str, Sequence[str]] | None = None,
    parts: Sequence[tuple[str, str]] = (),
    totals: bool = True,
    threshold: int = DEFAULT_THRESHOLD,
) -> ProtectedFrame:
    """Apply the small-cell rule to a report table with one row per unit.

    Parameters
    ----------
    frame : DataFrame
        The table to publish; must not contain patient identifiers.
    counts : sequence of str, keyword-only
        Count columns (n, events, responders, ...).
    derived : mapping, keyword-only
        ``{derived column: [count columns it is computed from]}``, e.g.
        ``{"share": ["responders", "n"]}``; a derived value is hidden
        wherever any of its counts is (a share with its n gives the count
        back, and with the count gives n back).
    parts : sequence of (part, whole), keyword-only
        Nested counts such as ``("responders", "n")``: where ``whole - part``
        is small the part is hidden too (9 of 10 responding reveals the one
        who did not).
    totals : bool, keyword-only
        Whether column totals are published or can be computed by the
        reader (default True: assume a reader adds up the rows).  Then each
        count column gets complementary suppression down the column.
    threshold : int, keyword-only

    Returns
    -------
    ProtectedFrame

    Examples
    --------
    >>> df = pd.DataFrame({"clinic_id": list("ABC"), "n": [6, 40, 55],
    ...                    "responders": [5, 18, 20]})
    >>> df["share"] = df["responders"] / df["n"]
    >>> out = protect_frame(df, counts=["n", "responders"],
    ...                     derived={"share": ["responders", "n"]})
    >>> out.to_display()[["n", "responders"]].to_numpy().tolist()
    [['*', '*'], ['*', '*'], [55, 20]]
    """
    check_no_identifiers(frame)
    derived = dict(derived or {})
    named = [*counts, *derived, *(c for pair in parts for c in pair)]
    named += [c for sources in derived.values() for c in sources]
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise UsageError(f"protect_frame: column(s) {sorted(set(missing))} not in the table.")
    hidden = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for column in counts:
        values = frame[column].to_numpy(dtype=float)
        hidden[column] = small_cells(np.nan_to_num(values, nan=0.0), threshold=threshold)
    for part, whole in parts:
        rest = frame[whole].to_numpy(dtype=float) - frame[part].to_numpy(dtype=float)
        small_rest = small_cells(np.nan_to_num(rest, nan=0.0), threshold=threshold)
        hidden[part] = hidden[part].to_numpy() | small_rest
    if totals:
        for column in counts:
            hidden[column] = _protect_column(frame[column].to_numpy(dtype=float), hidden[column])
    for target, sources in derived.items():
        for source in sources:
            hidden[target] = hidden[target].to_numpy() | hidden[source].to_numpy()
    table = frame.copy()
    for column in hidden.columns[hidden.any()]:
        if column in counts:
            table[column] = table[column].astype("Int64").mask(hidden[column])
        else:
            table[column] = table[column].mask(hidden[column])
    n_hidden = int(hidden.to_numpy().sum())
    notes: tuple[str, ...] = ()
    if n_hidden:
        notes = (
            f"{SUPPRESSED_MARK} hidden to protect privacy: counts from 1 to {threshold}, "
            "and values that would let a hidden count be worked out, are not shown.",
        )
    return ProtectedFrame(table=table, hidden=hidden, threshold=threshold, notes=notes)


def _protect_column(values: np.ndarray, hidden: pd.Series) -> BoolArray:
    """One column against its total: never exactly one hidden cell.

    With a single hidden cell the reader gets it back as total minus the
    rest, so the smallest non-zero published cell is hidden with it.
    """
    mask = hidden.to_numpy(dtype=bool).copy()
    if mask.sum() != 1 or len(values) < 2:
        return mask
    others = [k for k in range(len(values)) if not mask[k]]
    nonzero = [k for k in others if values[k] > 0]
    pick = min(nonzero or others, key=lambda k: values[k])
    mask[pick] = True
    return mask


def check_no_identifiers(frame: pd.DataFrame, *, extra: Iterable[str] = ()) -> pd.DataFrame:
    """Refuse a committee table that carries a patient identifier.

    Parameters
    ----------
    frame : DataFrame
    extra : iterable of str
        More column names to refuse.

    Returns
    -------
    DataFrame
        The same frame, unchanged, when it is safe.

    Raises
    ------
    UsageError
        Naming the identifier columns found (columns or index).

    Examples
    --------
    >>> check_no_identifiers(pd.DataFrame({"clinic_id": ["A"], "n": [12]})).shape
    (1, 2)
    """
    forbidden = {*IDENTIFIER_COLUMNS, *extra}
    names = [str(c) for c in frame.columns] + [str(n) for n in frame.index.names if n]
    found = sorted({n for n in names if n.lower() in forbidden})
    if found:
        raise UsageError(
            f"This table is meant for a committee but holds identifier column(s) {found}. "
            "Committee outputs carry counts only; use the clinic worklist for patient lists."
        )
    return frame
