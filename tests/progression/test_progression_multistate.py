"""Multi-state model of the programme against R survival's multi-state survfit.

R (reference/survival_reference_synthetic.R), rows from make_synthetic.py:
    survfit(Surv(tstart, tstop, to) ~ 1, data = msm, id = patient_id, istate = from)
    summary(fit, rmean = 365)$table[, "rmean"];  fit$cumhaz
once with pauses as a state and once with pauses merged into the phase.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import AnalysisError
from stepanalytics.progression import (
    cumulative_incidence,
    fit_multistate,
    fit_transition_cox,
    kaplan_meier,
    restricted_mean,
)

PROB_TOL = 1e-6


def _rows(ref: Any, name: str) -> pd.DataFrame:
    rows = ref.csv(name)
    rows["to_state"] = rows["to_state"].where(rows["to_state"] != "censored", None)
    return rows


def _wide(model: Any, value: str) -> pd.DataFrame:
    return model.table.pivot(index="time", columns="state", values=value)


@pytest.mark.parametrize(("rows", "curve", "key"), [
    ("synthetic_msm.csv", "reference_synthetic_msm_curve.csv", "msm"),
    ("synthetic_msm_merged.csv", "reference_synthetic_msm_merged_curve.csv", "msm_merged"),
])  # fmt: skip
def test_state_occupation_matches_survfit(rows: str, curve: str, key: str, ref: Any) -> None:
    model = fit_multistate(_rows(ref, rows), n_boot=0, horizon=365)
    expected = ref.csv(curve)
    estimate, se = _wide(model, "estimate"), _wide(model, "std_error")
    np.testing.assert_array_equal(estimate.index, expected["time"])
    for state in model.states:
        np.testing.assert_allclose(estimate[state], expected[f"p_{state}"], atol=PROB_TOL, rtol=0)
        np.testing.assert_allclose(se[state], expected[f"se_{state}"], atol=PROB_TOL, rtol=0)
    r_mean = ref.json("reference_synthetic.json")[key]["rmean"]
    ours = model.time_in_state.set_index("state")["estimate"]
    np.testing.assert_allclose(ours[r_mean["states"]], r_mean["rmean"], rtol=1e-9)


def test_transition_hazards_match_survfit(ref: Any) -> None:
    model = fit_multistate(_rows(ref, "synthetic_msm.csv"), n_boot=0)
    states = ref.json("reference_synthetic.json")["msm"]["states"]  # R's (alphabetical) order
    expected = ref.csv("reference_synthetic_msm_cumhaz.csv", dtype={"transition": str})
    hazards = model.hazards
    checked = 0
    for transition, theirs in expected.groupby("transition", sort=False):
        src, dst = (states[int(i) - 1] for i in transition.split("."))
        ours = hazards[hazards["transition"] == f"{src} -> {dst}"]
        np.testing.assert_array_equal(ours["time"], theirs["time"])
        np.testing.assert_allclose(ours["cumulative_hazard"], theirs["cumhaz"], rtol=1e-9)
        checked += 1
    assert checked == len(model.transitions)


def test_two_states_reduce_to_kaplan_meier(rossi: pd.DataFrame) -> None:
    rows = pd.DataFrame({
        "patient_id": rossi["id"], "tstart": -1.0, "tstop": rossi["week"].astype(float),
        "from_state": "free", "to_state": np.where(rossi["arrest"] == 1, "arrested", None),
    })  # fmt: skip
    model = fit_multistate(rows, n_boot=0, horizon=52)
    km = kaplan_meier(rossi, duration="week", event="arrest")
    np.testing.assert_allclose(_wide(model, "estimate")["free"], km.table["estimate"], atol=1e-12)
    # The restricted mean in the first state is the area under the KM curve.
    steps = np.diff(np.r_[0.0, km.table["time"]])
    area = np.sum(steps * np.r_[1.0, km.table["estimate"][:-1]])
    assert model.time_in_state.set_index("state").loc["free", "estimate"] == pytest.approx(area)


def test_competing_risks_equal_cumulative_incidence(mgus2: pd.DataFrame) -> None:
    rows = pd.DataFrame({
        "patient_id": mgus2["id"], "tstart": -1.0, "tstop": mgus2["etime"].astype(float),
        "from_state": "s0",
        "to_state": mgus2["outcome"].where(mgus2["outcome"] != "censored", None),
    })  # fmt: skip
    model = fit_multistate(rows, n_boot=0, horizon=360)
    cif = cumulative_incidence(mgus2, duration="etime", outcome="outcome")
    cif_wide = cif.table.pivot(index="time", columns="outcome", values="estimate")
    cif_se = cif.table.pivot(index="time", columns="outcome", values="std_error")
    for state in ("pcm", "death"):
        np.testing.assert_allclose(_wide(model, "estimate")[state], cif_wide[state], atol=1e-12)
        np.testing.assert_allclose(_wide(model, "std_error")[state], cif_se[state], atol=1e-12)


def test_rmean_matches_survfit_on_mgus2(mgus2: pd.DataFrame, ref: Any) -> None:
    rows = pd.DataFrame({
        "patient_id": mgus2["id"], "tstart": -1.0, "tstop": mgus2["etime"].astype(float),
        "from_state": "(s0)",
        "to_state": mgus2["outcome"].where(mgus2["outcome"] != "censored", None),
    })  # fmt: skip
    model = fit_multistate(rows, n_boot=0, horizon=360)
    expected = ref.json("reference_cif_mgus2.json")
    ours = model.time_in_state.set_index("state")["estimate"]
    np.testing.assert_allclose(ours[expected["rmean_states"]], expected["rmean_360"], rtol=1e-9)


def test_restricted_mean_by_hand() -> None:
    """Everyone in state A until day 2, half move to B then: A 2 + 0.5 * 3 days in 5."""
    times = np.array([2.0, 9.0])
    pstate = np.array([[0.5, 0.5], [0.0, 1.0]])
    means = restricted_mean(times, pstate, np.array([1.0, 0.0]), 5.0)
    np.testing.assert_allclose(means, [3.5, 1.5])


def test_bootstrap_is_seeded_and_brackets_the_estimate(synthetic_cohort: Any) -> None:
    first = fit_multistate(synthetic_cohort, n_boot=60, seed=7, horizon=300)
    again = fit_multistate(synthetic_cohort, n_boot=60, seed=7, horizon=300)
    other = fit_multistate(synthetic_cohort, n_boot=60, seed=8, horizon=300)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert not np.allclose(first.table["boot_lower"], other.table["boot_lower"])
    table = first.table
    inside = (table["boot_lower"] <= table["estimate"] + 1e-12) & (
        table["estimate"] <= table["boot_upper"] + 1e-12
    )
    assert inside.mean() > 0.95
    days = first.time_in_state
    assert (days["boot_lower"] <= days["estimate"]).all()
    assert (days["estimate"] <= days["boot_upper"]).all()
    # Time in all states adds up to the horizon (occupation sums to 1 at every day).
    assert days["estimate"].sum() == pytest.approx(300.0)


def test_intervals_must_have_length() -> None:
    rows = pd.DataFrame({"patient_id": ["a"], "tstart": [3.0], "tstop": [3.0],
                         "from_state": ["phase 1"], "to_state": [None]})  # fmt: skip
    with pytest.raises(AnalysisError, match="positive length"):
        fit_multistate(rows, n_boot=0)


def test_transition_cox_matches_coxph(ref: Any) -> None:
    """coxph(Surv(tstart, tstop, to_state == "phase 2") ~ compensation_claim,
    data = subset(msm, from_state == "phase 1"), cluster = patient_id)"""
    expected = ref.json("reference_synthetic.json")["cox_transition"]
    fit = fit_transition_cox(
        _rows(ref, "synthetic_msm.csv"),
        transition=("phase 1", "phase 2"),
        covariates=["compensation_claim"],
    )
    assert fit.table["estimate"].iat[0] == pytest.approx(expected["coef"], rel=1e-4)
    assert fit.table["std_error"].iat[0] == pytest.approx(expected["robust_se"], rel=1e-4)
    assert fit.table["naive_std_error"].iat[0] == pytest.approx(expected["se"], rel=1e-4)
    assert fit.ph_test["chisq"].iat[0] == pytest.approx(expected["zph_chisq"][0], rel=1e-4)
    assert fit.n_events == expected["n_events"]
    with pytest.raises(AnalysisError, match="no transition"):
        fit_transition_cox(_rows(ref, "synthetic_msm.csv"), transition=("phase 1", "phase 4"),
                           covariates=["compensation_claim"])  # fmt: skip
