"""A report that cannot be made leaves no report and says why."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from nbformat.v4 import new_code_cell, new_notebook

from stepanalytics.errors import CohortError, UsageError
from stepanalytics.reports import ReportError, render_report
from stepanalytics.reports.cli import report_group

PARAMETERS = 'data = ""\nclinic = ""\nperiod = ""\nshared = ""'


def _notebook(folder: Path, name: str, *cells: str) -> Path:
    nb = new_notebook(
        cells=[
            new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
            *(new_code_cell(c) for c in cells),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / name
    nbformat.write(nb, path)
    return path


def test_failing_cell_leaves_no_report_and_names_the_cell(demo_dir: Path, tmp_path: Path) -> None:
    notebook = _notebook(
        tmp_path,
        "failing.ipynb",
        "print('fine so far')",
        "raise ValueError('phase 2 has no stays in this selection')",
        "print('never reached')",
    )
    out = tmp_path / "out"
    target = out / "qi_C02_all-periods.html"
    out.mkdir()
    target.write_text("the earlier good report")
    with pytest.raises(ReportError) as caught:
        render_report("qi", data=demo_dir, clinic="C02", out_dir=out, notebook=notebook)
    message = str(caught.value)
    assert "cell 3 of failing.ipynb" in message
    assert "raise ValueError" in message
    assert "ValueError: phase 2 has no stays in this selection" in message
    assert target.read_text() == "the earlier good report"  # untouched, not half-written
    assert sorted(p.name for p in out.iterdir()) == ["_failed", target.name]
    kept = out / "_failed" / "qi_C02_all-periods.ipynb"
    assert caught.value.failed_notebook == kept
    executed = nbformat.read(kept, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("ename") == "ValueError" for o in errors)


def test_cell_timeout_is_a_clear_failure(demo_dir: Path, tmp_path: Path) -> None:
    notebook = _notebook(tmp_path, "slow.ipynb", "import time\ntime.sleep(30)")
    with pytest.raises(ReportError, match="longer than the 2 s allowed per cell") as caught:
        render_report(
            "qi", data=demo_dir, out_dir=tmp_path / "out", notebook=notebook, cell_timeout=2
        )
    assert "cell 2 of slow.ipynb" in str(caught.value)
    assert not list((tmp_path / "out").glob("*.html"))


def test_a_patient_id_in_the_output_refuses_the_report(
    demo_dir: Path, tmp_path: Path, patient_ids: set[str]
) -> None:
    some_id = sorted(patient_ids)[3]
    notebook = _notebook(tmp_path, "leaky.ipynb", f"print('worst case: {some_id}')")
    with pytest.raises(ReportError, match="patient id") as caught:
        render_report("qi", data=demo_dir, out_dir=tmp_path / "out", notebook=notebook)
    assert "cell 2" in str(caught.value)
    assert some_id not in str(caught.value)  # the message does not repeat the id
    assert not list((tmp_path / "out").glob("*.html"))


def test_an_external_resource_refuses_the_report(demo_dir: Path, tmp_path: Path) -> None:
    notebook = _notebook(
        tmp_path,
        "external.ipynb",
        "from IPython.display import HTML\nHTML('<img src=\"https://example.org/chart.png\">')",
    )
    with pytest.raises(ReportError, match="not be self-contained"):
        render_report("qi", data=demo_dir, out_dir=tmp_path / "out", notebook=notebook)
    assert not list((tmp_path / "out").glob("*.html"))


def test_unknown_parameter_is_a_usage_error(demo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no parameter named colour"):
        render_report("qi", data=demo_dir, out_dir=tmp_path, parameters={"colour": "red"})


def test_unknown_clinic_and_empty_period(demo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Clinic 'C99' is not in the data"):
        render_report("qi", data=demo_dir, clinic="C99", out_dir=tmp_path)
    with pytest.raises(ReportError, match="No patient of clinic C01 was enrolled in 2019Q1"):
        render_report("qi", data=demo_dir, clinic="C01", period="2019Q1", out_dir=tmp_path)


def test_bad_data_is_refused_before_any_notebook_runs(demo_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in demo_dir.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    patients = (broken / "patients.csv").read_text().splitlines()
    header = patients[0].split(",")
    row = patients[1].split(",")
    row[header.index("last_contact_day")] = "-5"
    patients[1] = ",".join(row)
    (broken / "patients.csv").write_text("\n".join(patients) + "\n")
    with pytest.raises(CohortError):
        render_report("qi", data=broken, out_dir=tmp_path / "out")
    result = CliRunner().invoke(report_group, ["qi", "--data", str(broken), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "The cohort was refused" in result.output
    assert "Traceback" not in result.output


def test_cli_usage_errors_exit_2(demo_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(
        report_group, ["qi", "--data", str(demo_dir), "--clinic", "C99", "--out", str(tmp_path)]
    )
    assert unknown.exit_code == 2 and "C99" in unknown.output
    period = runner.invoke(
        report_group, ["qi", "--data", str(demo_dir), "--period", "2025Q9", "--out", str(tmp_path)]
    )
    assert period.exit_code == 2 and "2025Q9" in period.output
    missing = runner.invoke(report_group, ["qi", "--data", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
