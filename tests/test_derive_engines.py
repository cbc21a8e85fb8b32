"""The DuckDB engine of derive gives the very frames the pandas engine gives.

pandas (merge_asof, merge) is the reference; every comparison is
``assert_frame_equal`` with dtypes checked, on generated frames with ties,
measurements before any stay, empty and one-row frames, and on a synthetic
cohort.  Small hand-worked cases pin the tie rules themselves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepanalytics.derive import DUCKDB_MIN_ROWS, add_baseline, assign_phase
from stepanalytics.errors import UsageError
from stepanalytics.synth import synthesize_cohort

ENGINES = ("pandas", "duckdb")


def _both_phase(measurements: pd.DataFrame, phases: pd.DataFrame) -> pd.DataFrame:
    expected = assign_phase(measurements, phases, engine="pandas")
    got = assign_phase(measurements, phases, engine="duckdb")
    pd.testing.assert_frame_equal(got, expected, check_dtype=True)
    return expected


def _both_baseline(measurements: pd.DataFrame, window_days: int = 14) -> pd.DataFrame:
    expected = add_baseline(measurements, window_days=window_days, engine="pandas")
    got = add_baseline(measurements, window_days=window_days, engine="duckdb")
    pd.testing.assert_frame_equal(got, expected, check_dtype=True)
    return expected


# -- hand-worked tie rules -------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_stays_starting_on_the_same_day_the_later_row_wins(engine):
    # Stays 2 and 3 of patient a both start on day 10: the row further down counts.
    stays = pd.DataFrame(
        {
            "patient_id": ["a", "a", "a", "b"],
            "phase": [1, 2, 3, 1],
            "start_day": [0, 10, 10, 5],
            "stay_number": [1, 2, 3, 1],
        }
    )
    m = pd.DataFrame({"patient_id": ["a", "a", "a", "b", "b"], "day": [10, 5, 11, 4, 5]})
    out = assign_phase(m, stays, engine=engine)
    assert out["phase"].tolist() == [3, 1, 3, pd.NA, 1]
    assert out["days_in_phase"].tolist() == [0, 5, 1, pd.NA, 0]
    assert np.isnan(out["weeks_in_phase"].iat[3])
    assert out["weeks_in_phase"].iat[1] == 5 / 7


@pytest.mark.parametrize("engine", ENGINES)
def test_baseline_ties_keep_the_row_higher_up(engine):
    m = pd.DataFrame(
        {
            "patient_id": ["a", "a", "a", "a", "b"],
            "instrument": ["odi", "odi", "odi", "nrs", "odi"],
            "day": [20, 7, 7, -1, 15],
            "score": [10.0, 40.0, 41.0, 3.0, 9.0],
        }
    )
    out = add_baseline(m, engine=engine)
    assert out["baseline_score"].iloc[:3].tolist() == [40.0, 40.0, 40.0]
    assert out["baseline_day"].tolist() == [7, 7, 7, pd.NA, pd.NA]  # day -1, 15: outside
    assert np.isnan(out["baseline_score"].iloc[3:]).all()


# -- generated frames --------------------------------------------------------------------

_patients = st.sampled_from(["p1", "p2", "p3", "p4"])


@st.composite
def _phase_frames(draw):
    n_stays = draw(st.integers(0, 12))
    stays = pd.DataFrame(
        {
            "patient_id": [draw(_patients) for _ in range(n_stays)],
            "phase": [draw(st.integers(1, 4)) for _ in range(n_stays)],
            # Few distinct days: many ties, and measurements before a first stay.
            "start_day": [draw(st.integers(0, 8)) for _ in range(n_stays)],
            "stay_number": [draw(st.integers(1, 5)) for _ in range(n_stays)],
        },
        columns=["patient_id", "phase", "start_day", "stay_number"],
    ).astype({"patient_id": object, "phase": "int64", "start_day": "int64", "stay_number": "int64"})
    n_rows = draw(st.integers(0, 25))
    measurements = pd.DataFrame(
        {
            "patient_id": [draw(_patients | st.just("p9")) for _ in range(n_rows)],
            "day": [draw(st.integers(-3, 12)) for _ in range(n_rows)],
            "score": [draw(st.floats(0, 50) | st.just(np.nan)) for _ in range(n_rows)],
        },
        columns=["patient_id", "day", "score"],
    ).astype({"patient_id": object, "day": "int64", "score": "float64"})
    # A measurements index that is not 0..n-1: both engines return a RangeIndex.
    measurements.index = measurements.index * 3 + 7
    return measurements, stays


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_phase_frames())
def test_assign_phase_engines_agree(frames):
    measurements, stays = frames
    _both_phase(measurements, stays)


@st.composite
def _baseline_frames(draw):
    n_rows = draw(st.integers(0, 30))
    return pd.DataFrame(
        {
            "patient_id": [draw(_patients) for _ in range(n_rows)],
            "instrument": [draw(st.sampled_from(["odi", "phq9", "nrs"])) for _ in range(n_rows)],
            "day": [draw(st.integers(-2, 20)) for _ in range(n_rows)],
            "score": [draw(st.floats(0, 100) | st.just(np.nan)) for _ in range(n_rows)],
            "extra": [draw(st.sampled_from(["x", None])) for _ in range(n_rows)],
        },
        columns=["patient_id", "instrument", "day", "score", "extra"],
    ).astype(
        {
            "patient_id": object,
            "instrument": object,
            "day": "int64",
            "score": "float64",
            "extra": object,
        }
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_baseline_frames(), st.integers(0, 15))
def test_add_baseline_engines_agree(measurements, window_days):
    _both_baseline(measurements, window_days)


def test_empty_and_one_row_frames():
    stays = pd.DataFrame({"patient_id": ["a"], "phase": [1], "start_day": [0], "stay_number": [1]})
    one = pd.DataFrame({"patient_id": ["a"], "instrument": ["odi"], "day": [3], "score": [20.0]})
    for frame in (one, one.iloc[:0]):
        _both_baseline(_both_phase(frame, stays))
        _both_phase(frame, stays.iloc[:0])


# -- a synthetic cohort ---------------------------------------------------------------------


def test_synthetic_cohort_engines_agree():
    cohort = synthesize_cohort(n_patients=300, n_clinics=4, seed=5)
    frame = cohort.assessments.merge(
        cohort.patients[["patient_id", "clinic_id", "protocol"]], on="patient_id", how="left"
    )
    frame["weeks"] = frame["day"] / 7.0
    with_phase = _both_phase(frame, cohort.phases)
    with_baseline = _both_baseline(with_phase, cohort.baseline_window_days)
    assert len(with_baseline) >= DUCKDB_MIN_ROWS // 4  # a cohort of some size, not a toy
    # The cohort's own view (engine chosen by size) is the same frame again.
    ordered = cohort.measurements.columns
    pd.testing.assert_frame_equal(
        cohort.measurements, with_baseline[ordered].reset_index(drop=True), check_dtype=True
    )


# -- choosing the engine ------------------------------------------------------------------


def test_duckdb_engine_refuses_frames_outside_its_class():
    stays = pd.DataFrame({"patient_id": ["a"], "phase": [1], "start_day": [0], "stay_number": [1]})
    float_days = pd.DataFrame({"patient_id": ["a"], "day": [1.0]})
    with pytest.raises(UsageError, match="int64"):
        assign_phase(float_days, stays, engine="duckdb")
    missing_id = pd.DataFrame(
        {"patient_id": ["a", None], "instrument": "odi", "day": [1, 2], "score": [1.0, 2.0]}
    )
    with pytest.raises(UsageError, match="missing"):
        add_baseline(missing_id, engine="duckdb")
    # auto falls back to pandas (which keys None to None in merge)
    assert add_baseline(missing_id)["baseline_day"].tolist() == [1, 2]
    with pytest.raises(UsageError, match="engine"):
        add_baseline(missing_id, engine="spark")  # type: ignore[arg-type]


def test_auto_takes_duckdb_for_large_frames(monkeypatch):
    import stepanalytics.derive as derive

    calls = []
    original = derive.derive_sql.baseline_rows

    def spy(*args, **kwargs):
        calls.append(len(args[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(derive.derive_sql, "baseline_rows", spy)
    small = pd.DataFrame({"patient_id": ["a"], "instrument": ["odi"], "day": [0], "score": [1.0]})
    add_baseline(small)
    assert calls == []
    large = pd.concat([small] * DUCKDB_MIN_ROWS, ignore_index=True)
    add_baseline(large)
    assert calls == [DUCKDB_MIN_ROWS]


# -- validation hot spots rewritten for speed: same answers as the plain pandas forms -----


@st.composite
def _keyed_frames(draw):
    n_rows = draw(st.integers(0, 40))
    wide = st.integers(-(2**40), 2**40)  # beyond the offset coding: factorised
    return pd.DataFrame(
        {
            "p": [draw(st.sampled_from(["a", "b", None, "c"])) for _ in range(n_rows)],
            "day": [draw(st.integers(-3, 3) | wide) for _ in range(n_rows)],
            "item": [draw(st.integers(1, 3)) for _ in range(n_rows)],
            "value": [draw(st.sampled_from([0.5, np.nan, 2.0])) for _ in range(n_rows)],
        },
        columns=["p", "day", "item", "value"],
    ).astype({"p": object, "day": "int64", "item": "int64", "value": "float64"})


@settings(max_examples=200, deadline=None)
@given(_keyed_frames(), st.sampled_from([("p",), ("p", "day"), ("p", "day", "item", "value")]))
def test_duplicated_keys_equals_pandas_duplicated(frame, key):
    from stepanalytics.keys import duplicated_keys

    expected = frame.duplicated(list(key), keep=False).to_numpy()
    np.testing.assert_array_equal(duplicated_keys(frame, key), expected)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(-(2**53), 2**53).map(float),
            st.floats(allow_nan=True, allow_infinity=True),
            st.just(np.nan),
        ),
        max_size=20,
    ),
    st.booleans(),
)
def test_whole_number_parsing_equals_the_astype_form(values, nullable):
    from stepanalytics.contract import ColumnSpec
    from stepanalytics.parse import _parse_int

    raw = pd.Series(values, dtype="float64")
    missing = raw.isna().to_numpy()
    spec = ColumnSpec("day", "int", nullable=nullable)
    got, bad, _ = _parse_int(raw, missing, spec)
    # The form used before: NaN where missing or refused, then astype.
    expected = pd.Series(np.where(missing | bad, np.nan, raw.to_numpy()), dtype="float64")
    expected = expected.astype("Int64")
    if not nullable and not (missing | bad).any():
        expected = expected.astype("int64")
    pd.testing.assert_series_equal(got, expected, check_dtype=True)
