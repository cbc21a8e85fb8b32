"""Cumulative incidence (Aalen-Johansen) against R survival and cmprsk.

R (reference/survival_reference.R):
    survfit(Surv(etime, factor(event, 0:2, c("censor", "pcm", "death"))) ~ 1, data = mgus2)
    cuminc(etime, event, cencode = 0); timepoints(ci, c(120, 240, 360))
and, on the synthetic stays, phase 1 first stays:
    survfit(Surv(duration_days, factor(outcome)) ~ 1); cuminc(duration_days, outcome)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression import (
    build_stays,
    cumulative_incidence,
    kaplan_meier,
    phase_exit_incidence,
)

PROB_TOL = 1e-6


def _wide(table: pd.DataFrame, value: str) -> pd.DataFrame:
    return table.pivot(index="time", columns="outcome", values=value)


def test_mgus2_curve_matches_survfit(mgus2: pd.DataFrame, ref: Any) -> None:
    fit = cumulative_incidence(mgus2, duration="etime", outcome="outcome")
    expected = ref.csv("reference_cif_mgus2_curve.csv")
    estimate, se = _wide(fit.table, "estimate"), _wide(fit.table, "std_error")
    np.testing.assert_array_equal(estimate.index, expected["time"])
    for ours, theirs in (("in_phase", "(s0)"), ("pcm", "pcm"), ("death", "death")):
        np.testing.assert_allclose(estimate[ours], expected[f"p_{theirs}"], atol=PROB_TOL, rtol=0)
        np.testing.assert_allclose(se[ours], expected[f"se_{theirs}"], atol=PROB_TOL, rtol=0)


def test_mgus2_at_times_match_survfit_and_domain_notes(mgus2: pd.DataFrame, ref: Any) -> None:
    expected = ref.json("reference_cif_mgus2.json")
    fit = cumulative_incidence(mgus2, duration="etime", outcome="outcome", at=expected["times"])
    states = expected["states"]  # ["(s0)", "pcm", "death"]
    at = fit.at_times
    for column, label in enumerate(states):
        ours = at[at["outcome"] == ("in_phase" if label == "(s0)" else label)]
        for mine, theirs in (("estimate", "pstate"), ("std_error", "std_err"),
                             ("ci_lower", "lower"), ("ci_upper", "upper")):  # fmt: skip
            r_values = [row[column] for row in expected[theirs]]
            np.testing.assert_allclose(ours[mine], r_values, atol=PROB_TOL, rtol=0)
    # The published figures quoted in the project's domain notes.
    pcm = at[at["outcome"] == "pcm"]["estimate"].round(4).tolist()
    assert pcm == [0.0637, 0.0998, 0.1340]


def test_mgus2_by_sex_matches_survfit(mgus2: pd.DataFrame, ref: Any) -> None:
    expected = ref.json("reference_cif_mgus2.json")["by_sex"]
    fit = cumulative_incidence(mgus2, duration="etime", outcome="outcome", by="sex",
                               at=[120, 240, 360])  # fmt: skip
    at = fit.at_times
    for row, (stratum, time) in enumerate(zip(expected["strata"], expected["time"], strict=True)):
        group = stratum.split("=")[1]
        here = at[(at["group"] == group) & (at["time"] == time)].set_index("outcome")
        values = here.loc[["in_phase", "pcm", "death"]]
        np.testing.assert_allclose(values["estimate"], expected["pstate"][row], atol=PROB_TOL)
        np.testing.assert_allclose(values["std_error"], expected["std_err"][row], atol=PROB_TOL)


def test_aalen_variance_matches_cuminc(mgus2: pd.DataFrame, ref: Any) -> None:
    expected = ref.json("reference_cif_mgus2.json")
    fit = cumulative_incidence(mgus2, duration="etime", outcome="outcome",
                               at=expected["times"], variance="aalen")  # fmt: skip
    at = fit.at_times
    for row, label in enumerate(["pcm", "death"]):
        ours = at[at["outcome"] == label]
        np.testing.assert_allclose(ours["estimate"], expected["cuminc_est"][row], atol=PROB_TOL)
        np.testing.assert_allclose(ours["std_error"] ** 2, expected["cuminc_var"][row],
                                   rtol=1e-9, atol=0)  # fmt: skip


def test_synthetic_phase_matches_survfit_and_cuminc(ref: Any) -> None:
    stays = ref.csv("synthetic_stays.csv")
    fit = phase_exit_incidence(stays, phase=1)
    expected = ref.csv("reference_synthetic_cif_phase1.csv")
    estimate, se = _wide(fit.table, "estimate"), _wide(fit.table, "std_error")
    np.testing.assert_array_equal(estimate.index, expected["time"])
    for ours, theirs in (("in_phase", "(s0)"), ("progressed", "progressed"),
                         ("dropped_out", "dropped_out")):  # fmt: skip
        np.testing.assert_allclose(estimate[ours], expected[f"p_{theirs}"], atol=PROB_TOL, rtol=0)
        np.testing.assert_allclose(se[ours], expected[f"se_{theirs}"], atol=PROB_TOL, rtol=0)
    r_ci = ref.json("reference_synthetic.json")["cif_phase1"]
    aalen = phase_exit_incidence(stays, phase=1, variance="aalen", at=r_ci["times"]).at_times
    for row, name in enumerate(r_ci["cuminc_names"]):
        ours = aalen[aalen["outcome"] == name.split(" ", 1)[1]]
        np.testing.assert_allclose(ours["estimate"], r_ci["cuminc_est"][row], atol=PROB_TOL)
        np.testing.assert_allclose(ours["std_error"] ** 2, r_ci["cuminc_var"][row], rtol=1e-9)


def test_one_outcome_is_one_minus_kaplan_meier(rossi: pd.DataFrame) -> None:
    """With a single kind of event, the incidence is 1 - KM and 'still in' is KM itself."""
    frame = rossi.assign(outcome=np.where(rossi["arrest"] == 1, "arrest", "censored"))
    cif = cumulative_incidence(frame, duration="week", outcome="outcome")
    km = kaplan_meier(frame, duration="week", event="arrest")
    wide = _wide(cif.table, "estimate")
    np.testing.assert_allclose(wide["arrest"], 1 - km.table["estimate"], atol=1e-12)
    np.testing.assert_allclose(wide["in_phase"], km.table["estimate"], atol=1e-12)


def test_outcomes_add_up_to_one_and_nothing_is_random(synthetic_cohort: object) -> None:
    stays = build_stays(synthetic_cohort)
    first = phase_exit_incidence(stays, phase=2, by="protocol")
    again = phase_exit_incidence(stays, phase=2, by="protocol")
    pd.testing.assert_frame_equal(first.table, again.table)
    totals = first.table.groupby(["group", "time"])["estimate"].sum()
    np.testing.assert_allclose(totals, 1.0, atol=1e-12)


def test_all_entries_cluster_by_patient(synthetic_cohort: object) -> None:
    """Pooling re-entries: a patient's episodes are one cluster (R survfit(..., id=))."""
    stays = build_stays(synthetic_cohort)
    pooled = phase_exit_incidence(stays, phase=2, entry="all")
    rows = stays[stays["phase"] == 2]
    assert pooled.events["n"].iat[0] == len(rows)
    assert rows["patient_id"].duplicated().any()


def test_no_outcome_at_all_is_refused() -> None:
    frame = pd.DataFrame({"t": [1, 2], "what": ["censored", "censored"]})
    with pytest.raises(AnalysisError, match="no outcome happened"):
        cumulative_incidence(frame, duration="t", outcome="what")
    with pytest.raises(UsageError, match="variance"):
        cumulative_incidence(frame, duration="t", outcome="what", variance="greenwood")
