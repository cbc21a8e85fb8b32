"""Property-based checks of the scorer and the item checks (hypothesis)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepanalytics.instruments import check_item_values, get_registry, score_items
from stepanalytics.instruments.registry import Registry

TSK17 = """
questionnaires:
  tsk17: {name: TSK-17, n_items: 17, item_min: 1, item_max: 4}
instruments:
  tsk17:
    name: TSK-17 total
    questionnaire: tsk17
    items: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    reverse_items: [4, 8, 12, 16]
    method: sum
    score_min: 17
    score_max: 68
    missing: {rule: prorate, max_missing: 2, source: test entry}
  tsk17_better:
    name: The same items read the other way round (a higher-is-better test instrument)
    questionnaire: tsk17
    items: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    reverse_items: [1, 2, 3]
    method: mean
    score_min: 1
    score_max: 4
    higher_is_better: true
    missing: {rule: prorate, max_missing: 3, source: test entry}
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    path = tmp_path_factory.mktemp("registry") / "extra.yaml"
    path.write_text(TSK17, encoding="utf-8")
    return get_registry(extra=path)


QUESTIONNAIRES = [*get_registry().questionnaire_codes, "tsk17"]
SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def answer_sets(draw: st.DrawFn, registry: Registry, *, allow_missing: bool = True):
    """A questionnaire code and a valid answer per item (None = unanswered)."""
    code = draw(st.sampled_from(QUESTIONNAIRES))
    spec = registry.questionnaire(code)
    answer = st.integers(int(spec.item_min), int(spec.item_max))
    if allow_missing:
        answer = st.one_of(answer, st.none()) if draw(st.booleans()) else answer
    answers = draw(st.lists(answer, min_size=spec.n_items, max_size=spec.n_items))
    return code, answers


def _frame(code: str, answers: list) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": "p",
            "day": np.int64(0),
            "instrument": code,
            "item": np.arange(1, len(answers) + 1, dtype=np.int64),
            "value": [np.nan if a is None else float(a) for a in answers],
        }
    )


@SETTINGS
@given(data=st.data())
def test_any_valid_answer_set_scores_inside_the_range(registry, data):
    code, answers = data.draw(answer_sets(registry))
    result = score_items(_frame(code, answers), registry=registry)
    assert len(result.report) == len(registry.questionnaire(code).instruments)
    for row in result.report.itertuples():
        spec = registry.get(row.instrument)
        if row.status == "not_scorable":
            assert np.isnan(row.score)
            continue
        assert spec.score_min - 1e-9 <= row.score <= spec.score_max + 1e-9
        assert row.n_items - row.n_answered <= max(spec.max_missing, 0) or (
            spec.missing_rule == "unanswered_is_zero"
        )


@SETTINGS
@given(data=st.data())
def test_worsening_one_answer_never_improves_a_score(registry, data):
    code, answers = data.draw(answer_sets(registry))
    questionnaire = registry.questionnaire(code)
    answered = [k for k, a in enumerate(answers) if a is not None]
    if not answered:
        return
    k = data.draw(st.sampled_from(answered))
    before = score_items(_frame(code, answers), registry=registry).report
    for instrument in questionnaire.instruments:
        spec = registry.get(instrument)
        item = k + 1
        # Raising a plain item's answer makes a higher-is-worse score worse; a reverse-keyed
        # item and a higher-is-better score each flip that.
        sign = (-1 if item in spec.reverse_items else 1) * (-1 if spec.higher_is_better else 1)
        worse = answers.copy()
        step = data.draw(st.integers(1, int(questionnaire.item_max - questionnaire.item_min)))
        worse[k] = int(np.clip(answers[k] + sign * step, questionnaire.item_min,
                               questionnaire.item_max))  # fmt: skip
        after = score_items(_frame(code, worse), registry=registry).report
        old = before.set_index("instrument").loc[instrument, "score"]
        new = after.set_index("instrument").loc[instrument, "score"]
        if np.isnan(old):
            assert np.isnan(new)  # the missing pattern, hence scorability, is unchanged
            continue
        better_by = (new - old) * spec.direction
        assert better_by <= 1e-9, (instrument, answers, worse)
        if item not in spec.items:
            assert new == old


@SETTINGS
@given(data=st.data())
def test_valid_answers_pass_the_item_checks(registry, data):
    code, answers = data.draw(answer_sets(registry))
    assert check_item_values(_frame(code, answers), registry) == []


@SETTINGS
@given(
    data=st.data(),
    bad=st.one_of(
        st.floats(allow_nan=False, allow_infinity=True).filter(
            lambda v: not math.isfinite(v) or v != round(v)
        ),
        st.integers(-1000, 1000),
        st.just(float("inf")),
    ),
)
def test_an_invalid_answer_is_always_reported(registry, data, bad):
    code, answers = data.draw(answer_sets(registry, allow_missing=False))
    spec = registry.questionnaire(code)
    if spec.item_min <= bad <= spec.item_max and float(bad) == round(bad):
        return  # a valid answer after all
    k = data.draw(st.integers(0, len(answers) - 1))
    frame = _frame(code, answers)
    frame.loc[k, "value"] = float(bad)
    problems = check_item_values(frame, registry)
    assert [p.column for p in problems] == ["value"]
    assert problems[0].rows == (k + 1,)


def test_registry_fixture_reads_both_test_instruments(registry, tmp_path: Path):
    assert registry.questionnaire("tsk17").instruments == ("tsk17", "tsk17_better")
