"""`stepanalytics import fhir`: exit codes, messages, files written."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from stepanalytics.cohort import load_cohort
from stepanalytics.io.import_cli import import_group

HERE = Path(__file__).parent / "fixtures" / "fhir"
MAPPING = Path(__file__).parents[2] / "examples" / "mappings" / "fhir_stepped_care.yaml"
SECRET = "cli-secret-0123456789abc"


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(import_group, list(args), env=env)


def test_bundle_import_with_secret_from_env(tmp_path):
    out = tmp_path / "cohort"
    result = run(
        "fhir",
        str(HERE / "bundle.json"),
        "--mapping",
        str(MAPPING),
        "--out",
        str(out),
        "--secret-env",
        "SA_SECRET",
        env={"SA_SECRET": SECRET},
    )
    assert result.exit_code == 0, result.output
    assert "input rows: 22; imported: 13; dropped: 9" in result.output
    assert load_cohort(out).n_patients == 3


def test_csv_route_with_secret_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    mapping = tmp_path / "map.yaml"
    text = MAPPING.read_text().replace("from: encounters", "from: csv")
    mapping.write_text(text)
    out = tmp_path / "cohort"
    result = run(
        "fhir",
        str(HERE / "responses.ndjson"),
        "--mapping",
        str(mapping),
        "--out",
        str(out),
        "--patients",
        str(HERE / "patients.csv"),
        "--phases",
        str(HERE / "phases.csv"),
        "--secret-file",
        str(secret),
    )
    assert result.exit_code == 0, result.output
    assert load_cohort(out).n_patients == 2


def test_no_secret_is_bad_usage(tmp_path):
    result = run(
        "fhir", str(HERE / "bundle.json"), "--mapping", str(MAPPING), "--out", str(tmp_path / "c")
    )
    assert result.exit_code == 2 and "secret" in result.output


def test_phases_csv_missing_is_bad_usage(tmp_path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text(MAPPING.read_text().replace("from: encounters", "from: csv"))
    result = run(
        "fhir",
        str(HERE / "responses.ndjson"),
        "--mapping",
        str(mapping),
        "--out",
        str(tmp_path / "c"),
        "--patients",
        str(HERE / "patients.csv"),
        "--secret-env",
        "S",
        env={"S": SECRET},
    )
    assert result.exit_code == 2 and "--phases" in result.output


def test_redcap_mapping_given_to_fhir_is_a_clear_data_problem(tmp_path):
    redcap = Path(__file__).parents[2] / "examples" / "mappings" / "redcap_stepped_care.yaml"
    result = run(
        "fhir",
        str(HERE / "bundle.json"),
        "--mapping",
        str(redcap),
        "--out",
        str(tmp_path / "c"),
        "--secret-env",
        "S",
        env={"S": SECRET},
    )
    assert result.exit_code == 1
    assert "not for FHIR resources" in result.output and "Traceback" not in result.output
