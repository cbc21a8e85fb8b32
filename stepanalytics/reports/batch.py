"""Render many reports at once: one per clinic plus the benchmark, in parallel.

The cohort is read and validated once, the peer results every report needs
(case-mix adjustment, funnel limits) are computed once in this process and
written to ``out_dir/_shared/``, and the notebooks run on workers (each with
its own kernel): spawned processes on this machine, or a Dask cluster
(:mod:`stepanalytics.reports.executors`).  One report's failure is recorded
and the others go on; the run ends with a summary and an ``index.html``
linking every report.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepanalytics.errors import UsageError
from stepanalytics.reports.batch_index import progress_bar, write_index
from stepanalytics.reports.batch_jobs import (
    BatchItem,
    BatchJob,
    ShippedBundle,
    deliver,
    render_job,
)
from stepanalytics.reports.executors import (
    BatchExecutor,
    choose_shipping,
    import_distributed,
    open_executor,
)
from stepanalytics.reports.inputs import ReportInputs, inputs_from_cohort
from stepanalytics.reports.kinds import DEFAULT_CELL_TIMEOUT, get_kind, notebook_path
from stepanalytics.reports.period import parse_period

__all__ = ["BATCH_BY", "SHARED_DIR", "BatchItem", "BatchSummary", "render_batch", "write_index"]

BATCH_BY = ("clinic",)
SHARED_DIR = "_shared"


@dataclass(frozen=True)
class BatchSummary:
    """The outcome of a batch: every item, the index page and timings.

    Attributes
    ----------
    executor : str
        Where the reports ran (process pool or Dask cluster).
    """

    out_dir: Path
    items: tuple[BatchItem, ...]
    index: Path
    shared: Path | None
    seconds: float
    skipped: tuple[str, ...] = field(default=())
    executor: str = ""

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
        for item in self.failed:
            first = (item.error or "").splitlines()[0] if item.error else "unknown error"
            lines.append(f"FAILED {item.label}: {first}")
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
        Where reports, ``index.html``, ``_shared/`` and ``_failed/`` go.
    by : {"clinic"}
        One report per clinic.
    period : str, optional
        Enrolment period (``2025Q4``, ``2025-11``, ``2025``); None for all.
        Clinics without a patient enrolled in it are skipped and listed.
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
        How Dask workers get the peer results.  ``path``: they read
        ``out_dir/_shared/...`` and write reports into ``out_dir`` (they
        share this machine's files).  ``scatter``: the results and the
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
        Bad ``by``, ``workers``, period, clinic, scheduler or ``ship``;
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
    from stepanalytics.cohort import load_cohort
    from stepanalytics.reports.context import restrict_to_period
    from stepanalytics.reports.shared import compute_peer_results, write_shared

    started = time.perf_counter()
    if by not in BATCH_BY:
        raise UsageError(f"A batch can be split by {', '.join(BATCH_BY)}, not {by!r}.")
    if workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}.")
    choose_shipping(scheduler, ship)  # a bad combination fails before any work
    if scheduler is not None:
        import_distributed()  # so does a missing optional dependency
    chosen = parse_period(period)
    label = chosen.label if chosen else None
    cohort = load_cohort(Path(data))
    inputs = inputs_from_cohort(cohort, data)
    wanted = list(inputs.clinic_ids) if clinics is None else clinics
    for clinic in wanted:
        inputs.check_request(clinic=clinic, period=None)
    with_patients = set(inputs.clinics_in_period(chosen))
    skipped = tuple(c for c in wanted if c not in with_patients)
    targets = [c for c in wanted if c in with_patients]
    reports: list[tuple[str, str | None]] = [("qi", c) for c in targets]
    if benchmark and targets:
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
            parameters=dict(parameters or {}),
            notebook=notebooks[kind],
            cell_timeout=cell_timeout,
            provenance={"Batch run on": executor.description},
        )
        for kind, clinic in reports
    ]
    items: list[BatchItem] = []
    # Workers start (or the scheduler is reached) first: an unreachable cluster should
    # fail before the shared computation, which can take minutes on a registry.
    with executor if jobs else contextlib.nullcontext():
        peers = compute_peer_results(
            restrict_to_period(cohort, chosen),
            period=chosen,
            instruments=tuple((parameters or {}).get("instruments", ())),
        )
        shared = write_shared(peers, out / SHARED_DIR)
        if jobs:
            bundle: Path | ShippedBundle = shared
            if executor.ships:
                templates = {path.name: path.read_bytes() for path in notebooks.values()}
                bundle = ShippedBundle(peers, templates)
            items = _run_jobs(jobs, executor, inputs=inputs, shared=bundle, progress=progress)
    order = {(j.kind, j.clinic): n for n, j in enumerate(jobs)}
    items.sort(key=lambda i: order[(i.kind, i.clinic)])
    index = write_index(
        out, items, inputs=inputs, period=label, skipped=skipped, executor=executor.description
    )
    return BatchSummary(
        out,
        tuple(items),
        index,
        shared,
        time.perf_counter() - started,
        skipped=skipped,
        executor=executor.description,
    )


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
