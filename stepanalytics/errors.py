"""The project's exceptions and the problem record every check reports.

A :class:`Problem` describes one kind of defect in one column of one table,
with the rows it affects, a few example values and the fix.  Validators
collect every problem before failing and raise a single :class:`CohortError`
that lists them all, so a user fixes a file once, not once per error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MAX_EXAMPLES = 5
MAX_ROWS_SHOWN = 10


class StepAnalyticsError(Exception):
    """Base class of every error stepanalytics raises on purpose."""


class UsageError(StepAnalyticsError):
    """A function or command was called with options that do not fit together."""


class AnalysisError(StepAnalyticsError):
    """An analysis cannot give a sound answer on this data (too few events, ...)."""


@dataclass(frozen=True)
class Problem:
    """One defect found in the input, in words a data manager can act on.

    Parameters
    ----------
    table : str
        Table name as in the data contract (``patients``, ``phases``, ...).
    column : str or None
        Column concerned, or None for a table-level problem.
    message : str
        What is wrong.
    fix : str
        What to do about it.
    rows : tuple of int
        1-based data row numbers (row 1 is the first row under the header).
    examples : tuple of str
        A few offending values, already made safe to print.
    """

    table: str
    column: str | None
    message: str
    fix: str
    rows: tuple[int, ...] = ()
    examples: tuple[str, ...] = ()
    n_rows: int = 0

    @classmethod
    def from_mask(
        cls,
        table: str,
        column: str | None,
        frame: pd.DataFrame,
        mask: pd.Series | np.ndarray,
        message: str,
        fix: str,
        *,
        values: pd.Series | None = None,
        redact: bool = False,
    ) -> Problem | None:
        """Build a problem from a boolean row mask, or None when no row is flagged.

        Row numbers come from the frame's index, which loaders keep as the
        0-based position in the original file.  ``redact=True`` hides the
        example values (used for values that look like identifiers).
        """
        mask_array = np.asarray(mask, dtype=bool)
        if not mask_array.any():
            return None
        positions = np.flatnonzero(mask_array)
        index = frame.index.to_numpy()[positions]
        rows = tuple(int(i) + 1 for i in index[:MAX_ROWS_SHOWN])
        examples: tuple[str, ...] = ()
        if values is None and column is not None and column in frame.columns:
            values = frame[column]
        if values is not None and not redact:
            picked = pd.Series(np.asarray(values)[positions]).drop_duplicates().head(MAX_EXAMPLES)
            examples = tuple(_show(v) for v in picked)
        elif redact:
            examples = ("<hidden: looks like personal data>",)
        return cls(table, column, message, fix, rows, examples, int(positions.size))

    def render(self) -> str:
        """Render as a few indented lines of plain text."""
        where = self.table if self.column is None else f"{self.table}.{self.column}"
        lines = [f"- {where}: {self.message}"]
        if self.n_rows:
            shown = ", ".join(str(r) for r in self.rows)
            more = (
                f" and {self.n_rows - len(self.rows)} more" if self.n_rows > len(self.rows) else ""
            )
            lines.append(f"    rows: {shown}{more} ({self.n_rows} in all)")
        if self.examples:
            lines.append(f"    examples: {', '.join(self.examples)}")
        lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)


def merge_problems(problems: Iterable[Problem]) -> list[Problem]:
    """One problem per (table, column, message, fix), from problems found in parts.

    A cohort validated a part at a time (clinic by clinic) finds the same
    kind of defect in several parts, each with its own rows; a rule checked
    over the whole registry finds the same rows in every part.  Identical
    records are kept once; the others are joined: rows and examples pooled
    (the first ones shown), row counts added.

    Examples
    --------
    >>> a = Problem("assessments", "score", "out of range", "fix it", (3,), ("'400'",), 1)
    >>> b = Problem("assessments", "score", "out of range", "fix it", (90,), ("'-1'",), 1)
    >>> merged = merge_problems([a, b, a])
    >>> merged[0].rows, merged[0].n_rows
    ((3, 90), 2)
    """
    groups: dict[tuple[str, str | None, str, str], list[Problem]] = {}
    for problem in dict.fromkeys(problems):  # identical records once, in order
        key = (problem.table, problem.column, problem.message, problem.fix)
        groups.setdefault(key, []).append(problem)
    merged = []
    for (table, column, message, fix), found in groups.items():
        rows = sorted({r for p in found for r in p.rows})[:MAX_ROWS_SHOWN]
        examples = list(dict.fromkeys(e for p in found for e in p.examples))[:MAX_EXAMPLES]
        total = sum(p.n_rows for p in found)
        merged.append(Problem(table, column, message, fix, tuple(rows), tuple(examples), total))
    return merged


def _show(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "<empty>"
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


@dataclass
class CohortError(StepAnalyticsError):
    """Input data that breaks the data contract; carries every problem found.

    Examples
    --------
    >>> err = CohortError([Problem("patients", "sex", "unknown value", "use one of ...")])
    >>> print(err)  # doctest: +ELLIPSIS
    The cohort was refused: 1 problem found.
    - patients.sex: unknown value
    ...
    """

    problems: list[Problem] = field(default_factory=list)
    source: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.render())

    def render(self) -> str:
        where = f" ({self.source})" if self.source else ""
        n = len(self.problems)
        head = f"The cohort was refused{where}: {n} problem{'s' if n != 1 else ''} found."
        body = [p.render() for p in self.problems]
        tail = "Nothing was loaded. Fix the rows listed above and run the command again."
        return "\n".join([head, *body, tail])

    def __str__(self) -> str:
        return self.render()


def raise_if_problems(problems: Iterable[Problem | None], source: str | None = None) -> None:
    """Raise a :class:`CohortError` when the iterable holds any problem."""
    found = [p for p in problems if p is not None]
    if found:
        raise CohortError(found, source=source)


def only_problems(problems: Sequence[Problem | None]) -> list[Problem]:
    """Drop the ``None`` placeholders that :meth:`Problem.from_mask` returns."""
    return [p for p in problems if p is not None]
