"""Refusals found necessary by the robustness audit: each with a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests_helpers import PATIENTS, PHASES, SCORES, build, refusal

from stepanalytics import load_cohort
from stepanalytics.cli import main


def test_huge_whole_number_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    patients = PATIENTS.replace(",100,", ",9223372036854775807,")
    text = refusal(build(tmp_path / "c", patients=patients))
    assert "patients.last_contact_day" in text and "sensible size" in text


def test_every_problem_listed_even_when_a_column_has_bad_cells(tmp_path: Path) -> None:
    scores = SCORES.replace("P00001,0,odi,40", "P00001,0,odi,1e308").replace(
        "P00001,45,odi,30", "P00001,45,odi,inf"
    )
    text = refusal(build(tmp_path / "c", assessments=scores))
    assert "'inf'" in text  # the cell that does not parse
    assert "1e+308" in text or "1e308" in text  # and the one out of range, in the same pass


def test_spaces_around_ids_are_refused(tmp_path: Path) -> None:
    text = refusal(build(tmp_path / "c", patients=PATIENTS.replace("P00002,C1", "P00002, C1 ")))
    assert "patients.clinic_id" in text and "spaces" in text and "rows: 2" in text


def test_duplicate_events_are_refused(tmp_path: Path) -> None:
    events = "patient_id,day,event,severity\nP00001,10,flare_up,mild\nP00001,10,flare_up,mild\n"
    text = refusal(build(tmp_path / "c", events=events))
    assert "events" in text and "more than once" in text and "rows: 1, 2" in text


def test_same_day_events_of_different_severity_are_kept(tmp_path: Path) -> None:
    events = "patient_id,day,event,severity\nP00001,10,adverse_event,mild\nP00001,10,adverse_event,severe\n"
    assert len(load_cohort(build(tmp_path / "c", events=events)).events) == 2


PROTOCOL_CASES = [
    ("typo key", "min_day_in_phase: 28", "unknown key(s) min_day_in_phase"),
    ("typo section", None, "unknown key(s) progresion"),
    ("two rules", "min_days_in_phase: 28\n  - from_phase: 1", "two progression rules from phase 1"),
    ("negative", "min_days_in_phase: -3", "must be at least 0"),
    ("text number", "min_days_in_phase: one", "must be a whole number, not 'one'"),
    (
        "unknown instrument",
        "criteria: [{instrument: nosuch, op: '>=', value: 3}]",
        "'nosuch' is not in the registry",
    ),
    (
        "threshold out of range",
        "criteria: [{instrument: pseq, op: '>=', value: 9999}]",
        "outside the range of pseq",
    ),
    ("bad operator", "criteria: [{instrument: pseq, op: '=>', value: 30}]", "'=>' is not one of"),
    ("from last phase", None, "there is no phase to move up to"),
]


@pytest.mark.parametrize(
    ("name", "rule", "message"), PROTOCOL_CASES, ids=[c[0] for c in PROTOCOL_CASES]
)
def test_protocol_yaml_is_read_strictly(
    tmp_path: Path, name: str, rule: str | None, message: str
) -> None:
    phases = "phases:\n  - {phase: 1, name: a}\n  - {phase: 2, name: b}\n"
    if name == "typo section":
        text = phases + "progresion:\n  - from_phase: 1\n"
    elif name == "from last phase":
        text = phases + "progression:\n  - from_phase: 2\n"
    else:
        text = phases + f"progression:\n  - from_phase: 1\n    {rule}\n"
    folder = build(tmp_path / "c", phases=PHASES)
    (folder / "protocol.yaml").write_text(text)
    out = refusal(folder)
    assert message in out
    assert "Error" not in out  # plain words, not Python exception names


def test_summary_of_a_cohort_without_scores(tmp_path: Path) -> None:
    folder = build(tmp_path / "c", assessments="patient_id,day,instrument,score\n")
    result = CliRunner().invoke(main, ["summary", str(folder)])
    assert result.exit_code == 0
    assert "scores: none" in result.output
    assert "Empty DataFrame" not in result.output


@pytest.mark.parametrize("text", ["nan", "NaN", "-inf"])
def test_nan_written_as_a_number_is_refused_not_read_as_missing(tmp_path: Path, text: str) -> None:
    """Only an empty cell is missing: the fast CSV reader must not turn "nan" into one."""
    scores = SCORES.replace("P00001,45,odi,30", f"P00001,45,odi,{text}")
    message = refusal(build(tmp_path / "c", assessments=scores))
    assert "assessments.score" in message and f"'{text}'" in message
