"""Batch runs on Dask: a LocalCluster of two worker processes, loopback only.

The same assertions as the process-pool batch (tests/reports/test_batch.py):
one failure isolated, an index linking every report, the peer results
computed once in the client and read by every notebook; plus what is
particular to Dask: shipping the results to workers that might not share our
files, a LocalCluster started and closed by the batch, and clear errors when
``distributed`` is missing or the scheduler cannot be reached.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from stepanalytics.errors import UsageError
from stepanalytics.reports import BatchSummary, render_batch
from stepanalytics.reports import executors as executors_module
from stepanalytics.reports import shared as shared_module
from stepanalytics.reports.cli import report_group
from stepanalytics.reports.kinds import NOTEBOOKS_ENV

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")  # installed with distributed

LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes, one thread each; always closed, even when a test fails."""
    cluster = executors_module.start_local_cluster(2)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def peer_computations() -> Iterator[list[str]]:
    """Calls of compute_peer_results in this (the client) process: their creation times."""
    calls: list[str] = []
    real = shared_module.compute_peer_results

    def counted(*args: Any, **kwargs: Any) -> Any:
        peers = real(*args, **kwargs)
        calls.append(peers.created_utc)
        return peers

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shared_module, "compute_peer_results", counted)
        yield calls


def _batch(
    demo_dir: Path,
    light_notebooks: Path,
    out: Path,
    calls: list[str],
    **options: Any,
) -> tuple[BatchSummary, int]:
    """Run a batch and count the peer computations it made."""
    before = len(calls)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(NOTEBOOKS_ENV, str(light_notebooks))  # read by the client only
        summary = render_batch(demo_dir, out_dir=out, progress=False, **options)
    return summary, len(calls) - before


