"""Small-cell suppression: primary, complementary, derived values, identifiers.

Recoverability is checked two ways: by the linear-algebra audit of the
module, and independently by graph search.  In a table with margins every
hidden cell lies in one row and one column equation, so hidden cells are the
edges of a bipartite graph (rows and columns as vertices), and a hidden cell
is fixed by the published values exactly when it lies on no cycle.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepanalytics.errors import UsageError
from stepanalytics.qi.suppression import (
    check_no_identifiers,
    protect_frame,
    recoverable_cells,
    small_cells,
    suppress_table,
)


def on_a_cycle(hidden: np.ndarray, cell: tuple[int, int]) -> bool:
    """Is ``cell`` on a cycle of hidden cells?  (BFS with the cell's edge removed.)"""
    edges = [(int(r), int(c)) for r, c in np.argwhere(hidden) if (r, c) != cell]
    neighbours: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for r, c in edges:
        neighbours.setdefault(("r", r), []).append(("c", c))
        neighbours.setdefault(("c", c), []).append(("r", r))
    start, goal = ("r", cell[0]), ("c", cell[1])
    seen, queue = {start}, deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            return True
        for nxt in neighbours.get(node, []):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return False


def bordered(counts: pd.DataFrame) -> np.ndarray:
    values = counts.to_numpy(dtype=float)
    out = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    out[:-1, :-1] = values
    out[:-1, -1] = values.sum(axis=1)
    out[-1, :-1] = values.sum(axis=0)
    out[-1, -1] = values.sum()
    return out


def test_threshold_rule():
    assert small_cells([0, 1, 5, 10, 11, 250]).tolist() == [False, True, True, True, False, False]
    assert small_cells([4, 5, 6], threshold=5).tolist() == [True, True, False]
    with pytest.raises(UsageError):
        small_cells([1], threshold=0)


def test_single_hidden_cell_is_recovered_from_its_row_total():
    """Clinic A, phase 1 = 3 could be read off as 23 - 20: the audit says so."""
    counts = pd.DataFrame({"p1": [3, 15, 20], "p2": [20, 30, 25]}, index=["A", "B", "C"])
    values = bordered(counts)
    hidden = np.zeros_like(values, dtype=bool)
    hidden[0, 0] = True
    assert recoverable_cells(values, hidden)[0, 0]
    assert not on_a_cycle(hidden, (0, 0))


def test_complementary_suppression_protects_the_recoverable_cell():
    counts = pd.DataFrame({"p1": [3, 15, 20], "p2": [20, 30, 25]}, index=["A", "B", "C"])
    result = suppress_table(counts)
    shown = result.to_display()
    assert shown.loc["A", "p1"] == "*"
    # Totals stay published; the cheapest rectangle through A/p1 hides
    # A/p2, B/p1 and B/p2 (B/p1 = 15 is the smallest non-zero partner).
    assert shown.loc["A", "total"] == "23" and shown.loc["total", "p1"] == "38"
    assert result.hidden.loc[["A", "B"], ["p1", "p2"]].to_numpy().all()
    values, hidden = bordered(counts), result.hidden.to_numpy()
    assert not recoverable_cells(values, hidden).any()
    assert all(on_a_cycle(hidden, (int(r), int(c))) for r, c in np.argwhere(hidden))
    # Published cells keep their values; hidden ones are <NA>.
    assert result.table.loc["C", "p2"] == 25
    assert pd.isna(result.table.loc["A", "p1"])


def test_small_margin_is_hidden_and_protected():
    counts = pd.DataFrame({"p1": [2, 30, 40], "p2": [3, 25, 35]}, index=["tiny", "B", "C"])
    result = suppress_table(counts)
    assert result.primary.loc["tiny", "total"]  # 5 patients in all: itself small
    assert not recoverable_cells(bordered(counts), result.hidden.to_numpy()).any()
    assert result.to_display().loc["tiny"].tolist() == ["*", "*", "*"]


def test_without_row_totals_a_second_cell_in_the_column_is_enough():
    counts = pd.DataFrame({"p1": [3, 15, 20, 0], "p2": [20, 30, 25, 40]}, index=list("ABCD"))
    result = suppress_table(counts, row_totals=False)
    assert "total" not in result.table.columns
    hidden = result.hidden
    assert hidden["p1"].tolist() == [True, True, False, False, False]  # 3 and 15, not the 0
    assert not hidden["p2"].any()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 5).flatmap(
        lambda r: st.integers(2, 5).flatmap(
            lambda c: st.lists(
                st.one_of(st.integers(0, 12), st.integers(11, 60)), min_size=r * c, max_size=r * c
            ).map(lambda v: np.array(v).reshape(r, c))
        )
    )
)
def test_no_hidden_cell_is_ever_recoverable(matrix):
    counts = pd.DataFrame(matrix, index=[f"r{i}" for i in range(matrix.shape[0])])
    counts.columns = [f"c{j}" for j in range(matrix.shape[1])]
    result = suppress_table(counts)
    values = bordered(counts)
    hidden = result.hidden.to_numpy()
    # Every small cell (margins included) is hidden ...
    assert not (small_cells(values) & ~hidden).any()
    # ... and no hidden cell can be worked out: not by algebra, not by graph search.
    assert not recoverable_cells(values, hidden).any()
    for r, c in np.argwhere(hidden):
        assert on_a_cycle(hidden, (int(r), int(c)))


