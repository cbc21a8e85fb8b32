"""Render one report: run its notebook with papermill, convert, check, write.

The order of work is chosen so that a failure leaves nothing half-done:

1. the parameters, the cohort and the request are checked (a parameter of
   the wrong type, unknown clinic, empty period, a clinic too small for a
   committee report of its own) before any kernel starts, and the peer
   results every clinic is compared with are computed (clinic by clinic for
   a stored registry, validating each clinic), so that a clinic's notebook
   reads only that clinic;
2. papermill executes the notebook (kernel named explicitly, a timeout per
   cell) into a temporary folder;
3. nbconvert turns the outputs (no code, no prompts) into one HTML page with
   the provenance block; the page is checked for patient ids and for any
   resource it would fetch from outside itself;
4. HTML (and PDF) are written to temporary siblings and renamed into place.

When a step fails, the executed notebook is kept in ``out_dir/_failed/`` and
a :class:`ReportError` says which cell failed and why; an earlier report at
the target path is left as it was.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat

from stepanalytics.errors import UsageError
from stepanalytics.reports.html import (
    build_page,
    external_resources,
    find_identifiers,
    notebook_body_html,
)
from stepanalytics.reports.inputs import (
    ReportError,
    ReportInputs,
    prepare_report_data,
    scan_report_data,
)
from stepanalytics.reports.kinds import (
    DEFAULT_CELL_TIMEOUT,
    KERNEL_NAME,
    get_kind,
    notebook_path,
    report_stem,
)
from stepanalytics.reports.notebook_errors import describe_failure, locate_identifiers
from stepanalytics.reports.parameters import (
    check_parameters,
    notebook_parameters,
    suppression_threshold_of,
)
from stepanalytics.reports.period import parse_period
from stepanalytics.reports.provenance import Provenance, collect_provenance
from stepanalytics.reports.report_files import write_atomically

if TYPE_CHECKING:
    from stepanalytics.cohort import Cohort

FAILED_DIR = "_failed"
# The kernel's own start-up chatter (e.g. the TCP transport notice) is not for users.
# Errors inside cells reach us through the protocol; the kernel's own log (e.g. a socket
# closed while a timed-out cell is interrupted) would only confuse a reader of the terminal.
_KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


@dataclass(frozen=True)
class RenderedReport:
    """A report written to disk.

    Attributes
    ----------
    kind, title : str
        Report kind and its full title.
    clinic, period : str or None
        What it is about.
    html : Path
        The self-contained HTML file.
    pdf : Path or None
        The PDF, when asked for.
    seconds : float
        Wall time of the whole rendering.
    provenance : Provenance
        What the report's provenance block says.
    """

    kind: str
    title: str
    clinic: str | None
    period: str | None
    html: Path
    pdf: Path | None
    seconds: float
    provenance: Provenance


def render_report(
    kind: str,
    *,
    data: str | Path,
    out_dir: str | Path,
    clinic: str | None = None,
    period: str | None = None,
    pdf: bool = False,
    parameters: Mapping[str, Any] | None = None,
    shared: str | Path | None = None,
    inputs: ReportInputs | None = None,
    notebook: str | Path | None = None,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    extra_provenance: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> RenderedReport:
    """Render one report to a self-contained HTML file (and a PDF when asked).

    Parameters
    ----------
    kind : {"qi", "benchmark", "explorer"}
        Which report.
    data : str or Path
        The cohort folder (or DuckDB file).
    out_dir : str or Path
        Folder for the report; created when missing.
    clinic : str, optional
        The clinic the report is about; None for all clinics.
    period : str, optional
        ``2025Q4``, ``2025-11`` or ``2025``: patients enrolled then; None for all.
    pdf : bool
        Also write a PDF (WeasyPrint).
    parameters : mapping, optional
        Further notebook parameters (literals) declared in its parameters
        cell, e.g. ``{"suppression_threshold": 10}``.
    shared : str or Path, optional
        Precomputed peer results from :func:`stepanalytics.reports.shared.write_shared`;
        batches pass it so the notebooks do not recompute them.
    inputs : ReportInputs, optional
        Already-read facts about the cohort (a batch reads them once).
    notebook : str or Path, optional
        Another notebook to run instead of the kind's own (used by tests).
    cell_timeout : int
        Seconds a single cell may run before the report is abandoned.
    extra_provenance : mapping, optional
        More rows for the provenance block.
    progress : bool
        Show a progress bar while the clinics of a stored registry are read
        for the peer comparison.

    Returns
    -------
    RenderedReport

    Raises
    ------
    CohortError
        The data breaks the contract (nothing is run).
    UsageError
        Unknown kind, clinic or parameter, a parameter value of the wrong
        type or out of range (:func:`~stepanalytics.reports.parameters.check_parameters`),
        or a malformed period.
    ReportError
        No patient in the period; a committee report about a clinic whose
        patient count is itself a small cell (from 1 to the suppression
        threshold: such a clinic is reported only among all clinics); a
        cell failed, the page would show a patient id or fetch an outside
        resource, or the PDF could not be made.  The message names the cell;
        the executed notebook is kept in ``out_dir/_failed/``.

    Examples
    --------
    >>> report = render_report("qi", data="data/demo", clinic="C01",
    ...                        period="2025Q4", out_dir="reports")  # doctest: +SKIP
    >>> report.html.name  # doctest: +SKIP
    'qi_C01_2025Q4.html'

    Notes
    -----
    The R world's equivalent is ``rmarkdown::render(params = ...)`` with
    ``self_contained: true``; papermill plays the part of knitr's params.
    """
    started = time.perf_counter()
    spec = get_kind(kind)
    extra = check_parameters(parameters or {})  # before any work: a typo fails in a second
    template = Path(notebook) if notebook is not None else notebook_path(spec)
    if not template.is_file():
        raise UsageError(f"The notebook {str(template)!r} does not exist.")
    chosen = parse_period(period)
    source: Cohort | Path | None = None
    if inputs is None:
        inputs, source = scan_report_data(data)
    inputs.check_request(clinic=clinic, period=chosen)
    if spec.committee and spec.per_clinic:
        threshold = suppression_threshold_of(extra)
        inputs.check_clinic_size(clinic=clinic, period=chosen, threshold=threshold)
    label = chosen.label if chosen else None
    with tempfile.TemporaryDirectory(prefix="stepanalytics-report-") as work:
        if shared is None:
            # Here, not in the kernel: a data problem stops the command before a
            # kernel starts, and a clinic's notebook then reads only that clinic.
            shared = prepare_report_data(
                inputs,
                source,
                compare=spec.committee or bool(clinic),
                period=chosen,
                instruments=tuple(extra.get("instruments", ())),
                work=Path(work),
                progress=progress,
            )
        params = notebook_parameters(
            template,
            core={
                "data": str(inputs.data),
                "clinic": clinic or "",
                "period": label or "",
                "shared": str(Path(shared).resolve()) if shared else "",
            },
            extra=extra,
        )
        return _render(
            spec,
            template,
            params,
            inputs,
            out_dir=out_dir,
            clinic=clinic,
            label=label,
            pdf=pdf,
            cell_timeout=cell_timeout,
            extra_provenance=extra_provenance,
            work=Path(work),
            started=started,
        )


def _render(
    spec: Any,
    template: Path,
    params: dict[str, Any],
    inputs: ReportInputs,
    *,
    out_dir: str | Path,
    clinic: str | None,
    label: str | None,
    pdf: bool,
    cell_timeout: int,
    extra_provenance: Mapping[str, Any] | None,
    work: Path,
    started: float,
) -> RenderedReport:
    """Run the notebook, check and write the page (steps 2-4 of the module's order)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = report_stem(spec.name, clinic, label)
    title = f"{spec.title}: {clinic or 'all clinics'}, {label or 'all periods'}"
    provenance = collect_provenance(
        report=title,
        notebook=template,
        parameters=params,
        data=inputs.fingerprint,
        extra=extra_provenance,
    )
    failed_copy = out / FAILED_DIR / f"{stem}.ipynb"
    executed = work / f"{stem}.ipynb"
    nb = _execute(template, executed, params, cell_timeout, failed_copy, title)
    page = build_page(
        title=title, body=notebook_body_html(nb), provenance_html=provenance.to_html()
    )
    _check_page(page, nb, inputs, executed, failed_copy, title)
    html_path, pdf_path = write_atomically(page, out, stem, pdf=pdf)
    if failed_copy.exists():  # a stale failure of an earlier run would mislead
        failed_copy.unlink()
    return RenderedReport(
        kind=spec.name,
        title=title,
        clinic=clinic,
        period=label,
        html=html_path,
        pdf=pdf_path,
        seconds=time.perf_counter() - started,
        provenance=provenance,
    )


def _execute(
    template: Path,
    executed: Path,
    params: Mapping[str, Any],
    cell_timeout: int,
    failed_copy: Path,
    title: str,
) -> nbformat.NotebookNode:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        with _quiet_logger("papermill"):
            papermill.execute_notebook(
                str(template),
                str(executed),
                parameters=dict(params),
                kernel_name=KERNEL_NAME,
                execution_timeout=cell_timeout,
                progress_bar=False,
                log_output=False,
                # No cwd: papermill would os.chdir the whole process, which breaks
                # reports rendered from threads.  Notebooks get absolute paths.
                extra_arguments=_KERNEL_ARGUMENTS,
            )
    except PapermillExecutionError as err:
        kept = _keep(executed, failed_copy)
        raise ReportError(
            describe_failure(title, template, kept, err.ename, err.evalue),
            failed_notebook=kept,
        ) from None
    except Exception as err:  # kernel died, cell timed out, kernel would not start
        kept = _keep(executed, failed_copy)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if "timed out" in str(err).lower() or type(err).__name__ == "CellTimeoutError":
            reason = f"a cell ran longer than the {cell_timeout} s allowed per cell"
        raise ReportError(
            describe_failure(title, template, kept, type(err).__name__, reason),
            failed_notebook=kept,
        ) from None
    return nbformat.read(str(executed), as_version=4)


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Silence a library's logger for a while: failures are reported by us, in words."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _keep(executed: Path, failed_copy: Path) -> Path | None:
    """Move the executed notebook (if papermill wrote one) to ``_failed/``."""
    if not executed.exists():
        return None
    failed_copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(executed, failed_copy)
    return failed_copy


def _check_page(
    page: str,
    nb: nbformat.NotebookNode,
    inputs: ReportInputs,
    executed: Path,
    failed_copy: Path,
    title: str,
) -> None:
    found = find_identifiers(page, inputs.patient_ids)
    if found:
        kept = _keep(executed, failed_copy)
        where = locate_identifiers(nb, set(found))
        raise ReportError(
            f"The {title} was not written: {len(found)} patient id(s) would appear in it "
            f"({where}). A committee report must never show a patient id; the section "
            f"that prints them needs fixing. The executed notebook is kept at {kept}; it holds "
            "the ids, so delete it once fixed and never share the _failed folder.",
            failed_notebook=kept,
        )
    outside = external_resources(page)
    if outside:
        kept = _keep(executed, failed_copy)
        raise ReportError(
            f"The {title} was not written: it would load {len(outside)} resource(s) from "
            f"outside the file (first: {outside[0]}), so it would not be self-contained. "
            f"The executed notebook is kept at {kept}.",
            failed_notebook=kept,
        )
