"""Putting a cohort's scores together: the given ones and those computed from items.

Kept apart from :mod:`stepanalytics.cohort` so that the rule has one home,
whichever way the item scores were obtained (scored while loading, or read
from an ingested DuckDB file's stored scoring).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stepanalytics.contract import contract_columns
from stepanalytics.errors import CohortError, Problem


def merge_scores(
    given: pd.DataFrame, from_items: pd.DataFrame, source: str
) -> tuple[pd.DataFrame, list[str]]:
    """Given scores and scores from items together; a conflict is an error.

    A score given in assessments and also computed from items must agree
    (within 1e-9); an equal pair is kept once (the given row) and a note
    says how many.

    Returns
    -------
    DataFrame, list of str
        The scores, and notes.

    Raises
    ------
    CohortError
        Naming the assessments rows whose given score differs from its items.

    Examples
    --------
    >>> given = pd.DataFrame({"patient_id": ["a"], "day": [0], "instrument": ["odi"],
    ...                       "score": [40.0], "source": ["given"]})
    >>> merged, notes = merge_scores(given, given.assign(source="items"), "demo")
    >>> len(merged), notes[0].startswith("1 scores were given and also computed")
    (1, True)
    """
    key = ["patient_id", "day", "instrument"]
    both = given[[*key, "score"]].merge(
        from_items[[*key, "score"]], on=key, suffixes=("_given", "_items")
    )
    if both.empty:
        return pd.concat([given, from_items], ignore_index=True), []
    differ = ~np.isclose(both["score_given"], both["score_items"], rtol=0, atol=1e-9)
    if differ.any():
        bad = both[differ]
        conflict = pd.MultiIndex.from_frame(bad[key])
        mask = pd.MultiIndex.from_frame(given[key]).isin(conflict)
        item_score = given[key].merge(bad[[*key, "score_items"]], on=key, how="left")
        from_items_text = item_score["score_items"].astype(str).to_numpy()
        shown = given["instrument"] + ": given " + given["score"].astype(str)
        shown = shown + ", from items " + from_items_text
        problem = Problem.from_mask(
            "assessments",
            "score",
            given,
            mask,
            "a score is given in assessments and also computed from items; they differ",
            "give each (patient_id, day, instrument) once: either the score or its items",
            values=shown,
        )
        raise CohortError([problem] if problem else [], source=source)
    # Equal scores given both ways: keep the given row, say how many.
    keys = pd.MultiIndex.from_frame(both[key])
    keep = ~pd.MultiIndex.from_frame(from_items[key]).isin(keys)
    note = (
        f"{int((~keep).sum())} scores were given and also computed from items "
        "with equal values; each was kept once"
    )
    return pd.concat([given, from_items[keep]], ignore_index=True), [note]


def empty_table(table: str) -> pd.DataFrame:
    """An empty contract table with its columns typed (for tables a cohort lacks).

    Examples
    --------
    >>> list(empty_table("events").columns)
    ['patient_id', 'day', 'event', 'severity']
    """
    dtypes = {"patient_id": object, "day": "int64", "instrument": object, "score": "float64",
              "item": "int64", "value": "float64", "event": object, "severity": object}  # fmt: skip
    return pd.DataFrame(
        {c: pd.Series(dtype=dtypes.get(c, object)) for c in contract_columns(table)}
    )
