"""Reports: papermill notebooks rendered to self-contained HTML / PDF, in batches.

Public entry points:

- :func:`render_report` renders one report (QI committee report, clinic
  benchmark or cohort explorer) with provenance;
- :func:`render_batch` renders one QI report per clinic plus the benchmark
  in parallel processes or on a Dask cluster, with an index page;
- ``stepanalytics report ...`` (:mod:`stepanalytics.reports.cli`) does both
  from the command line.

Names are imported on first use: a notebook kernel imports
``stepanalytics.reports.sections`` and should not pay for papermill and
nbconvert, which only the rendering side needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepanalytics.reports.batch import BatchItem, BatchSummary, render_batch
    from stepanalytics.reports.inputs import ReportError
    from stepanalytics.reports.kinds import REPORT_KINDS, ReportKind
    from stepanalytics.reports.period import ReportPeriod, parse_period
    from stepanalytics.reports.render import RenderedReport, render_report

_WHERE = {
    "BatchItem": "batch",
    "BatchSummary": "batch",
    "render_batch": "batch",
    "ReportError": "inputs",
    "REPORT_KINDS": "kinds",
    "ReportKind": "kinds",
    "ReportPeriod": "period",
    "parse_period": "period",
    "RenderedReport": "render",
    "render_report": "render",
}

__all__ = [
    "REPORT_KINDS",
    "BatchItem",
    "BatchSummary",
    "RenderedReport",
    "ReportError",
    "ReportKind",
    "ReportPeriod",
    "parse_period",
    "render_batch",
    "render_report",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'stepanalytics.reports' has no attribute {name!r}")
    return getattr(importlib.import_module(f"stepanalytics.reports.{_WHERE[name]}"), name)
