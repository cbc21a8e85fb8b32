"""What a reader can bound: the interval audit behind complementary suppression.

The linear check of :mod:`stepanalytics.qi.margins` asks whether the
published totals fix a hidden cell.  A reader also knows that counts are
not negative and that a part is at most its whole (responders <= patients),
and these inequalities can pin a cell down even when the equations alone do
not: a shown part of 11 under a hidden whole says the whole is at least 11,
and with the group totals that may leave a single possible value for a
hidden 1.  This module finds, by linear programming (HiGHS, as R
``lpSolve``/tau-argus do for protection intervals), the smallest and largest
value a reader can give each small hidden count, each small complement of a
part and each small withheld total.  A value is disclosed when only one
whole number lies between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from stepanalytics.errors import UsageError
from stepanalytics.qi.margins import GroupLayout, complete_columns, loosen
from stepanalytics.qi.smallcells import BoolArray, FloatArray, small_cells

#: A linear form over the unknowns: {unknown: coefficient}.
Terms = dict[int, float]


@dataclass(frozen=True)
class Disclosure:
    """A small value a reader can work out exactly.

    ``kind`` is ``"cell"`` (``column`` at ``row``), ``"rest"`` (``whole - column``
    at ``row``, ``column`` being the part) or ``"total"`` (``column``'s withheld
    total of group ``group``).
    """

    kind: str
    column: str
    row: int = -1
    group: int = -1


def protect_columns(
    values: dict[str, FloatArray],
    masks: dict[str, BoolArray],
    published: dict[str, BoolArray],
    layout: GroupLayout,
    counts: Sequence[str],
    parts: Sequence[tuple[str, str]],
    *,
    threshold: int,
) -> None:
    """Complementary suppression of every count column, then the interval audit, in place.

    The linear and hidden-total rules come first
    (:func:`~stepanalytics.qi.margins.complete_columns`); then, while the
    audit finds a small value pinned down, one more cell is hidden next to
    it (or one more total withheld) and both steps run again.  Each round
    hides something, so the loop ends.
    """
    limit = sum(len(v) for v in values.values()) + len(layout.members) * len(counts) + 1
    for _ in range(limit):
        complete_columns(values, masks, published, layout, counts, parts, threshold=threshold)
        found = find_disclosures(
            values, masks, published, layout, counts, parts, threshold=threshold
        )
        if not found:
            return
        leak = found[0]
        wholes = [whole for part, whole in parts if part == leak.column]
        tried = [leak.column, *wholes] if leak.kind == "rest" else [leak.column]
        if not any(
            loosen(
                values[c],
                masks[c],
                published[c],
                layout,
                row=None if leak.kind == "total" else leak.row,
                group=leak.group if leak.kind == "total" else None,
            )
            for c in tried
        ):
            break
    raise UsageError(
        "Complementary suppression could not protect this table; publish it without totals."
    )


def find_disclosures(
    values: dict[str, FloatArray],
    masks: dict[str, BoolArray],
    published: dict[str, BoolArray],
    layout: GroupLayout,
    counts: Sequence[str],
    parts: Sequence[tuple[str, str]],
    *,
    threshold: int,
) -> list[Disclosure]:
    """Small hidden values that the shown cells, published totals and bounds pin down.

    Parameters
    ----------
    values, masks, published
        Per count column: the counts, the hidden cells, the published group
        totals (see :func:`stepanalytics.qi.margins.complete_column`).
    layout : GroupLayout
    counts : sequence of str
    parts : sequence of (part, whole)
        Each row satisfies part <= whole, which a reader knows.
    threshold : int

    Returns
    -------
    list of Disclosure
        Empty when every small value keeps at least two possible whole numbers.

    Notes
    -----
    Unknowns are the hidden cells; equations are the published totals;
    inequalities are ``x >= 0`` and ``part <= whole`` per row.  The system
    splits into independent blocks (unknowns linked by an equation or an
    inequality); a block with a single equation over two or more unknowns
    and no inequality leaves every unknown free between 0 and the hidden
    total, so only the other blocks are solved.
    """
    columns = [c for c in counts if c in masks]
    unknown = [(c, int(r)) for c in columns for r in np.flatnonzero(masks[c])]
    if not unknown:
        return []
    index = {key: k for k, key in enumerate(unknown)}
    equations = _equations(values, masks, published, layout, columns, index)
    inequalities = _part_bounds(values, masks, parts, index)
    blocks = _blocks(len(unknown), equations, inequalities)
    targets = _targets(values, masks, published, layout, columns, parts, index, threshold)
    found = []
    for disclosure, objective in targets:
        block = frozenset().union(*(blocks[k] for k in objective))
        if _pinned(objective, block, equations, inequalities):
            found.append(disclosure)
    return found


def _equations(
    values: dict[str, FloatArray],
    masks: dict[str, BoolArray],
    published: dict[str, BoolArray],
    layout: GroupLayout,
    columns: Sequence[str],
    index: dict[tuple[str, int], int],
) -> list[tuple[Terms, float]]:
    """Each published total: its hidden cells add up to the total minus the shown ones."""
    out = []
    for c in columns:
        for g, rows in enumerate(layout.members):
            if not published[c][g]:
                continue
            terms = {index[(c, int(r))]: 1.0 for r in rows if (c, int(r)) in index}
            if terms:
                shown = float(values[c][rows][~masks[c][rows]].sum())
                out.append((terms, float(values[c][rows].sum()) - shown))
    return out


def _part_bounds(
    values: dict[str, FloatArray],
    masks: dict[str, BoolArray],
    parts: Sequence[tuple[str, str]],
    index: dict[tuple[str, int], int],
) -> list[tuple[Terms, float]]:
    """``part - whole <= 0`` on every row where either is hidden, shown values moved right."""
    out = []
    for part, whole in parts:
        if part not in masks or whole not in masks:
            continue
        for r in np.flatnonzero(masks[part] | masks[whole]):
            terms: Terms = {}
            bound = 0.0
            if (part, int(r)) in index:
                terms[index[(part, int(r))]] = 1.0
            else:
                bound -= values[part][r]
            if (whole, int(r)) in index:
                terms[index[(whole, int(r))]] = -1.0
            else:
                bound += values[whole][r]
            out.append((terms, bound))
    return out


def _targets(
    values: dict[str, FloatArray],
    masks: dict[str, BoolArray],
    published: dict[str, BoolArray],
    layout: GroupLayout,
    columns: Sequence[str],
    parts: Sequence[tuple[str, str]],
    index: dict[tuple[str, int], int],
    threshold: int,
) -> list[tuple[Disclosure, dict[int, float]]]:
    """Small values a reader must not pin down, as linear objectives over the unknowns."""
    out: list[tuple[Disclosure, dict[int, float]]] = []
    for c in columns:
        for r in np.flatnonzero(masks[c] & small_cells(values[c], threshold=threshold)):
            out.append((Disclosure("cell", c, row=int(r)), {index[(c, int(r))]: 1.0}))
        totals = np.array([values[c][rows].sum() for rows in layout.members])
        for g in np.flatnonzero(~published[c] & small_cells(totals, threshold=threshold)):
            rows = layout.members[g]
            objective = {index[(c, int(r))]: 1.0 for r in rows if (c, int(r)) in index}
            if objective:
                out.append((Disclosure("total", c, group=int(g)), objective))
    for part, whole in parts:
        if part not in masks or whole not in masks:
            continue
        rest = values[whole] - values[part]
        for r in np.flatnonzero(small_cells(rest, threshold=threshold)):
            objective = {}
            if (whole, int(r)) in index:
                objective[index[(whole, int(r))]] = 1.0
            if (part, int(r)) in index:
                objective[index[(part, int(r))]] = -1.0
            if objective:
                out.append((Disclosure("rest", part, row=int(r)), objective))
    return out


def _blocks(
    n: int,
    equations: list[tuple[Terms, float]],
    inequalities: list[tuple[Terms, float]],
) -> list[frozenset[int]]:
    """The independent block of unknowns each unknown belongs to (union-find)."""
    parent = list(range(n))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for terms, _ in [*equations, *inequalities]:
        keys = list(terms)
        for other in keys[1:]:
            parent[root(other)] = root(keys[0])
    members: dict[int, set[int]] = {}
    for k in range(n):
        members.setdefault(root(k), set()).add(k)
    return [frozenset(members[root(k)]) for k in range(n)]


def _pinned(
    objective: dict[int, float],
    block: frozenset[int],
    equations: list[tuple[Terms, float]],
    inequalities: list[tuple[Terms, float]],
) -> bool:
    """Whether only one whole number lies between the least and greatest value of ``objective``."""
    eqs = [e for e in equations if block.intersection(e[0])]
    ineqs = [e for e in inequalities if block.intersection(e[0])]
    if not eqs:
        return False  # nothing bounds the block from above
    if len(eqs) == 1 and not ineqs and len(block) >= 2:
        return False  # one total over several cells: each is free in [0, total]
    order = sorted(block)
    position = {k: j for j, k in enumerate(order)}

    def matrix(rows: list[tuple[Terms, float]]) -> tuple[np.ndarray, np.ndarray]:
        a = np.zeros((len(rows), len(order)))
        for i, (terms, _) in enumerate(rows):
            for k, coef in terms.items():
                a[i, position[k]] = coef
        return a, np.array([b for _, b in rows])

    a_eq, b_eq = matrix(eqs)
    a_ub, b_ub = matrix(ineqs) if ineqs else (None, None)
    c = np.zeros(len(order))
    for k, coef in objective.items():
        c[position[k]] = coef
    bounds = []
    for sign in (1.0, -1.0):
        fit = linprog(
            sign * c, A_eq=a_eq, b_eq=b_eq, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs"
        )
        if fit.status != 0:
            return False  # unbounded (or numerically unsolved): not pinned by this reader
        bounds.append(sign * fit.fun)
    low, high = bounds
    return bool(np.floor(high + 1e-7) <= np.ceil(low - 1e-7))
