"""Hand-worked scoring cases for every instrument, from the published scoring rules.

Each case gives the answers of one form (``None`` = not answered), the
instrument scored, and the status, score and band worked out by hand in the
comment next to it.  Sources of the rules: docs/instruments.md.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import CohortError
from stepanalytics.instruments import get_registry, score_items

OK, RULE, NO = "scored", "scored_with_rule", "not_scorable"
BELOW, HIGH = "below clinical level", "clinically relevant"  # PCS bands
N = None

# (questionnaire, answers for items 1..n, instrument, status, score, band)
CASES = [
    # --- NRS pain: single item, no rule; none 0, mild 1-5, moderate 6-7, severe 8-10
    ("nrs_pain", [0], "nrs_pain", OK, 0, "none"),
    ("nrs_pain", [1], "nrs_pain", OK, 1, "mild"),
    ("nrs_pain", [5], "nrs_pain", OK, 5, "mild"),
    ("nrs_pain", [6], "nrs_pain", OK, 6, "moderate"),  # lower boundary of moderate
    ("nrs_pain", [7], "nrs_pain", OK, 7, "moderate"),
    ("nrs_pain", [8], "nrs_pain", OK, 8, "severe"),
    ("nrs_pain", [10], "nrs_pain", OK, 10, "severe"),
    ("nrs_pain", [N], "nrs_pain", NO, None, None),
    # --- BPI severity: mean of worst, least, average, now; >= 3 of 4 answered
    ("bpi_severity", [8, 2, 5, 6], "bpi_severity", OK, 21 / 4, "moderate"),  # 5.25
    ("bpi_severity", [5, 4, 4, 4], "bpi_severity", OK, 17 / 4, "mild"),  # 4.25 < 5
    ("bpi_severity", [7, 7, 7, 7], "bpi_severity", OK, 7, "severe"),  # boundary 7
    ("bpi_severity", [8, N, 6, 7], "bpi_severity", RULE, 21 / 3, "severe"),  # 7.0
    ("bpi_severity", [8, N, N, 7], "bpi_severity", NO, None, None),
    # --- BPI interference: mean of 7, >= 4 answered (Cleeland 2009)
    ("bpi_interference", [5, 6, 4, 3, 7, 8, 2], "bpi_interference", OK, 35 / 7, None),
    ("bpi_interference", [5, N, 4, N, 7, N, 2], "bpi_interference", RULE, 18 / 4, None),
    ("bpi_interference", [5, N, 4, N, N, N, 2], "bpi_interference", NO, None, None),
    # --- PCS: 13 items 0-4; R = 8-11, M = 6,7,13, H = 1-5,12
    # answers 2,3,1,4,0,2,3,4,4,3,2,1,0 -> total 29, R 4+4+3+2=13, M 2+3+0=5, H 2+3+1+4+0+1=11
    ("pcs", [2, 3, 1, 4, 0, 2, 3, 4, 4, 3, 2, 1, 0], "pcs", OK, 29, BELOW),
    ("pcs", [2, 3, 1, 4, 0, 2, 3, 4, 4, 3, 2, 1, 0], "pcs_rumination", OK, 13, None),
    ("pcs", [2, 3, 1, 4, 0, 2, 3, 4, 4, 3, 2, 1, 0], "pcs_magnification", OK, 5, None),
    ("pcs", [2, 3, 1, 4, 0, 2, 3, 4, 4, 3, 2, 1, 0], "pcs_helplessness", OK, 11, None),
    # item 13 = 1: total 30 reaches the clinically relevant level (>= 30)
    ("pcs", [2, 3, 1, 4, 0, 2, 3, 4, 4, 3, 2, 1, 1], "pcs", OK, 30, HIGH),
    # item 10 unanswered: total 26 x 13 / 12 = 28.1667; rumination needs all 4 items
    ("pcs", [2, 3, 1, 4, 0, 2, 3, 4, 4, N, 2, 1, 0], "pcs", RULE, 26 * 13 / 12, BELOW),
    ("pcs", [2, 3, 1, 4, 0, 2, 3, 4, 4, N, 2, 1, 0], "pcs_rumination", NO, None, None),
    ("pcs", [2, 3, 1, 4, 0, 2, 3, 4, 4, N, 2, 1, 0], "pcs_magnification", OK, 5, None),
    ("pcs", [2, 3, 1, 4, 0, 2, 3, 4, 4, N, 2, 1, 0], "pcs_helplessness", OK, 11, None),
    ("pcs", [2, 3, 1, 4, 0, 2, 3, N, 4, N, 2, 1, 0], "pcs", NO, None, None),  # 2 missing
    # --- PSEQ: 10 items 0-6, higher is better; <= 2 missing prorated
    ("pseq", [4] * 10, "pseq", OK, 40, "mild"),  # 31-40 mild
    ("pseq", [4] * 9 + [5], "pseq", OK, 41, "minimal"),  # boundary 41
    ("pseq", [2] * 9 + [1], "pseq", OK, 19, "severe"),
    ("pseq", [2] * 10, "pseq", OK, 20, "moderate"),  # boundary 20
    ("pseq", [3] * 8 + [N, N], "pseq", RULE, 24 * 10 / 8, "moderate"),  # 30.0
    ("pseq", [3] * 7 + [N, N, N], "pseq", NO, None, None),
    ("pseq", [6] * 10, "pseq", OK, 60, "minimal"),
    # --- PHQ-9: 9 items 0-3, <= 2 missing: mean x 9 (Arrieta 2017)
    ("phq9", [0] * 9, "phq9", OK, 0, "minimal"),
    ("phq9", [1, 1, 1, 1, 0, 0, 0, 0, 0], "phq9", OK, 4, "minimal"),
    ("phq9", [1, 1, 1, 1, 1, 0, 0, 0, 0], "phq9", OK, 5, "mild"),  # boundary 5
    ("phq9", [2, 2, 2, 2, 2, 2, 2, 2, 0], "phq9", OK, 16, "moderately severe"),
    ("phq9", [3, 3, 3, 3, 2, 2, 2, 2, 0], "phq9", OK, 20, "severe"),  # boundary 20
    ("phq9", [1, 1, 2, 0, N, 3, 1, 0, 1], "phq9", RULE, 9 * 9 / 8, "moderate"),  # 10.125
    ("phq9", [1, 1, 2, 0, N, 3, N, 0, 1], "phq9", RULE, 8 * 9 / 7, "moderate"),  # 10.2857
    ("phq9", [1, N, 2, 0, N, 3, N, 0, 1], "phq9", NO, None, None),
    ("phq9", [3] * 9, "phq9", OK, 27, "severe"),
    # --- GAD-7: 7 items 0-3; <= 1 missing prorated
    ("gad7", [1, 2, 3, 0, 1, 2, 1], "gad7", OK, 10, "moderate"),  # boundary 10
    ("gad7", [1, 1, 1, 1, 0, 0, 0], "gad7", OK, 4, "minimal"),
    ("gad7", [1, 1, 1, 1, 1, 0, 0], "gad7", OK, 5, "mild"),
    ("gad7", [3, 3, 3, 3, 3, 0, 0], "gad7", OK, 15, "severe"),
    ("gad7", [1, 2, 3, N, 1, 2, 1], "gad7", RULE, 10 * 7 / 6, "moderate"),  # 11.667
    ("gad7", [1, 2, 3, N, N, 2, 1], "gad7", NO, None, None),
    # --- ODI: 10 sections 0-5; percent of the maximum of the answered sections
    ("odi", [2] * 10, "odi", OK, 40, "moderate disability"),  # 20/50
    ("odi", [1] * 10, "odi", OK, 20, "minimal disability"),  # 10/50, top of minimal
    ("odi", [1] * 9 + [2], "odi", OK, 22, "moderate disability"),  # 11/50
    ("odi", [5] * 10, "odi", OK, 100, "bed-bound or exaggerating"),
    # Fairbank & Pynsent's example: 16 points, one section missed -> 16/45 = 35.6%
    ("odi", [2, 2, 2, 2, 2, 2, 2, N, 1, 1], "odi", RULE, 16 / 45 * 100, "moderate disability"),
    ("odi", [2, 2, 2, 2, 2, 2, 2, N, N, 1], "odi", NO, None, None),
    # --- RMDQ: 24 statements, ticked = 1; an unticked (unanswered) one counts as 'no'
    ("rmdq", [1] * 5 + [0] * 19, "rmdq", OK, 5, None),
    ("rmdq", [1] * 5 + [N] * 19, "rmdq", RULE, 5, None),
    ("rmdq", [1] * 24, "rmdq", OK, 24, None),
    ("rmdq", [N] * 24, "rmdq", RULE, 0, None),  # nothing ticked: score 0 (Roland & Morris)
    # --- ISI: 7 items 0-4, all required; 0-7 / 8-14 / 15-21 / 22-28
    ("isi", [1] * 7, "isi", OK, 7, "no clinically significant insomnia"),
    ("isi", [2, 1, 1, 1, 1, 1, 1], "isi", OK, 8, "subthreshold insomnia"),
    ("isi", [2, 3, 1, 2, 3, 2, 2], "isi", OK, 15, "moderate clinical insomnia"),
    ("isi", [4, 4, 4, 4, 2, 2, 2], "isi", OK, 22, "severe clinical insomnia"),
    ("isi", [2, 3, 1, N, 3, 2, 2], "isi", NO, None, None),
    # --- TSK-11: 11 items 1-4, no reverse items, all required
    ("tsk11", [1] * 11, "tsk11", OK, 11, None),
    ("tsk11", [4] * 11, "tsk11", OK, 44, None),
    ("tsk11", [2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 1], "tsk11", OK, 26, None),
    ("tsk11", [2, 3, 2, 3, 2, N, 2, 3, 2, 3, 1], "tsk11", NO, None, None),
]

# DASS-21: depression items 3,5,10,13,16,17,21; anxiety 2,4,7,9,15,19,20;
# stress 1,6,8,11,12,14,18; each sum x 2 (Lovibond & Lovibond 1995).
DEPRESSION = (3, 5, 10, 13, 16, 17, 21)
ANXIETY = (2, 4, 7, 9, 15, 19, 20)
STRESS = (1, 6, 8, 11, 12, 14, 18)


def _dass(depression: list, anxiety: list, stress: list) -> list:
    answers: list = [None] * 21
    for items, values in ((DEPRESSION, depression), (ANXIETY, anxiety), (STRESS, stress)):
        for item, value in zip(items, values, strict=True):
            answers[item - 1] = value
    return answers


DASS_FORM = _dass([1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0, 0], [1] * 7)
DASS_GAPS = _dass([N, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0, 0], [N, N, 1, 1, 1, 1, 1])
CASES += [
    ("dass21", DASS_FORM, "dass21_depression", OK, 10, "mild"),  # 5 x 2, boundary 10
    ("dass21", DASS_FORM, "dass21_anxiety", OK, 8, "mild"),  # 4 x 2, boundary 8
    ("dass21", DASS_FORM, "dass21_stress", OK, 14, "normal"),  # 7 x 2, just below 15
    ("dass21", DASS_GAPS, "dass21_depression", RULE, 4 * 7 / 6 * 2, "normal"),  # 9.33
    ("dass21", DASS_GAPS, "dass21_anxiety", OK, 8, "mild"),
    ("dass21", DASS_GAPS, "dass21_stress", NO, None, None),  # 2 of 7 missing
    ("dass21", _dass([3] * 7, [3] * 7, [3] * 7), "dass21_stress", OK, 42, "extremely severe"),
]


def _form(questionnaire: str, answers: list, patient: str = "p1", day: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": patient,
            "day": np.int64(day),
            "instrument": questionnaire,
            "item": np.arange(1, len(answers) + 1, dtype=np.int64),
            "value": [np.nan if a is None else float(a) for a in answers],
        }
    )


@pytest.mark.parametrize(
    ("questionnaire", "answers", "instrument", "status", "score", "band"),
    CASES,
    ids=[f"{c[2]}-{k}" for k, c in enumerate(CASES)],
)
def test_hand_worked_case(questionnaire, answers, instrument, status, score, band):
    result = score_items(_form(questionnaire, answers))
    row = result.report.set_index("instrument").loc[instrument]
    assert row["status"] == status
    if score is None:
        assert math.isnan(row["score"])
        assert instrument not in set(result.assessments["instrument"])
        assert row["reason"]  # says why
    else:
        assert row["score"] == pytest.approx(score, abs=1e-12)
        scored = result.assessments.set_index("instrument").loc[instrument, "score"]
        assert scored == pytest.approx(score, abs=1e-12)
        spec = get_registry().get(instrument)
        got_band = spec.band_of([row["score"]]).iloc[0]
        assert (got_band if got_band is not pd.NA else None) == band
    if status == RULE:
        assert "unanswered" in row["reason"] and row["rule"]


def test_every_builtin_questionnaire_has_cases():
    covered = {case[2] for case in CASES}
    expected = set(get_registry().codes) - {"six_mwt"}  # six_mwt has no items
    assert covered == expected


def test_absent_item_rows_count_as_unanswered():
    # PHQ-9 with the row of item 5 missing entirely: same as an empty answer.
    form = _form("phq9", [1, 1, 2, 0, 0, 3, 1, 0, 1]).drop(index=4)
    row = score_items(form).report.iloc[0]
    assert row["status"] == RULE and row["score"] == pytest.approx(81 / 8)
    assert row["reason"] == "1 of 9 items unanswered (item 5)"


def test_red_flag_from_phq9_item_9():
    forms = pd.concat(
        [
            _form("phq9", [0] * 8 + [2], patient="a", day=3),
            _form("phq9", [0] * 8 + [0], patient="b", day=3),
            _form("phq9", [0] * 8 + [N], patient="c", day=3),
        ]
    )
    flags = score_items(forms).red_flags
    assert flags.to_dict("records") == [
        {"patient_id": "a", "day": 3, "instrument": "phq9", "item": 9, "value": 2.0}
    ]


def test_many_forms_are_scored_independently():
    forms = pd.concat(
        [
            _form("gad7", [1, 2, 3, 0, 1, 2, 1], patient="a", day=0),
            _form("gad7", [1, 2, 3, N, 1, 2, 1], patient="a", day=30),
            _form("gad7", [3] * 7, patient="b", day=0),
            _form("isi", [1] * 7, patient="b", day=0),
        ]
    ).sample(frac=1.0, random_state=1)
    result = score_items(forms)
    got = result.assessments.sort_values(["patient_id", "day", "instrument"])
    assert got[["patient_id", "day", "instrument"]].values.tolist() == [
        ["a", 0, "gad7"],
        ["a", 30, "gad7"],
        ["b", 0, "gad7"],
        ["b", 0, "isi"],
    ]
    assert got["score"].tolist() == pytest.approx([10, 70 / 6, 21, 7])
    assert result.table.set_index("instrument").loc["gad7", "scored_with_rule"] == 1


def test_out_of_range_answer_is_refused_not_clipped():
    with pytest.raises(CohortError) as err:
        score_items(_form("phq9", [1, 1, 1, 1, 1, 1, 1, 1, 4]))
    assert "phq9 answers outside the allowed values 0 to 3" in str(err.value)


def test_empty_items_give_empty_typed_results():
    empty = _form("phq9", []).iloc[:0]
    result = score_items(empty)
    assert result.assessments.empty and result.report.empty and result.red_flags.empty
    assert list(result.assessments.columns) == ["patient_id", "day", "instrument", "score"]
    assert result.assessments["score"].dtype == np.float64


TSK17 = """
questionnaires:
  tsk17:
    name: Tampa Scale for Kinesiophobia, 17 items
    n_items: 17
    item_min: 1
    item_max: 4
