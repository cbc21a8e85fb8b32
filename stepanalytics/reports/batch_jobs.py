"""One report of a batch: what a worker is asked to do and what it sends back.

A worker runs :func:`render_job` whatever executes the batch (a local process
pool or a Dask cluster).  Two ways of getting the shared peer results to it
exist, chosen by the executor:

- **by path**: the worker sees the client's file system; it reads the peer
  results from ``out_dir/_shared/`` and writes its report straight into
  ``out_dir`` (write then rename, as :func:`render_report` always does);
- **shipped**: the worker may be on another machine; it receives a
  :class:`ShippedBundle` (the peer results and the notebook templates, sent
  once per worker by the executor), renders into a private scratch folder,
  and returns the files it wrote; the client writes them into ``out_dir``
  with :func:`deliver`, again to a temporary sibling renamed into place.

Whatever happens, :func:`render_job` returns a :class:`JobOutcome`: a report
problem is a failed :class:`BatchItem`, never an exception, so one clinic's
failure cannot stop the others.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepanalytics.errors import StepAnalyticsError
from stepanalytics.reports.inputs import ReportInputs
from stepanalytics.reports.kinds import report_stem
from stepanalytics.reports.render import FAILED_DIR, render_report
from stepanalytics.reports.report_files import temporary_sibling

if TYPE_CHECKING:
    from stepanalytics.reports.shared import PeerResults


@dataclass(frozen=True)
class BatchJob:
    """One report to render on a worker.

    ``notebook`` is the template as the client resolved it; a shipped job
    uses the copy in its :class:`ShippedBundle` (same name and content).
    """

    kind: str
    clinic: str | None
    period: str | None
    out_dir: Path
    pdf: bool
    parameters: Mapping[str, Any]
    notebook: Path
    cell_timeout: int
    provenance: Mapping[str, str]

    @property
    def label(self) -> str:
        """``qi C01`` or ``benchmark``."""
        return f"{self.kind} {self.clinic}" if self.clinic else self.kind


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
class ShippedBundle:
    """What a worker that cannot see the client's files needs besides the data.

    Attributes
    ----------
    peers : PeerResults
        The peer comparisons computed once by the client.
    notebooks : dict
        Notebook file name -> its bytes, so every worker runs exactly the
        client's templates (and needs no source checkout).
    """

    peers: PeerResults
    notebooks: Mapping[str, bytes]


@dataclass(frozen=True)
class ShippedFile:
    """A file a shipped job wrote, relative to the output folder."""

    name: str
    content: bytes


@dataclass(frozen=True)
class JobOutcome:
    """A worker's answer: the item, and the files when the job was shipped."""

    item: BatchItem
    files: tuple[ShippedFile, ...] = ()


def render_job(job: BatchJob, inputs: ReportInputs, shared: Path | ShippedBundle) -> JobOutcome:
    """Worker entry point: render one report; a report problem never raises.

    Parameters
    ----------
    job : BatchJob
        What to render.
    inputs : ReportInputs
        Facts about the cohort, read once by the client.
    shared : Path or ShippedBundle
        The peer-results file (workers share the client's file system), or
        the bundle itself (they may not).

    Returns
    -------
    JobOutcome
    """
    started = time.perf_counter()
    try:
        if isinstance(shared, ShippedBundle):
            return _render_shipped(job, inputs, shared, started)
        item = _render(job, inputs, out_dir=job.out_dir, shared=shared, notebook=job.notebook)
        return JobOutcome(item)
    except Exception as err:  # isolate: a bug in the shipping must not stop the batch
        return JobOutcome(_failed(job, started, f"{type(err).__name__}: {err}"))


