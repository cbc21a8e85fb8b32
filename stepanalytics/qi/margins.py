"""Complementary suppression of a tidy table against the totals of groups of rows.

A committee table in long form (one row per clinic and phase, or clinic,
phase and event) is published together with totals: the all-clinics figure
of each phase, a pooled rate, a clinic's total over phases drawn in a
figure.  Each such *margin* is a grouping of the rows; the total of every
group is a linear equation in the table's cells.  A hidden cell is safe only
when these equations leave it undetermined, and when the hidden cells of
each published group do not add up to a small count themselves.

This module decides, one count column at a time, which further cells (and,
as a last resort, which group totals) to hide.  The public entry point is
:func:`stepanalytics.qi.suppression.protect_frame`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from stepanalytics.errors import UsageError
from stepanalytics.qi.smallcells import BoolArray, FloatArray, determined, small_cells

IntArray = npt.NDArray[np.intp]
Margin = tuple[str, ...]


@dataclass(frozen=True)
class GroupLayout:
    """The groups of rows whose totals are published, for every margin.

    Attributes
    ----------
    members : list of int arrays
        Row positions of each group.
    margins : list of tuple of str
        The margin (grouping columns) each group belongs to; ``()`` is the
        grand total.
    keys : list of tuple
        The values of the grouping columns for each group.
    of_row : list of list of int
        The groups each row belongs to.
    """

    members: list[IntArray]
    margins: list[Margin]
    keys: list[tuple[Hashable, ...]]
    of_row: list[list[int]]


def layout_groups(frame: pd.DataFrame, margins: Sequence[Margin]) -> GroupLayout:
    """Group the rows of ``frame`` by every margin.

    Examples
    --------
    >>> df = pd.DataFrame({"clinic_id": ["A", "A", "B"], "phase": [1, 2, 1]})
    >>> layout = layout_groups(df, [("phase",), ()])
    >>> [m.tolist() for m in layout.members]
    [[0, 2], [1], [0, 1, 2]]
    """
    members: list[IntArray] = []
    specs: list[Margin] = []
    keys: list[tuple[Hashable, ...]] = []
    for margin in margins:
        if not margin:
            members.append(np.arange(len(frame)))
            specs.append(())
            keys.append(())
            continue
        grouped = frame.groupby(list(margin), sort=True, dropna=False).indices
        for key, rows in grouped.items():
            members.append(np.sort(np.asarray(rows, dtype=np.intp)))
            specs.append(tuple(margin))
            keys.append(key if isinstance(key, tuple) else (key,))
    of_row: list[list[int]] = [[] for _ in range(len(frame))]
    for g, rows in enumerate(members):
        for r in rows:
            of_row[int(r)].append(g)
    return GroupLayout(members=members, margins=specs, keys=keys, of_row=of_row)


@dataclass(frozen=True)
class HiddenTotalCheck:
    """Values whose total over the hidden rows of a published group may not be small.

    ``values`` are per row (a count, or the complement ``whole - part`` of a
    part); ``unknown`` marks rows where the value is unknown to a reader
    anyway (e.g. because the whole is hidden), so it adds to the hidden total.
    """

    values: FloatArray
    unknown: BoolArray


def group_totals(values: FloatArray, layout: GroupLayout) -> FloatArray:
    """Total of ``values`` over each group."""
    return np.array([values[rows].sum() for rows in layout.members], dtype=float)


def complete_column(
    values: FloatArray,
    hidden: BoolArray,
    layout: GroupLayout,
    *,
    published: BoolArray,
    threshold: int,
    checks: Sequence[HiddenTotalCheck] = (),
    preferred: BoolArray | None = None,
) -> tuple[BoolArray, BoolArray]:
    """Hide further cells of one count column until its hidden cells are safe.

    Parameters
    ----------
    values : ndarray
        The column's counts (NaN read as 0).
    hidden : ndarray of bool
        Cells hidden so far (primary).
    layout : GroupLayout
    published : ndarray of bool
        Which group totals are published (a small total is withheld).
    threshold : int
    checks : sequence of HiddenTotalCheck
        Values whose hidden total per published group must not be small;
        the column's own values are always checked.
    preferred : ndarray of bool, optional
        Rows to hide first among equally good cells (rows already hidden in
        another column of the table: hiding there costs no further row).

    Returns
    -------
    hidden, published : ndarray of bool
        More hidden cells; group totals that had to be withheld.

    Notes
    -----
    The rule: (a) no hidden cell, and no withheld group total, follows
    exactly from the published cells and totals (linear algebra over all
    margins at once, see :func:`~stepanalytics.qi.smallcells.determined`);
    in particular no published group has exactly one hidden cell; and
    (b) in every published group the hidden cells add up to 0 or to more
    than ``threshold``.  While a rule is broken, one shown cell of the
    offending group is hidden: the one that leaves fewest groups with a
    single hidden cell, then a ``preferred`` row, then non-zero before zero,
    then the smallest.  A withheld total that the other totals give back is
    first protected by withholding a second total of its margin; when no
    cell can be added, the group's total is withheld.  Hiding a cell or
    withholding a total never makes a hidden value recoverable nor lowers a
    hidden total, and every step does one of the two, so the loop ends.
    This is a greedy heuristic: the result is checked exactly but does not
    always hide the fewest cells (an NP-hard problem; cf. the hypercube
    method of tau-argus, Repsilber 1994).
    """
    hidden = hidden.copy()
    published = published.copy()
    totals = group_totals(values, layout)
    prefer = np.zeros(len(values), dtype=bool) if preferred is None else preferred
    all_checks = [HiddenTotalCheck(values, np.zeros(len(values), dtype=bool)), *checks]
    for _ in range(len(values) + len(layout.members) + 1):
        problem = _first_problem(hidden, layout, published, threshold, all_checks)
        if problem is None:
            return hidden, published
        if problem.withheld is not None:
            partner = _partner_total(problem.withheld, totals, hidden, layout, published)
            if partner is not None:
                published[partner] = False
                continue
        candidates = sorted(
            {
                int(r)
                for g in problem.groups
                for r in layout.members[g]
                if not hidden[r] and (not problem.nonzero_only or values[r] > 0)
            }
        )
        open_groups = [g for g in problem.groups if published[g]]
        if candidates:
            pick = min(
                candidates, key=lambda r: _cost(r, values, hidden, layout, published, prefer)
            )
            hidden[pick] = True
        elif open_groups:
            published[open_groups[0]] = False
        else:
            break
    raise UsageError(
        "Complementary suppression could not protect this table; publish it without totals."
    )


def complete_columns(
    values: dict[str, FloatArray],
    masks: dict[str, BoolArray],
    published: dict[str, BoolArray],
    layout: GroupLayout,
    counts: Sequence[str],
    parts: Sequence[tuple[str, str]],
    *,
    threshold: int,
) -> None:
    """Complementary suppression of every count column, in place, until none changes.

    The columns are revisited because a hidden whole makes its part's
    complement unknown (``parts``), a part is hidden wherever its whole is
    (a shown part bounds a hidden whole from below), and a cell hidden in
    one column is the preferred complement in the others.
    """
    for _ in range(sum(len(v) for v in values.values()) + len(layout.members) + 1):
        changed = False
        for column in counts:
            checks = [
                HiddenTotalCheck(
                    values[whole] - values[part],
                    masks.get(whole, np.zeros(len(values[part]), dtype=bool)),
                )
                for part, whole in parts
                if part == column
            ]
            elsewhere = np.zeros(len(values[column]), dtype=bool)
            for other in counts:
                if other != column:
                    elsewhere |= masks[other]
            mask, open_totals = complete_column(
                values[column],
                masks[column],
                layout,
                published=published[column],
                threshold=threshold,
                checks=checks,
                preferred=elsewhere,
            )
            if (mask != masks[column]).any() or (open_totals != published[column]).any():
                changed = True
            masks[column], published[column] = mask, open_totals
        for part, whole in parts:
            # "9 responders of * patients" says there are at least 9 patients.
            if part in masks and whole in masks and (masks[whole] & ~masks[part]).any():
                masks[part] = masks[part] | masks[whole]
                changed = True
        if not changed:
            return


def loosen(
    values: FloatArray,
    hidden: BoolArray,
    published: BoolArray,
    layout: GroupLayout,
    *,
    row: int | None = None,
    group: int | None = None,
) -> bool:
    """Hide one more cell (or withhold one more total) next to a value a reader pins down.

    For a cell (``row``): a shown cell of one of its published groups, chosen
    as in :func:`complete_column`, or else one of those totals.  For a
    withheld total (``group``): a second total of its margin, or else a shown
    member.  Changes ``hidden`` and ``published`` in place; False when there
    is nothing left to hide.
    """
    if group is not None:
        totals = group_totals(values, layout)
        partner = _partner_total(group, totals, hidden, layout, published)
        if partner is not None:
            published[partner] = False
            return True
        groups = [group]
    else:
        assert row is not None  # internal call: one of the two is given
        groups = [g for g in layout.of_row[row] if published[g]]
    candidates = sorted({int(r) for g in groups for r in layout.members[g] if not hidden[r]})
    if candidates:
        none = np.zeros(len(values), dtype=bool)
        hidden[min(candidates, key=lambda r: _cost(r, values, hidden, layout, published, none))] = (
            True
        )
        return True
    open_groups = [g for g in groups if published[g]]
    if open_groups:
        published[open_groups[0]] = False
        return True
    return False


@dataclass(frozen=True)
class _Problem:
    """Groups in which to hide one more cell (non-zero only when a hidden total is small).

    ``withheld`` names a withheld group total that the published values
    give back; it is first protected by withholding a second total.
    """

    groups: list[int]
    nonzero_only: bool = False
    withheld: int | None = None


def _first_problem(
    hidden: BoolArray,
    layout: GroupLayout,
    published: BoolArray,
    threshold: int,
    checks: Sequence[HiddenTotalCheck],
) -> _Problem | None:
    """The first broken rule: a recoverable cell or total, or a small hidden total."""
    known_cells, known_totals = _recoverable(hidden, layout, published)
    for r in known_cells:
        groups = [g for g in layout.of_row[r] if published[g]]
        if groups:
            return _Problem(groups)
    for g in known_totals:
        hidden_rows = layout.members[g][hidden[layout.members[g]]]
        near = {h for r in hidden_rows for h in layout.of_row[int(r)] if published[h]}
        return _Problem([g, *sorted(near)], withheld=g)
    for g, rows in enumerate(layout.members):
        if not published[g]:
            continue
        for check in checks:
            unknown = hidden[rows] | check.unknown[rows]
            if small_cells(float(check.values[rows][unknown].sum()), threshold=threshold):
                return _Problem([g], nonzero_only=True)
    return None


def _recoverable(
    hidden: BoolArray, layout: GroupLayout, published: BoolArray
) -> tuple[list[int], list[int]]:
    """Hidden rows, and withheld groups, whose values follow from the published ones."""
    cells = np.flatnonzero(hidden)
    withheld = [g for g in range(len(layout.members)) if not published[g]]
    if cells.size == 0:
        return [], withheld  # a withheld total of shown cells is their sum
    position = {int(r): k for k, r in enumerate(cells)}
    equations = [
        _indicator(layout.members[g], hidden, position)
        for g in range(len(layout.members))
        if published[g] and hidden[layout.members[g]].any()
    ]
    wanted = [np.eye(cells.size)]
    wanted += [_indicator(layout.members[g], hidden, position)[None] for g in withheld]
    system = np.array(equations).reshape(len(equations), cells.size)
    known = determined(system, np.vstack(wanted))
    known_cells = [int(cells[k]) for k in np.flatnonzero(known[: cells.size])]
    known_totals = [g for g, k in zip(withheld, known[cells.size :], strict=True) if k]
    return known_cells, known_totals


def _partner_total(
    group: int,
    totals: FloatArray,
    hidden: BoolArray,
    layout: GroupLayout,
    published: BoolArray,
) -> int | None:
    """A second total of the same margin whose withholding protects ``group``'s total.

    A withheld clinic total is the grand total minus the other clinics'
    totals; only withholding another clinic's total (the smallest that
    works, so the two add up to more than the threshold) hides it again.
    """
    same = [
        h
        for h in range(len(layout.members))
        if published[h] and h != group and layout.margins[h] == layout.margins[group]
    ]
    for h in sorted(same, key=lambda h: (totals[h], h)):
        trial = published.copy()
        trial[h] = False
        _, known_totals = _recoverable(hidden, layout, trial)
        if group not in known_totals:
            return h
    return None


def _indicator(rows: IntArray, hidden: BoolArray, position: dict[int, int]) -> FloatArray:
    vector = np.zeros(len(position))
    for r in rows[hidden[rows]]:
        vector[position[int(r)]] = 1.0
    return vector


def _cost(
    row: int,
    values: FloatArray,
    hidden: BoolArray,
    layout: GroupLayout,
    published: BoolArray,
    preferred: BoolArray,
) -> tuple[int, bool, bool, float, int]:
    """Prefer a cell that fixes single hidden cells and creates none, preferred, non-zero, small."""
    change = 0
    for g in layout.of_row[row]:
        if not published[g]:
            continue
        n_hidden = int(hidden[layout.members[g]].sum())
        change += 1 if n_hidden == 0 else -1 if n_hidden == 1 else 0
    return (change, not preferred[row], bool(values[row] == 0), float(values[row]), row)
