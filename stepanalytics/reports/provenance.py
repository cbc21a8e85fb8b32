"""Provenance of a rendered report: what went in, with what, and when.

Every report carries a provenance block so that a reader can tell whether two
reports came from the same data and the same code: the parameters of the
run, a SHA-256 fingerprint of every input file, the notebook it was rendered
from, the package and library versions, the Python version and platform, and
the time it ran (UTC).
"""

from __future__ import annotations

import hashlib
import html
import json
import platform
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from stepanalytics.errors import UsageError

#: Libraries whose versions can change a report's numbers or figures.
TRACKED_LIBRARIES = (
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "lifelines",
    "matplotlib",
    "papermill",
    "nbconvert",
)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileFingerprint:
    """SHA-256 digest and size of one input file, named relative to the data root."""

    name: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class DataFingerprint:
    """Fingerprint of a cohort on disk: one digest per file and one for the whole.

    The overall digest hashes the sorted list of ``name``, ``sha256`` pairs, so
    it changes when any file is added, removed, renamed or edited, and does
    not depend on the order the file system lists them in.
    """

    path: str
    sha256: str
    files: tuple[FileFingerprint, ...]

    @property
    def short(self) -> str:
        """First 12 hex digits, enough to tell runs apart in a title or file name."""
        return self.sha256[:12]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_data(path: str | Path) -> DataFingerprint:
    """Fingerprint a cohort folder (every non-hidden file in it) or a single file.

    Parameters
    ----------
    path : str or Path
        A cohort folder (CSV / Parquet tables and ``protocol.yaml``) or one
        file such as a DuckDB database.

    Returns
    -------
    DataFingerprint

    Raises
    ------
    UsageError
        When the path does not exist or the folder holds no file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "patients.csv").write_text("patient_id\\n")
    >>> fingerprint_data(folder).files[0].name
    'patients.csv'

    Notes
    -----
    Hidden files and folders (name starting with a dot) are skipped: they are
    editor or version-control leftovers, not data.
    """
    root = Path(path)
    if root.is_file():
        files = [root]
        base = root.parent
    elif root.is_dir():
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        base = root
    else:
        raise UsageError(f"The data path {str(root)!r} does not exist. Give a cohort folder.")
    if not files:
        raise UsageError(f"The data folder {str(root)!r} holds no file to report on.")
    prints = tuple(
        FileFingerprint(p.relative_to(base).as_posix(), sha256_file(p), p.stat().st_size)
        for p in files
    )
    overall = hashlib.sha256()
    for item in prints:
        overall.update(f"{item.name}\0{item.sha256}\n".encode())
    return DataFingerprint(str(root.resolve()), overall.hexdigest(), prints)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Provenance:
    """Everything needed to tell where a report came from.

    Build it with :func:`collect_provenance`; show it with :meth:`to_html`.
    """

    report: str
    notebook: str
    notebook_sha256: str
    parameters: Mapping[str, Any]
    data: DataFingerprint
    package_version: str
    python: str
    platform: str
    libraries: Mapping[str, str]
    timestamp_utc: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (JSON-ready)."""
        return asdict(self)

    def to_json(self) -> str:
        """Pretty JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    def to_html(self) -> str:
        """A self-contained ``<section>`` for the end of a report.

        It holds a readable table and the same facts as JSON in a
        ``<script type="application/json" id="provenance">`` element, so
        tools can read them back without parsing the table.
        """
        esc = html.escape
        rows = [
            ("Report", self.report),
            ("Rendered (UTC)", self.timestamp_utc),
            ("Input data", self.data.path),
            ("Data fingerprint (SHA-256)", self.data.sha256),
            ("Notebook", f"{self.notebook} (SHA-256 {self.notebook_sha256[:12]})"),
            ("stepanalytics", self.package_version),
            ("Python", self.python),
            ("Platform", self.platform),
            ("Libraries", ", ".join(f"{k} {v}" for k, v in self.libraries.items())),
        ]
        rows += [(str(k), str(v)) for k, v in self.extra.items()]
        table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in rows)
        params = "".join(
            f"<tr><th>{esc(str(k))}</th><td><code>{esc(repr(v))}</code></td></tr>"
            for k, v in self.parameters.items()
        )
        files = "".join(
            f"<tr><td>{esc(f.name)}</td><td><code>{f.sha256}</code></td>"
            f"<td>{f.size_bytes:,}</td></tr>"
            for f in self.data.files
        )
        payload = self.to_json().replace("</", "<\\/")
        return (
            '<section class="provenance" id="provenance-block">'
            "<h2>Provenance</h2>"
            "<p>This block identifies exactly what produced this report. Two reports with "
            "the same data fingerprint and parameters were made from the same input.</p>"
            f'<table class="provenance-table">{table}</table>'
            "<h3>Parameters</h3>"
            f'<table class="provenance-table">{params}</table>'
            "<h3>Input files</h3>"
            '<table class="provenance-table"><tr><th>file</th><th>SHA-256</th>'
            f"<th>bytes</th></tr>{files}</table>"
            f'<script type="application/json" id="provenance">{payload}</script>'
            "</section>"
        )


def collect_provenance(
    *,
    report: str,
    notebook: Path,
    parameters: Mapping[str, Any],
    data: DataFingerprint,
    extra: Mapping[str, Any] | None = None,
) -> Provenance:
    """Gather the provenance of a run that is about to happen.

    Parameters
    ----------
    report : str
        Report title or kind.
    notebook : Path
        The notebook template being executed.
    parameters : mapping
        The parameters papermill injects.
    data : DataFingerprint
        From :func:`fingerprint_data`, computed once per batch.
    extra : mapping, optional
        More rows for the table (e.g. the batch it belongs to).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "patients.csv").write_text("patient_id\\n")
    >>> nb = folder / "report.ipynb"
    >>> _ = nb.write_text("{}")
    >>> p = collect_provenance(report="qi", notebook=nb, parameters={"clinic": "C01"},
    ...                        data=fingerprint_data(folder))
    >>> p.parameters["clinic"]
    'C01'
    """
    from stepanalytics import __version__

    return Provenance(
        report=report,
        notebook=notebook.name,
        notebook_sha256=sha256_file(notebook),
        parameters=dict(parameters),
        data=data,
        package_version=__version__,
        python=sys.version.split()[0],
        platform=platform.platform(),
        libraries={name: _version(name) for name in TRACKED_LIBRARIES},
        timestamp_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        extra=dict(extra or {}),
    )
