"""Control-chart options and input checks (behaviour, not reference values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import UsageError
from stepanalytics.qi.runs import anhoej_rules
from stepanalytics.qi.spc import control_chart, moving_range_sigma


def test_mr_chart_restarts_in_each_phase():
    data = pd.DataFrame({"x": [1.0, 2.0, 4.0, 10.0, 11.0, 13.0], "phase": ["a"] * 3 + ["b"] * 3})
    t = control_chart(data, chart="mr", value="x", phase="phase").table
    assert np.isnan(t["value"].iloc[0]) and np.isnan(t["value"].iloc[3])
    assert t["value"].tolist()[1:3] == [1.0, 2.0]
    assert t["cl"].tolist() == pytest.approx([1.5] * 3 + [1.5] * 3)


def test_frozen_i_chart_uses_only_the_baseline():
    data = pd.DataFrame({"x": [5.0, 6.0, 5.0, 6.0, 9.0, 9.5]})
    t = control_chart(data, chart="i", value="x", freeze=4).table
    assert t["cl"].iloc[-1] == pytest.approx(5.5)
    assert t["ucl"].iloc[0] == pytest.approx(5.5 + 3 * moving_range_sigma([5, 6, 5, 6]))
    assert t["sigma_signal"].tolist() == [False] * 4 + [True, True]


def test_run_chart_from_counts_and_period_sorting():
    data = pd.DataFrame(
        {"month": ["2025-03", "2025-01", "2025-02"], "k": [3, 1, 2], "n": [10, 10, 10]}
    )
    chart = control_chart(data, chart="run", count="k", denominator="n", period="month")
    assert chart.table["period"].tolist() == ["2025-01", "2025-02", "2025-03"]
    assert chart.table["value"].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert chart.table["cl"].iloc[0] == pytest.approx(0.2)
    assert np.isnan(chart.table["ucl"]).all()
    assert chart.warnings  # fewer than 10 points


def test_input_errors_name_the_fix():
    data = pd.DataFrame({"k": [3, 12], "n": [10, 10], "x": [1.0, 2.0], "phase": ["a", "b"]})
    with pytest.raises(UsageError, match="count <= denominator"):
        control_chart(data, chart="p", count="k", denominator="n")
    with pytest.raises(UsageError, match="needs count"):
        control_chart(data, chart="u", count="k")
    with pytest.raises(UsageError, match="not both"):
        control_chart(data, chart="i", value="x", phase="phase", freeze=2)
    with pytest.raises(UsageError, match="outside"):
        control_chart(data, chart="i", value="x", exclude=[5])
    with pytest.raises(UsageError, match="chart must be"):
        control_chart(data, chart="xbar", value="x")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not found"):
        control_chart(data, chart="i", value="y")


def test_runs_on_empty_or_constant_series():
    res = anhoej_rules([2.0, 2.0, 2.0], 2.0)
    assert (res.n_useful, res.signal) == (0, False)
    res = anhoej_rules([np.nan, 1.0, 3.0], 2.0)
    assert (res.n_obs, res.n_useful, res.n_crossings) == (2, 2, 1)
