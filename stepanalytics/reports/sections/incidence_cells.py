"""Which cumulative-incidence percentages a committee may see.

A percentage "moved up by week 4" times the episodes gives back the number
of patients who moved up by week 4: 0.8% of 250 episodes is 2 patients.
Protecting the total number of events is therefore not enough; every
published percentage is a count in disguise, and so is the difference of
two of them (patients who moved up between week 4 and week 8) and the
complement of their sum over the ways of leaving a phase (patients still in
the phase).  This module decides, for one phase, which percentages of the
time-to-event table are shown.

The rule, with S the small counts 1..threshold; for each way of leaving
(row) with ``episodes`` N and ``events`` E both shown, walking through the
reported weeks in order, the percentage p at week w (``c`` = events up to
week w, counted) is shown only when none of these is in S:

* ``c``, ``N - c`` (had the event / had not, by week w),
* ``E - c`` (had it after week w),
* ``c - c_prev``, where ``c_prev`` is the count at the last shown week (0 at
  the start): the patients between two shown weeks;
* the same four read off the estimate as a reader would: ``p N``,
  ``N - p N``, ``E - p N``, ``(p - p_prev) N`` (rounded).  With censoring
  the Aalen-Johansen estimate is not ``c / N``, and a reader cannot tell.

Then, for each week, when every way of leaving shows its percentage, the
patients still in the phase (or followed for less time), ``N - sum(c)`` and
``N (1 - sum(p))``, must not be in S either; else the percentage of the
smallest row is hidden too, and more, until the hidden ones and the
remainder add up to 0 or more than the threshold.  At the level of totals,
``N - sum(E)`` (episodes still going on at the extract) is treated the same
way.

Hiding a week never makes a small difference of the weeks left shown: the
difference across a hidden week is the sum of two differences each 0 or
above the threshold (an Aalen-Johansen curve rises by at least ``d / N`` at
each step of ``d`` events, so a zero count difference is a zero
percentage difference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd


def _small(value: float, threshold: int) -> bool:
    """A count (or a count read off a percentage, rounded) from 1 to ``threshold``."""
    rounded = int(np.floor(value + 0.5)) if np.isfinite(value) else 0
    return 1 <= rounded <= threshold


@dataclass(frozen=True)
class PhaseEvents:
    """Counts of one phase's first entries, for the privacy rule.

    Attributes
    ----------
    episodes : int
        First entries into the phase (N).
    events : dict
        Outcome -> events during follow-up (E), every way of leaving with at
        least one event.
    by_week : dict
        Outcome -> events up to each reported week (``c``), in week order.
    estimate : dict
        Outcome -> cumulative incidence at each reported week (fraction, as
        published).
    """

    episodes: int
    events: dict[str, int]
    by_week: dict[str, list[int]]
    estimate: dict[str, list[float]]


def count_phase_events(
    episodes: pd.DataFrame, outcomes: Sequence[str], days: Sequence[int]
) -> dict[str, list[int]]:
    """Events of each outcome up to each day (duration at most that day).

    Examples
    --------
    >>> frame = pd.DataFrame({"duration_days": [3, 10, 30], "outcome": ["a", "a", "b"]})
    >>> count_phase_events(frame, ["a", "b"], [7, 28])
    {'a': [1, 2], 'b': [0, 0]}
    """
    durations = episodes["duration_days"].to_numpy(dtype=float)
    out = {}
    for outcome in outcomes:
        mine = durations[(episodes["outcome"] == outcome).to_numpy()]
        out[outcome] = [int((mine <= day).sum()) for day in days]
    return out


def shown_percentages(
    phase: PhaseEvents, *, shown_rows: dict[str, bool], threshold: int
) -> dict[str, list[bool]]:
    """Which weekly percentages of one phase may be published.

    Parameters
    ----------
    phase : PhaseEvents
    shown_rows : dict
        Outcome -> whether its ``episodes`` and ``events`` are published
        (after the table's own small-cell protection); a hidden row shows
        no percentage.
    threshold : int

    Returns
    -------
    dict
        Outcome -> one bool per reported week.

    Examples
    --------
    Two patients of 250 moved up by week 4: that percentage is hidden.

    >>> phase = PhaseEvents(250, {"up": 190}, {"up": [2, 95, 150]},
    ...                     {"up": [0.008, 0.38, 0.63]})
    >>> shown_percentages(phase, shown_rows={"up": True}, threshold=10)
    {'up': [False, True, True]}
    """
    n = phase.episodes
    weeks = len(next(iter(phase.by_week.values()), []))
    shown = {o: [False] * weeks for o in phase.events}
    for outcome, total in phase.events.items():
        if not shown_rows.get(outcome, False):
            continue
        previous_count, previous_share = 0, 0.0
        for k in range(weeks):
            count = phase.by_week[outcome][k]
            share = phase.estimate[outcome][k]
            if not np.isfinite(share):
                continue
            implied = share * n
            quantities = (
                count,
                n - count,
                total - count,
                count - previous_count,
                implied,
                n - implied,
                total - implied,
                (share - previous_share) * n,
            )
            if any(_small(q, threshold) for q in quantities):
                continue
            shown[outcome][k] = True
            previous_count, previous_share = count, share
    for k in range(weeks):
        _protect_remainder(phase, shown, k, threshold)
    return shown


def _protect_remainder(
    phase: PhaseEvents, shown: dict[str, list[bool]], week: int, threshold: int
) -> None:
    """Hide more of one week's percentages until the patients left over are not a small count."""
    n = phase.episodes
    while True:
        visible = [o for o in phase.events if shown[o][week]]
        if not visible:
            return
        left = n - sum(phase.by_week[o][week] for o in visible)
        left_read = n * (1.0 - sum(phase.estimate[o][week] for o in visible))
        if not (_small(left, threshold) or _small(left_read, threshold)):
            return
        smallest = min(visible, key=lambda o: phase.by_week[o][week])
        shown[smallest][week] = False


def hide_for_remainder(
    episodes: int, events: dict[str, int], shown: dict[str, bool], threshold: int
) -> dict[str, bool]:
    """Hide rows' event totals until the episodes not accounted for are not a small count.

    ``episodes - sum(events)`` is the number of episodes still going on at
    the extract; with every row's events shown it can be worked out.

    Examples
    --------
    >>> hide_for_remainder(40, {"up": 30, "down": 5, "out": 2}, {"up": True, "down": False,
    ...                    "out": False}, 10)
    {'up': False, 'down': False, 'out': False}
    """
    out = dict(shown)
    while True:
        visible = [o for o in events if out.get(o, False)]
        if not visible:
            return out
        left = episodes - sum(events[o] for o in visible)
        if not _small(left, threshold):
            return out
        out[min(visible, key=lambda o: events[o])] = False


def curve_steps_safe(
    durations: npt.ArrayLike, outcomes: npt.ArrayLike, *, threshold: int, until: float
) -> bool:
    """Whether every step of a phase's cumulative-incidence curves rests on enough events.

    A curve rises at each day on which patients left the phase that way, by
    about (patients that day) / (episodes): each step is a count.  The
    curves may be drawn for a committee only when, up to ``until`` (the
    drawn range), every day's count of each way of leaving, and of all ways
    together, is 0 or above ``threshold``.

    Examples
    --------
    >>> curve_steps_safe([5, 5, 9], ["up", "up", "out"], threshold=1, until=10)
    False
    >>> curve_steps_safe([5, 5], ["up", "up"], threshold=1, until=10)
    True
    """
    frame = pd.DataFrame({"t": np.asarray(durations, dtype=float), "o": np.asarray(outcomes)})
    frame = frame[(frame["o"] != "censored") & (frame["t"] <= until)]
    if frame.empty:
        return True
    per_outcome = frame.groupby(["t", "o"]).size().to_numpy()
    per_day = frame.groupby("t").size().to_numpy()
    counts = np.concatenate([per_outcome, per_day])
    return not bool(((counts >= 1) & (counts <= threshold)).any())
