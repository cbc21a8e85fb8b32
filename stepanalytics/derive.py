"""Views derived from the validated tables: phase at measurement, baselines.

Kept apart from :mod:`stepanalytics.cohort` so that analyses can apply the
same rules to frames of their own.

Two engines give the same frames.  pandas (``merge_asof``, ``merge``) is the
reference; DuckDB (:mod:`stepanalytics.derive_sql`: an ``ASOF JOIN`` and a
grouped minimum over integer codes, applied by positional takes) is several
times faster on large cohorts.  ``engine="auto"`` uses DuckDB from
:data:`DUCKDB_MIN_ROWS` measurement rows on, when the frames are in its class
(integer days, no missing keys, no clash with the columns added).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from stepanalytics import derive_sql
from stepanalytics.errors import UsageError

#: A baseline is the first score within this many days of enrolment.
BASELINE_WINDOW_DAYS = 14

#: From this many measurement rows on, ``engine="auto"`` derives with DuckDB.
#: Measured by benchmarks/bench_derive.py: below it, starting a query costs
#: more than pandas spends on the rows.
DUCKDB_MIN_ROWS = 20_000

Engine = Literal["auto", "pandas", "duckdb"]


def assign_phase(
    measurements: pd.DataFrame, phases: pd.DataFrame, *, engine: Engine = "auto"
) -> pd.DataFrame:
    """Attach the phase stay each measurement belongs to.

    A measurement belongs to the latest stay that started on or before its
    day (so a score taken on the day a patient moves up counts for the new
    phase); of stays starting on the same day, the one further down
    ``phases`` counts.  Adds ``phase``, ``phase_start_day``, ``stay_number``,
    ``days_in_phase`` and ``weeks_in_phase`` (missing for a measurement
    before the patient's first stay); the row order is kept.

    Parameters
    ----------
    measurements : DataFrame
        At least ``patient_id`` and ``day``.
    phases : DataFrame
        ``patient_id``, ``phase``, ``start_day``, ``stay_number``.
    engine : {"auto", "pandas", "duckdb"}
        Who computes it; the result is the same.  ``auto`` takes DuckDB for
        :data:`DUCKDB_MIN_ROWS` rows or more when the frames are in its class.

    Examples
    --------
    >>> import pandas as pd
    >>> stays = pd.DataFrame({"patient_id": ["a", "a"], "phase": [1, 2],
    ...                       "start_day": [0, 30], "stay_number": [1, 2]})
    >>> m = pd.DataFrame({"patient_id": ["a", "a", "a"], "day": [0, 29, 30]})
    >>> assign_phase(m, stays)["phase"].tolist()
    [1, 1, 2]
    >>> assign_phase(m, stays, engine="duckdb")["days_in_phase"].tolist()
    [0, 29, 0]

    Notes
    -----
    The SQL equivalent is ``ASOF LEFT JOIN phases ON patient_id = patient_id
    AND day >= start_day``; in R, ``data.table``'s rolling join
    (``roll = TRUE``).
    """
    if _use_duckdb(engine, measurements, _phase_refusal(measurements, phases)):
        try:
            return _assign_phase_duckdb(measurements, phases)
        except derive_sql.NotInClass as refusal:
            _fall_back(engine, refusal)
    return _assign_phase_pandas(measurements, phases)


def add_baseline(
    measurements: pd.DataFrame,
    *,
    window_days: int = BASELINE_WINDOW_DAYS,
    engine: Engine = "auto",
) -> pd.DataFrame:
    """Add ``baseline_day`` and ``baseline_score`` per patient and instrument.

    The baseline is the first score of the patient on the instrument taken
    on days 0..``window_days`` (on equal days, the row higher up the frame);
    when there is none, both are missing.

    Parameters
    ----------
    measurements : DataFrame
        ``patient_id``, ``instrument``, ``day`` and ``score``.
    window_days : int
        Last day that can hold a baseline.
    engine : {"auto", "pandas", "duckdb"}
        As for :func:`assign_phase`.

    Examples
    --------
    >>> import pandas as pd
    >>> m = pd.DataFrame({"patient_id": ["a", "a", "b"], "instrument": ["odi"] * 3,
    ...                   "day": [3, 40, 20], "score": [50.0, 30.0, 44.0]})
    >>> add_baseline(m)["baseline_score"].tolist()
    [50.0, 50.0, nan]

    Notes
    -----
    In SQL, ``arg_min(score, (day, row)) ... GROUP BY patient_id,
    instrument`` over the window rows, joined back; in R,
    ``dplyr::filter(day <= 14) |> slice_min(day, with_ties = FALSE)``.
    """
    if _use_duckdb(engine, measurements, _baseline_refusal(measurements)):
        try:
            return _add_baseline_duckdb(measurements, window_days)
        except derive_sql.NotInClass as refusal:
            _fall_back(engine, refusal)
    return _add_baseline_pandas(measurements, window_days)


# -- engine choice ----------------------------------------------------------------


def _use_duckdb(engine: str, measurements: pd.DataFrame, refusal: str | None) -> bool:
    if engine not in ("auto", "pandas", "duckdb"):
        raise UsageError(f"engine must be 'auto', 'pandas' or 'duckdb', not {engine!r}")
    if engine == "pandas":
        return False
    if engine == "duckdb":
        if refusal is not None:
            raise UsageError(f"The DuckDB engine {refusal}. Use engine='pandas'.")
        return True
    return refusal is None and len(measurements) >= DUCKDB_MIN_ROWS


def _fall_back(engine: str, refusal: Exception) -> None:
    """Missing keys are found while coding them: auto falls back, duckdb refuses."""
    if engine == "duckdb":
        raise UsageError(f"The DuckDB engine {refusal}. Use engine='pandas'.") from refusal


def _phase_refusal(measurements: pd.DataFrame, phases: pd.DataFrame) -> str | None:
    """Why the DuckDB engine cannot assign phases to these frames, or None."""
    found = _column_refusal(
        measurements, "measurements", ("patient_id",), ("day",), derive_sql.PHASE_COLUMNS
    )
    found = found or _column_refusal(
        phases, "phases", ("patient_id",), ("start_day", "phase", "stay_number"), ()
    )
    if found is None and "_row" in measurements.columns:
        found = "needs measurements without a column named '_row'"
    if found is None and not measurements.columns.is_unique:
        found = "needs measurements with unique column names"
    if found is None and not derive_sql.keys_fit(measurements, phases):
        found = "needs days small enough to pack into 64-bit keys"
    return found


def _baseline_refusal(measurements: pd.DataFrame) -> str | None:
    """Why the DuckDB engine cannot add baselines to this frame, or None."""
    found = _column_refusal(
        measurements,
        "measurements",
        ("patient_id", "instrument"),
        ("day",),
        derive_sql.BASELINE_COLUMNS,
    )
    if found is None and "score" not in measurements.columns:
        found = "needs the column 'score' in measurements"
    if found is None and not measurements.columns.is_unique:
        found = "needs measurements with unique column names"
    if found is None and not derive_sql.keys_fit(measurements):
        found = "needs days small enough to pack into 64-bit keys"
    return found


def _column_refusal(
    frame: pd.DataFrame,
    name: str,
    keys: tuple[str, ...],
    integers: tuple[str, ...],
    added: tuple[str, ...],
) -> str | None:
    for column in (*keys, *integers):
        if column not in frame.columns:
            return f"needs the column {column!r} in {name}"
    for column in integers:
        if frame[column].dtype != np.int64:
            return f"needs {name}.{column} as int64"
    clash = [c for c in added if c in frame.columns]
    if clash:
        return f"needs {name} without the columns it adds ({', '.join(clash)})"
    return None


# -- pandas (the reference) ---------------------------------------------------------


def _assign_phase_pandas(measurements: pd.DataFrame, phases: pd.DataFrame) -> pd.DataFrame:
    left = measurements.reset_index(drop=True)
    left["_row"] = np.arange(len(left))
    stays = phases[["patient_id", "phase", "start_day", "stay_number"]].rename(
        columns={"start_day": "phase_start_day"}
    )
    merged = pd.merge_asof(
        left.sort_values("day", kind="stable"),
        stays.sort_values("phase_start_day", kind="stable"),
        left_on="day",
        right_on="phase_start_day",
        by="patient_id",
        direction="backward",
    )
    merged = merged.sort_values("_row").drop(columns="_row").reset_index(drop=True)
    merged["days_in_phase"] = merged["day"] - merged["phase_start_day"]
    merged["weeks_in_phase"] = merged["days_in_phase"] / 7.0
    for column in ("phase", "stay_number", "phase_start_day", "days_in_phase"):
        merged[column] = merged[column].astype("Int64")
    return merged


def _add_baseline_pandas(measurements: pd.DataFrame, window_days: int) -> pd.DataFrame:
    window = measurements[(measurements["day"] >= 0) & (measurements["day"] <= window_days)]
    first = (
        window.sort_values("day", kind="stable")
        .drop_duplicates(["patient_id", "instrument"], keep="first")[
            ["patient_id", "instrument", "day", "score"]
        ]
        .rename(columns={"day": "baseline_day", "score": "baseline_score"})
    )
    out = measurements.merge(first, on=["patient_id", "instrument"], how="left")
    out["baseline_day"] = out["baseline_day"].astype("Int64")
    return out


# -- DuckDB ---------------------------------------------------------------------------


def _assign_phase_duckdb(measurements: pd.DataFrame, phases: pd.DataFrame) -> pd.DataFrame:
    stay = derive_sql.phase_rows(measurements, phases)
    missing = stay < 0
    out = _copy_columns(measurements)
    start = _take_int(phases["start_day"], stay, missing)
    out["phase"] = _take_int(phases["phase"], stay, missing)
    out["phase_start_day"] = start
    out["stay_number"] = _take_int(phases["stay_number"], stay, missing)
    days = measurements["day"].to_numpy(dtype=np.int64) - start.to_numpy(dtype=np.int64, na_value=0)
    out["days_in_phase"] = pd.arrays.IntegerArray(days, missing.copy())
    weeks = days / 7.0
    weeks[missing] = np.nan
    out["weeks_in_phase"] = weeks
    return out


def _add_baseline_duckdb(measurements: pd.DataFrame, window_days: int) -> pd.DataFrame:
    first = derive_sql.baseline_rows(measurements, window_days=window_days)
    missing = first < 0
    out = _copy_columns(measurements)
    out["baseline_day"] = _take_int(measurements["day"], first, missing)
    # take with fill gives what a left merge gives: NaN (or the dtype's NA) where none.
    score = measurements["score"]
    values = score.to_numpy() if isinstance(score.dtype, np.dtype) else score.array
    out["baseline_score"] = pd.api.extensions.take(values, first, allow_fill=True)
    return out


def _take_int(column: pd.Series, rows: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    """``column`` at ``rows`` as nullable Int64, missing where ``missing``."""
    values = column.to_numpy(dtype=np.int64)
    taken = (
        values.take(np.where(missing, 0, rows)) if len(values) else np.zeros(len(rows), np.int64)
    )
    return pd.arrays.IntegerArray(taken, missing.copy())


def _copy_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with a fresh RangeIndex, column by column.

    ``reset_index`` would first consolidate the text columns into one block,
    which takes seconds on millions of rows; copying each column does not.
    """
    columns = {
        name: (
            column.to_numpy(copy=True)
            if isinstance(column.dtype, np.dtype)
            else column.array.copy()
        )
        for name, column in frame.items()
    }
    out = pd.DataFrame(columns, index=pd.RangeIndex(len(frame)), copy=False)
    out.columns = frame.columns
    return out
