"""A clinic's report from a stored registry reads only that clinic, and says the same.

From a DuckDB file the other clinics reach a clinic's report only as
clinic-level tables computed clinic by clinic; the page must be the one the
same data gives from CSV files (read whole), and the notebook must hold no
other clinic's patients.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stepanalytics.cohort import load_cohort
from stepanalytics.io import write_duckdb
from stepanalytics.reports import render_report
from stepanalytics.reports.context import prepare_report
from stepanalytics.reports.shared import compute_peer_results, write_shared

QI_CLINIC = "C02"  # the clinic of the session's rendered QI report (tests/reports/conftest.py)
_MAIN = re.compile(r'<main class="sa-report">(.*)</main>', re.S)
_IMAGE = re.compile(r'src="data:image/png;base64,[^"]+"')
_CELL_ID = re.compile(r"cell-id=[0-9a-f-]+")  # papermill gives each run's cells new ids


@pytest.fixture(scope="module")
def registry(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cohort = load_cohort(demo_dir)
    folder = tmp_path_factory.mktemp("registry")
    protocol = (demo_dir / "protocol.yaml").read_text()
    return write_duckdb(cohort.to_tables(), folder / "registry.duckdb", protocol_text=protocol)


def _body(path: Path) -> str:
    found = _MAIN.search(path.read_text(encoding="utf-8"))
    assert found is not None
    return _CELL_ID.sub("cell", found.group(1))


def test_a_clinic_notebook_holds_only_its_clinic(registry: Path, tmp_path: Path) -> None:
    shared = write_shared(compute_peer_results(registry), tmp_path)
    context = prepare_report(str(registry), clinic=QI_CLINIC, shared=str(shared))
    assert context.cohort.clinics == [QI_CLINIC]
    assert context.history.clinics == [QI_CLINIC]
    # ... while the comparisons cover every clinic.
    assert context.peers.n_patients == load_cohort(registry, tables=()).n_patients
    assert set(context.peers.adherence.table["clinic_id"]) == set(
        load_cohort(registry, tables=()).clinics
    )


def test_the_report_from_duckdb_equals_the_report_from_csv(
    registry: Path, demo_dir: Path, rendered_reports, tmp_path: Path
) -> None:
    from_db = render_report("qi", data=registry, clinic=QI_CLINIC, out_dir=tmp_path)
    from_csv = rendered_reports["qi"]
    # The data-quality section names the data read.
    db_body = _body(from_db.html).replace(str(registry), "DATA")
    csv_body = _body(from_csv.html).replace(str(demo_dir), "DATA")
    # Figures are compared by count (PNG bytes may differ with the renderer's state).
    assert len(_IMAGE.findall(db_body)) == len(_IMAGE.findall(csv_body)) > 0
    assert _IMAGE.sub("IMG", db_body) == _IMAGE.sub("IMG", csv_body)
