"""Change from baseline, and whether it matters, per patient and instrument.

:func:`measure_change` pairs each patient's baseline (the first score within
``baseline_window_days`` of enrolment, the rule the cohort uses) with a
follow-up score (last observation, end of each phase stay, or a fixed day)
and reports change, percent change, MCID responder, the Jacobson-Truax
reliable change index and the category recovered / improved / unchanged /
deteriorated, all in the instrument's own direction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stepanalytics.derive import BASELINE_WINDOW_DAYS, add_baseline
from stepanalytics.errors import UsageError
from stepanalytics.instruments import reliable_change as rc
from stepanalytics.instruments._change_summary import summarise_change, threshold_table
from stepanalytics.instruments.registry import Registry, get_registry
from stepanalytics.results import AnalysisResult

KEY = ["patient_id", "instrument"]
PATIENT_COLUMNS = [
    "patient_id", "instrument", "follow_up", "phase", "stay_number", "status",
    "baseline_day", "baseline_score", "baseline_band", "follow_up_day", "follow_up_score",
    "follow_up_band", "change", "percent_change", "improvement", "responder", "rci",
    "crossed_cutoff", "category",
]  # fmt: skip


@dataclass(frozen=True)
class ChangeResult(AnalysisResult):
    """Change per instrument and follow-up point, with the patient-level detail.

    Attributes
    ----------
    table : DataFrame
        One row per instrument and follow-up point: ``n`` pairs, mean change
        with ``std_error``, ``ci_lower``, ``ci_upper`` (t interval), and the
        percent of responders, recovered, improved, unchanged and
        deteriorated patients.  Counts only, no patient ids.
    patients : DataFrame
        One row per patient, instrument and follow-up point (columns
        ``PATIENT_COLUMNS``); ``status`` is ``complete``, ``no_baseline`` or
        ``no_follow_up`` so that nobody disappears from the denominator.
    thresholds : DataFrame
        Per instrument: baseline SD used, its source, reliability, S_diff
        and the smallest reliable change in points (1.96 x S_diff).
    """

    patients: pd.DataFrame = field(default_factory=pd.DataFrame)
    thresholds: pd.DataFrame = field(default_factory=pd.DataFrame)
    title: str = "Change from baseline"


def measure_change(
    data: Any,
    *,
    phases: pd.DataFrame | None = None,
    follow_up: str | int = "last",
    follow_up_window: int = 14,
    baseline_window_days: int | None = None,
    baseline_sd: str | Mapping[str, float] = "cohort",
    responder: str = "points_first",
    instruments: Sequence[str] | None = None,
    registry: Registry | None = None,
) -> ChangeResult:
    """Measure change from baseline to a follow-up point for every patient.

    Parameters
    ----------
    data : Cohort or DataFrame
        A :class:`~stepanalytics.Cohort`, or assessments with ``patient_id,
        day, instrument, score``.
    phases : DataFrame, optional
        Phase stays (``patient_id, phase, start_day, end_day``, optional
        ``stay_number``); needed for ``follow_up="phase_end"`` when ``data``
        is a frame.
    follow_up : {"last", "phase_end"} or int
        ``"last"``: the last score after the baseline.  ``"phase_end"``: for
        every ended stay, the last score in its final ``follow_up_window``
        days (``end_day - window .. end_day``, within the stay).  An int
        ``d``: the score closest to day ``d`` within ``+- follow_up_window``
        days (the earlier one on a tie).  Follow-ups are always after the
        baseline day.
    follow_up_window : int
        Days, see ``follow_up``.
    baseline_window_days : int, optional
        The baseline is the first score on days 0..this; defaults to the
        cohort's setting (14 days, ``stepanalytics.derive``).
    baseline_sd : {"cohort", "registry"} or mapping
        SD of baseline scores for the reliable change index: ``"cohort"``
        uses the SD (n - 1) of all baselines in the data, ``"registry"`` the
        published SD stored as ``normative_sd``, a mapping gives SDs by
        instrument code.
    responder : {"points_first", "points", "percent", "either", "both"}
        How the MCID is applied, see
        :func:`~stepanalytics.instruments.reliable_change.is_responder`.
    instruments : sequence of str, optional
        Restrict to these instrument codes.
    registry : Registry, optional

    Returns
    -------
    ChangeResult

    Notes
    -----
    The reliable change index follows Jacobson & Truax (1991), with the
    reliability each registry entry cites; R users compute the same with
    ``(x2 - x1) / (sqrt(2) * sd * sqrt(1 - r))`` (no package needed).
    *Recovered* needs the registry's clinical cut-off and a baseline in the
    clinical range.  Percent change is relative to the raw baseline score
    and is undefined for a baseline of 0.

    Examples
    --------
    >>> import pandas as pd
    >>> scores = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "day": [0, 90, 2, 88],
    ...                        "instrument": "phq9", "score": [18.0, 6.0, 12.0, 13.0]})
    >>> result = measure_change(scores, baseline_sd={"phq9": 5.0})
    >>> result.patients[["patient_id", "change", "responder", "category"]]
      patient_id  change  responder   category
    0          a   -12.0       True  recovered
    1          b     1.0      False  unchanged
    """
    registry = registry or get_registry()
    assessments, phases, window = _resolve_inputs(data, phases, baseline_window_days)
    if instruments is not None:
        for code in instruments:
            registry.get(code)
        assessments = assessments[assessments["instrument"].isin(list(instruments))]
    with_baseline, baselines = _baselines(assessments, window)
    pairs = _follow_ups(with_baseline, baselines, phases, follow_up, follow_up_window)
    sds, warnings = _baseline_sds(baselines, baseline_sd, registry)
    patients = _score_pairs(pairs, sds, responder, registry, warnings)
    label = follow_up if isinstance(follow_up, str) else f"day {follow_up}"
    return ChangeResult(
        table=summarise_change(patients),
        warnings=tuple(warnings),
        patients=patients,
        thresholds=threshold_table(sds, registry),
        title=f"Change from baseline (days 0-{window}) to {label}",
    )


def _baselines(assessments: pd.DataFrame, window: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores with their baseline, and one baseline row per patient and instrument."""
    with_baseline = add_baseline(assessments, window_days=window)
    baselines = (
        with_baseline.drop_duplicates(KEY)[[*KEY, "baseline_day", "baseline_score"]]
        .sort_values(KEY, kind="stable")
        .reset_index(drop=True)
    )
    return with_baseline, baselines


