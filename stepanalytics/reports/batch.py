"""Render many reports at once: one per clinic plus the benchmark, in parallel.

The cohort is read and validated once, the peer results every report needs
(case-mix adjustment, funnel limits) are computed once in this process and
written to a file that lives only while the batch runs (it holds
unsuppressed clinic-level counts), and the notebooks run on workers (each
with its own kernel): spawned processes on this machine, or a Dask cluster
(:mod:`stepanalytics.reports.executors`).  One report's failure is recorded
and the others go on; the run ends with a summary and an ``index.html``
linking every report.  Clinics too small for a committee report of their
own (1 to ``suppression_threshold`` patients) are listed, not rendered.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepanalytics.errors import UsageError
from stepanalytics.reports.batch_index import part_progress, progress_bar, write_index
from stepanalytics.reports.batch_jobs import (
    BatchItem,
    BatchJob,
    ShippedBundle,
    deliver,
    render_job,
)
from stepanalytics.reports.executors import (
    LOCAL_SCHEDULER,
    BatchExecutor,
    choose_shipping,
    import_distributed,
    open_executor,
)
from stepanalytics.reports.inputs import ReportInputs, scan_report_data
from stepanalytics.reports.kinds import DEFAULT_CELL_TIMEOUT, get_kind, notebook_path
from stepanalytics.reports.parameters import check_parameters, suppression_threshold_of
from stepanalytics.reports.period import parse_period
from stepanalytics.reports.render import FAILED_DIR

__all__ = ["BATCH_BY", "SHARED_DIR", "BatchItem", "BatchSummary", "render_batch", "write_index"]

BATCH_BY = ("clinic",)
SHARED_DIR = "_shared"
#: How the summary and the index name clinics too small for a report of their own.
TOO_SMALL_TEXT = (
    "too small for a report of their own (patient count from 1 to the suppression threshold); "
    "included in the all-clinics reports only"
)


@dataclass(frozen=True)
class BatchSummary:
    """The outcome of a batch: every item, the index page and timings.

    Attributes
    ----------
    shared : Path or None
        Where the peer results were kept while the batch ran; the file is
        deleted when the batch ends (it holds unsuppressed clinic-level
        counts), so this path no longer exists.
    skipped : tuple of str
        Clinics without a patient enrolled in the period.
    executor : str
        Where the reports ran (process pool or Dask cluster).
    too_small : tuple of str
        Clinics whose patient count in the period is itself a small cell
        (1 to the suppression threshold): no report of their own, their
        patients are in the all-clinics reports.
    peers_created_utc : str
        Creation time of the peer results the notebooks read (they show it
        in their provenance, so a report can be matched to its batch).
    """

    out_dir: Path
    items: tuple[BatchItem, ...]
    index: Path
    shared: Path | None
    seconds: float
    skipped: tuple[str, ...] = field(default=())
    executor: str = ""
    too_small: tuple[str, ...] = field(default=())
    peers_created_utc: str = ""

    @property
    def failed(self) -> list[BatchItem]:
        """Items that did not produce a report."""
        return [i for i in self.items if not i.ok]

    @property
    def succeeded(self) -> list[BatchItem]:
        """Items with a report on disk."""
        return [i for i in self.items if i.ok]

    def render_text(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"{len(self.succeeded)} of {len(self.items)} reports written in "
            f"{self.seconds:.1f} s; index: {self.index}"
        ]
        if self.skipped:
            lines.append(f"skipped (no patient enrolled in the period): {', '.join(self.skipped)}")
        if self.too_small:
            lines.append(f"{TOO_SMALL_TEXT}: {', '.join(self.too_small)}")
        for item in self.failed:
            first = (item.error or "").splitlines()[0] if item.error else "unknown error"
            lines.append(f"FAILED {item.label}: {first}")
        if (self.out_dir / FAILED_DIR).is_dir() and self.failed:
            lines.append(
                f"The executed notebooks of failed reports are kept in "
                f"{self.out_dir / FAILED_DIR} for debugging. They are NOT protected: they may "
                "show patient ids and unsuppressed small counts. Keep them to yourself and "
                "delete them once the problem is fixed; never share that folder."
            )
        return "\n".join(lines)


def render_batch(
    data: str | Path,
    *,
    out_dir: str | Path,
    by: str = "clinic",
    period: str | None = None,
    workers: int = 2,
    pdf: bool = False,
    parameters: Mapping[str, Any] | None = None,
    benchmark: bool = True,
    clinics: list[str] | None = None,
    progress: bool = True,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    scheduler: str | None = None,
    ship: str = "auto",
) -> BatchSummary:
    """Render one QI report per clinic (and the benchmark) in parallel.

    Parameters
    ----------
    data : str or Path
        The cohort folder (or DuckDB file).
    out_dir : str or Path
        Where the reports, ``index.html`` and ``_failed/`` go.
    by : {"clinic"}
        One report per clinic.
    period : str, optional
        Enrolment period (``2025Q4``, ``2025-11``, ``2025``); None for all.
        Clinics without a patient enrolled in it are skipped and listed;
        clinics with 1 to ``suppression_threshold`` patients in it get no
        report of their own (their patients are in the benchmark) and are
        listed as too small.
    workers : int
        Worker processes of the local pool or of the Dask LocalCluster
        (each runs one notebook kernel at a time).  A cluster at a
        scheduler address uses the workers it has.
    pdf : bool
        Also write PDFs.
    parameters : mapping, optional
        Further notebook parameters, passed to every report.
    benchmark : bool
        Also render the clinic benchmark.
    clinics : list of str, optional
        Only these clinics (default: every clinic in the data).
    progress : bool
        Show a progress bar (rich) on the terminal.
    cell_timeout : int
        Seconds a single notebook cell may run.
    scheduler : str, optional
        None (default): a process pool on this machine.  ``"local"``: a Dask
        LocalCluster of ``workers`` processes, started for the batch and
        closed after it.  Otherwise the address of a running Dask scheduler
        (``tcp://host:8786``).  Needs ``stepanalytics[dask]``.
    ship : {"auto", "scatter", "path"}
        How Dask workers get the peer results.  ``path``: they read them
        from a file (a private temporary folder for a LocalCluster,
        ``out_dir/_shared/`` for a remote cluster; deleted after the batch)
        and write reports into ``out_dir`` (they share this machine's
        files).  ``scatter``: the results and the
        notebook templates are scattered to every worker and the reports
        come back here to be written (workers may be on other machines; they
        still read the cohort at ``data``).  ``auto``: ``scatter`` for a
        scheduler address, ``path`` otherwise.

    Returns
    -------
    BatchSummary
        Check ``summary.failed``; nothing is raised for a failed report.

    Raises
    ------
    CohortError
        The data breaks the contract (no report is attempted).
    UsageError
        Bad ``by``, ``workers``, parameter value, period, clinic, scheduler or ``ship``;
        ``distributed`` not installed; scheduler unreachable.

    Examples
    --------
    >>> summary = render_batch("data/demo", out_dir="reports/batch")  # doctest: +SKIP
    >>> print(summary.render_text())  # doctest: +SKIP
    7 of 7 reports written in 41.2 s; index: reports/batch/index.html
    >>> render_batch("data/demo", out_dir="reports/batch",
    ...              scheduler="tcp://10.0.0.5:8786")  # doctest: +SKIP

    Notes
    -----
    The heavy shared computations (:func:`~stepanalytics.reports.shared.compute_peer_results`)
    run once, here, whatever executes the reports.
    """
    from stepanalytics.reports.clinic_parts import PEER_WORKERS
    from stepanalytics.reports.shared import compute_peer_results, write_shared

    started = time.perf_counter()
    if by not in BATCH_BY:
        raise UsageError(f"A batch can be split by {', '.join(BATCH_BY)}, not {by!r}.")
    if workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}.")
    parameters = check_parameters(parameters or {})  # a bad value fails before any work
    threshold = suppression_threshold_of(parameters)
    choose_shipping(scheduler, ship)  # so does a bad combination
    if scheduler is not None:
        import_distributed()  # and a missing optional dependency
    chosen = parse_period(period)
    label = chosen.label if chosen else None
    inputs, source = scan_report_data(data)
    wanted = list(inputs.clinic_ids) if clinics is None else clinics
    for clinic in wanted:
        inputs.check_request(clinic=clinic, period=None)
    with_patients = set(inputs.clinics_in_period(chosen))
    skipped = tuple(c for c in wanted if c not in with_patients)
    present = [c for c in wanted if c in with_patients]
    too_small = tuple(c for c in present if inputs.too_small(c, chosen, threshold))
    targets = [c for c in present if c not in too_small]
    reports: list[tuple[str, str | None]] = [("qi", c) for c in targets]
    if benchmark and present:
        reports.append(("benchmark", None))
    notebooks = {kind: notebook_path(get_kind(kind)) for kind, _ in reports}
    executor = open_executor(scheduler, workers=max(1, min(workers, len(reports))), ship=ship)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        BatchJob(
            kind=kind,
            clinic=clinic,
            period=label,
            out_dir=out.resolve(),
            pdf=pdf,
            parameters=dict(parameters),
            notebook=notebooks[kind],
            cell_timeout=cell_timeout,
            provenance={"Batch run on": executor.description},
        )
        for kind, clinic in reports
    ]
    items: list[BatchItem] = []
    with contextlib.ExitStack() as stack:
        # Workers start (or the scheduler is reached) first: an unreachable cluster should
        # fail before the shared computation, which can take minutes on a registry.
        if jobs:
            stack.enter_context(executor)
        folder = _shared_folder(stack, out, scheduler=scheduler, ships=executor.ships)
        with part_progress(enabled=progress) as on_part:
            peers = compute_peer_results(
                source,
                period=chosen,
                workers=min(workers, PEER_WORKERS),
                on_part=on_part,
                instruments=tuple(parameters.get("instruments", ())),
            )
        shared = write_shared(peers, folder)
        if jobs:
            bundle: Path | ShippedBundle = shared
            if executor.ships:
                templates = {path.name: path.read_bytes() for path in notebooks.values()}
                bundle = ShippedBundle(peers, templates)
            items = _run_jobs(jobs, executor, inputs=inputs, shared=bundle, progress=progress)
    order = {(j.kind, j.clinic): n for n, j in enumerate(jobs)}
    items.sort(key=lambda i: order[(i.kind, i.clinic)])
    index = write_index(
        out,
        items,
        inputs=inputs,
        period=label,
        skipped=skipped,
        too_small=too_small,
        executor=executor.description,
    )
    return BatchSummary(
        out,
        tuple(items),
        index,
        shared,
        time.perf_counter() - started,
        skipped=skipped,
        executor=executor.description,
        too_small=too_small,
        peers_created_utc=peers.created_utc,
    )


def _shared_folder(
    stack: contextlib.ExitStack, out: Path, *, scheduler: str | None, ships: bool
) -> Path:
    """Where the peer results live while the batch runs; removed when it ends.

    The file holds unsuppressed clinic-level counts (a clinic of one patient
    is a row), so it must not stay next to the reports.  It goes to a private
    temporary folder on this machine, which the process pool and a
    LocalCluster see.  Only workers of a remote cluster reading it by path
    need it where they can see it: ``out/_shared/``, which every such worker
    shares with us; it is deleted after the batch too.
    """
    if scheduler is not None and scheduler != LOCAL_SCHEDULER and not ships:
        folder = out / SHARED_DIR
        stack.callback(_remove_folder, folder)
        return folder
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stepanalytics-peers-")))


def _remove_folder(folder: Path) -> None:
    """Delete the peer results, and their folder when nothing else is in it."""
    if not folder.is_dir():
        return
    for file in folder.glob("peers_*.pkl"):
        file.unlink(missing_ok=True)
    for leftover in folder.glob(".peers_*.tmp"):
        leftover.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: something of the user's is in it
        folder.rmdir()


def _run_jobs(
    jobs: list[BatchJob],
    executor: BatchExecutor,
    *,
    inputs: ReportInputs,
    shared: Path | ShippedBundle,
    progress: bool,
) -> list[BatchItem]:
    """Submit every job, collect them as they finish; a dead worker fails only its job."""
    inputs_ref = executor.share(inputs)
    shared_ref = executor.share(shared) if isinstance(shared, ShippedBundle) else shared
    items: list[BatchItem] = []
    with progress_bar(len(jobs), enabled=progress) as advance:
        futures = {
            executor.submit(render_job, job, inputs_ref, shared_ref, name=job.label): job
            for job in jobs
        }
        for future in executor.as_completed(futures):
            job = futures[future]
            try:
                item = deliver(future.result(), job)
            except Exception as err:  # the worker died (e.g. out of memory), or the copy failed
                item = BatchItem(
                    job.kind,
                    job.clinic,
                    False,
                    error=f"the worker stopped or its report could not be saved: "
                    f"{type(err).__name__}: {err}",
                )
            items.append(item)
            advance(item)
    return items