instruments:
  tsk17:
    name: TSK-17 total
    questionnaire: tsk17
    items: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    reverse_items: [4, 8, 12, 16]
    method: sum
    score_min: 17
    score_max: 68
    higher_is_better: false
    bands: [[low, 17], [high, 38]]
    missing: {rule: prorate, max_missing: 1, source: test entry}
"""


@pytest.fixture
def registry_with_tsk17(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text(TSK17, encoding="utf-8")
    return get_registry(extra=path)


@pytest.mark.parametrize(
    ("answers", "status", "score", "band"),
    [
        # All 1: 13 plain items give 13, reverse items 4,8,12,16 give 4 each -> 13 + 16 = 29
        ([1] * 17, OK, 29, "low"),
        # All 4: 13 x 4 = 52, reverse items give 1 each -> 56
        ([4] * 17, OK, 56, "high"),
        # Reverse items at 4 (scored 1), the rest at 2: 13 x 2 + 4 = 30
        ([2, 2, 2, 4, 2, 2, 2, 4, 2, 2, 2, 4, 2, 2, 2, 4, 2], OK, 30, "low"),
        # Item 4 (reverse) unanswered, rest 3: 13 plain x 3 + reverse 8, 12, 16 at 5 - 3 = 2
        # -> 39 + 6 = 45 over 16 answered items, prorated x 17 / 16 = 47.8125
        ([3, 3, 3, N] + [3] * 13, RULE, 45 * 17 / 16, "high"),
    ],
)
def test_reverse_keyed_user_instrument(registry_with_tsk17, answers, status, score, band):
    result = score_items(_form("tsk17", answers), registry=registry_with_tsk17)
    row = result.report.iloc[0]
    assert (row["instrument"], row["status"]) == ("tsk17", status)
    assert row["score"] == pytest.approx(score)
    assert registry_with_tsk17.get("tsk17").band_of([row["score"]]).iloc[0] == band
