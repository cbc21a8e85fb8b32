"""What a stored table looks like from outside, to reuse work done on it in this process.

A registry is read clinic by clinic, and every read would hash the same
files and run the same registry-wide checks.  Both depend only on the
files' contents, so they are remembered under the files' state: path, size
and modification time of each file (a folder: of every file in it).  A file
written again has a new state and is looked at afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
FileState = tuple[tuple[str, int, int], ...]

_REMEMBERED: dict[tuple[str, FileState], object] = {}


def file_state(path: Path) -> FileState:
    """Path, size and modification time of a file, or of every file in a folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = file.write_text("a\\n1\\n")
    >>> file_state(file)[0][1]
    4
    """
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    # DuckDB keeps recent changes in a write-ahead log beside the file until it
    # checkpoints; the file alone may look unchanged.
    wal = path.with_name(path.name + ".wal")
    if path.is_file() and wal.is_file():
        files.append(wal)
    states = []
    for file in files:
        stat = file.stat()
        states.append((str(file.resolve()), stat.st_size, stat.st_mtime_ns))
    return tuple(states)


def remembered(kind: str, state: FileState, compute: Callable[[], T]) -> T:
    """``compute()``, done once per process for this kind of work and file state."""
    key = (kind, state)
    if key not in _REMEMBERED:
        _REMEMBERED[key] = compute()
    return _REMEMBERED[key]  # type: ignore[return-value]