def _resolve_inputs(
    data: Any, phases: pd.DataFrame | None, window: int | None
) -> tuple[pd.DataFrame, pd.DataFrame | None, int]:
    if hasattr(data, "assessments") and hasattr(data, "phases"):
        phases = data.phases if phases is None else phases
        window = (
            getattr(data, "baseline_window_days", BASELINE_WINDOW_DAYS)
            if window is None
            else window
        )
        data = data.assessments
    if not isinstance(data, pd.DataFrame):
        raise UsageError("measure_change needs a Cohort or an assessments DataFrame.")
    missing = [c for c in ("patient_id", "day", "instrument", "score") if c not in data.columns]
    if missing:
        raise UsageError(f"assessments lack the column(s) {', '.join(missing)}.")
    window = BASELINE_WINDOW_DAYS if window is None else int(window)
    if window < 0:
        raise UsageError("baseline_window_days must be 0 or more.")
    columns = ["patient_id", "day", "instrument", "score"]
    return data[columns].reset_index(drop=True), phases, window


def _follow_ups(
    scores: pd.DataFrame,
    baselines: pd.DataFrame,
    phases: pd.DataFrame | None,
    follow_up: str | int,
    window: int,
) -> pd.DataFrame:
    """One row per patient, instrument (and stay) with the chosen follow-up score."""
    after = scores[scores["baseline_day"].notna() & (scores["day"] > scores["baseline_day"])]
    after = after.sort_values([*KEY, "day"], kind="stable")
    if isinstance(follow_up, (int, np.integer)) and not isinstance(follow_up, bool):
        near = after[(after["day"] - follow_up).abs() <= window].copy()
        near["_distance"] = (near["day"] - follow_up).abs()
        chosen = near.sort_values([*KEY, "_distance", "day"]).drop_duplicates(KEY)
        skeleton = baselines.assign(follow_up=f"day_{int(follow_up)}")
        return _attach(skeleton, chosen, KEY)
    if follow_up == "last":
        chosen = after.drop_duplicates(KEY, keep="last")
        return _attach(baselines.assign(follow_up="last"), chosen, KEY)
    if follow_up == "phase_end":
        return _phase_end_follow_ups(after, baselines, phases, window)
    raise UsageError(f"follow_up must be 'last', 'phase_end' or a day number, got {follow_up!r}.")


def _phase_end_follow_ups(
    after: pd.DataFrame, baselines: pd.DataFrame, phases: pd.DataFrame | None, window: int
) -> pd.DataFrame:
    if phases is None:
        raise UsageError("follow_up='phase_end' needs the phases table (pass phases=...).")
    stays = phases.sort_values(["patient_id", "start_day"], kind="stable").copy()
    if "stay_number" not in stays.columns:
        stays["stay_number"] = stays.groupby("patient_id").cumcount() + 1
    stays = stays[stays["end_day"].notna()][
        ["patient_id", "phase", "stay_number", "start_day", "end_day"]
    ]
    skeleton = baselines.merge(stays, on="patient_id", how="inner")
    candidates = after.merge(stays, on="patient_id", how="inner")
    ends = candidates["end_day"].astype("int64")
    inside = (
        (candidates["day"] <= ends)
        & (candidates["day"] >= ends - window)
        & (candidates["day"] >= candidates["start_day"])
    )
    stay_key = [*KEY, "stay_number"]
    chosen = (
        candidates[inside].sort_values([*stay_key, "day"]).drop_duplicates(stay_key, keep="last")
    )
    skeleton["follow_up"] = "phase_" + skeleton["phase"].astype(str) + "_end"
    out = _attach(skeleton, chosen[[*stay_key, "day", "score"]], stay_key)
    return out.drop(columns=["start_day", "end_day"])


