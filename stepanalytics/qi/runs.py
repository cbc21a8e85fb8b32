"""The Anhøj rules: unusually long runs and unusually few crossings.

A run is a sequence of points on the same side of the centre line; a
crossing is a change of side between two neighbouring points.  Points that
lie exactly on the centre line are not *useful*: they neither break nor
extend a run, and are dropped before counting.  With ``n`` useful points a
random process has

* longest run at most ``round(log2(n) + 3)`` (about a 95% prediction limit,
  Schilling 2012), and
* at least ``qbinom(0.05, n - 1, 0.5)`` crossings (the number of crossings
  is binomial ``B(n - 1, 1/2)``; Chen 2010).

A longer run or fewer crossings signals a shift in the process (Anhøj &
Olesen 2014, PLoS ONE 9:e113825; Anhøj 2015, PLoS ONE 10:e0121349).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats


def longest_run_limit(n_useful: int) -> int:
    """Upper prediction limit for the longest run, ``round(log2(n) + 3)``.

    Examples
    --------
    >>> longest_run_limit(24)
    8
    """
    if n_useful < 1:
        raise ValueError("n_useful must be at least 1")
    # log2(n) + 3 is never exactly half-way between integers for integer n,
    # so the rounding convention (R rounds half to even) does not matter.
    return int(np.floor(np.log2(n_useful) + 3.0 + 0.5))


def crossings_limit(n_useful: int) -> int:
    """Lower prediction limit for crossings, ``qbinom(0.05, n - 1, 0.5)``.

    Examples
    --------
    >>> crossings_limit(24)
    8
    """
    if n_useful < 1:
        raise ValueError("n_useful must be at least 1")
    return int(stats.binom.ppf(0.05, n_useful - 1, 0.5))


@dataclass(frozen=True)
class RunsTest:
    """Outcome of the Anhøj rules on one series (or one phase of it).

    Attributes
    ----------
    n_obs, n_useful : int
        Points given, and points not on the centre line.
    longest_run, longest_run_max : int
        Observed longest run and its upper limit.
    n_crossings, n_crossings_min : int
        Observed crossings and their lower limit.
    signal : bool
        True when ``longest_run > longest_run_max`` or
        ``n_crossings < n_crossings_min``.
    """

    n_obs: int
    n_useful: int
    longest_run: int
    longest_run_max: int
    n_crossings: int
    n_crossings_min: int
    signal: bool

    def to_dict(self) -> dict[str, int | bool]:
        """The fields as a plain dict (for building tables)."""
        return asdict(self)


def anhoej_rules(values: npt.ArrayLike, centre: npt.ArrayLike | float) -> RunsTest:
    """Apply the Anhøj runs rules to a series around its centre line.

    Parameters
    ----------
    values : array_like of float
        The series in time order; NaN points are ignored.
    centre : float or array_like
        Centre line (median for a run chart, mean for a control chart);
        an array allows a centre that changes between points.

    Returns
    -------
    RunsTest
        With zero counts and ``signal=False`` when no point is useful.

    Notes
    -----
    Same rules and limits as R ``qicharts2`` (``summary(qic(y))`` columns
    ``longest.run``, ``longest.run.max``, ``n.crossings``,
    ``n.crossings.min``, ``runs.signal``).

    Examples
    --------
    >>> res = anhoej_rules([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 6.5)
    >>> res.longest_run, res.longest_run_max, res.n_crossings, res.n_crossings_min, res.signal
    (6, 7, 1, 3, True)
    """
    y = np.asarray(values, dtype=float)
    cl = np.broadcast_to(np.asarray(centre, dtype=float), y.shape)
    side = np.sign(y - cl)
    n_obs = int(np.isfinite(y).sum())
    useful = side[np.isfinite(side) & (side != 0)]
    n_useful = int(useful.size)
    if n_useful == 0:
        return RunsTest(n_obs, 0, 0, 0, 0, 0, False)
    change = np.flatnonzero(np.diff(useful) != 0)
    n_crossings = int(change.size)
    bounds = np.concatenate(([-1], change, [n_useful - 1]))
    longest = int(np.max(np.diff(bounds)))
    run_max = longest_run_limit(n_useful)
    cross_min = crossings_limit(n_useful)
    signal = longest > run_max or n_crossings < cross_min
    return RunsTest(n_obs, n_useful, longest, run_max, n_crossings, cross_min, bool(signal))
