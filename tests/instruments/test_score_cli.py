"""`stepanalytics score PATH` writes scored assessments, a report and red flags."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from stepanalytics.instruments.cli import score_command


def test_score_writes_three_files_and_prints_counts(small_cohort_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(score_command, [str(small_cohort_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assessments = pd.read_csv(out / "scored_assessments.csv")
    report = pd.read_csv(out / "scoring_report.csv")
    flags = pd.read_csv(out / "red_flags.csv")
    assert {"patient_id", "day", "instrument", "score", "source", "band"} <= set(assessments)
    assert set(report["status"]) <= {"scored", "scored_with_rule", "not_scorable"}
    scored = report[report["status"] != "not_scorable"]
    from_items = assessments[assessments["source"] == "items"]
    assert len(from_items) <= len(scored)  # equal given scores are kept once, as 'given'
    assert "Scoring of questionnaire forms by instrument" in result.output
    assert f"Safety: {len(flags):,} red-flag answers" in result.output
    for patient in flags["patient_id"].head(3):
        assert patient not in result.output  # counts only on screen


def test_a_data_problem_exits_1_with_a_message(small_cohort_dir: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(small_cohort_dir, broken)
    items = pd.read_csv(broken / "items.csv")
    items.loc[0, "value"] = 99
    items.to_csv(broken / "items.csv", index=False)
    result = CliRunner().invoke(score_command, [str(broken), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "answers outside the allowed values" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