def _attach(skeleton: pd.DataFrame, chosen: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    picked = chosen[[*on, "day", "score"]].rename(
        columns={"day": "follow_up_day", "score": "follow_up_score"}
    )
    return skeleton.merge(picked, on=on, how="left")


def _baseline_sds(
    baselines: pd.DataFrame, how: str | Mapping[str, float], registry: Registry
) -> tuple[pd.DataFrame, list[str]]:
    """Baseline SD per instrument and where it came from."""
    warnings: list[str] = []
    rows = []
    for code, group in baselines.dropna(subset=["baseline_score"]).groupby("instrument"):
        spec = registry.get(str(code))
        n = len(group)
        if isinstance(how, Mapping):
            sd, source = how.get(str(code), np.nan), "given by the caller"
        elif how == "registry":
            sd, source = spec.normative_sd or np.nan, spec.normative_sd_source or "none"
        elif how == "cohort":
            sd = float(group["baseline_score"].std(ddof=1)) if n >= 2 else np.nan
            source = f"SD of {n} baseline scores in these data"
        else:
            raise UsageError("baseline_sd must be 'cohort', 'registry' or a mapping of SDs.")
        if not np.isfinite(sd) or sd <= 0:
            warnings.append(f"{code}: no usable baseline SD ({source}); RCI not computed.")
        if spec.reliability is None:
            warnings.append(f"{code}: the registry has no reliability; RCI not computed.")
        rows.append({"instrument": code, "sd_baseline": sd, "sd_source": source, "n_baseline": n})
    return pd.DataFrame(
        rows, columns=["instrument", "sd_baseline", "sd_source", "n_baseline"]
    ), warnings


def _score_pairs(
    pairs: pd.DataFrame,
    sds: pd.DataFrame,
    responder: str,
    registry: Registry,
    warnings: list[str],
) -> pd.DataFrame:
    parts = []
    sd_by_code = dict(zip(sds["instrument"], sds["sd_baseline"], strict=True))
    for code, group in pairs.groupby("instrument", sort=True):
        spec = registry.get(str(code))
        frame = group.copy()
        base = frame["baseline_score"].to_numpy(float)
        later = frame["follow_up_score"].to_numpy(float)
        frame["change"] = later - base
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["percent_change"] = np.where(
                base != 0, (later - base) / np.abs(base) * 100, np.nan
            )
        frame["improvement"] = rc.improvement(spec, base, later)
        frame["responder"] = rc.is_responder(spec, base, later, rule=responder).to_numpy()
        sd = sd_by_code.get(str(code), np.nan)
        if spec.reliability is not None and np.isfinite(sd) and sd > 0:
            rci = rc.reliable_change_index(
                base, later, sd_baseline=sd, reliability=spec.reliability
            )
        else:
            rci = np.full(len(frame), np.nan)
        frame["rci"] = rci
        frame["crossed_cutoff"] = rc.crossed_into_normal(spec, base, later).to_numpy()
        frame["category"] = rc.classify_change(spec, base, later, rci).to_numpy()
        frame["baseline_band"] = spec.band_of(base).to_numpy()
        frame["follow_up_band"] = spec.band_of(later).to_numpy()
        if spec.clinical_cutoff is None and (frame["category"] == "improved").any():
            warnings.append(
                f"{code}: no clinical cut-off in the registry, so 'recovered' cannot be assessed."
            )
        parts.append(frame)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PATIENT_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    out["status"] = np.where(
        out["baseline_score"].isna(),
        "no_baseline",
        np.where(out["follow_up_score"].isna(), "no_follow_up", "complete"),
    )
    for column in ("phase", "stay_number"):
        out[column] = (
            out[column].astype("Int64")
            if column in out
            else pd.array([pd.NA] * len(out), dtype="Int64")
        )
    for column in ("baseline_day", "follow_up_day"):
        out[column] = out[column].astype("Int64")
    for column in ("responder", "crossed_cutoff"):
        out[column] = out[column].astype("boolean")
    for column in ("category", "baseline_band", "follow_up_band"):
        out[column] = out[column].astype("string")
    sort = [c for c in ("patient_id", "instrument", "stay_number") if c in out]
    return out.sort_values(sort, kind="stable").reset_index(drop=True)[PATIENT_COLUMNS]
