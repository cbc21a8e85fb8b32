"""``stepanalytics fit PATH --instrument ...``: output, exit codes, no patient ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stepanalytics.cli import main
from stepanalytics.synth import write_synthetic_cohort
from stepanalytics.trajectories import fit_trajectory


@pytest.fixture(scope="module")
def cohort_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fit_cli") / "cohort"
    write_synthetic_cohort(folder, n_patients=120, n_clinics=4, seed=9, items=False)
    return folder


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["fit", *args])
    return result.exit_code, result.output


def test_default_model_prints_the_summary_without_patient_ids(cohort_folder: Path) -> None:
    from stepanalytics.cohort import load_cohort

    code, out = run(str(cohort_folder), "--instrument", "odi")
    assert code == 0, out
    expected = fit_trajectory(load_cohort(cohort_folder), "odi")
    assert out.strip() == expected.summary().strip()
    assert "REML fit by the fast engine" in out
    assert "Fixed effects (t-tests with Satterthwaite df)" in out
    assert "P0" not in out  # synthetic ids look like P000001


def test_options_reach_the_model(cohort_folder: Path) -> None:
    code, out = run(
        str(cohort_folder),
        "--instrument",
        "odi",
        "--piecewise",
        "--clinic-random",
        "--covariates",
        "baseline_score,compensation_claim",
        "--drop-missing",
        "--ml",
    )
    assert code == 0, out
    assert "ML fit by the fast engine" in out and "in 4 clinics" in out
    assert "weeks_phase1" in out and "baseline_centred" in out and "clinic_id" in out
    code, out = run(str(cohort_folder), "--instrument", "odi", "--by", "clinic", "--engine", "fast")
    assert code == 0, out
    assert "weeks:clinic_id[T." in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "statsmodels", "--clinic-random"], "cannot fit a random intercept"),
        (["--covariates", "shoe_size"], "Unknown covariate(s): shoe_size"),
        (["--covariates", "case-mix,sex"], "either --covariates case-mix or a list"),
        (["--by", "ward"], "Invalid value for '--by'"),
    ],
)
def test_usage_problems_exit_2(cohort_folder: Path, args: list[str], message: str) -> None:
    code, out = run(str(cohort_folder), "--instrument", "odi", *args)
    assert code == 2
    assert message in out


def test_data_problems_exit_1(cohort_folder: Path, tmp_path: Path) -> None:
    code, out = run(str(cohort_folder), "--instrument", "bpi_severity")
    assert code == 1
    assert "no scores for instrument 'bpi_severity'" in out
    code, out = run(str(tmp_path / "missing"), "--instrument", "odi")
    assert code == 1
    assert "Traceback" not in out


def test_comparing_clinics_in_a_one_clinic_cohort_exits_1(tmp_path: Path) -> None:
    """The audit's repro: stepanalytics synth ... --patients 15 --clinics 1 --seed 3."""
    folder = tmp_path / "one_clinic"
    write_synthetic_cohort(folder, n_patients=15, n_clinics=1, seed=3)
    code, out = run(str(folder), "--instrument", "odi", "--by", "clinic")
    assert code == 1
    assert "--by clinic gives each clinic its own level and slope" in out
    assert "one clinic, C01" in out and "Traceback" not in out
