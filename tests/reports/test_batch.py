"""Batch runs: parallel processes, one failure isolated, shared results, index page."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from stepanalytics.cohort import load_cohort
from stepanalytics.reports import BatchSummary, ReportError, render_batch
from stepanalytics.reports.cli import report_group
from stepanalytics.reports.kinds import NOTEBOOKS_ENV
from stepanalytics.reports.shared import read_shared


@pytest.fixture(scope="module")
def batch(
    demo_dir: Path, light_notebooks: Path, tmp_path_factory: pytest.TempPathFactory
) -> BatchSummary:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(NOTEBOOKS_ENV, str(light_notebooks))  # spawned workers inherit it
        return render_batch(
            demo_dir,
            out_dir=tmp_path_factory.mktemp("batch"),
            clinics=["C01", "C03"],
            workers=2,
            progress=False,
        )


def test_one_failure_does_not_stop_the_others(batch: BatchSummary) -> None:
    outcome = {(item.kind, item.clinic): item.ok for item in batch.items}
    assert outcome == {("qi", "C01"): True, ("qi", "C03"): False, ("benchmark", None): True}
    failed = batch.failed[0]
    assert "cell 4 of qi_report.ipynb" in (failed.error or "")
    assert "RuntimeError: no phase data for this clinic" in (failed.error or "")
    assert (batch.out_dir / "_failed" / "qi_C03_all-periods.ipynb").exists()
    assert not (batch.out_dir / "qi_C03_all-periods.html").exists()
    assert "2 of 3 reports written" in batch.render_text()
    assert "FAILED qi C03" in batch.render_text()


def test_index_links_every_report(batch: BatchSummary) -> None:
    soup = BeautifulSoup(batch.index.read_text(encoding="utf-8"), "html.parser")
    links = sorted(a["href"] for a in soup.find_all("a"))
    assert links == ["benchmark_all-clinics_all-periods.html", "qi_C01_all-periods.html"]
    for link in links:
        assert (batch.out_dir / link).is_file()
    assert "failed" in soup.get_text() and "no phase data for this clinic" in soup.get_text()


def test_shared_results_computed_once_and_read_by_the_notebooks(
    batch: BatchSummary, demo_dir: Path, patient_ids: set[str]
) -> None:
    assert batch.shared is not None and batch.shared.parent.name == "_shared"
    peers = read_shared(batch.shared, cohort=load_cohort(demo_dir), period=None)
    assert peers.comparisons  # the risk-adjusted comparisons are in it
    for item in batch.succeeded:  # every notebook read the batch's file, none refitted
        assert item.html is not None
        assert peers.created_utc in item.html.read_text(encoding="utf-8")
    raw = batch.shared.read_bytes()
    assert not any(pid.encode() in raw for pid in patient_ids)  # no patient id on disk
    with pytest.raises(ReportError, match="other data or another period"):
        read_shared(batch.shared, cohort=load_cohort(demo_dir), period=_period("2025Q4"))
    assert isinstance(pickle.loads(raw), type(peers))


def _period(text: str):  # type: ignore[no-untyped-def]
    from stepanalytics.reports import parse_period

    return parse_period(text)


def test_cli_single_report(
    demo_dir: Path, light_notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NOTEBOOKS_ENV, str(light_notebooks))
    runner = CliRunner()
    single = runner.invoke(
        report_group,
        ["qi", "--data", str(demo_dir), "--clinic", "C01", "--out", str(tmp_path / "one")],
    )
    assert single.exit_code == 0, single.output
    assert Path(single.output.strip()).name == "qi_C01_all-periods.html"
    # The batch command's exit status and messages are checked on a Dask LocalCluster
    # in test_batch_dask.py: both executors share the same batch code path.
