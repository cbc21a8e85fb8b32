"""Funnel limits and overdispersion against R (tests/qi/reference/make_reference.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.qi.funnel import (
    estimate_overdispersion,
    exact_quantile,
    funnel_compare,
    funnel_limits,
    null_standard_error,
    winsorise,
)


def test_exact_limits_match_spiegelhalter_formula_in_r(reference):
    """R: (r - (F(r) - p) / (F(r) - F(r - 1))) / rho with qbinom / qpois (Appendix A.1.1)."""
    ref = pd.read_csv(reference / "funnel_limits.csv")
    for (kind, target), block in ref.groupby(["kind", "target"]):
        for p, rows in block.groupby("p"):
            got = exact_quantile(p, rows["precision"], kind=kind, target=target)
            np.testing.assert_allclose(got, rows["limit"], rtol=1e-10, atol=1e-12)


def test_funnel_limits_clip_and_name_levels(reference):
    ref = pd.read_csv(reference / "funnel_limits.csv")
    rows = ref[(ref["kind"] == "proportion") & (ref["precision"] == 5)]
    lim = funnel_limits([5], kind="proportion", target=0.3)
    assert list(lim.columns) == ["precision", "lower_95", "upper_95", "lower_99_8", "upper_99_8"]
    # The interpolated 0.1% point is negative for n = 5: clipped to 0.
    assert rows.loc[rows["p"] == 0.001, "limit"].iloc[0] < 0
    assert lim["lower_99_8"].iloc[0] == 0.0
    expected = rows.loc[rows["p"] == 0.975, "limit"].iloc[0]
    assert lim["upper_95"].iloc[0] == pytest.approx(expected, rel=1e-12)


def test_exact_limits_approach_normal_limits_for_large_n():
    n = np.array([20000.0])
    exact = funnel_limits(n, kind="proportion", target=0.3)
    normal = funnel_limits(n, kind="proportion", target=0.3, exact=False)
    np.testing.assert_allclose(exact.to_numpy(), normal.to_numpy(), atol=2e-4)


def test_normal_limits_by_hand():
    """0.2 ± 1.959964 * sqrt(0.2 * 0.8 / 100) and the mean kind with sd = 10."""
    lim = funnel_limits([100], kind="proportion", target=0.2, exact=False)
    z = stats.norm.ppf(0.975)
    assert lim["upper_95"].iloc[0] == pytest.approx(0.2 + z * 0.04)
    mean = funnel_limits([25], kind="mean", target=5.0, sd=10.0)
    assert mean["upper_99_8"].iloc[0] == pytest.approx(5.0 + stats.norm.ppf(0.999) * 2.0)
    assert null_standard_error([4.0], kind="ratio", target=1.0)[0] == pytest.approx(0.5)
    with pytest.raises(UsageError, match="sd"):
        null_standard_error([4.0], kind="mean", target=1.0)


def test_overdispersion_matches_independent_r_code(reference):
    """phi, tau^2 (winsorised and raw) and the DL equivalence, from the R script."""
    units = pd.read_csv(reference / "overdispersion_units.csv")
    ref = pd.read_csv(reference / "overdispersion_reference.csv").iloc[0]
    share = units["events"] / units["n"]
    target = units["events"].sum() / units["n"].sum()
    assert target == pytest.approx(ref["target"], rel=1e-12)
    se = null_standard_error(units["n"], kind="proportion", target=target)
    od = estimate_overdispersion(share, se, target=target)
    assert od.phi == pytest.approx(ref["phi"], rel=1e-10)
    assert od.tau2 == pytest.approx(ref["tau2"], rel=1e-10)
    assert od.p_value == pytest.approx(ref["p_value"], rel=1e-8)
    raw = estimate_overdispersion(share, se, target=target, winsor=0)
    assert raw.phi == pytest.approx(ref["phi_raw"], rel=1e-10)
    # Without winsorising, Spiegelhalter's additive estimate is DerSimonian-Laird.
    assert raw.tau2 == pytest.approx(ref["tau2_metafor_dl"], rel=1e-10)


def test_winsorise_uses_type7_percentiles():
    x = np.arange(11.0)  # 10th / 90th percentiles are exactly 1 and 9
    assert winsorise(x).tolist() == [1.0, 1.0, *range(2, 9), 9.0, 9.0]


def test_compare_flags_outlier_and_widens_limits_when_overdispersed(reference):
    units = pd.read_csv(reference / "overdispersion_units.csv")
    units["share"] = units["events"] / units["n"]
    plain = funnel_compare(
        units, estimate="share", precision="n", kind="proportion", overdispersion="none"
    )
    additive = funnel_compare(units, estimate="share", precision="n", kind="proportion")
    ref = pd.read_csv(reference / "overdispersion_reference.csv").iloc[0]
    assert additive.overdispersion is not None
    assert additive.overdispersion.tau2 == pytest.approx(ref["tau2"], rel=1e-10)
    wider = additive.table["upper_95"] - additive.table["lower_95"]
    narrower = plain.table["upper_95"] - plain.table["lower_95"]
    assert (wider > narrower).all()
    # Adjusted limits: target ± z sqrt(s^2 + tau^2).
    row = additive.table.iloc[0]
    z = stats.norm.ppf(0.999)
    assert row["upper_99_8"] == pytest.approx(
        ref["target"] + z * np.sqrt(row["std_error"] ** 2 + ref["tau2"])
    )
    assert len(additive.outside(0.998)) <= len(plain.outside(0.998))
    assert "rank" not in additive.table.columns
    assert additive.table["clinic_id"].is_monotonic_increasing


def test_multiplicative_adjustment_and_ratio_kind():
    df = pd.DataFrame(
        {
            "clinic_id": list("ABCDEF"),
            "oe": [1.0, 1.4, 0.7, 1.1, 0.9, 2.2],
            "expected": [40.0, 35.0, 50.0, 20.0, 60.0, 30.0],
        }
    )
    res = funnel_compare(
        df,
        estimate="oe",
        precision="expected",
        kind="ratio",
        overdispersion="multiplicative",
        winsor=0,
    )
    assert res.target == 1.0
    assert res.overdispersion is not None
    phi = res.overdispersion.phi
    assert phi == pytest.approx(np.mean((df["oe"] - 1) ** 2 * df["expected"]))
    row = res.table.set_index("clinic_id").loc["F"]
    assert row["upper_95"] == pytest.approx(1 + stats.norm.ppf(0.975) * np.sqrt(phi / 30.0))


def test_errors_name_the_problem():
    df = pd.DataFrame({"clinic_id": ["A"], "y": [0.5], "n": [10]})
    with pytest.raises(UsageError, match="not found"):
        funnel_compare(df, estimate="share", precision="n", kind="proportion")
    with pytest.raises(UsageError, match="kind"):
        funnel_compare(df, estimate="y", precision="n", kind="rate")  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="at least 3"):
        estimate_overdispersion([0.1, 0.2], [0.1, 0.1], target=0.15)
    few = funnel_compare(df, estimate="y", precision="n", kind="proportion", target=0.4)
    assert any("Fewer than 3" in w for w in few.warnings)
