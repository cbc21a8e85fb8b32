"""The derivations of :mod:`stepanalytics.derive` as DuckDB queries.

Large cohorts spend most of their derivation time in pandas' ``merge_asof``
and ``merge`` on text keys, and in putting millions of rows back in their
original order.  Here the text keys are first turned into integer codes
(``pandas.factorize``, one hash per row), DuckDB answers only the question
"which row?" -- which stay each measurement belongs to, which score is the
baseline -- over zero-copy Arrow views of those integer columns, and the
answer is applied with positional takes.  The frames returned are identical
to the pandas ones, column for column and dtype for dtype
(``tests/test_derive_engines.py`` checks this on generated frames).

The functions here assume the inputs are in :func:`can_use_duckdb`'s class;
:func:`stepanalytics.derive.assign_phase` and
:func:`stepanalytics.derive.add_baseline` check that and pick the engine.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:
    import duckdb

#: Columns assign_phase adds, in the order pandas' merge_asof leaves them.
PHASE_COLUMNS = ("phase", "phase_start_day", "stay_number", "days_in_phase", "weeks_in_phase")
#: Columns add_baseline adds.
BASELINE_COLUMNS = ("baseline_day", "baseline_score")


class NotInClass(ValueError):
    """The frames are outside what these queries handle (e.g. missing keys)."""


# Keys are packed as value * n + position into one BIGINT; stay below 2**62
# so that the arithmetic inside DuckDB cannot overflow.
_KEY_LIMIT = 2**62


def phase_rows(measurements: pd.DataFrame, phases: pd.DataFrame) -> np.ndarray:
    """Position in ``phases`` of the stay each measurement belongs to (-1: none).

    The stay is the latest one of the same patient that started on or before
    the measurement's day; among stays starting on the same day the one
    further down ``phases`` wins, as in ``pandas.merge_asof`` after a stable
    sort.

    Examples
    --------
    >>> import pandas as pd
    >>> stays = pd.DataFrame({"patient_id": ["a", "a", "a"], "start_day": [0, 9, 9]})
    >>> m = pd.DataFrame({"patient_id": ["a", "a", "b"], "day": [3, 9, 0]})
    >>> phase_rows(m, stays).tolist()
    [0, 2, -1]

    Notes
    -----
    An ``ASOF LEFT JOIN`` on ``patient = patient AND m_key >= s_key``.  The
    tie rule is built into the keys: a stay's key is ``start_day * n + p``
    (``p`` its position, ``n`` the number of stays) and a measurement's is
    ``day * n + n - 1``, so "started on or before the day" keeps its meaning
    and the largest key is the latest start, then the last position.
    """
    n_rows, n_stays = len(measurements), len(phases)
    found = np.full(n_rows, -1, dtype=np.int64)
    if n_rows == 0 or n_stays == 0:
        return found
    stay_patient, patients = pd.factorize(phases["patient_id"])
    # Factorising first keeps the hashing to one pass and tells missing ids apart.
    patient, seen = pd.factorize(measurements["patient_id"])
    if (stay_patient < 0).any() or (patient < 0).any():
        raise NotInClass("needs patient_id without missing values")
    patient = pd.Index(patients).get_indexer(seen)[patient]
    day = measurements["day"].to_numpy(dtype=np.int64)
    start = phases["start_day"].to_numpy(dtype=np.int64)
    left = pa.table({"patient": patient, "day": day, "row": np.arange(n_rows, dtype=np.int64)})
    right = pa.table(
        {"patient": stay_patient, "start_day": start, "pos": np.arange(n_stays, dtype=np.int64)}
    )
    query = f"""
        SELECT m.row, s.pos
        FROM (SELECT row, patient, day * {n_stays} + {n_stays - 1} AS key
              FROM m WHERE patient >= 0) AS m
        ASOF JOIN (SELECT pos, patient, start_day * {n_stays} + pos AS key FROM s) AS s
          ON m.patient = s.patient AND m.key >= s.key
    """  # only integers of our own are formatted into the query
    result = run_query(query, {"m": left, "s": right})
    found[result["row"]] = result["pos"]
    return found


def baseline_rows(measurements: pd.DataFrame, *, window_days: int) -> np.ndarray:
    """Position of each row's baseline row (-1: none).

    The baseline row of a (patient_id, instrument) is its first row with a
    day in 0..``window_days``: the earliest day, and on equal days the row
    higher up the frame (pandas' stable sort then ``keep="first"``).

    Examples
    --------
    >>> import pandas as pd
    >>> m = pd.DataFrame({"patient_id": ["a", "a", "a"], "instrument": ["odi"] * 3,
    ...                   "day": [20, 5, 5]})
    >>> baseline_rows(m, window_days=14).tolist()
    [1, 1, 1]

    Notes
    -----
    A ``GROUP BY`` over (patient, instrument) codes taking
    ``min(day * n + row)`` over the window rows: the smallest key is the
    earliest day, then the first row.
    """
    n_rows = len(measurements)
    found = np.full(n_rows, -1, dtype=np.int64)
    if n_rows == 0:
        return found
    patient, _ = pd.factorize(measurements["patient_id"])
    instrument, instruments = pd.factorize(measurements["instrument"])
    if (patient < 0).any() or (instrument < 0).any():
        raise NotInClass("needs patient_id and instrument without missing values")
    group = patient.astype(np.int64) * max(len(instruments), 1) + instrument
    day = measurements["day"].to_numpy(dtype=np.int64)
    frame = pa.table({"grp": group, "day": day, "row": np.arange(n_rows, dtype=np.int64)})
    query = f"""
        SELECT grp, min(day * {n_rows} + row) AS key
        FROM m WHERE day BETWEEN 0 AND {int(window_days)}
        GROUP BY grp
    """  # only integers of our own are formatted into the query
    result = run_query(query, {"m": frame})
    first_of_group = np.full(int(group.max()) + 1, -1, dtype=np.int64)
    first_of_group[result["grp"]] = result["key"] % n_rows
    return first_of_group[group]


def keys_fit(measurements: pd.DataFrame, phases: pd.DataFrame | None = None) -> bool:
    """Whether the packed keys of the queries stay inside BIGINT."""
    n = max(len(measurements), len(phases) if phases is not None else 0, 1)
    days = [measurements["day"]]
    if phases is not None:
        days.append(phases["start_day"])
    largest = max((int(d.abs().max()) for d in days if len(d)), default=0)
    return (largest + 1) * (n + 1) < _KEY_LIMIT


def run_query(query: str, tables: dict[str, pa.Table]) -> dict[str, np.ndarray]:
    """Run ``query`` over Arrow tables registered under their names; integer columns back.

    Examples
    --------
    >>> import pyarrow as pa
    >>> run_query("SELECT max(x) AS m FROM t", {"t": pa.table({"x": [3, 9]})})["m"].tolist()
    [9]
    """
    # A cursor is a connection of its own (registered frames are private to
    # it) to one in-memory database per process: opening a database costs
    # about 15 ms, a cursor microseconds.
    with _database().cursor() as con:
        for name, table in tables.items():
            con.register(name, table)
        fetched = con.execute(query).fetchnumpy()
    return {k: np.asarray(v, dtype=np.int64) for k, v in fetched.items()}


_DATABASE: dict[int, duckdb.DuckDBPyConnection] = {}
_DATABASE_LOCK = threading.Lock()


def _database() -> duckdb.DuckDBPyConnection:
    """The process's in-memory database, opened on first use.

    Keyed by process id: a child process started by fork must not use the
    parent's database (its worker threads did not come along); the parent's
    entry is left alone, as closing it in the child could wait on threads
    that do not exist there.
    """
    pid = os.getpid()
    with _DATABASE_LOCK:
        if pid not in _DATABASE:
            import duckdb

            _DATABASE[pid] = duckdb.connect(":memory:")
        return _DATABASE[pid]
