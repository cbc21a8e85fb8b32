"""Display objects the report sections return: headings, text, tables, figures.

A section function builds a :class:`Section`; the notebook cell's last
expression displays it through ``_repr_html_``.  Figures are drawn into PNG
(or SVG) bytes here and embedded as ``data:`` URIs, then closed, so a report
never refers to a file and the inline backend never shows a figure twice.
Every figure carries a plain-language caption saying how to read it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

FIGURE_DPI = 110
NoteKind = Literal["note", "unavailable", "warning"]


def escape(text: object) -> str:
    """HTML-escape any value's text."""
    return html.escape(str(text))


def figure_html(
    figure: Figure | Axes,
    caption: str,
    *,
    fmt: Literal["png", "svg"] = "png",
    alt: str | None = None,
) -> str:
    """Embed a matplotlib figure with its caption and close the figure.

    Parameters
    ----------
    figure : Figure or Axes
        What a plot function returned (plots return their Axes).
    caption : str
        How to read the figure, in plain language.
    fmt : {"png", "svg"}
        PNG is compact for dense plots; SVG stays sharp when printed.
    alt : str, optional
        Text alternative; defaults to the caption.

    Returns
    -------
    str
        A ``<figure>`` element whose image is a ``data:`` URI.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([0, 1], [0, 1])
    >>> figure_html(ax, "A rising line.").count('src="data:image/png;base64,')
    1
    """
    fig = figure.figure if isinstance(figure, Axes) else figure
    if not isinstance(fig, Figure):  # a SubFigure: draw its parent figure
        fig = fig.get_figure(root=True)  # type: ignore[union-attr]
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(fig)
    payload = base64.b64encode(buffer.getvalue()).decode("ascii")
    mime = "image/png" if fmt == "png" else "image/svg+xml"
    alt_text = escape(alt if alt is not None else caption)
    return (
        f'<figure><img alt="{alt_text}" src="data:{mime};base64,{payload}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def table_html(frame: pd.DataFrame, *, caption: str | None = None, digits: int = 2) -> str:
    """Render a small table for people (rounded for display only).

    Examples
    --------
    >>> import pandas as pd
    >>> "<table" in table_html(pd.DataFrame({"phase": [1], "patients": [12]}))
    True
    """
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].round(digits)
    body = shown.to_html(index=False, na_rep="–", classes="sa-table", border=0, escape=True)
    if caption:
        return f"<figure>{body}<figcaption>{escape(caption)}</figcaption></figure>"
    return body


def note_html(text: str, *, kind: NoteKind = "note") -> str:
    """A highlighted paragraph; ``unavailable`` marks analyses not available yet."""
    return f'<div class="sa-note sa-{kind}">{escape(text)}</div>'


def keyfacts_html(facts: Iterable[tuple[str, object]]) -> str:
    """A row of headline numbers, each with its label."""
    items = "".join(f"<div><b>{escape(value)}</b>{escape(label)}</div>" for label, value in facts)
    return f'<div class="sa-keyfacts">{items}</div>'


@dataclass
class Section:
    """One part of a report: a heading and a list of HTML blocks.

    Parameters
    ----------
    title : str
        The section heading.
    level : int
        1 for the report title, 2 for sections.

    Examples
    --------
    >>> s = Section("Completeness")
    >>> s.add_text("Most patients answered at baseline.")
    >>> "<h2>Completeness</h2>" in s._repr_html_()
    True
    """

    title: str
    level: int = 2
    blocks: list[str] = field(default_factory=list)
    subtitle: str | None = None

    def add_text(self, text: str) -> None:
        """Add a paragraph of plain text."""
        self.blocks.append(f"<p>{escape(text)}</p>")

    def add_heading(self, text: str) -> None:
        """Add a sub-heading."""
        self.blocks.append(f"<h{self.level + 1}>{escape(text)}</h{self.level + 1}>")

    def add_html(self, fragment: str) -> None:
        """Add an HTML fragment built by one of this module's helpers."""
        self.blocks.append(fragment)

    def add_figure(self, figure: Figure | Axes, caption: str, **kwargs: object) -> None:
        """Add a figure with its caption (see :func:`figure_html`)."""
        self.blocks.append(figure_html(figure, caption, **kwargs))  # type: ignore[arg-type]

    def add_table(self, frame: pd.DataFrame, *, caption: str | None = None) -> None:
        """Add a table (see :func:`table_html`)."""
        self.blocks.append(table_html(frame, caption=caption))

    def add_note(self, text: str, *, kind: NoteKind = "note") -> None:
        """Add a highlighted note."""
        self.blocks.append(note_html(text, kind=kind))

    def _repr_html_(self) -> str:
        head = f"<h{self.level}>{escape(self.title)}</h{self.level}>"
        if self.subtitle:
            head += f'<p class="sa-subtitle">{escape(self.subtitle)}</p>'
        return f'<section class="sa-section">{head}{"".join(self.blocks)}</section>'

    def __repr__(self) -> str:
        return f"Section({self.title!r}, {len(self.blocks)} blocks)"