@pytest.fixture(scope="module")
def dask_batch(
    cluster: Any,
    demo_dir: Path,
    light_notebooks: Path,
    peer_computations: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[BatchSummary, int]:
    """Clinic C02, clinic C04 (fails on purpose) and the benchmark on the cluster.

    At an address, the peer results are scattered and the reports come back
    to the client by default, as when the workers do not share our files.
    """
    return _batch(
        demo_dir,
        light_notebooks,
        tmp_path_factory.mktemp("dask_batch"),
        peer_computations,
        clinics=["C02", "C04"],
        scheduler=cluster.scheduler_address,
    )


def test_cluster_listens_on_loopback_only(cluster: Any) -> None:
    with distributed.Client(cluster, set_as_default=False) as client:
        workers = list(client.scheduler_info()["workers"])
        pids = [*client.run(os.getpid).values()]
    assert len(workers) == 2
    assert all(address.startswith(f"tcp://{LOOPBACK}:") for address in workers)
    assert cluster.scheduler_address.startswith(f"tcp://{LOOPBACK}:")
    listening = _listening_ips([psutil.Process(pid) for pid in pids])
    assert listening and listening <= {LOOPBACK}


def test_one_failure_does_not_stop_the_others(dask_batch: tuple[BatchSummary, int]) -> None:
    batch, _ = dask_batch
    outcome = {(item.kind, item.clinic): item.ok for item in batch.items}
    assert outcome == {("qi", "C02"): True, ("qi", "C04"): False, ("benchmark", None): True}
    error = batch.failed[0].error or ""
    assert "cell 4 of qi_report.ipynb" in error
    assert "RuntimeError: no phase data for this clinic" in error
    assert (batch.out_dir / "_failed" / "qi_C04_all-periods.ipynb").exists()
    assert not (batch.out_dir / "qi_C04_all-periods.html").exists()
    assert "2 of 3 reports written" in batch.render_text()
    assert "FAILED qi C04" in batch.render_text()
    assert batch.executor.startswith("Dask cluster at tcp://127.0.0.1:")


def test_index_links_every_report(dask_batch: tuple[BatchSummary, int]) -> None:
    batch, _ = dask_batch
    soup = BeautifulSoup(batch.index.read_text(encoding="utf-8"), "html.parser")
    links = sorted(a["href"] for a in soup.find_all("a"))
    assert links == ["benchmark_all-clinics_all-periods.html", "qi_C02_all-periods.html"]
    for link in links:
        assert (batch.out_dir / link).is_file()
    text = soup.get_text()
    assert "no phase data for this clinic" in text and "Dask cluster at" in text


def test_peer_results_computed_once_in_the_client(
    dask_batch: tuple[BatchSummary, int],
) -> None:
    batch, computations = dask_batch
    assert computations == 1
    assert batch.shared is not None and not batch.shared.exists()  # deleted after the batch
    created = batch.peers_created_utc
    for item in batch.succeeded:  # every notebook read the client's artefact, none refitted
        assert item.html is not None and created in item.html.read_text(encoding="utf-8")


def test_reports_and_failed_notebook_sent_back_to_the_client(
    dask_batch: tuple[BatchSummary, int],
) -> None:
    batch, _ = dask_batch
    assert "peer results scattered" in batch.executor
    assert batch.items[0].html == batch.out_dir.resolve() / "qi_C02_all-periods.html"
    kept = batch.out_dir / "_failed" / "qi_C04_all-periods.ipynb"
    error = batch.failed[0].error or ""
    # the message names where the client kept the notebook, not the worker's scratch folder
    assert str(kept.resolve()) in error and "stepanalytics-batch-" not in error
    assert not list(batch.out_dir.rglob("*.tmp"))  # every write was renamed into place


def test_cli_bare_scheduler_starts_and_closes_a_local_cluster(
    demo_dir: Path,
    light_notebooks: Path,
    peer_computations: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--scheduler`` alone: a LocalCluster for the batch, peer results by path, then closed.

    Two jobs for the two workers (the default --workers 2); one fails on purpose.
    """
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    seen: dict[str, Any] = {}
    real = executors_module.start_local_cluster

    def watched(workers: int) -> Any:
        cluster = real(workers)
        seen.update(workers=workers, cluster=cluster)
        seen["listening"] = _listening_ips([me, *me.children(recursive=True)])
        return cluster

    monkeypatch.setattr(executors_module, "start_local_cluster", watched)
    monkeypatch.setenv(NOTEBOOKS_ENV, str(light_notebooks))
    computed = len(peer_computations)
    options = ["--clinic", "C02", "--clinic", "C04", "--no-benchmark", "--no-progress"]
    result = CliRunner().invoke(
        report_group,
        ["batch", "--data", str(demo_dir), "--out", str(tmp_path), *options, "--scheduler"],
    )
    assert result.exit_code == 1  # clinic C04 fails on purpose
    assert "1 of 2 reports written" in result.output
    assert "FAILED qi C04" in result.output and "Traceback" not in result.output
    assert len(peer_computations) - computed == 1
    created = peer_computations[-1]
    assert not list(tmp_path.rglob("*.pkl"))  # the peer results did not outlive the batch
    page = (tmp_path / "qi_C02_all-periods.html").read_text(encoding="utf-8")
    assert created in page and "peer results read from a path" in page
    assert seen["workers"] == 2 and seen["listening"] <= {LOOPBACK}
    assert seen["cluster"].status.name == "closed"
    left = [p for p in me.children(recursive=True) if p.pid not in before]
    _, alive = psutil.wait_procs(left, timeout=10)
    assert not alive, f"processes left running: {alive}"


def test_missing_distributed_is_a_usage_error(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if absent
    with pytest.raises(UsageError, match=r"install stepanalytics\[dask\]"):
        render_batch(demo_dir, out_dir=tmp_path, scheduler="local", progress=False)
    result = CliRunner().invoke(
        report_group,
        ["batch", "--data", str(demo_dir), "--out", str(tmp_path), "--scheduler", "local"],
    )
    assert result.exit_code == 2 and "install stepanalytics[dask]" in result.output
    assert not (tmp_path / "index.html").exists()


def test_unreachable_scheduler_is_a_clear_error(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executors_module, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(UsageError, match=r"Cannot reach a Dask scheduler at 'tcp://127\.0\.0\.1:"):
        render_batch(demo_dir, out_dir=tmp_path, scheduler=f"tcp://{LOOPBACK}:{_free_port()}")
    assert not (tmp_path / "_shared").exists()  # failed before the shared computation


def test_a_scheduler_without_workers_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors_module, "CONNECT_TIMEOUT_S", 1)
    empty = distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp://", host=LOOPBACK, dashboard_address=None
    )
    try:
        executor = executors_module.open_executor(empty.scheduler_address, workers=2)
        with pytest.raises(UsageError, match="has no workers"), executor:
            pass
    finally:
        empty.close()


@pytest.mark.parametrize(
    ("scheduler", "ship", "message"),
    [
        (None, "scatter", "needs a Dask scheduler"),
        ("local", "by-post", "ship must be one of"),
    ],
)
def test_bad_shipping_choices(
    demo_dir: Path, tmp_path: Path, scheduler: str | None, ship: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        render_batch(demo_dir, out_dir=tmp_path, scheduler=scheduler, ship=ship)


def _listening_ips(processes: list[psutil.Process]) -> set[str]:
    """IP addresses these processes accept TCP connections on."""
    found: set[str] = set()
    for process in processes:
        for connection in _connections(process):
            if connection.status == psutil.CONN_LISTEN:
                found.add(connection.laddr.ip)
    return found


def _connections(process: psutil.Process) -> list[Any]:
    method: Callable[..., list[Any]] = getattr(process, "net_connections", process.connections)
    try:
        return method(kind="tcp")
    except psutil.NoSuchProcess:
        return []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
    return port
