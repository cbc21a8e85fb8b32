"""The QI figures draw, return their Axes and respect the small-cell rule."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.axes import Axes

from stepanalytics.plots.qi import (
    plot_adherence,
    plot_caterpillar,
    plot_completeness,
    plot_control_chart,
    plot_funnel,
)
from stepanalytics.qi.adherence import protocol_adherence
from stepanalytics.qi.completeness import completeness_funnel
from stepanalytics.qi.funnel import funnel_compare
from stepanalytics.qi.shrinkage import shrink_estimates
from stepanalytics.qi.spc import control_chart


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_funnel_hides_small_clinics_unless_asked():
    df = pd.DataFrame(
        {
            "clinic_id": list("ABCDE"),
            "n": [50, 80, 120, 60, 8],
            "share": [0.4, 0.45, 0.42, 0.3, 0.5],
        }
    )
    res = funnel_compare(df, estimate="share", precision="n", kind="proportion")
    ax = plot_funnel(res)
    assert isinstance(ax, Axes)
    # E (n = 8) is left out, and so is A: with the pooled target line and the other
    # dots, one missing clinic would be the total minus the others (A has the smallest n).
    drawn = ax.collections[0].get_offsets()[:, 0].tolist()
    assert drawn == [80.0, 120.0, 60.0]
    _, ax2 = plt.subplots()
    assert plot_funnel(res, ax=ax2, threshold=None) is ax2
    assert len(ax2.collections[0].get_offsets()) == 5


def test_caterpillar_and_control_chart_return_axes():
    df = pd.DataFrame({"clinic_id": list("ABCD"), "y": [0.1, 0.3, 0.2, 0.5], "v": [0.01] * 4})
    ax = plot_caterpillar(shrink_estimates(df, estimate="y", variance="v"), threshold=None)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "C", "B", "D"]
    series = pd.DataFrame({"x": [5, 7, 6, 8, 6, 7, 15, 6, 7, 6, 5, 7]})
    ax = plot_control_chart(control_chart(series, chart="i", value="x"))
    assert isinstance(ax, Axes)
    assert len(ax.collections[0].get_offsets()) == 1  # the point at 15 is a signal


def test_completeness_and_adherence_plots(handmade_cohort):
    ax = plot_completeness(
        completeness_funnel(handmade_cohort, instruments=["odi"]), instrument="odi"
    )
    assert len(ax.get_lines()) == 2  # one line per clinic
    ax = plot_adherence(protocol_adherence(handmade_cohort), threshold=None)
    assert len(ax.patches) == 6  # 2 clinics x 3 measures
    with pytest.raises(ValueError, match="gad7"):
        plot_completeness(
            completeness_funnel(handmade_cohort, instruments=["odi"]), instrument="gad7"
        )
