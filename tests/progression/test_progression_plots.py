"""The progression figures draw from results and return their Axes."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from stepanalytics.errors import UsageError
from stepanalytics.plots.progression import (
    plot_cumulative_incidence,
    plot_state_occupation,
    plot_survival,
)
from stepanalytics.progression import (
    build_stays,
    fit_multistate,
    phase_exit_incidence,
    time_to_progression,
)

# Figures are closed after each test by the autouse fixture of tests/conftest.py.


def test_survival_plot_with_numbers_at_risk(synthetic_cohort: Any) -> None:
    fit = time_to_progression(build_stays(synthetic_cohort), phase=2, by="protocol")
    ax = plot_survival(fit, at_risk_times=[0, 50, 100, 150])
    assert len(ax.lines) == 2
    texts = [t.get_text() for t in ax.texts]
    assert "At risk" in texts
    n_accelerated = str(int(fit.medians.set_index("group").loc["accelerated", "n"]))
    assert n_accelerated in texts
    # Small numbers at risk are hidden by default, shown for analysts.
    assert "*" in texts
    shown = plot_survival(fit, at_risk_times=[0, 50, 100, 150], threshold=None)
    assert "*" not in [t.get_text() for t in shown.texts]


def test_stacked_incidence_fills_the_unit_interval(synthetic_cohort: Any) -> None:
    fit = phase_exit_incidence(build_stays(synthetic_cohort), phase=1)
    _, ax = plt.subplots()
    assert plot_cumulative_incidence(fit, ax=ax) is ax
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[-1] == "in phase"
    assert set(labels) == {"dropped out", "progressed", "in phase"}


def test_state_occupation_plot(synthetic_cohort: Any) -> None:
    model = fit_multistate(synthetic_cohort, n_boot=0)
    ax = plot_state_occupation(model, until=365)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:4] == ["phase 1", "phase 2", "phase 3", "phase 4"]
    assert ax.get_xlim() == (0.0, 365.0)


def test_state_occupation_plot_of_one_group(synthetic_cohort: Any) -> None:
    model = fit_multistate(synthetic_cohort, by="protocol", n_boot=0)
    ax = plot_state_occupation(model, group="accelerated", until=365)
    assert ax.get_title().endswith("protocol = accelerated")
    # The top of the stack is 1 wherever the group's curve is drawn.
    top = ax.collections[-1].get_paths()[0].vertices[:, 1]
    assert np.isclose(top.max(), 1.0)
    with pytest.raises(UsageError, match="pass group= one of accelerated, default"):
        plot_state_occupation(model)
    with pytest.raises(UsageError, match="needs a model fitted"):
        plot_state_occupation(fit_multistate(synthetic_cohort, n_boot=0), group="default")
