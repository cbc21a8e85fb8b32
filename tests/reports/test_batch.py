"""Batch runs: parallel processes, one failure isolated, shared results, index page."""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from stepanalytics.cohort import load_cohort
from stepanalytics.reports import BatchSummary, ReportError, render_batch
from stepanalytics.reports.batch import _shared_folder
from stepanalytics.reports.cli import report_group
from stepanalytics.reports.kinds import NOTEBOOKS_ENV
from stepanalytics.reports.shared import compute_peer_results, read_shared, write_shared

# As in conftest.py: the demo cohort's C01 has 9 patients (too small for a report of its
# own); the light QI notebook fails on purpose for C04.
TINY_CLINIC = "C01"
QI_CLINIC = "C02"
FAILING_CLINIC = "C04"


@pytest.fixture(scope="module")
def batch(
    demo_dir: Path, light_notebooks: Path, tmp_path_factory: pytest.TempPathFactory
) -> BatchSummary:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(NOTEBOOKS_ENV, str(light_notebooks))  # spawned workers inherit it
        return render_batch(
            demo_dir,
            out_dir=tmp_path_factory.mktemp("batch"),
            clinics=[TINY_CLINIC, QI_CLINIC, FAILING_CLINIC],
            workers=2,
            progress=False,
        )


def test_one_failure_does_not_stop_the_others(batch: BatchSummary) -> None:
    outcome = {(item.kind, item.clinic): item.ok for item in batch.items}
    assert outcome == {
        ("qi", QI_CLINIC): True,
        ("qi", FAILING_CLINIC): False,
        ("benchmark", None): True,
    }
    failed = batch.failed[0]
    assert "cell 4 of qi_report.ipynb" in (failed.error or "")
    assert "RuntimeError: no phase data for this clinic" in (failed.error or "")
    assert (batch.out_dir / "_failed" / f"qi_{FAILING_CLINIC}_all-periods.ipynb").exists()
    assert not (batch.out_dir / f"qi_{FAILING_CLINIC}_all-periods.html").exists()
    text = batch.render_text()
    assert "2 of 3 reports written" in text
    assert f"FAILED qi {FAILING_CLINIC}" in text
    # the operator is told that the kept notebook is not protected
    assert "_failed" in text and "NOT protected" in text and "never share" in text
    assert "not protected" in (failed.error or "") and "do not share it" in (failed.error or "")


def test_a_clinic_too_small_gets_no_report_and_is_listed(batch: BatchSummary) -> None:
    """C01 has 9 patients (1..10): no report of its own; listed, not failed."""
    assert batch.too_small == (TINY_CLINIC,)
    assert TINY_CLINIC not in {item.clinic for item in batch.items}
    assert not list(batch.out_dir.glob(f"*{TINY_CLINIC}*"))
    assert f"included in the all-clinics reports only: {TINY_CLINIC}" in batch.render_text()
    index = BeautifulSoup(batch.index.read_text(encoding="utf-8"), "html.parser").get_text()
    assert "No report of their own" in index and TINY_CLINIC in index
    assert "9" not in index.split("No report of their own")[1].split(".")[0]  # no count given


def test_index_links_every_report(batch: BatchSummary) -> None:
    soup = BeautifulSoup(batch.index.read_text(encoding="utf-8"), "html.parser")
    links = sorted(a["href"] for a in soup.find_all("a"))
    assert links == ["benchmark_all-clinics_all-periods.html", f"qi_{QI_CLINIC}_all-periods.html"]
    for link in links:
        assert (batch.out_dir / link).is_file()
    assert "failed" in soup.get_text() and "no phase data for this clinic" in soup.get_text()


def test_shared_results_read_by_the_notebooks_and_deleted_after(batch: BatchSummary) -> None:
    """The peer results (unsuppressed clinic-level counts) do not outlive the batch."""
    for item in batch.succeeded:  # every notebook read the batch's file, none refitted
        assert item.html is not None
        assert batch.peers_created_utc in item.html.read_text(encoding="utf-8")
    assert batch.shared is not None and not batch.shared.exists()
    assert not batch.shared.parent.exists()  # a private temporary folder, removed
    assert batch.out_dir not in batch.shared.parents  # never written next to the reports
    assert not (batch.out_dir / "_shared").exists()
    assert not list(batch.out_dir.rglob("*.pkl"))


def test_shared_results_hold_no_patient_id_and_refuse_other_data(
    demo_dir: Path, tmp_path: Path, patient_ids: set[str]
) -> None:
    cohort = load_cohort(demo_dir)
    peers = compute_peer_results(cohort)
    path = write_shared(peers, tmp_path)
    assert read_shared(path, cohort=cohort, period=None).comparisons
    raw = path.read_bytes()
    assert not any(pid.encode() in raw for pid in patient_ids)  # no patient id on disk
    with pytest.raises(ReportError, match="other data or another period"):
        read_shared(path, cohort=cohort, period=_period("2025Q4"))
    assert isinstance(pickle.loads(raw), type(peers))


def test_a_remote_cluster_reading_by_path_gets_the_file_in_out_then_removed(
    tmp_path: Path,
) -> None:
    """Workers of a remote cluster see our files only where we share them: in --out."""
    with contextlib.ExitStack() as stack:
        folder = _shared_folder(stack, tmp_path, scheduler="tcp://10.0.0.5:8786", ships=False)
        assert folder == tmp_path / "_shared"
        folder.mkdir()
        (folder / "peers_all-periods.pkl").write_bytes(b"x")
    assert not folder.exists()
    with contextlib.ExitStack() as stack:
        local = _shared_folder(stack, tmp_path, scheduler="local", ships=False)
        assert tmp_path not in local.parents and local.is_dir()
    assert not local.exists()


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
        ["qi", "--data", str(demo_dir), "--clinic", QI_CLINIC, "--out", str(tmp_path / "one")],
    )
    assert single.exit_code == 0, single.output
    assert Path(single.output.strip()).name == f"qi_{QI_CLINIC}_all-periods.html"
    # The batch command's exit status and messages are checked on a Dask LocalCluster
    # in test_batch_dask.py: both executors share the same batch code path.
