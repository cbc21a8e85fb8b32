"""Render many reports at once: one per clinic plus the benchmark, in parallel.

The cohort is read and validated once, the peer results every report needs
(case-mix adjustment, funnel limits) are computed once and written to
``out_dir/_shared/``, and the notebooks run in separate processes (each with
its own kernel).  One report's failure is recorded and the others go on; the
run ends with a summary and an ``index.html`` linking every report.
"""

from __future__ import annotations

import html
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stepanalytics.errors import StepAnalyticsError, UsageError
from stepanalytics.reports.inputs import ReportInputs, inputs_from_cohort
from stepanalytics.reports.kinds import DEFAULT_CELL_TIMEOUT, get_kind
from stepanalytics.reports.period import parse_period
from stepanalytics.reports.render import render_report, temporary_sibling

BATCH_BY = ("clinic",)
SHARED_DIR = "_shared"


@dataclass(frozen=True)
class BatchJob:
    """One report to render in a worker process."""

    kind: str
    clinic: str | None
    period: str | None
    out_dir: Path
    pdf: bool
    parameters: Mapping[str, Any]
    shared: Path | None
    inputs: ReportInputs
    cell_timeout: int


@dataclass(frozen=True)
class BatchItem:
    """What became of one job."""

    kind: str
    clinic: str | None
    ok: bool
    html: Path | None = None
    pdf: Path | None = None
    seconds: float = 0.0
    error: str | None = None

    @property
    def label(self) -> str:
        """``qi C01`` or ``benchmark`` for lists and progress lines."""
        return f"{self.kind} {self.clinic}" if self.clinic else self.kind


@dataclass(frozen=True)
class BatchSummary:
    """The outcome of a batch: every item, the index page and timings."""

    out_dir: Path
    items: tuple[BatchItem, ...]
    index: Path
    shared: Path | None
    seconds: float
    skipped: tuple[str, ...] = field(default=())

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


def _render_job(job: BatchJob) -> BatchItem:
    """Worker entry point: render one report and never raise for a report problem."""
    started = time.perf_counter()
    try:
        report = render_report(
            job.kind,
            data=job.inputs.data,
            out_dir=job.out_dir,
            clinic=job.clinic,
            period=job.period,
            pdf=job.pdf,
            parameters=job.parameters,
            shared=job.shared,
            inputs=job.inputs,
            cell_timeout=job.cell_timeout,
        )
    except StepAnalyticsError as err:
        return BatchItem(job.kind, job.clinic, False, seconds=_since(started), error=str(err))
    except Exception as err:  # isolate: one report's bug must not stop the batch
        message = f"{type(err).__name__}: {err}"
        return BatchItem(job.kind, job.clinic, False, seconds=_since(started), error=message)
    return BatchItem(job.kind, job.clinic, True, report.html, report.pdf, report.seconds)


def _since(started: float) -> float:
    return time.perf_counter() - started


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
) -> BatchSummary:
    """Render one QI report per clinic (and the benchmark) in parallel processes.

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
        Worker processes (each runs one notebook kernel at a time).
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

    Returns
    -------
    BatchSummary
        Check ``summary.failed``; nothing is raised for a failed report.

    Raises
    ------
    CohortError
        The data breaks the contract (no report is attempted).
    UsageError
        Bad ``by``, ``workers``, period or clinic.

    Examples
    --------
    >>> summary = render_batch("data/demo", out_dir="reports/batch")  # doctest: +SKIP
    >>> print(summary.render_text())  # doctest: +SKIP
    7 of 7 reports written in 41.2 s; index: reports/batch/index.html
    """
    from stepanalytics.cohort import load_cohort
    from stepanalytics.reports.shared import compute_peer_results, write_shared

    started = time.perf_counter()
    if by not in BATCH_BY:
        raise UsageError(f"A batch can be split by {', '.join(BATCH_BY)}, not {by!r}.")
    if workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}.")
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    from stepanalytics.reports.context import restrict_to_period

    peers = compute_peer_results(
        restrict_to_period(cohort, chosen),
        period=chosen,
        instruments=tuple((parameters or {}).get("instruments", ())),
    )
    shared = write_shared(peers, out / SHARED_DIR)

    def job(kind: str, clinic: str | None) -> BatchJob:
        return BatchJob(
            kind, clinic, label, out, pdf, dict(parameters or {}), shared, inputs, cell_timeout
        )

    jobs = [job("qi", c) for c in targets]
    if benchmark and targets:
        jobs.append(job("benchmark", None))
    items = _run_jobs(jobs, workers=workers, progress=progress)
    order = {(j.kind, j.clinic): n for n, j in enumerate(jobs)}
    items.sort(key=lambda i: order[(i.kind, i.clinic)])
    index = write_index(out, items, inputs=inputs, period=label, skipped=skipped)
    return BatchSummary(
        out, tuple(items), index, shared, time.perf_counter() - started, skipped=skipped
    )


