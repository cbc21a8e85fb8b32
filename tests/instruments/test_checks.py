"""Checks of assessments and items against the registry return problems, not exceptions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stepanalytics.instruments import check_assessment_scores, check_item_values, get_registry


def _assessments(rows: list[tuple[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": [f"p{k}" for k in range(len(rows))],
            "day": np.zeros(len(rows), dtype=np.int64),
            "instrument": [r[0] for r in rows],
            "score": np.array([r[1] for r in rows], dtype=float),
        }
    )


def test_valid_scores_give_no_problem():
    frame = _assessments(
        [("phq9", 0), ("phq9", 27), ("odi", 35.6), ("six_mwt", 612.0), ("tsk11", 11)]
    )
    assert check_assessment_scores(frame, get_registry()) == []


def test_out_of_range_scores_and_unknown_codes_are_listed_with_rows():
    frame = _assessments(
        [("phq9", 28), ("phq9", 4), ("odj", 10), ("tsk11", 10), ("six_mwt", -5), ("pseq", np.nan)]
    )
    problems = check_assessment_scores(frame, get_registry())
    by_message = {p.message: p for p in problems}
    assert [p.column for p in problems] == ["instrument", "score", "score", "score"]
    unknown = by_message["unknown instrument code: not in the instrument registry"]
    assert unknown.rows == (3,) and unknown.examples == ("'odj'",)
    assert by_message["phq9 scores outside the range 0 to 27"].rows == (1,)
    assert by_message["tsk11 scores outside the range 11 to 44"].rows == (4,)
    assert by_message["six_mwt scores outside the range 0 to no upper limit"].rows == (5,)


def test_row_numbers_come_from_the_frame_index():
    frame = _assessments([("gad7", 3), ("gad7", 22)])
    frame.index = [10, 41]  # rows 11 and 42 of the file
    (problem,) = check_assessment_scores(frame, get_registry())
    assert problem.rows == (42,) and problem.table == "assessments"


def _items(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": [r[0] for r in rows],
            "day": np.zeros(len(rows), dtype=np.int64),
            "instrument": [r[1] for r in rows],
            "item": np.array([r[2] for r in rows], dtype=np.int64),
            "value": np.array([r[3] for r in rows], dtype=float),
        }
    )


def test_unanswered_items_are_fine():
    frame = _items([("a", "phq9", 1, np.nan), ("a", "phq9", 2, 3.0), ("a", "rmdq", 24, 1.0)])
    assert check_item_values(frame, get_registry()) == []


def test_item_problems_are_all_reported_at_once():
    frame = _items(
        [
            ("a", "phq9", 10, 1.0),  # row 1: item number outside 1..9
            ("a", "phq9", 1, 4.0),  # row 2: value above 3
            ("a", "phq9", 2, 1.5),  # row 3: not a whole number
            ("a", "dass21_stress", 1, 1.0),  # row 4: subscale code, not a questionnaire
            ("P-77", "gad7", 3, 1.0),  # rows 5 and 6: the same item twice
            ("P-77", "gad7", 3, 2.0),
            ("a", "tsk11", 1, 0.0),  # row 7: TSK answers are 1..4
        ]
    )
    problems = check_item_values(frame, get_registry())
    summary = [(p.column, p.rows) for p in problems]
    assert ("instrument", (4,)) in summary
    assert ("item", (1,)) in summary
    assert ("value", (2, 3)) in summary
    assert ("value", (7,)) in summary
    assert ("item", (5, 6)) in summary
    assert len(problems) == 5
    unknown = next(p for p in problems if p.column == "instrument")
    assert "'dass21'" in unknown.fix and "subscales" in unknown.message
    duplicate = next(p for p in problems if p.rows == (5, 6))
    assert duplicate.examples == ("'day 0 gad7 item 3'",)  # no patient id shown
