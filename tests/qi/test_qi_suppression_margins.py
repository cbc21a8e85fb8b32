"""Group-wise complementary suppression: no small count comes back from any published total.

Each protected table is attacked by the ``attack`` fixture (``conftest.disclosures``: linear
programming over the shown cells and the published totals, a method
independent of the module's row-space test).  The audit that prompted this
file: a clinic x phase table protected down each whole column could still
have a single hidden cell in one phase, given back exactly by that phase's
all-clinics total.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepanalytics.errors import UsageError
from stepanalytics.qi.suppression import protect_frame, small_cells, suppress_table

#: Clinic x phase stays: A has 3 in phase 1, B 4 in phase 2; everything else is large.
STAYS = pd.DataFrame(
    {
        "clinic_id": ["A", "A", "B", "B", "C", "C", "D", "D"],
        "phase": [1, 2, 1, 2, 1, 2, 1, 2],
        "stays": [3, 40, 25, 4, 30, 35, 50, 45],
    }
)


def test_a_phase_total_gives_back_a_single_hidden_cell_unless_protected_per_phase(attack):
    # Down the whole column the small cells hide each other, but phase 2 is left
    # with one hidden cell: the published phase total minus the shown cells gives it.
    whole_column = protect_frame(STAYS, counts=["stays"])
    hidden = whole_column.hidden["stays"].to_numpy()
    phase_2 = (STAYS["phase"] == 2).to_numpy()
    assert (hidden & phase_2).sum() == 1
    recovered = STAYS.loc[phase_2, "stays"].sum() - STAYS.loc[phase_2 & ~hidden, "stays"].sum()
    assert recovered == 4
    # Protected against the phase totals: no hidden count can be worked out.
    out = protect_frame(STAYS, counts=["stays"], margins=[("phase",)])
    assert attack(STAYS, out, counts=["stays"], margins=[("phase",)]) == []
    hidden = out.hidden["stays"].to_numpy()
    for phase in (1, 2):
        rows = (STAYS["phase"] == phase).to_numpy()
        assert hidden[rows].sum() >= 2
        assert STAYS.loc[rows & hidden, "stays"].sum() > 10
    assert out.totals(("phase",))["stays"].tolist() == [108, 124]


def test_two_way_margins_in_a_long_table(attack):
    margins = [("phase",), ("clinic_id",)]
    out = protect_frame(STAYS, counts=["stays"], margins=margins)
    assert attack(STAYS, out, counts=["stays"], margins=margins) == []
    # Every clinic with a hidden cell has two, so its total over phases hides nothing.
    hidden = out.hidden["stays"].to_numpy()
    per_clinic = pd.Series(hidden).groupby(STAYS["clinic_id"].to_numpy()).sum()
    assert set(per_clinic.unique()) <= {0, 2}


def test_hidden_cells_of_a_group_may_not_add_up_to_a_small_count(attack):
    # Phase 1 holds two small cells, 2 and 3: hiding both protects each from the
    # other, but total minus shown gives 5, itself a small count, so a third goes.
    frame = pd.DataFrame({"clinic_id": list("ABCD"), "phase": 1, "events": [2, 3, 40, 25]})
    out = protect_frame(frame, counts=["events"], margins=[("phase",)])
    assert out.hidden["events"].tolist() == [True, True, False, True]  # 25: the smallest
    assert attack(frame, out, counts=["events"], margins=[("phase",)]) == []


def test_a_small_total_is_withheld_and_so_is_what_shows_it():
    frame = pd.DataFrame(
        {
            "clinic_id": list("ABCABC"),
            "event": ["red_flag"] * 3 + ["flare_up"] * 3,
            "events": [1, 2, 0, 20, 30, 25],
        }
    )
    frame["centre"] = frame.groupby("event")["events"].transform("sum") / 100.0
    out = protect_frame(
        frame,
        counts=["events"],
        margins=[("event",)],
        group_values={"centre": ("event",)},
    )
    red = (frame["event"] == "red_flag").to_numpy()
    assert out.hidden.loc[red, "centre"].all() and not out.hidden.loc[~red, "centre"].any()
    totals = out.totals(("event",)).set_index("event")["events"]
    assert pd.isna(totals["red_flag"]) and totals["flare_up"] == 75
    assert out.to_display().loc[2, "events"] == 0  # zero is published


def test_a_withheld_clinic_total_needs_a_second_one(attack):
    # Clinic B has 10 stays in all (small): its total is withheld, but the grand
    # total minus the other clinics' totals would give it back, so a second
    # clinic total is withheld too.
    frame = pd.DataFrame(
        {
            "clinic_id": list("AABBCC"),
            "phase": [1, 2] * 3,
            "stays": [30, 25, 6, 4, 40, 35],
        }
    )
    margins = [("phase",), ("clinic_id",)]
    out = protect_frame(frame, counts=["stays"], margins=margins)
    clinic_totals = out.totals(("clinic_id",)).set_index("clinic_id")["stays"]
    assert int(clinic_totals.isna().sum()) == 2 and pd.isna(clinic_totals["B"])
    assert attack(frame, out, counts=["stays"], margins=margins) == []


def test_bounds_a_reader_knows_do_not_pin_a_hidden_count(attack):
    """Found by hypothesis: equations alone left C2's phase-2 count of 1 open, but
    its part of 11 in phase 4 was shown under a hidden whole (so that whole was at
    least 11), and with C2's total of 23 only 1 remained possible in phase 2."""
    frame = pd.DataFrame(
        {
            "clinic_id": np.repeat(["C0", "C1", "C2", "C3"], 4),
            "phase": np.tile([1, 2, 3, 4], 4),
            "n": [0, 1, 1, 0, 0, 1, 2, 11, 0, 1, 11, 11, 0, 0, 8, 1],
            "part": [0, 1, 1, 0, 0, 1, 1, 11, 0, 0, 10, 11, 0, 0, 8, 1],
        }
    )
    margins = [("phase",), ("clinic_id",)]
    out = protect_frame(frame, counts=["n", "part"], parts=[("part", "n")], margins=margins)
    hidden = out.hidden
    assert not (hidden["n"] & ~hidden["part"]).any()  # a part goes with its whole
    found = attack(frame, out, counts=["n", "part"], margins=margins, parts=[("part", "n")])
    assert found == []


