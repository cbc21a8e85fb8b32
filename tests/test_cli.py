"""The command line: help everywhere, exit codes 0 / 1 / 2, no tracebacks for data problems."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from stepanalytics.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stepanalytics.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_command_has_help() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--help"]).exit_code == 0
    for name, command in main.commands.items():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Usage:" in result.output
        if hasattr(command, "commands"):
            for sub in command.commands:  # type: ignore[attr-defined]
                assert runner.invoke(main, [name, sub, "--help"]).exit_code == 0, (name, sub)


def test_validate_ok_exits_0(small_cohort_dir: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(small_cohort_dir)])
    assert result.exit_code == 0
    assert "120 patients" in result.output


def test_validate_bad_data_exits_1_without_traceback(cohort_copy: Path) -> None:
    events = cohort_copy / "events.csv"
    events.write_text(events.read_text().replace("flare_up", "flareup", 1))
    proc = run("validate", str(cohort_copy))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "events.event" in proc.stderr
    assert "fix:" in proc.stderr


def test_validate_missing_path_exits_1(tmp_path: Path) -> None:
    proc = run("validate", str(tmp_path / "nowhere"))
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_usage_exits_2() -> None:
    assert run("validate").returncode == 2
    assert run("synth", "x", "--patients", "zero").returncode == 2
    assert run("no-such-command").returncode == 2


def test_synth_refuses_to_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "c"
    assert (
        runner.invoke(main, ["synth", str(out), "--patients", "20", "--clinics", "2"]).exit_code
        == 0
    )
    again = runner.invoke(main, ["synth", str(out), "--patients", "20"])
    assert again.exit_code == 1
    assert "--force" in again.output
    assert runner.invoke(main, ["synth", str(out), "--patients", "20", "--force"]).exit_code == 0


def test_summary_prints_counts_not_ids(small_cohort_dir: Path) -> None:
    result = CliRunner().invoke(main, ["summary", str(small_cohort_dir)])
    assert result.exit_code == 0
    assert "patients: 120 in 4 clinics" in result.output
    assert "P000" not in result.output


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_synth_formats_validate(tmp_path: Path, fmt: str) -> None:
    runner = CliRunner()
    out = tmp_path / fmt
    assert (
        runner.invoke(main, ["synth", str(out), "--patients", "30", "--format", fmt]).exit_code == 0
    )
    assert (out / f"patients.{fmt}").exists()
    assert runner.invoke(main, ["validate", str(out)]).exit_code == 0
