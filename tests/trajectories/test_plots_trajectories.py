"""Trajectory figures: drawn on the given Axes, returned, nothing saved, small clinics hidden."""

from __future__ import annotations

from itertools import pairwise

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from stepanalytics.errors import UsageError
from stepanalytics.plots.trajectories import (
    plot_spaghetti,
    plot_trajectory_by_clinic,
    plot_trajectory_by_phase,
)
from stepanalytics.trajectories import TrajectoryResult, fit_trajectory


@pytest.fixture(scope="module")
def fit(synth_cohort) -> TrajectoryResult:  # type: ignore[no-untyped-def]
    return fit_trajectory(synth_cohort, "odi", piecewise=True, compare="clinic")


def test_spaghetti_draws_a_sample_and_the_mean(fit: TrajectoryResult) -> None:
    _, ax = plt.subplots()
    returned = plot_spaghetti(fit, n_patients=12, seed=3, ax=ax)
    assert returned is ax
    # 12 patient lines + the mean line + the empty legend proxy
    assert len(ax.get_lines()) == 14
    assert len(ax.collections) == 1  # the confidence band
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["mean (95% CI)", "12 patients"]
    assert "lower is better" in ax.get_ylabel()


def test_spaghetti_of_fitted_curves(fit: TrajectoryResult) -> None:
    ax = plot_spaghetti(fit, n_patients=5, show="fitted")
    assert len(ax.get_lines()) == 7
    with pytest.raises(UsageError):
        plot_spaghetti(fit, show="raw")


def test_by_phase_draws_one_segment_per_phase(fit: TrajectoryResult) -> None:
    ax = plot_trajectory_by_phase(fit)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["1 foundation", "2 building", "3 independence", "4 maintenance"]
    # segments join: each starts where the previous ended
    lines = [line for line in ax.get_lines() if line.get_label() in labels]
    for before, after in pairwise(lines):
        assert before.get_xdata()[-1] == after.get_xdata()[0]


def test_by_clinic_hides_small_clinics(fit: TrajectoryResult) -> None:
    sizes = fit.design.frame.drop_duplicates("patient_id")["clinic_id"].value_counts()
    threshold = int(sizes.min())  # the smallest clinic falls under the rule
    ax = plot_trajectory_by_clinic(fit, threshold=threshold)
    drawn = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(drawn) == sorted(sizes[sizes > threshold].index)
    assert any(
        f"1 level(s) with 1-{threshold} patients not shown" in t.get_text() for t in ax.texts
    )
    everyone = plot_trajectory_by_clinic(fit, threshold=None)
    assert len(everyone.get_legend().get_texts()) == len(sizes)
    assert not everyone.texts
    assert np.isfinite(ax.get_ylim()).all()
