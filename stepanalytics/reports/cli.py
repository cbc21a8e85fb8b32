"""``stepanalytics report ...``: render reports from the command line.

Registered by the main command as ``main.add_command(report_group, "report")``.
Exit status: 0 when every report was written, 1 for a data problem or a
report that failed (the message says which cell and why; no traceback),
2 for a usage mistake (unknown option value, malformed period).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from stepanalytics.errors import StepAnalyticsError, UsageError
from stepanalytics.reports.kinds import DEFAULT_CELL_TIMEOUT

T = TypeVar("T")


def _parse_parameters(values: tuple[str, ...]) -> dict[str, Any]:
    """``--param name=value`` pairs; values are Python literals, else plain text."""
    out: dict[str, Any] = {}
    for pair in values:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise click.BadParameter(
                f"{pair!r} is not of the form name=value.", param_hint="--param"
            )
        try:
            value: Any = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[name.strip()] = value
    return out


def _guard(action: Callable[[], T]) -> T:
    """Run an action; turn the project's errors into messages and exit codes."""
    try:
        return action()
    except UsageError as err:
        raise click.UsageError(str(err)) from None
    except StepAnalyticsError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--data",
            "data",
            required=True,
            type=click.Path(exists=True, path_type=Path),
            help="Cohort folder (CSV/Parquet tables) or DuckDB file.",
        ),
        click.option("--period", default=None, help="Enrolment period: 2025Q4, 2025-11 or 2025."),
        click.option(
            "--out",
            "out",
            default=Path("reports"),
            show_default=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Folder for the report(s).",
        ),
        click.option("--pdf", is_flag=True, help="Also write a PDF (WeasyPrint)."),
        click.option(
            "--param",
            "params",
            multiple=True,
            metavar="NAME=VALUE",
            help="Extra notebook parameter, e.g. --param suppression_threshold=5.",
        ),
        click.option(
            "--cell-timeout",
            default=DEFAULT_CELL_TIMEOUT,
            show_default=True,
            type=click.IntRange(min=1),
            help="Seconds a single notebook cell may run.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group("report")
def report_group() -> None:
    """Render the QI report, the clinic benchmark or the cohort explorer.

    Reports are single self-contained HTML files (no code shown, every image
    embedded, a provenance block at the end); --pdf adds a PDF.
    """


def _render_single(
    kind: str,
    *,
    data: Path,
    clinic: str | None,
    period: str | None,
    out: Path,
    pdf: bool,
    params: tuple[str, ...],
    cell_timeout: int,
) -> None:
    from stepanalytics.reports.render import render_report

    report = _guard(
        lambda: render_report(
            kind,
            data=data,
            clinic=clinic,
            period=period,
            out_dir=out,
            pdf=pdf,
            parameters=_parse_parameters(params),
            cell_timeout=cell_timeout,
            progress=sys.stderr.isatty(),
        )
    )
    click.echo(str(report.html))
    if report.pdf is not None:
        click.echo(str(report.pdf))


@report_group.command("qi")
@_common
@click.option("--clinic", default=None, help="Clinic id; all clinics when omitted.")
def qi_command(**options: Any) -> None:
    """QI committee report for one clinic (or all) and one period."""
    _render_single("qi", **options)


@report_group.command("benchmark")
@_common
@click.option("--clinic", default=None, help="Clinic to highlight among its peers.")
def benchmark_command(**options: Any) -> None:
    """All clinics side by side on the same risk-adjusted indicators."""
    _render_single("benchmark", **options)


@report_group.command("explorer")
@_common
@click.option("--clinic", default=None, help="Clinic id; all clinics when omitted.")
def explorer_command(**options: Any) -> None:
    """Research report: trajectories, mixed models, progression curves."""
    _render_single("explorer", **options)


@report_group.command("batch")
@_common
@click.option(
    "--by",
    type=click.Choice(["clinic"]),
    default="clinic",
    show_default=True,
    help="One report per clinic.",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes (of the local pool, or of the LocalCluster with --scheduler local).",
)
@click.option(
    "--scheduler",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="ADDRESS",
    help="Run the reports on Dask: a scheduler address (tcp://host:8786), or 'local' (or the "
    "bare option) for a LocalCluster of --workers processes started and closed with the batch. "
    "Needs stepanalytics[dask]. Default: a process pool on this machine.",
)
@click.option(
    "--ship",
    type=click.Choice(["auto", "scatter", "path"]),
    default="auto",
    show_default=True,
    help="How Dask workers get the shared peer results. path: read from OUT/_shared, reports "
    "written by the workers (they share this machine's files). scatter: sent to every worker, "
    "reports sent back (workers may be on other machines). auto: scatter for an address, "
    "path for 'local'.",
)
@click.option(
    "--clinic",
    "clinics",
    multiple=True,
    help="Only this clinic (repeat for several); default every clinic.",
)
@click.option("--no-benchmark", is_flag=True, help="Skip the clinic benchmark report.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def batch_command(
    *,
    data: Path,
    period: str | None,
    out: Path,
    pdf: bool,
    params: tuple[str, ...],
    cell_timeout: int,
    by: str,
    workers: int,
    scheduler: str | None,
    ship: str,
    clinics: tuple[str, ...],
    no_benchmark: bool,
    no_progress: bool,
) -> None:
    """One QI report per clinic plus the benchmark, in parallel, with an index page.

    The reports run in processes on this machine, or on a Dask cluster with
    --scheduler.
    """
    from stepanalytics.reports.batch import render_batch

    summary = _guard(
        lambda: render_batch(
            data,
            out_dir=out,
            by=by,
            period=period,
            workers=workers,
            pdf=pdf,
            parameters=_parse_parameters(params),
            benchmark=not no_benchmark,
            clinics=list(clinics) or None,
            progress=not no_progress,
            cell_timeout=cell_timeout,
            scheduler=scheduler,
            ship=ship,
        )
    )
    click.echo(summary.render_text())
    if summary.failed:
        for item in summary.failed:
            click.echo(f"\n--- {item.label} ---\n{item.error}", err=True)
        sys.exit(1)