def test_protect_frame_hides_counts_their_echoes_and_small_complements():
    frame = pd.DataFrame(
        {
            "clinic_id": ["A", "B", "C", "D"],
            "n": [6, 40, 55, 120],
            "responders": [5, 18, 47, 60],
        }
    )
    frame["share"] = frame["responders"] / frame["n"]
    frame["position"] = ["within", "within", "above 95%", "within"]
    out = protect_frame(
        frame,
        counts=["n", "responders"],
        derived={"share": ["responders", "n"]},
        parts=[("responders", "n")],
    )
    hidden = out.hidden.set_index(frame["clinic_id"])
    # A: n = 6 is small; C: 55 - 47 = 8 non-responders is small.
    assert hidden.loc["A", "n"] and hidden.loc["A", "responders"] and hidden.loc["C", "responders"]
    # n of A alone would come back from the column total: a second n is hidden, in a
    # row whose responders are hidden anyway (C), so no further row is lost.
    assert hidden["n"].tolist() == [True, False, True, False]
    # The hidden non-responders of A and C add up to 1 + 8 = 9, itself a small count
    # (total minus shown gives it): a third responders cell (B, 22 non-responders) goes.
    assert hidden["responders"].tolist() == [True, True, True, False]
    # share hides with either of its counts; the coarse position stays.
    assert hidden["share"].tolist() == [True, True, True, False]
    assert not hidden["position"].any()
    assert out.table["responders"].dtype == "Int64"
    assert out.notes and "1 to 10" in out.notes[0]
    assert out.to_display().loc[0, "n"] == "*"


def test_zero_counts_are_published():
    frame = pd.DataFrame({"clinic_id": ["A", "B", "C"], "events": [0, 25, 40]})
    out = protect_frame(frame, counts=["events"])
    assert not out.hidden.to_numpy().any()
    assert out.notes == ()


def test_identifiers_never_reach_a_committee_table():
    with pytest.raises(UsageError, match="patient_id"):
        check_no_identifiers(pd.DataFrame({"patient_id": ["P1"], "n": [1]}))
    with pytest.raises(UsageError, match="patient_id"):
        protect_frame(pd.DataFrame({"patient_id": ["P1"], "n": [1]}), counts=["n"])
    indexed = pd.DataFrame({"n": [1]}, index=pd.Index(["P1"], name="patient_id"))
    with pytest.raises(UsageError):
        check_no_identifiers(indexed)
    with pytest.raises(UsageError, match="not in the table"):
        protect_frame(pd.DataFrame({"n": [1]}), counts=["events"])