def _run_jobs(jobs: list[BatchJob], *, workers: int, progress: bool) -> list[BatchItem]:
    """Run the jobs in a process pool; a dead worker fails only its own report."""
    if not jobs:
        return []
    # spawn, not fork: the parent may hold threads (progress bar) and zmq state.
    context = multiprocessing.get_context("spawn")
    items: list[BatchItem] = []
    with (
        _progress_bar(len(jobs), enabled=progress) as advance,
        ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool,
    ):
        futures: dict[Future[BatchItem], BatchJob] = {pool.submit(_render_job, j): j for j in jobs}
        for future in as_completed(futures):
            source = futures[future]
            try:
                item = future.result()
            except Exception as err:  # the worker process died (e.g. out of memory)
                item = BatchItem(
                    source.kind,
                    source.clinic,
                    False,
                    error=f"the worker process stopped: {type(err).__name__}: {err}",
                )
            items.append(item)
            advance(item)
    return items


class _progress_bar:
    """A rich progress bar, or nothing when disabled; yields an ``advance`` callable."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[BatchItem], None]:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]reports"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total)
        return self._advance

    def _advance(self, item: BatchItem) -> None:
        if self._progress is None:
            return
        status = "done" if item.ok else "[red]FAILED[/red]"
        self._progress.update(self._task, advance=1, description=f"{item.label} {status}")

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def write_index(
    out: Path,
    items: list[BatchItem],
    *,
    inputs: ReportInputs,
    period: str | None,
    skipped: tuple[str, ...] = (),
) -> Path:
    """Write ``index.html`` linking every report (relative links), atomically."""
    esc = html.escape
    rows = []
    for item in items:
        title = get_kind(item.kind).title + (f": clinic {item.clinic}" if item.clinic else "")
        if item.ok and item.html is not None:
            links = f'<a href="{esc(item.html.name)}">HTML</a>'
            if item.pdf is not None:
                links += f' · <a href="{esc(item.pdf.name)}">PDF</a>'
            status = "written"
        else:
            links = "–"
            first = (item.error or "unknown error").splitlines()[0]
            status = f'<span class="failed">failed</span>: {esc(first)}'
        rows.append(
            f"<tr><td>{esc(title)}</td><td>{links}</td><td>{status}</td>"
            f"<td>{item.seconds:.1f} s</td></tr>"
        )
    skipped_note = (
        f"<p>Skipped (no patient enrolled in the period): {esc(', '.join(skipped))}</p>"
        if skipped
        else ""
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>stepanalytics reports</title><style>"
        "body{font-family:Arial,sans-serif;max-width:960px;margin:24px auto;color:#1d2733}"
        "table{border-collapse:collapse}td,th{border-bottom:1px solid #d8dee6;padding:4px 10px;"
        "text-align:left}.failed{color:#b02a2a;font-weight:bold}"
        "</style></head><body><h1>Reports</h1>"
        f"<p>Period: {esc(period or 'all enrolment periods')}. "
        f"Data fingerprint (SHA-256): <code>{inputs.fingerprint.sha256}</code>. "
        f"Rendered {stamp}.</p>{skipped_note}"
        "<table><tr><th>report</th><th>files</th><th>status</th><th>time</th></tr>"
        f"{''.join(rows)}</table></body></html>\n"
    )
    target = out / "index.html"
    temporary = temporary_sibling(target)
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, target)
    return target
