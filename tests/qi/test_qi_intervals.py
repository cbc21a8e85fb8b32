"""Wilson, Garwood and t intervals against R (tests/qi/reference/make_reference.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepanalytics.errors import UsageError
from stepanalytics.qi.intervals import mean_interval, poisson_rate_interval, wilson_interval


def test_wilson_matches_prop_test(reference):
    """R: prop.test(x, n, correct = FALSE)$conf.int."""
    ref = pd.read_csv(reference / "wilson.csv")
    lower, upper = wilson_interval(ref["x"], ref["n"])
    np.testing.assert_allclose(lower, ref["lower"], atol=1e-12)
    np.testing.assert_allclose(upper, ref["upper"], atol=1e-12)


def test_poisson_matches_poisson_test(reference):
    """R: poisson.test(x, T)$conf.int."""
    ref = pd.read_csv(reference / "poisson.csv")
    lower, upper = poisson_rate_interval(ref["events"], ref["exposure"])
    np.testing.assert_allclose(lower, ref["lower"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(upper, ref["upper"], rtol=1e-10)


def test_mean_interval_matches_t_test():
    """R: t.test(c(1, 2, 3, 4))$conf.int = 0.4457397432 4.5542602568."""
    mean, se, lo, hi, n = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert (mean, n) == (2.5, 4)
    assert lo == pytest.approx(0.4457397432, abs=1e-9)
    assert hi == pytest.approx(4.5542602568, abs=1e-9)
    assert se == pytest.approx(np.sqrt(5 / 3) / 2)


def test_degenerate_inputs():
    lower, upper = wilson_interval([0], [0])
    assert np.isnan(lower[0]) and np.isnan(upper[0])
    assert np.isnan(mean_interval([3.0])[1])
    assert mean_interval([])[4] == 0
    with pytest.raises(UsageError, match="between 0 and trials"):
        wilson_interval([5], [3])
    with pytest.raises(UsageError, match="NaN"):
        mean_interval([1.0, np.nan])
    with pytest.raises(UsageError, match="level"):
        wilson_interval([1], [3], level=95)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_estimate_and_stays_in_unit_interval(case):
    x, n = case
    lower, upper = wilson_interval(x, n)
    assert 0.0 <= lower[()] <= x / n + 1e-12
    assert x / n - 1e-12 <= upper[()] <= 1.0
