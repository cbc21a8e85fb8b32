"""Change measured in parts of a cohort, pooled as if measured whole.

The reliable change index of :func:`~stepanalytics.instruments.measure_change`
rests on the SD of every baseline in the cohort (``baseline_sd="cohort"``).
A cohort read in parts (clinic by clinic, from a registry too large to hold)
gets the whole cohort's numbers by collecting each part's baseline moments
(:func:`baseline_moments`), pooling them (:func:`pooled_baseline_sd`) and
scoring the parts' baseline / follow-up pairs again with the pooled SD
(:func:`rescore_change`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError
from stepanalytics.instruments.change import (
    KEY,
    _baseline_sds,
    _baselines,
    _resolve_inputs,
    _score_pairs,
)
from stepanalytics.instruments.registry import Registry, get_registry

__all__ = ["PAIR_COLUMNS", "baseline_moments", "pooled_baseline_sd", "rescore_change"]

#: What :func:`rescore_change` needs of each pair: the rest is computed again from these.
PAIR_COLUMNS = [
    "patient_id", "instrument", "follow_up", "phase", "stay_number",
    "baseline_day", "baseline_score", "follow_up_day", "follow_up_score",
]  # fmt: skip


def baseline_moments(
    data: Any,
    *,
    instruments: Sequence[str] | None = None,
    baseline_window_days: int | None = None,
) -> pd.DataFrame:
    """Count, mean and sum of squared deviations of the baseline scores per instrument.

    The baseline SD behind the reliable change index (``baseline_sd="cohort"``
    in :func:`measure_change`) is a property of the whole cohort.  A cohort
    read in parts (clinic by clinic, from a registry too large to hold) gets
    the same SD by pooling the parts' moments with :func:`pooled_baseline_sd`
    and passing it to :func:`measure_change` as a mapping.

    Returns
    -------
    DataFrame
        ``instrument``, ``n``, ``mean``, ``m2`` (sum of squared deviations
        from the mean).

    Examples
    --------
    >>> scores = pd.DataFrame({"patient_id": ["a", "b", "c"], "day": [0, 3, 5],
    ...                        "instrument": "odi", "score": [30.0, 40.0, 50.0]})
    >>> baseline_moments(scores).to_dict("records")
    [{'instrument': 'odi', 'n': 3, 'mean': 40.0, 'm2': 200.0}]
    """
    assessments, _, window = _resolve_inputs(data, None, baseline_window_days)
    if instruments is not None:
        assessments = assessments[assessments["instrument"].isin(list(instruments))]
    _, baselines = _baselines(assessments, window)
    rows = []
    for code, group in baselines.dropna(subset=["baseline_score"]).groupby("instrument"):
        values = group["baseline_score"].to_numpy(dtype=float)
        mean = float(values.mean())
        rows.append(
            {
                "instrument": str(code),
                "n": len(values),
                "mean": mean,
                "m2": float(((values - mean) ** 2).sum()),
            }
        )
    return pd.DataFrame(rows, columns=["instrument", "n", "mean", "m2"])


def pooled_baseline_sd(moments: pd.DataFrame) -> dict[str, float]:
    """The baseline SD (n - 1) per instrument from the moments of several parts.

    Parts are combined with the pairwise update of Chan, Golub and LeVeque
    (1983), which stays accurate where summing squares would not.  An
    instrument with fewer than 2 baselines gets NaN (no usable SD, so no
    reliable change index, as :func:`measure_change` does).

    Examples
    --------
    >>> parts = pd.DataFrame({"instrument": ["odi", "odi"], "n": [2, 1],
    ...                       "mean": [35.0, 50.0], "m2": [50.0, 0.0]})
    >>> pooled_baseline_sd(parts)
    {'odi': 10.0}
    """
    out: dict[str, float] = {}
    for code, group in moments.groupby("instrument", sort=True):
        n, mean, m2 = 0, 0.0, 0.0
        for part in group.itertuples(index=False):
            k = int(part.n)
            if k == 0:
                continue
            delta = float(part.mean) - mean
            total = n + k
            mean += delta * k / total
            m2 += float(part.m2) + delta * delta * n * k / total
            n = total
        out[str(code)] = float(np.sqrt(m2 / (n - 1))) if n >= 2 else float("nan")
    return out


def rescore_change(
    patients: pd.DataFrame,
    *,
    baseline_sd: Mapping[str, float] | None = None,
    moments: pd.DataFrame | None = None,
    responder: str = "points_first",
    registry: Registry | None = None,
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Score baseline / follow-up pairs again with given or pooled baseline SDs.

    Parameters
    ----------
    patients : DataFrame
        The ``patients`` frame of one or more
        :class:`~stepanalytics.instruments.change.ChangeResult` (parts of a
        cohort measured apart, concatenated); only :data:`PAIR_COLUMNS` are
        used, so parts may keep just those.
    baseline_sd : mapping of str to float, optional
        SD per instrument, given by the caller.
    moments : DataFrame, optional
        Instead of ``baseline_sd``: every part's :func:`baseline_moments`.
        The SDs are pooled from them (:func:`pooled_baseline_sd`) and the
        warnings are those :func:`measure_change` gives the whole cohort
        (``baseline_sd="cohort"``): they name the number of baselines behind
        an SD that cannot be used, and cover every instrument with a
        baseline, also one that has no pair.
    responder, registry
        As in :func:`measure_change`.

    Returns
    -------
    DataFrame, tuple of str
        The pairs scored as :func:`measure_change` would have scored the whole
        cohort with these SDs, and its warnings.

    Examples
    --------
    >>> scores = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "day": [0, 90, 2, 88],
    ...                        "instrument": "phq9", "score": [18.0, 6.0, 12.0, 13.0]})
    >>> from stepanalytics.instruments.change import measure_change
    >>> part = measure_change(scores, baseline_sd={"phq9": 1.0}).patients
    >>> again, _ = rescore_change(part, baseline_sd={"phq9": 5.0})
    >>> again["category"].tolist()
    ['recovered', 'unchanged']

    With the parts' baseline moments instead, the SD and the warnings are the
    whole cohort's (here the parts are the whole):

    >>> again, warnings = rescore_change(part, moments=baseline_moments(scores))
    >>> again["rci"].equals(measure_change(scores).patients["rci"]), warnings
    (True, ())
    """
    registry = registry or get_registry()
    if (baseline_sd is None) == (moments is None):
        raise UsageError("rescore_change needs exactly one of baseline_sd and moments.")
    if baseline_sd is None:
        sds, warnings = _pooled_sds(moments, registry)
    else:
        baselines = patients.drop_duplicates(KEY)[[*KEY, "baseline_score"]]
        sds, warnings = _baseline_sds(baselines, baseline_sd, registry)
    pairs = patients[[c for c in PAIR_COLUMNS if c in patients.columns]]
    return _score_pairs(pairs, sds, responder, registry, warnings), tuple(warnings)


def _pooled_sds(moments: pd.DataFrame, registry: Registry) -> tuple[pd.DataFrame, list[str]]:
    """The SD table and warnings of ``measure_change(baseline_sd="cohort")``, from moments.

    Kept in step with :func:`stepanalytics.instruments.change._baseline_sds`
    (the whole cohort's version): same instruments (those with a baseline),
    same order, same wording.
    """
    pooled = pooled_baseline_sd(moments)
    counts = moments.groupby("instrument", sort=True)["n"].sum()
    warnings: list[str] = []
    rows = []
    for code, sd in pooled.items():
        n = int(counts[code])
        if n == 0:
            continue  # no baseline in any part: the whole cohort has no row either
        spec = registry.get(code)
        source = f"SD of {n} baseline scores in these data"
        if not np.isfinite(sd) or sd <= 0:
            warnings.append(f"{code}: no usable baseline SD ({source}); RCI not computed.")
        if spec.reliability is None:
            warnings.append(f"{code}: the registry has no reliability; RCI not computed.")
        rows.append({"instrument": code, "sd_baseline": sd, "sd_source": source, "n_baseline": n})
    columns = ["instrument", "sd_baseline", "sd_source", "n_baseline"]
    return pd.DataFrame(rows, columns=columns), warnings
