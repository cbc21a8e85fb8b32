"""Empirical-Bayes estimates against metafor on the BCG trials (dat.bcg)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.qi.shrinkage import shrink_estimates, tau2_dersimonian_laird, tau2_reml


@pytest.mark.parametrize("method", ["DL", "REML"])
def test_blup_matches_metafor(reference, method):
    """R: blup(rma(yi, vi, method = method, control = list(threshold = 1e-12)))."""
    data = pd.read_csv(reference / "bcg.csv")
    ref = pd.read_csv(reference / "bcg_blup.csv")
    ref = ref[ref["method"] == method].set_index("clinic_id")
    res = shrink_estimates(data, estimate="yi", variance="vi", method=method)
    got = res.table.set_index("clinic_id").loc[ref.index]
    assert res.tau2 == pytest.approx(ref["tau2"].iloc[0], rel=1e-7)
    assert res.mu == pytest.approx(ref["mu"].iloc[0], rel=1e-7)
    assert res.mu_se == pytest.approx(ref["mu_se"].iloc[0], rel=1e-7)
    # tau^2 is found numerically by both programs: agree to 1e-7 in absolute terms.
    np.testing.assert_allclose(got["shrunken"], ref["pred"], atol=1e-7)
    np.testing.assert_allclose(got["shrunken_se"], ref["se"], atol=1e-7)
    np.testing.assert_allclose(got["ci_lower"], ref["pi_lb"], atol=1e-7)
    np.testing.assert_allclose(got["ci_upper"], ref["pi_ub"], atol=1e-7)


def test_shrinkage_pulls_small_clinics_more():
    df = pd.DataFrame(
        {
            "clinic_id": list("ABCDE"),
            "y": [0.2, 0.8, 0.5, 0.45, 0.55],
            "v": [0.001, 0.05, 0.002, 0.002, 0.002],
        }
    )
    res = shrink_estimates(df, estimate="y", variance="v").table.set_index("clinic_id")
    moved = (res["estimate"] - res["shrunken"]).abs()
    assert moved["B"] > moved["A"]
    assert (res["weight"] > 0).all() and (res["weight"] < 1).all()


def test_no_between_clinic_variance_shrinks_everyone_to_the_mean():
    df = pd.DataFrame({"clinic_id": list("ABCD"), "y": [0.5, 0.51, 0.49, 0.5], "v": [0.01] * 4})
    assert tau2_dersimonian_laird(df["y"], df["v"]) == 0.0
    assert tau2_reml(df["y"], df["v"]) == 0.0
    res = shrink_estimates(df, estimate="y", variance="v")
    assert res.table["shrunken"].tolist() == pytest.approx([0.5] * 4)
    assert res.warnings


def test_input_errors():
    df = pd.DataFrame({"clinic_id": ["A", "B"], "y": [0.1, 0.2], "v": [0.01, 0.01]})
    with pytest.raises(AnalysisError, match="at least 3"):
        shrink_estimates(df, estimate="y", variance="v")
    with pytest.raises(UsageError, match="method"):
        shrink_estimates(df, estimate="y", variance="v", method="ML")  # type: ignore[arg-type]
