"""What a batch shows while it runs and leaves behind: a progress bar and ``index.html``."""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stepanalytics.reports.batch_jobs import BatchItem
from stepanalytics.reports.inputs import ReportInputs
from stepanalytics.reports.kinds import get_kind
from stepanalytics.reports.report_files import temporary_sibling


class progress_bar:
    """A rich progress bar, or nothing when disabled; yields an ``advance`` callable.

    Examples
    --------
    >>> with progress_bar(3, enabled=False) as advance:
    ...     advance(BatchItem("qi", "C01", True))
    """

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


class part_progress:
    """A rich progress bar of the parts of a registry being read, or nothing when disabled.

    Yields the ``on_part(done, total)`` callable of
    :func:`~stepanalytics.reports.shared.compute_peer_results`.

    Examples
    --------
    >>> with part_progress(enabled=False) as on_part:
    ...     on_part(1, 3)
    """

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[int, int], None]:
        return self._advance

    def _advance(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]reading clinics for the peer comparison"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=total)
        self._progress.update(self._task, completed=done)

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
    executor: str = "",
    too_small: tuple[str, ...] = (),
) -> Path:
    """Write ``index.html`` linking every report (relative links), atomically.

    ``executor`` says where the reports ran (e.g. a Dask cluster);
    ``too_small`` lists the clinics without a report of their own because
    their patient count is a small cell.
    """
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
    if too_small:
        skipped_note += (
            f"<p>No report of their own (too few patients to report without describing "
            f"individuals); their patients are included in the all-clinics reports only: "
            f"{esc(', '.join(too_small))}</p>"
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
        f"Rendered {stamp}{esc(f' on a {executor}' if executor else '')}.</p>{skipped_note}"
        "<table><tr><th>report</th><th>files</th><th>status</th><th>time</th></tr>"
        f"{''.join(rows)}</table></body></html>\n"
    )
    target = out / "index.html"
    temporary = temporary_sibling(target)
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, target)
    return target
