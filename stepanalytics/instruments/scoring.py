"""Score questionnaire items into assessments, with a status for every form.

Each (patient_id, day, questionnaire) form is laid out as one row of a
NumPy matrix (forms x items), so every instrument is scored for all forms
at once: a million item rows take about a second (benchmarks/bench_scoring.py).

Every form yields one report row per instrument it feeds, with status

* ``scored``            every item answered;
* ``scored_with_rule``  items unanswered, scored by the instrument's published
                        missing-item rule (the rule is named in ``rule``);
* ``not_scorable``      the rule does not allow it (``reason`` says why);

so nothing is dropped silently and nothing is guessed beyond the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stepanalytics.errors import raise_if_problems
from stepanalytics.instruments.checks import check_item_values
from stepanalytics.instruments.registry import Instrument, Registry, get_registry
from stepanalytics.results import AnalysisResult

SCORED = "scored"
SCORED_WITH_RULE = "scored_with_rule"
NOT_SCORABLE = "not_scorable"
STATUSES = (SCORED, SCORED_WITH_RULE, NOT_SCORABLE)

ASSESSMENT_COLUMNS = ["patient_id", "day", "instrument", "score"]
REPORT_COLUMNS = [
    "patient_id",
    "day",
    "questionnaire",
    "instrument",
    "n_items",
    "n_answered",
    "status",
    "rule",
    "reason",
    "score",
]
RED_FLAG_COLUMNS = ["patient_id", "day", "instrument", "item", "value"]


@dataclass(frozen=True)
class ScoringResult(AnalysisResult):
    """Scores, a status per scored form, and safety signals.

    Attributes
    ----------
    table : DataFrame
        Counts per instrument and status (``to_frame()``); no patient ids.
    assessments : DataFrame
        ``patient_id, day, instrument, score`` for every scorable form.
    report : DataFrame
        One row per form and instrument: ``patient_id, day, questionnaire,
        instrument, n_items, n_answered, status, rule, reason, score``.
    red_flags : DataFrame
        ``patient_id, day, instrument, item, value`` of safety items answered
        at or above their threshold (PHQ-9 item 9 > 0).  For the clinic's own
        worklist only: it carries patient ids and must never reach a
        committee report, which shows counts.
    """

    assessments: pd.DataFrame = field(default_factory=lambda: _empty(ASSESSMENT_COLUMNS))
    report: pd.DataFrame = field(default_factory=lambda: _empty(REPORT_COLUMNS))
    red_flags: pd.DataFrame = field(default_factory=lambda: _empty(RED_FLAG_COLUMNS))
    title: str = "Scoring of questionnaire items"


def score_items(
    items: pd.DataFrame, *, registry: Registry | None = None, checked: bool = False
) -> ScoringResult:
    """Turn item answers into instrument scores with the published rules.

    Parameters
    ----------
    items : DataFrame
        ``patient_id, day, instrument, item, value`` as in the data contract
        (``instrument`` holds questionnaire codes; ``value`` NaN = not
        answered; an item row that is absent counts as not answered).
    registry : Registry, optional
        Defaults to :func:`get_registry`; pass ``get_registry(extra=...)`` to
        score instruments of your own.
    checked : bool
        The items already passed :func:`check_item_values` against the same
        registry (as in :func:`stepanalytics.load_cohort`); skip checking again.

    Returns
    -------
    ScoringResult

    Raises
    ------
    CohortError
        When an item value lies outside its range, an item number or
        questionnaire is unknown, or an item is given twice.

    Notes
    -----
    Sum scores with unanswered items are prorated as ``sum x n / answered``
    (the mean of the answered items times the number of items), mean scores
    use the answered items, ODI divides by 5 x sections answered (Fairbank &
    Pynsent 2000), RMDQ counts an unticked statement as "no" (Roland & Morris
    1983).  Prorated scores are not rounded.  There is no single R function
    for this; the hand-worked cases in ``tests/instruments`` follow the
    published manuals cited in docs/instruments.md.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> items = pd.DataFrame({"patient_id": "p1", "day": 0, "instrument": "phq9",
    ...                       "item": range(1, 10),
    ...                       "value": [1, 1, 2, 0, np.nan, 3, 1, 0, 1.0]})
    >>> result = score_items(items)
    >>> result.assessments
      patient_id  day instrument   score
    0         p1    0       phq9  10.125
    >>> result.report.loc[0, "status"], len(result.red_flags)
    ('scored_with_rule', 1)
    """
    registry = registry or get_registry()
    if not checked:
        raise_if_problems(check_item_values(items, registry), source="items")
    reports = []
    flags = []
    # Strings are factorised once: comparing and grouping object columns is the slow part.
    patient_code, patients = pd.factorize(items["patient_id"], sort=True)
    position, codes = pd.factorize(items["instrument"])
    day = items["day"].to_numpy(dtype=np.int64)
    item = items["item"].to_numpy(dtype=np.int64)
    value = items["value"].to_numpy(dtype=float)
    for k in np.argsort(np.asarray(codes, dtype=str)):
        code = str(codes[k])
        questionnaire = registry.questionnaire(code)
        rows = position == k
        forms = _forms_of(
            patient_code[rows], day[rows], item[rows], value[rows], patients, questionnaire.n_items
        )
        for instrument_code in questionnaire.instruments:
            reports.append(_score_forms(forms, registry.get(instrument_code)))
        for flag in questionnaire.red_flags:
            raised = forms.matrix[:, flag.item - 1] >= flag.at_least
            flagged = forms.keys.loc[raised, ["patient_id", "day"]].reset_index(drop=True)
            flagged["instrument"] = code
            flagged["item"] = np.int64(flag.item)
            flagged["value"] = forms.matrix[raised, flag.item - 1]
            flags.append(flagged)
    report = _concat(reports, REPORT_COLUMNS)
    scorable = report["status"] != NOT_SCORABLE
    assessments = report.loc[scorable, ASSESSMENT_COLUMNS].reset_index(drop=True)
    red_flags = _concat(flags, RED_FLAG_COLUMNS)
    return ScoringResult(
        table=_count_statuses(report),
        assessments=assessments,
        report=report,
        red_flags=red_flags,
    )


@dataclass(frozen=True)
class _Forms:
    """Filled-in forms of one questionnaire: keys and a forms x items matrix."""

    keys: pd.DataFrame  # patient_id, day (one row per form)
    matrix: np.ndarray  # float, NaN = not answered (or item row absent)


def _forms_of(
    patient_code: np.ndarray,
    day: np.ndarray,
    item: np.ndarray,
    value: np.ndarray,
    patients: pd.Index,
    n_items: int,
) -> _Forms:
    """Lay the answers out as forms x items; forms sorted by patient_id, then day."""
    # One integer per (patient, day): patient codes follow the sorted patient ids.
    span = int(day.max()) + 1 if day.size else 1
    form_key, form = np.unique(patient_code.astype(np.int64) * span + day, return_inverse=True)
    keys = pd.DataFrame(
        {"patient_id": patients.take(form_key // span), "day": (form_key % span).astype(np.int64)}
    )
    matrix = np.full((form_key.size, n_items), np.nan)
    matrix[form, item - 1] = value
    return _Forms(keys=keys, matrix=matrix)


def _score_forms(forms: _Forms, spec: Instrument) -> pd.DataFrame:
    """Score every form for one instrument; vectorised over forms."""
    lo, hi = float(spec.item_min or 0.0), float(spec.item_max or 0.0)
    columns = np.asarray(spec.items) - 1
    answers = forms.matrix[:, columns].copy()
    missing = np.isnan(answers)
    if spec.missing_rule == "unanswered_is_zero":
        # Roland & Morris 1983: an unticked statement is a "no", the lowest answer.
        answers[missing] = lo
    reverse = np.isin(spec.items, spec.reverse_items)
    answers[:, reverse] = lo + hi - answers[:, reverse]
    n = spec.n_items
    n_missing = missing.sum(axis=1)
    answered = n - n_missing
    total = np.nansum(answers, axis=1)
    counted = n if spec.missing_rule == "unanswered_is_zero" else answered
    with np.errstate(divide="ignore", invalid="ignore"):
        if spec.method == "sum":
            score = total * n / counted * spec.multiplier
        elif spec.method == "mean":
            score = total / counted
        else:  # percent: ODI, sum / (maximum of the answered sections) x 100
            score = (total - counted * lo) / (counted * (hi - lo)) * 100.0

    allowed = spec.max_missing if spec.missing_rule == "prorate" else 0
    complete = n_missing == 0
    if spec.missing_rule == "unanswered_is_zero":
        ok = np.ones(len(score), dtype=bool)
    else:
        ok = (n_missing <= allowed) & (answered > 0)
    status = np.where(complete, SCORED, np.where(ok, SCORED_WITH_RULE, NOT_SCORABLE)).astype(object)
    report = forms.keys.copy()
    report["questionnaire"] = spec.questionnaire
    report["instrument"] = spec.code
    report["n_items"] = np.int64(n)
    report["n_answered"] = answered.astype(np.int64)
    report["status"] = status
    rule = np.full(len(score), "", dtype=object)  # object: one shared string, not n copies
    rule[~complete] = describe_missing_rule(spec)
    report["rule"] = rule
    report["reason"] = _reasons(spec, missing, ok, complete)
    report["score"] = np.where(ok, score, np.nan)
    return report


def describe_missing_rule(spec: Instrument) -> str:
    """One line naming the instrument's missing-item rule and its source.

    Examples
    --------
    >>> describe_missing_rule(get_registry().get("bpi_interference"))[:60]
    'mean of the answered items when at most 3 of 7 are unanswere'
    """
    source = spec.missing_source or "no source recorded"
    if spec.missing_rule == "unanswered_is_zero":
        return f"an unanswered item counts as the lowest answer ({source})"
    if spec.missing_rule == "none":
        return f"every item must be answered ({source})"
    how = {
        "sum": f"sum of the answered items x {spec.n_items} / number answered",
        "mean": "mean of the answered items",
        "percent": "sum / (maximum of the answered items) x 100",
    }[spec.method]
    limit = f"at most {spec.max_missing} of {spec.n_items} are unanswered"
    return f"{how} when {limit} ({source})"


def _reasons(
    spec: Instrument, missing: np.ndarray, ok: np.ndarray, complete: np.ndarray
) -> np.ndarray:
    """Say which items were unanswered, one text per distinct pattern of gaps."""
    reasons = np.full(len(ok), "", dtype=object)
    gaps = ~complete
    if not gaps.any():
        return reasons
    # Each pattern of unanswered items (and whether it is scorable) becomes one integer.
    weights = np.left_shift(np.int64(1), np.arange(spec.n_items, dtype=np.int64))
    pattern = missing[gaps].astype(np.int64) @ weights * 2 + ok[gaps]
    patterns, which = np.unique(pattern, return_inverse=True)
    items = np.asarray(spec.items)
    allowed = spec.max_missing if spec.missing_rule == "prorate" else 0
    texts = []
    for code in patterns:
        unanswered = items[(int(code) >> 1 >> np.arange(spec.n_items)) & 1 == 1]
        text = (
            f"{unanswered.size} of {spec.n_items} items unanswered "
            f"(item {', '.join(str(i) for i in unanswered)})"
        )
        if not code & 1:
            text += (
                f"; the rule allows at most {allowed}" if allowed else "; every item is required"
            )
        texts.append(text)
    reasons[gaps] = np.asarray(texts, dtype=object)[which.ravel()]
    return reasons


def _count_statuses(report: pd.DataFrame) -> pd.DataFrame:
    if report.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in ["instrument", *STATUSES, "n"]})
    counts = report.groupby(["instrument", "status"], sort=True).size().unstack(fill_value=0)
    counts = counts.reindex(columns=list(STATUSES), fill_value=0).astype(np.int64)
    counts["n"] = counts.sum(axis=1)
    return counts.rename_axis(columns=None).reset_index()


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return _empty(columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _empty(columns: list[str]) -> pd.DataFrame:
    dtypes = {"day": "int64", "item": "int64", "n_items": "int64", "n_answered": "int64"}
    floats = {"score", "value"}
    return pd.DataFrame(
        {c: pd.Series(dtype=dtypes.get(c, "float64" if c in floats else "object")) for c in columns}
    )
