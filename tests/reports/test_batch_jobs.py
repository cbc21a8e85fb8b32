"""The client side of shipped jobs: files written into place, or the job failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepanalytics.errors import StepAnalyticsError
from stepanalytics.reports.batch_jobs import (
    BatchItem,
    BatchJob,
    JobOutcome,
    ShippedFile,
    deliver,
    render_job,
)
from stepanalytics.reports.inputs import read_report_inputs


def _job(out: Path, clinic: str = "C01") -> BatchJob:
    return BatchJob(
        kind="qi",
        clinic=clinic,
        period=None,
        out_dir=out,
        pdf=False,
        parameters={},
        notebook=Path("qi_report.ipynb"),
        cell_timeout=60,
        provenance={},
    )


def test_shipped_files_are_written_into_place_and_a_stale_failure_removed(tmp_path: Path) -> None:
    stale = tmp_path / "_failed" / "qi_C01_all-periods.ipynb"
    stale.parent.mkdir()
    stale.write_text("{}")
    html = tmp_path / "qi_C01_all-periods.html"
    item = BatchItem("qi", "C01", True, html=html)
    files = (ShippedFile("qi_C01_all-periods.html", b"<html>report</html>"),)
    assert deliver(JobOutcome(item, files), _job(tmp_path)) == item
    assert html.read_bytes() == b"<html>report</html>"
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["_failed", html.name]


def test_a_failed_notebook_comes_back_into_failed(tmp_path: Path) -> None:
    item = BatchItem("qi", "C03", False, error="The QI report failed in cell 4")
    kept = ShippedFile("_failed/qi_C03_all-periods.ipynb", b"{}")
    assert deliver(JobOutcome(item, (kept,)), _job(tmp_path, "C03")) == item
    assert (tmp_path / "_failed" / "qi_C03_all-periods.ipynb").read_bytes() == b"{}"


def test_a_file_outside_the_output_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    item = BatchItem("qi", "C01", True, html=out / "x.html")
    sneaky = (ShippedFile("../elsewhere.html", b"x"),)
    with pytest.raises(StepAnalyticsError, match="outside"):
        deliver(JobOutcome(item, sneaky), _job(out))
    assert not (tmp_path / "elsewhere.html").exists()


def test_a_report_left_on_another_machine_counts_as_failed(tmp_path: Path) -> None:
    """Path mode on workers that do not share our files: the report is not here."""
    item = BatchItem("qi", "C01", True, html=tmp_path / "qi_C01_all-periods.html")
    delivered = deliver(JobOutcome(item), _job(tmp_path))
    assert not delivered.ok
    assert "written on the worker's machine" in (delivered.error or "")
    assert "--ship scatter" in (delivered.error or "")


def test_a_worker_without_the_data_fails_its_job_clearly(demo_dir: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from stepanalytics.reports.batch_jobs import ShippedBundle

    inputs = replace(read_report_inputs(demo_dir), data=tmp_path / "not-here")
    bundle = ShippedBundle(peers=None, notebooks={})  # type: ignore[arg-type]
    outcome = render_job(_job(tmp_path), inputs, bundle)
    assert not outcome.item.ok and not outcome.files
    assert "cannot read the cohort at" in (outcome.item.error or "")
    assert "same path on every worker" in (outcome.item.error or "")
