"""The one shape every analysis result takes.

Each analysis returns a small frozen dataclass derived from
:class:`AnalysisResult`: ``to_frame()`` gives a tidy DataFrame (one row per
term, group or time point, with the shared column vocabulary ``term``,
``estimate``, ``std_error``, ``ci_lower``, ``ci_upper``, ``p_value``, ``n``),
``summary()`` and ``_repr_html_()`` are for people, ``warnings`` holds
plain-language notes on fit problems, and ``model`` keeps the underlying
statsmodels or lifelines object for experts.  Numbers are rounded only when
displayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class AnalysisResult:
    """Base result: a tidy table, plain-language warnings and the fitted model.

    Examples
    --------
    >>> import pandas as pd
    >>> r = AnalysisResult(table=pd.DataFrame({"term": ["a"], "estimate": [1.0]}))
    >>> r.to_frame()
      term  estimate
    0    a       1.0
    """

    table: pd.DataFrame
    warnings: tuple[str, ...] = ()
    model: Any = field(default=None, repr=False, compare=False)
    title: str = "Result"

    def to_frame(self) -> pd.DataFrame:
        """Return a copy of the tidy result table."""
        return self.table.copy()

    def summary(self) -> str:
        """Plain-text summary: title, table (rounded for display) and warnings."""
        lines = [self.title, self.table.round(4).to_string(index=False)]
        if self.warnings:
            lines.append("Warnings:")
            lines.extend(f"  - {w}" for w in self.warnings)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        html = f"<h4>{self.title}</h4>" + self.table.round(4).to_html(index=False)
        if self.warnings:
            items = "".join(f"<li>{w}</li>" for w in self.warnings)
            html += f"<p><b>Warnings</b></p><ul>{items}</ul>"
        return html

    def __str__(self) -> str:
        return self.summary()
