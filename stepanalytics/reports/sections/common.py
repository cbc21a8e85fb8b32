"""Helpers every section uses: protected tables, notes, optional analyses.

Committee output goes through :mod:`stepanalytics.qi.suppression`: counts
from 1 to the threshold are hidden, together with the cells that would let
them be worked out, and values derived from a hidden count are hidden with
it.  Tables are refused outright when they carry a patient identifier.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import pandas as pd

from stepanalytics.qi.suppression import SUPPRESSED_MARK, protect_frame, suppress_table
from stepanalytics.reports.display import Section, note_html, table_html

#: A column protect_frame may use as the whole of every patient count (not shown).
ENROLLED = "_patients_in_report"


def optional_module(name: str) -> ModuleType | None:
    """Import an analysis module that may not exist in this build, or None."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def unavailable(section: Section, what: str, reason: str) -> Section:
    """Mark a part of a report as not available, saying why, instead of failing."""
    section.add_note(f"{what} is not available in this report: {reason}", kind="unavailable")
    return section


def protected_table_html(
    frame: pd.DataFrame,
    *,
    counts: Sequence[str],
    derived: Mapping[str, Sequence[str]] | None = None,
    parts: Sequence[tuple[str, str]] = (),
    totals: bool = True,
    margins: Sequence[Sequence[str]] | None = None,
    group_values: Mapping[str, Sequence[str]] | None = None,
    threshold: int | None,
    caption: str | None = None,
    digits: int = 1,
    enrolled: int | None = None,
) -> str:
    """A table for a committee: small cells hidden, then rendered.

    Parameters
    ----------
    frame : DataFrame
        One row per unit (clinic, phase, category); no identifier columns.
    counts, derived, parts, totals, margins, group_values
        See :func:`stepanalytics.qi.suppression.protect_frame`: ``derived`` maps
        each derived column to the count columns it is computed from;
        ``totals=False`` when the rows are not parts of one whole (e.g.
        different measures); ``margins=[("phase",)]`` for a clinic x phase
        table whose per-phase totals are published; ``group_values`` for
        columns showing a group's total (a pooled rate).
    threshold : int or None
        Counts from 1 to ``threshold`` are hidden; None shows the table in full
        (research reports).
    caption : str, optional
        Caption under the table.
    digits : int
        Decimals shown for non-count numbers.
    enrolled : int, optional
        The number of patients in the report, published elsewhere; ``parts``
        may name :data:`ENROLLED` as a whole, so that a count of patients is
        also protected as a part of them (the column is not shown).
    """
    if threshold is None:
        return table_html(_rounded(frame, digits), caption=caption)
    if enrolled is not None:
        frame = frame.assign(**{ENROLLED: enrolled})
    protected = protect_frame(
        frame,
        counts=counts,
        derived=derived,
        parts=parts,
        totals=totals,
        margins=margins,
        group_values=group_values,
        threshold=threshold,
    )
    shown = (
        _rounded(protected.table, digits).astype(object).where(~protected.hidden, SUPPRESSED_MARK)
    )
    if enrolled is not None:
        shown = shown.drop(columns=ENROLLED)
    html = table_html(shown, caption=caption)
    for note in protected.notes:
        html += note_html(note)
    return html


