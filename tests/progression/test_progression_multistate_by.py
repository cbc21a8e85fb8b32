"""Multi-state model compared across groups (fit_multistate(by=)) against R survival.

R (reference/multistate_by_reference.R), rows from make_multistate_by.py:
    survfit(Surv(tstart, tstop, to) ~ g, data = msm, id = patient_id, istate = from,
            influence = TRUE)
    summary(fit, rmean = 365)$table[, c("rmean", "se(rmean)")]
    summary(fit, times = c(0, 90, 180, 365), extend = TRUE)
for g = clinic_id, protocol and compensation_claim.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression import MultiStateModel, fit_multistate

PROB_TOL = 1e-8  # probabilities, absolute
SE_TOL = 1e-6  # IJ standard errors, absolute
DAYS_TOL = 1e-6  # expected days in a state, absolute
GROUPINGS = ["clinic_id", "protocol", "compensation_claim"]


@pytest.fixture(scope="module")
def rows(ref: Any) -> pd.DataFrame:
    frame = ref.csv("synthetic_msm_by.csv")
    frame["to_state"] = frame["to_state"].where(frame["to_state"] != "censored", None)
    # R reads the claim as the words True/False; here it stays a boolean column.
    assert frame["compensation_claim"].dtype == bool
    return frame


@pytest.fixture(scope="module")
def models(rows: pd.DataFrame) -> dict[str, MultiStateModel]:
    return {by: fit_multistate(rows, by=by, n_boot=0, horizon=365, at=[0, 90, 180, 365])
            for by in GROUPINGS}  # fmt: skip


@pytest.mark.parametrize("by", GROUPINGS)
def test_occupation_curves_match_survfit_per_group(
    by: str, models: dict[str, MultiStateModel], ref: Any
) -> None:
    model = models[by]
    expected = ref.csv(f"reference_msm_by_{by}_curve.csv", dtype={"group": str})
    table = model.table.assign(group=model.table["group"].astype(str))
    assert sorted(table["group"].unique()) == sorted(expected["group"].unique())
    for group, theirs in expected.groupby("group"):
        ours = table[table["group"] == group]
        estimate = ours.pivot(index="time", columns="state", values="estimate")
        se = ours.pivot(index="time", columns="state", values="std_error")
        np.testing.assert_array_equal(estimate.index, theirs["time"])
        for state in model.states:
            p, s = theirs[f"p_{state}"].to_numpy(), theirs[f"se_{state}"].to_numpy()
            np.testing.assert_allclose(estimate[state], p, atol=PROB_TOL, rtol=0)
            np.testing.assert_allclose(se[state], s, atol=SE_TOL, rtol=0)


@pytest.mark.parametrize("by", GROUPINGS)
def test_expected_days_and_se_match_survfit_rmean(
    by: str, models: dict[str, MultiStateModel], ref: Any
) -> None:
    expected = ref.json("reference_msm_by.json")[by]["rmean"]
    days = models[by].time_in_state
    days = days.assign(key="g=" + days["group"].astype(str) + ", " + days["state"])
    ours = days.set_index("key").loc[expected["row"]]
    np.testing.assert_allclose(ours["estimate"], expected["rmean"], atol=DAYS_TOL, rtol=0)
    np.testing.assert_allclose(ours["std_error"], expected["se"], atol=SE_TOL, rtol=0)
    # Every group's days add up to the horizon.
    np.testing.assert_allclose(days.groupby("group")["estimate"].sum(), 365.0, rtol=1e-12)


@pytest.mark.parametrize("by", GROUPINGS)
def test_occupation_at_days_matches_summary_times(
    by: str, models: dict[str, MultiStateModel], ref: Any
) -> None:
    expected = ref.json("reference_msm_by.json")[by]
    r_states = expected["states"]
    at = models[by].at_times
    assert list(at.columns[:3]) == ["group", "day", "state"]
    at = at.assign(group=at["group"].astype(str)).set_index(["group", "day", "state"])
    theirs = expected["at"]
    for row, (group, day) in enumerate(zip(theirs["group"], theirs["time"], strict=True)):
        ours = at.loc[(group, day)].loc[r_states]
        np.testing.assert_allclose(ours["estimate"], theirs["pstate"][row], atol=PROB_TOL)
        np.testing.assert_allclose(ours["std_error"], theirs["std_err"][row], atol=SE_TOL)


def test_each_group_equals_a_fit_on_that_group_alone(
    rows: pd.DataFrame, models: dict[str, MultiStateModel]
) -> None:
    grouped = models["protocol"]
    alone = fit_multistate(rows[rows["protocol"] == "accelerated"], n_boot=0, horizon=365)
    part = grouped.table[grouped.table["group"] == "accelerated"].drop(columns="group")
    pd.testing.assert_frame_equal(part.reset_index(drop=True), alone.table)
    hazards = grouped.hazards[grouped.hazards["group"] == "accelerated"].drop(columns="group")
    pd.testing.assert_frame_equal(hazards.reset_index(drop=True), alone.hazards)
    assert set(grouped.model) == {"accelerated", "default"}
    assert grouped.by == "protocol" and grouped.groups == ["accelerated", "default"]
    counts = grouped.transitions.groupby("group")["n"].sum()
    moved = rows.dropna(subset=["to_state"]).groupby("protocol").size()
    pd.testing.assert_series_equal(counts, moved, check_names=False)


def test_small_group_is_named_in_a_warning(models: dict[str, MultiStateModel]) -> None:
    """Clinic C03 has 7 patients; C04 has 145 and is not named."""
    warnings = models["clinic_id"].warnings
    few = "clinic_id = C03: too few patients leave some states in this group (7 patients; "
    small = [w for w in warnings if w.startswith(few)]
    assert len(small) == 1
    assert "phase 3 (4), phase 4 (4), paused (1)" in small[0] and "pool" in small[0]
    assert "phase 2" not in small[0]  # 7 moves out of phase 2
    assert not any(w.startswith("clinic_id = C04: too few") for w in warnings)
    assert "clinic_id = C03" in models["clinic_id"].summary()


def test_a_state_nobody_left_is_flagged() -> None:
    rows = pd.DataFrame({
        "patient_id": list("abcdef"), "tstart": 0.0, "tstop": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
        "from_state": "well", "to_state": ["ill", "ill", "ill", None, None, None],
        "site": ["x", "x", "x", "y", "y", "y"],
    })  # fmt: skip
    model = fit_multistate(rows, by="site", n_boot=0, horizon=3)
    flagged = [w for w in model.warnings if w.startswith("site = y:")]
    assert any("well (0)" in w and "for good" in w for w in flagged)
    days = model.time_in_state.set_index(["group", "state"])["estimate"]
    assert days[("y", "well")] == 3.0  # nobody left: all three days in 'well'
    assert days[("x", "well")] == pytest.approx(2.0)  # by hand: 1 + 2/3 + 1/3


def test_bootstrap_per_group_is_seeded(synthetic_cohort: Any) -> None:
    first = fit_multistate(synthetic_cohort, by="protocol", n_boot=30, seed=5, horizon=200)
    again = fit_multistate(synthetic_cohort, by="protocol", n_boot=30, seed=5, horizon=200)
    pd.testing.assert_frame_equal(first.time_in_state, again.time_in_state)
    days = first.time_in_state
    assert (days["boot_lower"] <= days["estimate"] + 1e-9).all()
    assert (days["estimate"] <= days["boot_upper"] + 1e-9).all()
    assert (days["ci_lower"] >= 0).all() and (days["ci_upper"] <= 200).all()


def test_bad_group_columns_are_refused(rows: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match="'site' is not in the rows"):
        fit_multistate(rows, by="site", n_boot=0)
    holed = rows.assign(clinic_id=rows["clinic_id"].where(rows.index != 3))
    with pytest.raises(AnalysisError, match="1 patients have no value in 'clinic_id'"):
        fit_multistate(holed, by="clinic_id", n_boot=0)
    moving = rows.assign(clinic_id=np.where(rows.index % 2 == 0, "C01", "C02"))
    with pytest.raises(AnalysisError, match="change 'clinic_id' during follow-up"):
        fit_multistate(moving, by="clinic_id", n_boot=0)
