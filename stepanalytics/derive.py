"""Views derived from the validated tables: phase at measurement, baselines.

Kept apart from :mod:`stepanalytics.cohort` so that analyses can apply the
same rules to frames of their own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: A baseline is the first score within this many days of enrolment.
BASELINE_WINDOW_DAYS = 14


def assign_phase(measurements: pd.DataFrame, phases: pd.DataFrame) -> pd.DataFrame:
    """Attach the phase stay each measurement belongs to.

    A measurement belongs to the latest stay that started on or before its
    day (so a score taken on the day a patient moves up counts for the new
    phase).  Adds ``phase``, ``stay_number``, ``phase_start_day``,
    ``days_in_phase`` and ``weeks_in_phase``; the row order is kept.

    Examples
    --------
    >>> import pandas as pd
    >>> stays = pd.DataFrame({"patient_id": ["a", "a"], "phase": [1, 2],
    ...                       "start_day": [0, 30], "stay_number": [1, 2]})
    >>> m = pd.DataFrame({"patient_id": ["a", "a", "a"], "day": [0, 29, 30]})
    >>> assign_phase(m, stays)["phase"].tolist()
    [1, 1, 2]
    """
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


def add_baseline(
    measurements: pd.DataFrame, *, window_days: int = BASELINE_WINDOW_DAYS
) -> pd.DataFrame:
    """Add ``baseline_day`` and ``baseline_score`` per patient and instrument.

    The baseline is the first score of the patient on the instrument taken
    on days 0..``window_days``; when there is none, both are missing.

    Examples
    --------
    >>> import pandas as pd
    >>> m = pd.DataFrame({"patient_id": ["a", "a", "b"], "instrument": ["odi"] * 3,
    ...                   "day": [3, 40, 20], "score": [50.0, 30.0, 44.0]})
    >>> add_baseline(m)["baseline_score"].tolist()
    [50.0, 50.0, nan]
    """
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