def protected_crosstab_html(
    counts: pd.DataFrame,
    *,
    threshold: int | None,
    caption: str | None = None,
    row_totals: bool = True,
    column_totals: bool = True,
    index_name: str = "",
    zeros_beside_hidden: str | None = None,
) -> str:
    """A two-way count table with margins, small cells and their complements hidden.

    With ``threshold=None`` (research reports) nothing is hidden.
    ``zeros_beside_hidden="rows"`` (or ``"columns"``) also hides the zeros of
    every row (column) that has a hidden cell: a shown 0 beside hidden cells
    narrows down where the hidden patients are (see
    :func:`~stepanalytics.reports.sections.descriptors.hide_zeros_beside_hidden`).
    """
    from stepanalytics.reports.sections.descriptors import hide_zeros_beside_hidden

    if threshold is None:
        shown = counts_with_margins(counts, row_totals=row_totals, column_totals=column_totals)
        shown.index.name = index_name or counts.index.name or ""
        return table_html(shown.reset_index(), caption=caption)
    result = suppress_table(
        counts, threshold=threshold, row_totals=row_totals, column_totals=column_totals
    )
    hidden = result.hidden
    if zeros_beside_hidden is not None:
        interior = [str(r) for r in counts.index]
        columns = [str(c) for c in counts.columns]
        values = result.table.loc[interior, columns]
        hidden = hidden.copy()
        hidden.loc[interior, columns] = hide_zeros_beside_hidden(
            values, hidden.loc[interior, columns], axis=zeros_beside_hidden
        )
    shown = result.table.astype(object).where(~hidden, SUPPRESSED_MARK).astype(str)
    shown.index.name = index_name or counts.index.name or ""
    html = table_html(shown.reset_index(), caption=caption)
    if bool(hidden.to_numpy().any()):
        html += note_html(
            f"{SUPPRESSED_MARK} hidden to protect privacy: counts from 1 to {threshold}, and "
            "cells that would let a hidden count be worked out from the totals, are not shown."
        )
    return html


def counts_with_margins(
    counts: pd.DataFrame, *, row_totals: bool = True, column_totals: bool = True
) -> pd.DataFrame:
    """A count table with ``total`` row and column added (nothing hidden)."""
    out = counts.copy()
    out.index = out.index.map(str)
    out.columns = out.columns.map(str)
    if row_totals:
        out["total"] = counts.sum(axis=1).to_numpy()
    if column_totals:
        out.loc["total"] = out.sum(axis=0)
    return out


def _rounded(frame: pd.DataFrame, digits: int) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].round(digits)
    return out


def optional_function(module: str, *names: str) -> Any:
    """The first of ``names`` found in ``module``, or None when none exists yet."""
    found = optional_module(module)
    if found is None:
        return None
    for name in names:
        if callable(function := getattr(found, name, None)):
            return function
    return None


_NOUNS = r"(?:patients?|people|persons?|stays?|events?|scores?|questionnaires?|assessments?)"
_PART_OF_WHOLE = re.compile(rf"\b(\d[\d,]*) (?:of|out of) (\d[\d,]*) ({_NOUNS})\b")
_COUNT = re.compile(rf"\b(\d[\d,]*) ({_NOUNS})\b")


def protect_text(text: str, *, threshold: int | None) -> str:
    """Hide small counts that analyses' plain-language notes mention.

    Notes such as "3 patients have no follow-up" would publish a small cell
    in prose.  A count of patients (stays, events, ...) from 1 to the
    threshold becomes ``a few (at most <threshold>)``; in "A of B patients"
    both numbers are hidden when A or B - A is small, since either gives
    the other away.

    Examples
    --------
    >>> protect_text("3 patients have no follow-up.", threshold=10)
    'a few (at most 10) patients have no follow-up.'
    >>> protect_text("45 of 47 patients lack a covariate.", threshold=10)
    'most patients lack a covariate.'
    >>> protect_text("120 patients were scored.", threshold=10)
    '120 patients were scored.'
    """

    if threshold is None:
        return text

    def small(value: int) -> bool:
        return 1 <= value <= threshold

    def part_of_whole(match: re.Match[str]) -> str:
        part, whole = (int(g.replace(",", "")) for g in match.group(1, 2))
        if small(part):
            return f"a few (at most {threshold}) {match.group(3)}"
        if small(whole - part):
            return f"most {match.group(3)}"
        return match.group(0)

    def count(match: re.Match[str]) -> str:
        value = int(match.group(1).replace(",", ""))
        return f"a few (at most {threshold}) {match.group(2)}" if small(value) else match.group(0)

    return _COUNT.sub(count, _PART_OF_WHOLE.sub(part_of_whole, text))


def phase_labels(phases: pd.Series, names: Mapping[int, str]) -> pd.Series:
    """Phase numbers as ``1 foundation``: read by people, never mistaken for counts.

    Examples
    --------
    >>> phase_labels(pd.Series([1, 2]), {1: "foundation", 2: "building"}).tolist()
    ['1 foundation', '2 building']
    """
    return phases.map(lambda p: f"{int(p)} {names.get(int(p), '')}".strip() if pd.notna(p) else "")
