"""Shared fixtures of the report tests: one demo cohort, reports rendered once.

Rendering a notebook takes seconds (a kernel starts, the analyses run), so
each report is rendered once per test session and every assertion reads the
same files.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from stepanalytics.cohort import load_cohort
from stepanalytics.reports import RenderedReport, render_report
from stepanalytics.synth import write_synthetic_cohort

#: Small enough to keep the suite quick, large enough that some counts exceed
#: the small-cell threshold and every analysis has data.
DEMO_PATIENTS = 150
DEMO_CLINICS = 4
DEMO_SEED = 2026
QI_CLINIC = "C02"
THRESHOLD = 10
#: Clinics of the demo cohort: C01 (9 patients) and C03 (8) are too small for a committee
#: report of their own; the light QI notebook fails on purpose for FAILING_CLINIC.
TINY_CLINIC = "C01"
FAILING_CLINIC = "C04"


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "cohort"
    write_synthetic_cohort(folder, n_patients=DEMO_PATIENTS, n_clinics=DEMO_CLINICS, seed=DEMO_SEED)
    return folder


@pytest.fixture(scope="session")
def patient_ids(demo_dir: Path) -> set[str]:
    return set(load_cohort(demo_dir).patients["patient_id"].astype(str))


@pytest.fixture(scope="session")
def rendered_reports(
    demo_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, RenderedReport]:
    """The three reports, rendered concurrently (each runs its own kernel process)."""
    out = tmp_path_factory.mktemp("reports")
    jobs = {
        "qi": {"clinic": QI_CLINIC, "pdf": True},
        "benchmark": {"clinic": QI_CLINIC},
        # One trajectory keeps the suite quick; it also exercises an extra parameter.
        "explorer": {"parameters": {"trajectory_instruments": ["odi"]}},
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            kind: pool.submit(render_report, kind, data=demo_dir, out_dir=out, **options)
            for kind, options in jobs.items()
        }
        return {kind: future.result() for kind, future in futures.items()}


@pytest.fixture(scope="session")
def qi_report(rendered_reports: dict[str, RenderedReport]) -> RenderedReport:
    return rendered_reports["qi"]


@pytest.fixture(scope="session", params=["qi", "benchmark", "explorer"])
def rendered(
    request: pytest.FixtureRequest, rendered_reports: dict[str, RenderedReport]
) -> tuple[str, str]:
    """(kind, page text) of each rendered report in turn."""
    kind = request.param
    return kind, rendered_reports[kind].html.read_text(encoding="utf-8")


PARAMETERS = 'data = ""\nclinic = ""\nperiod = ""\nshared = ""\nsuppression_threshold = 10'


def write_notebook(folder: Path, name: str, *cells: str) -> Path:
    """A small report notebook: the standard parameters cell, then the given cells."""
    nb = new_notebook(
        cells=[
            new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
            *(new_code_cell(c) for c in cells),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="session")
def light_notebooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Quick stand-ins for the three report notebooks (set as $STEPANALYTICS_NOTEBOOKS).

    They call the real package (context, title, data-quality appendix) but skip
    the slow analyses; the QI one fails on purpose for clinic C04 (FAILING_CLINIC)
    so that a batch has one failure to isolate.  The QI and benchmark ones print the
    creation time of the peer results they read, so a test can tell that a
    batch's reports used the batch's shared file.
    """
    folder = tmp_path_factory.mktemp("light_notebooks")
    prepare = (
        "context = report.prepare_report(data, clinic=clinic, period=period, shared=shared, "
        "suppression_threshold=suppression_threshold)"
    )
    common = ("from stepanalytics.reports import sections as report", prepare)
    write_notebook(
        folder,
        "qi_report.ipynb",
        *common,
        f"if clinic == {FAILING_CLINIC!r}:\n    raise RuntimeError('no phase data for this clinic')",
        'report.section_title(context, "qi")',
        "context.peers.created_utc",
        "report.section_data_quality(context)",
    )
    write_notebook(
        folder,
        "clinic_benchmark.ipynb",
        *common,
        'report.section_title(context, "benchmark")',
        "context.peers.created_utc",  # shows which peer results the report read
    )
    write_notebook(folder, "cohort_explorer.ipynb", *common, 'report.section_title(context, "x")')
    return folder