def _render(
    job: BatchJob, inputs: ReportInputs, *, out_dir: Path, shared: Path, notebook: Path
) -> BatchItem:
    started = time.perf_counter()
    try:
        report = render_report(
            job.kind,
            data=inputs.data,
            out_dir=out_dir,
            clinic=job.clinic,
            period=job.period,
            pdf=job.pdf,
            parameters=job.parameters,
            shared=shared,
            inputs=inputs,
            notebook=notebook,
            cell_timeout=job.cell_timeout,
            extra_provenance={**job.provenance, "Rendered on host": socket.gethostname()},
        )
    except StepAnalyticsError as err:
        return _failed(job, started, str(err))
    except Exception as err:  # isolate: one report's bug must not stop the batch
        return _failed(job, started, f"{type(err).__name__}: {err}")
    return BatchItem(job.kind, job.clinic, True, report.html, report.pdf, report.seconds)


def _failed(job: BatchJob, started: float, error: str) -> BatchItem:
    return BatchItem(
        job.kind, job.clinic, False, seconds=time.perf_counter() - started, error=error
    )


def _render_shipped(
    job: BatchJob, inputs: ReportInputs, bundle: ShippedBundle, started: float
) -> JobOutcome:
    """Render in a private scratch folder and send back every file written."""
    from stepanalytics.reports.shared import write_shared

    if not inputs.data.exists():
        # The notebook reads the cohort itself; only the results travel.
        return JobOutcome(
            _failed(
                job,
                started,
                f"The worker on host {socket.gethostname()} cannot read the cohort at "
                f"{inputs.data}. Workers read the data themselves: make it available at the "
                "same path on every worker (a shared or copied folder).",
            )
        )
    with tempfile.TemporaryDirectory(prefix="stepanalytics-batch-") as work:
        scratch = Path(work)
        notebook = scratch / "notebooks" / job.notebook.name
        notebook.parent.mkdir()
        notebook.write_bytes(bundle.notebooks[job.notebook.name])
        shared = write_shared(bundle.peers, scratch / "_shared")
        out = scratch / "out"
        item = _render(job, inputs, out_dir=out, shared=shared, notebook=notebook)
        files = tuple(
            ShippedFile(path.relative_to(out).as_posix(), path.read_bytes())
            for path in sorted(out.rglob("*"))
            if path.is_file()
        )
        return JobOutcome(_relocated(item, out, job.out_dir), files)


def _relocated(item: BatchItem, scratch: Path, out_dir: Path) -> BatchItem:
    """Name the files where the client will put them, not in the worker's scratch."""

    def moved(path: Path | None) -> Path | None:
        return None if path is None else out_dir / path.relative_to(scratch)

    error = item.error.replace(str(scratch), str(out_dir)) if item.error else None
    return replace(item, html=moved(item.html), pdf=moved(item.pdf), error=error)


def deliver(outcome: JobOutcome, job: BatchJob) -> BatchItem:
    """On the client: write a shipped job's files into the output folder.

    Each file goes to a temporary sibling renamed into place, the HTML last,
    so a report's HTML never appears before its PDF.  Jobs that wrote into
    the output folder themselves come back without files; their report must
    be visible here, else the job is counted as failed (its worker wrote to a
    file system this machine does not see).
    """
    if not outcome.files:
        item = outcome.item
        if item.ok and item.html is not None and not item.html.exists():
            # Path mode on a cluster whose workers do not share this machine's files.
            return replace(
                item,
                ok=False,
                error=f"The report was written on the worker's machine, not here: "
                f"{item.html} does not exist on this machine. Use --ship scatter "
                "(ship='scatter') when the workers do not share this file system.",
            )
        return item
    root = job.out_dir.resolve()
    for shipped in sorted(outcome.files, key=lambda f: f.name.endswith(".html")):
        target = (root / shipped.name).resolve()
        if root not in target.parents:  # a worker names files inside the output folder only
            raise StepAnalyticsError(f"A worker sent a file outside {root}: {shipped.name!r}.")
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = temporary_sibling(target)
        try:
            temporary.write_bytes(shipped.content)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
    if outcome.item.ok:  # as render_report does: a stale failure of an earlier run would mislead
        stem = report_stem(job.kind, job.clinic, job.period)
        (root / FAILED_DIR / f"{stem}.ipynb").unlink(missing_ok=True)
    return outcome.item
