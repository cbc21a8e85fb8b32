"""The report notebooks are stored without outputs and stay thin."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"qi_report.ipynb", "clinic_benchmark.ipynb", "cohort_explorer.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {number} has outputs: clear them"
            assert cell.execution_count is None, f"{path.name} cell {number} was executed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_holds_literals_only(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    for statement in ast.parse(tagged[0].source).body:
        assert isinstance(statement, ast.Assign), ast.dump(statement)
        ast.literal_eval(statement.value)  # raises when the value is not a literal


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_cell_calls_one_package_function(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        tree = ast.parse(cell.source)
        assert len(tree.body) == 1, f"{path.name}: one statement per cell:\n{cell.source}"
        statement = tree.body[0]
        if isinstance(statement, ast.ImportFrom):
            assert (statement.module or "").startswith("stepanalytics")
            continue
        calls = [n for n in ast.walk(statement) if isinstance(n, ast.Call)]
        assert len(calls) == 1, f"{path.name}: one function call per cell:\n{cell.source}"
        function = calls[0].func
        assert isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name)
        assert function.value.id == "report", "cells call stepanalytics.reports.sections"
