"""Checks of assessments and item answers against the instrument registry.

These run after the contract has typed the columns (``day`` and ``item``
int64, ``score`` and ``value`` float64) and return :class:`Problem` records
instead of raising, so the loader can report every problem of every table at
once.  Out-of-range values are problems to fix at the source, never clipped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stepanalytics.errors import Problem, only_problems
from stepanalytics.instruments.registry import Registry, get_registry
from stepanalytics.keys import duplicated_keys

ITEM_KEYS = ["patient_id", "day", "instrument", "item"]


def check_assessment_scores(
    assessments: pd.DataFrame, registry: Registry | None = None
) -> list[Problem]:
    """List instrument codes the registry does not know and scores outside their range.

    Parameters
    ----------
    assessments : DataFrame
        Columns ``instrument`` (str) and ``score`` (float64).  The index is
        the 0-based row position in the file (row number = index + 1).
    registry : Registry, optional
        Defaults to :func:`get_registry`.

    Returns
    -------
    list of Problem
        Empty when everything fits.  A missing score (NaN) is not reported
        here; required-value checks belong to the contract.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"instrument": ["phq9", "phq9", "odj"], "score": [3.0, 28.0, 1.0]})
    >>> [p.message.split(":")[0] for p in check_assessment_scores(frame)]
    ['unknown instrument code', 'phq9 scores outside the range 0 to 27']
    """
    registry = registry or get_registry()
    instrument = assessments["instrument"]
    score = assessments["score"].to_numpy(dtype=float)
    problems: list[Problem | None] = []
    known = instrument.isin(registry.codes).to_numpy()
    problems.append(
        Problem.from_mask(
            "assessments",
            "instrument",
            assessments,
            ~known & instrument.notna().to_numpy(),
            "unknown instrument code: not in the instrument registry",
            f"use one of {', '.join(registry.codes)}, or add the instrument to a registry file "
            "of your own (see docs/instruments.md)",
        )
    )
    for code, in_code in _rows_by_code(instrument, known):
        spec = registry.get(code)
        upper = np.inf if spec.score_max is None else spec.score_max
        outside = in_code & ((score < spec.score_min) | (score > upper))
        shown_max = "no upper limit" if spec.score_max is None else f"{spec.score_max:g}"
        problems.append(
            Problem.from_mask(
                "assessments",
                "score",
                assessments,
                outside,
                f"{code} scores outside the range {spec.score_min:g} to {shown_max}",
                f"correct the score at the source ({spec.name}); scores are never clipped",
            )
        )
    return only_problems(problems)


def check_item_values(items: pd.DataFrame, registry: Registry | None = None) -> list[Problem]:
    """List unknown questionnaires, item numbers and answers outside their range, duplicates.

    Parameters
    ----------
    items : DataFrame
        Columns ``patient_id``, ``day``, ``instrument`` (the questionnaire
        code), ``item`` (int64, 1..n) and ``value`` (float64; NaN means the
        item was not answered, which is allowed).
    registry : Registry, optional

    Returns
    -------
    list of Problem

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> frame = pd.DataFrame({"patient_id": "p1", "day": 0, "instrument": "phq9",
    ...                       "item": [1, 2, 10], "value": [0.0, 4.0, np.nan]})
    >>> [p.column for p in check_item_values(frame)]
    ['item', 'value']
    """
    registry = registry or get_registry()
    questionnaire = items["instrument"]
    item = items["item"].to_numpy()
    value = items["value"].to_numpy(dtype=float)
    answered = ~np.isnan(value)
    problems: list[Problem | None] = []
    # Factorise the codes once; comparisons of object columns are the slow part at scale.
    position, codes = pd.factorize(questionnaire)
    known_code = np.array([c in registry.questionnaires for c in codes], dtype=bool)
    known = np.zeros(len(items), dtype=bool)
    known[position >= 0] = known_code[position[position >= 0]]
    scored_only = [
        c for c in codes if c in registry.instruments and c not in registry.questionnaires
    ]
    problems.append(
        Problem.from_mask(
            "items",
            "instrument",
            items,
            ~known & questionnaire.notna().to_numpy(),
            "unknown questionnaire code: items can only be given for questionnaires in the "
            "registry"
            + (
                " (some codes are scored instruments or subscales, not questionnaires)"
                if scored_only
                else ""
            ),
            "give items under the questionnaire code (e.g. 'pcs' for the PCS subscales, "
            f"'dass21' for the DASS-21 scales); questionnaires: "
            f"{', '.join(registry.questionnaire_codes)}. Scores without items (six_mwt) "
            "belong in the assessments table",
        )
    )
    for k, code in enumerate(codes):
        if not known_code[k]:
            continue
        spec = registry.questionnaire(str(code))
        in_code = position == k
        problems.append(
            Problem.from_mask(
                "items",
                "item",
                items,
                in_code & ((item < 1) | (item > spec.n_items)),
                f"{code} item numbers outside 1 to {spec.n_items}",
                "use the item numbers of the published questionnaire (see docs/instruments.md)",
            )
        )
        outside = answered & ((value < spec.item_min) | (value > spec.item_max))
        bad_value = in_code & outside
        if spec.integer_items:
            bad_value |= in_code & answered & (value != np.round(value))
        problems.append(
            Problem.from_mask(
                "items",
                "value",
                items,
                bad_value,
                f"{code} answers outside the allowed values "
                f"{spec.item_min:g} to {spec.item_max:g}"
                + (" (whole numbers)" if spec.integer_items else ""),
                "correct the answer at the source, or leave it empty if the item was not "
                "answered; answers are never clipped or rounded",
            )
        )
    keys = [c for c in ITEM_KEYS if c in items.columns]
    if len(keys) == len(ITEM_KEYS):
        numeric = pd.DataFrame(
            {
                "patient": items["patient_id"].to_numpy(),
                "day": items["day"].to_numpy(),
                "questionnaire": position,
                "item": item,
            },
            copy=False,  # no 2-D block: stacking these columns cost half a second per 10M rows
        )
        duplicated = duplicated_keys(numeric, ("patient", "day", "questionnaire", "item"))
        if duplicated.any():
            problems.append(
                Problem.from_mask(
                    "items",
                    "item",
                    items,
                    duplicated,
                    "the same item of the same questionnaire is given twice for one patient "
                    "and day",
                    "keep one answer per (patient_id, day, instrument, item)",
                    values=_describe_keys(items),
                )
            )
    return only_problems(problems)


def _rows_by_code(codes: pd.Series, known: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Boolean row masks per known code; factorised once, as object comparisons are slow."""
    position, uniques = pd.factorize(codes)
    return [
        (str(code), position == k)
        for k, code in enumerate(uniques)
        if known[np.argmax(position == k)]
    ]


def _describe_keys(items: pd.DataFrame) -> pd.Series:
    """Example text for duplicate rows without the patient id (it may reach a report)."""
    return (
        "day "
        + items["day"].astype(str)
        + " "
        + items["instrument"].astype(str)
        + " item "
        + items["item"].astype(str)
    )
