"""Gray's K-sample test against cmprsk::cuminc(...)$Tests (reference/gray_breslow_reference.R).

R, per case (ftime, fstatus, group[, strata], rho, cencode = "censored"):
    mgus2: etime / (pcm, death) by sex (rho 0, 1, -0.5; strata age >= 70) and by
           3 age groups (strata sex, rho 1);
    synthetic stays, phase 1 first stays: progressed / dropped_out by clinic (strata
           compensation_claim; clinics nested in protocols: singular), by sex (rho 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.progression import cumulative_incidence, gray_test, phase_exit_incidence

RTOL = 1e-6

MGUS2 = {
    "mgus2_sex": ("sex", None, 0.0),
    "mgus2_sex_rho1": ("sex", None, 1.0),
    "mgus2_sex_rho_neg": ("sex", None, -0.5),
    "mgus2_sex_strata": ("sex", "old", 0.0),
    "mgus2_age3": ("age_group", None, 0.0),
    "mgus2_age3_strata_rho1": ("age_group", "sex", 1.0),
}
SYNTHETIC = {
    "synthetic_clinic": ("clinic_id", None, 0.0),
    "synthetic_clinic_strata": ("clinic_id", "compensation_claim", 0.0),
    "synthetic_sex_rho1": ("sex", None, 1.0),
}


@pytest.fixture(scope="module")
def mgus2_groups(mgus2: pd.DataFrame) -> pd.DataFrame:
    bands = pd.cut(mgus2["age"], [0, 65, 75, np.inf], labels=["a<65", "b65-75", "c>75"])
    return mgus2.assign(age_group=bands.astype(str), old=np.where(mgus2["age"] >= 70, "70+", "<70"))


@pytest.fixture(scope="module")
def phase1(ref: Any) -> pd.DataFrame:
    stays = ref.csv("synthetic_stays.csv")
    return stays[(stays["phase"] == 1) & (stays["entry"] == "first")].reset_index(drop=True)


def _compare(table: pd.DataFrame, expected: dict[str, Any]) -> None:
    assert table["outcome"].tolist() == expected["cause"]
    np.testing.assert_allclose(table["statistic"], expected["stat"], rtol=RTOL)
    np.testing.assert_array_equal(table["df"], expected["df"])
    # R computes 1 - pchisq(), which is 0 below about 1e-16; we keep the tail.
    tiny = np.array(expected["pv"]) == 0
    assert (table["p_value"].to_numpy()[tiny] < 1e-15).all()
    np.testing.assert_allclose(table["p_value"][~tiny], np.array(expected["pv"])[~tiny], rtol=RTOL)


@pytest.mark.parametrize("case", sorted(MGUS2))
def test_mgus2_matches_cuminc(case: str, mgus2_groups: pd.DataFrame, ref: Any) -> None:
    group, strata, rho = MGUS2[case]
    test = gray_test(mgus2_groups, duration="etime", outcome="outcome", group=group,
                     strata=strata, rho=rho)  # fmt: skip
    _compare(test.table, ref.json("reference_gray.json")[case])
    assert not test.warnings


@pytest.mark.parametrize("case", sorted(SYNTHETIC))
def test_synthetic_stays_match_cuminc(case: str, phase1: pd.DataFrame, ref: Any) -> None:
    group, strata, rho = SYNTHETIC[case]
    fit = cumulative_incidence(phase1, duration="duration_days", outcome="outcome", by=group,
                               strata=strata, rho=rho)  # fmt: skip
    _compare(fit.tests, ref.json("reference_gray.json")[case])
    assert "Gray's test" in fit.summary()


def test_phase_exit_incidence_by_clinic(ref: Any) -> None:
    stays = ref.csv("synthetic_stays.csv")
    fit = phase_exit_incidence(stays, phase=1, by="clinic_id")
    _compare(fit.tests, ref.json("reference_gray.json")["synthetic_clinic"])


def test_nested_groups_give_nan_and_a_warning(phase1: pd.DataFrame, ref: Any) -> None:
    """cmprsk reports stat = -1 when clinics are nested in the strata (singular covariance)."""
    assert ref.json("reference_gray.json")["synthetic_clinic_nested"]["stat"] == [-1, -1]
    test = gray_test(phase1, duration="duration_days", outcome="outcome", group="clinic_id",
                     strata="protocol")  # fmt: skip
    assert test.table["statistic"].isna().all()
    assert test.table["p_value"].isna().all()
    assert any("singular" in w for w in test.warnings)


def test_invariant_to_row_order_and_group_labels(mgus2_groups: pd.DataFrame) -> None:
    base = gray_test(mgus2_groups, duration="etime", outcome="outcome", group="age_group")
    shuffled = mgus2_groups.sample(frac=1.0, random_state=3)
    shuffled = shuffled.assign(age_group=shuffled["age_group"].map(
        {"a<65": "z", "b65-75": "m", "c>75": "a"}))  # fmt: skip
    other = gray_test(shuffled, duration="etime", outcome="outcome", group="age_group")
    np.testing.assert_allclose(other.table["statistic"], base.table["statistic"], rtol=1e-10)


def test_one_stratum_per_row_set_equals_unstratified(mgus2_groups: pd.DataFrame) -> None:
    plain = gray_test(mgus2_groups, duration="etime", outcome="outcome", group="sex")
    one = gray_test(mgus2_groups.assign(s="all"), duration="etime", outcome="outcome",
                    group="sex", strata="s")  # fmt: skip
    np.testing.assert_allclose(one.table["statistic"], plain.table["statistic"], rtol=1e-12)


def test_bad_input_is_refused(mgus2_groups: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="two or more groups"):
        gray_test(mgus2_groups.assign(g="x"), duration="etime", outcome="outcome", group="g")
    holed = mgus2_groups.copy()
    holed.loc[holed.index[:3], "sex"] = None
    with pytest.raises(AnalysisError, match="no value in 'sex'"):
        gray_test(holed, duration="etime", outcome="outcome", group="sex")
    with pytest.raises(UsageError, match="give by="):
        cumulative_incidence(mgus2_groups, duration="etime", outcome="outcome", strata="sex")
