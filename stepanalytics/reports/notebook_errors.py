"""Say in words which notebook cell went wrong and why.

papermill inserts a cell after ``parameters`` (tagged
``injected-parameters``) and, on failure, marker cells at the top; cell
numbers are therefore counted in the notebook as stored, which is what a
person opening ``notebooks/qi_report.ipynb`` sees.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

_PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}
_MAX_VALUE_LINES = 25


def _is_papermill_cell(cell: nbformat.NotebookNode) -> bool:
    return bool(_PAPERMILL_TAGS & set(cell.get("metadata", {}).get("tags", [])))


def _first_code_line(source: str) -> str:
    for line in source.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped if len(stripped) <= 90 else stripped[:87] + "..."
    return "(empty cell)"


def failed_cell(nb: nbformat.NotebookNode) -> tuple[int, str] | None:
    """1-based number (as stored) and first code line of the cell that failed.

    A cell counts as failed when papermill marked it (exception or status
    ``failed``), when it was still ``running`` (a dead kernel), or when it
    holds an error output (a timeout interrupts the cell).
    """
    number = 0
    for cell in nb.cells:
        if _is_papermill_cell(cell):
            continue
        number += 1
        meta = cell.get("metadata", {}).get("papermill", {})
        errored = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        if errored or meta.get("exception") or meta.get("status") in {"failed", "running"}:
            return number, _first_code_line(cell.get("source", ""))
    return None


def describe_failure(
    title: str, template: Path, executed: Path | None, ename: str, evalue: str
) -> str:
    """The message a user reads when a notebook failed.

    Examples
    --------
    >>> print(describe_failure("QI report", Path("qi.ipynb"), None, "ValueError", "bad"))
    The QI report failed in qi.ipynb: ValueError: bad
    No report was written; an earlier report of the same name, if any, is unchanged.
    """
    where = f"in {template.name}"
    kept = ""
    if executed is not None and executed.exists():
        located = failed_cell(nbformat.read(str(executed), as_version=4))
        if located is not None:
            where = f"in cell {located[0]} of {template.name} (`{located[1]}`)"
        kept = (
            f"\nThe executed notebook, with the full traceback, is kept at {executed}. It is "
            "not protected (it may show patient ids and small counts): do not share it, and "
            "delete it once the problem is fixed."
        )
    lines = str(evalue).strip().splitlines()
    if len(lines) > _MAX_VALUE_LINES:
        lines = [*lines[:_MAX_VALUE_LINES], f"... ({len(lines) - _MAX_VALUE_LINES} more lines)"]
    value = "\n".join(lines)
    return (
        f"The {title} failed {where}: {ename}: {value}"
        "\nNo report was written; an earlier report of the same name, if any, is unchanged."
        f"{kept}"
    )


def locate_identifiers(nb: nbformat.NotebookNode, identifiers: set[str]) -> str:
    """Name the cells whose outputs contain any of the identifiers."""
    from stepanalytics.reports.html import find_identifiers

    cells = []
    number = 0
    for cell in nb.cells:
        if _is_papermill_cell(cell):
            continue
        number += 1
        if cell.cell_type != "code":
            continue
        text = json.dumps(cell.get("outputs", []))
        if find_identifiers(text, identifiers):
            line = _first_code_line(cell.source)
            for found in find_identifiers(line, identifiers):  # never repeat an id
                line = line.replace(found, "<patient id>")
            cells.append(f"cell {number} `{line}`")
    return "in " + ", ".join(cells) if cells else "location not found"
