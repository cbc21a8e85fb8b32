"""Two-way count tables with margins (clinic x phase, clinic x event type).

A single hidden cell in a row is the row total minus the others, so more
cells are hidden until no hidden cell can be worked out from the published
cells and totals (complementary suppression), and until the hidden cells of
every published row and column add up to more than the threshold (so the
hidden total a reader can compute is not itself a small cell).  The public
entry point is :func:`suppress_table`, re-exported by
:mod:`stepanalytics.qi.suppression`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import linalg

from stepanalytics.errors import UsageError
from stepanalytics.qi.smallcells import (
    DEFAULT_THRESHOLD,
    SUPPRESSED_MARK,
    BoolArray,
    small_cells,
)


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
    of tau-argus (Repsilber 1994).  Then, while the hidden cells of a row or
    column with a published total add up to 1..``threshold`` (a reader gets
    that sum as total minus shown cells: two hidden cells adding up to 2 are
    1 and 1), a rectangle adds a shown non-zero cell to that line.  The
    result is checked exactly; it is not guaranteed to hide the fewest
    cells (that problem is NP-hard).

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
    hidden = _complete(bordered, hidden, published, threshold)
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


def _complete(
    values: np.ndarray, hidden: BoolArray, published: BoolArray, threshold: int
) -> BoolArray:
    """Add complementary cells until no hidden cell can be worked out.

    Two rules, checked in turn: no published-but-hidden cell is fixed by the
    row and column equations; and the hidden cells of every row or column
    whose total is published add up to 0 or to more than ``threshold``.
    Each step hides the cheapest rectangle with a problem cell as a corner
    (the 2-D case of the hypercube method): the four corners then lie on a
    cycle of the table, so none of them is fixed by the equations.  Hiding
    more cells never makes a hidden cell recoverable again and never lowers
    a hidden total, so the loop ends.
    """
    hidden = hidden.copy()
    for _ in range(values.size):
        exposed = recoverable_cells(values, hidden) & published
        if exposed.any():
            r, c = map(int, np.argwhere(exposed)[0])
            new = _cheapest_rectangle(values, hidden, r, c)
        else:
            line = _small_hidden_total(values, hidden, threshold)
            if line is None:
                return hidden
            new = _widening_rectangle(values, hidden, line)
        if not new:
            break
        for cell in new:
            hidden[cell] = True
    if (recoverable_cells(values, hidden) & published).any() or _small_hidden_total(
        values, hidden, threshold
    ):
        raise UsageError(
            "Complementary suppression could not protect this table; publish it without totals."
        )
    return hidden


def _cheapest_rectangle(
    values: np.ndarray, hidden: BoolArray, r: int, c: int
) -> list[tuple[int, int]]:
    """Cells to hide so that (r, c) becomes the corner of a hidden rectangle."""
    n_rows, n_cols = values.shape
    best: tuple[tuple[int, int, int, float], list[tuple[int, int]]] | None = None
    for i in range(n_rows):
        for j in range(n_cols):
            if i == r or j == c:
                continue
            new = [cell for cell in ((r, j), (i, c), (i, j)) if not hidden[cell]]
            cost = _cost(values, new, n_rows, n_cols)
            if best is None or cost < best[0]:
                best = (cost, new)
    return [] if best is None else best[1]


def _small_hidden_total(
    values: np.ndarray, hidden: BoolArray, threshold: int
) -> tuple[str, int] | None:
    """A row or column with a published total whose hidden cells add up to a small count.

    The reader gets that hidden total as the published total minus the
    shown cells; from 1 to ``threshold`` it is itself a small cell (two
    hidden cells adding up to 2 are 1 and 1).
    """
    for axis, (v, h) in (("row", (values, hidden)), ("col", (values.T, hidden.T))):
        for k in range(v.shape[0]):
            if h[k, -1]:
                continue  # total not published: no equation
            total = float(v[k, :-1][h[k, :-1]].sum())
            if small_cells(total, threshold=threshold):
                return axis, k
    return None


def _widening_rectangle(
    values: np.ndarray, hidden: BoolArray, line: tuple[str, int]
) -> list[tuple[int, int]]:
    """A rectangle that adds a shown non-zero cell to the hidden cells of ``line``.

    Shown non-zero cells exceed the threshold (smaller ones are hidden
    already), so one such cell lifts the line's hidden total above it.
    """
    axis, k = line
    v, h = (values, hidden) if axis == "row" else (values.T, hidden.T)
    n_rows, n_cols = v.shape
    best: tuple[tuple[int, int, int, float], list[tuple[int, int]]] | None = None
    for c in range(n_cols - 1):
        if not h[k, c]:
            continue
        for j in range(n_cols - 1):
            if j == c or h[k, j] or v[k, j] <= 0:
                continue
            for i in range(n_rows):
                if i == k:
                    continue
                new = [cell for cell in ((k, j), (i, c), (i, j)) if not h[cell]]
                cost = _cost(v, new, n_rows, n_cols)
                if best is None or cost < best[0]:
                    best = (cost, new)
    if best is None:
        return []
    return best[1] if axis == "row" else [(b, a) for a, b in best[1]]


def _cost(
    values: np.ndarray, new: list[tuple[int, int]], n_rows: int, n_cols: int
) -> tuple[int, int, int, float]:
    """Order candidate rectangles: fewest totals, fewest cells, fewest zeros, smallest sum."""
    margins = sum(1 for r, c in new if r == n_rows - 1 or c == n_cols - 1)
    zeros = sum(1 for cell in new if values[cell] == 0)
    return (margins, len(new), zeros, float(sum(values[cell] for cell in new)))
