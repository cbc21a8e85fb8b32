"""`stepanalytics import redcap`: exit codes, messages, files written."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from stepanalytics.io.import_cli import import_group

HERE = Path(__file__).parent / "fixtures" / "redcap"
MAPPING = Path(__file__).parents[2] / "examples" / "mappings" / "redcap_stepped_care.yaml"
SECRET = "cli-secret-0123456789abc"


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(import_group, list(args), env=env)


def redcap_args(out: Path, *extra: str) -> list[str]:
    return [
        "redcap",
        str(HERE / "export.csv"),
        "--dictionary",
        str(HERE / "dictionary.csv"),
        "--mapping",
        str(MAPPING),
        "--out",
        str(out),
        *extra,
    ]


def test_import_writes_a_cohort_and_a_report(tmp_path):
    out = tmp_path / "cohort"
    result = run(*redcap_args(out, "--secret-env", "SA_SECRET"), env={"SA_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    assert "input rows: 25; imported: 21; dropped: 4" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "assessments.csv",
        "events.csv",
        "import_report.csv",
        "items.csv",
        "patients.csv",
        "phases.csv",
    ]
    written = "\n".join(p.read_text() for p in out.iterdir())
    assert not re.search(r"\d{4}-\d{2}-\d{2}", written)
    assert "MRN" not in written and "@" not in written
    report = pd.read_csv(out / "import_report.csv")
    assert (report["part"] == "row").sum() == 25


def test_existing_folder_needs_force(tmp_path):
    out = tmp_path / "cohort"
    assert run(*redcap_args(out)).exit_code == 0
    again = run(*redcap_args(out))
    assert again.exit_code == 2 and "--force" in again.output
    assert run(*redcap_args(out, "--force")).exit_code == 0


def test_unset_secret_variable_is_bad_usage(tmp_path):
    result = run(*redcap_args(tmp_path / "c", "--secret-env", "NOT_SET_ANYWHERE"), env={})
    assert result.exit_code == 2
    assert "NOT_SET_ANYWHERE" in result.output
    assert not (tmp_path / "c").exists()


def test_short_secret_file_is_bad_usage(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("short\n")
    result = run(*redcap_args(tmp_path / "c", "--secret-file", str(secret)))
    assert result.exit_code == 2 and "at least 16" in result.output


def test_data_problem_exits_1_with_a_message_and_no_traceback(tmp_path):
    bad_mapping = tmp_path / "map.yaml"
    bad_mapping.write_text(MAPPING.read_text().replace("score: pain_now", "score: pain_later"))
    args = redcap_args(tmp_path / "c")
    args[args.index("--mapping") + 1] = str(bad_mapping)
    result = run(*args)
    assert result.exit_code == 1
    assert "field 'pain_later' is not in the data dictionary" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "c").exists()


def test_missing_option_is_bad_usage(tmp_path):
    result = run("redcap", str(HERE / "export.csv"), "--out", str(tmp_path / "c"))
    assert result.exit_code == 2