def test_bad_margins_are_refused():
    with pytest.raises(UsageError, match="list of groupings"):
        protect_frame(STAYS, counts=["stays"], margins=("phase",))
    with pytest.raises(UsageError, match="not in the table"):
        protect_frame(STAYS, counts=["stays"], margins=[("period",)])
    with pytest.raises(UsageError, match="contradicts"):
        protect_frame(STAYS, counts=["stays"], margins=[("phase",)], totals=False)
    with pytest.raises(UsageError, match="not one of the margins"):
        protect_frame(STAYS, counts=["stays"], group_values={"stays": ("phase",)})
    with pytest.raises(UsageError, match="No totals by"):
        protect_frame(STAYS, counts=["stays"]).totals(("phase",))


tables = st.integers(3, 6).flatmap(
    lambda n_clinics: st.integers(2, 4).flatmap(
        lambda n_phases: st.lists(
            st.one_of(st.just(0), st.integers(1, 12), st.integers(11, 80)),
            min_size=n_clinics * n_phases,
            max_size=n_clinics * n_phases,
        ).map(
            lambda v: pd.DataFrame(
                {
                    "clinic_id": np.repeat([f"C{i}" for i in range(n_clinics)], n_phases),
                    "phase": np.tile(np.arange(1, n_phases + 1), n_clinics),
                    "n": v,
                }
            )
        )
    )
)


@settings(max_examples=40, deadline=None)
@given(tables, st.data())
def test_no_small_count_is_ever_disclosed(attack, frame, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    frame["part"] = rng.binomial(frame["n"].to_numpy(), rng.uniform(0.05, 0.95))
    margins = data.draw(st.sampled_from([[("phase",)], [("phase",), ("clinic_id",)], [()]]))
    out = protect_frame(
        frame,
        counts=["n", "part"],
        parts=[("part", "n")],
        margins=margins,
    )
    # Every small count, and every part with a small complement, is hidden ...
    hidden = out.hidden
    assert not (small_cells(frame["n"]) & ~hidden["n"]).any()
    assert not (small_cells(frame["part"]) & ~hidden["part"]).any()
    assert not (small_cells(frame["n"] - frame["part"]) & ~hidden["part"]).any()
    # ... and none of them can be worked out from what is shown.
    found = attack(frame, out, counts=["n", "part"], margins=margins, parts=[("part", "n")])
    assert found == []


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 5).flatmap(
        lambda r: st.integers(2, 5).flatmap(
            lambda c: st.lists(
                st.one_of(st.integers(0, 12), st.integers(11, 60)), min_size=r * c, max_size=r * c
            ).map(lambda v: np.array(v).reshape(r, c))
        )
    )
)
def test_two_way_tables_keep_every_hidden_line_total_above_the_threshold(matrix):
    counts = pd.DataFrame(matrix, index=[f"r{i}" for i in range(matrix.shape[0])])
    counts.columns = [f"c{j}" for j in range(matrix.shape[1])]
    result = suppress_table(counts)
    values = result.table.to_numpy(dtype=float, na_value=np.nan)
    full = np.zeros_like(values)
    full[:-1, :-1] = matrix
    full[:-1, -1] = matrix.sum(axis=1)
    full[-1, :-1] = matrix.sum(axis=0)
    full[-1, -1] = matrix.sum()
    hidden = result.hidden.to_numpy()
    for axis_values, axis_hidden in ((full, hidden), (full.T, hidden.T)):
        for line, mask in zip(axis_values, axis_hidden, strict=True):
            if mask[-1]:
                continue  # total not published
            assert not small_cells(line[:-1][mask[:-1]].sum())
