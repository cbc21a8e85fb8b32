"""The import report: what happened to every input row, field and value.

One tidy table, written as ``import_report.csv`` next to the cohort:

========  ==============================================================
source    the input file (export, dictionary, resources file, ...)
row       1-based data row of the export (or line / bundle entry of a
          FHIR file); empty for lines about a whole field
record    the patient id the row belongs to, as written to the cohort
          (pseudonymised when asked); empty when the row has none
part      ``row`` for the verdict on the whole row; ``form phq9``,
          ``phases``, ``events``, ``patient`` for what a row gave;
          ``field dob`` or ``value phq9_3`` for field-level lines
outcome   ``imported``, ``dropped``, ``recoded`` or ``note``
reason    why, in words
n         how many rows / cells / values the line stands for
========  ==============================================================

Every input row has exactly one ``part == "row"`` line saying whether it
gave anything to the cohort (``imported``) or nothing (``dropped``, and
why); the other lines say what it gave, and which cells were recoded.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stepanalytics.results import AnalysisResult

REPORT_COLUMNS = ("source", "row", "record", "part", "outcome", "reason", "n")
OUTCOMES = ("imported", "dropped", "recoded", "note")


class ImportReport:
    """Collects report lines while an importer runs.

    Examples
    --------
    >>> import numpy as np
    >>> r = ImportReport("export.csv")
    >>> r.add_rows(np.array([1, 2]), np.array(["a", "b"], dtype=object), "row", "imported", "ok")
    >>> r.add_note("field dob", "dropped", "identifier in the data dictionary", n=2)
    >>> r.to_frame()[["row", "part", "outcome"]].values.tolist()
    [[1, 'row', 'imported'], [2, 'row', 'imported'], [<NA>, 'field dob', 'dropped']]
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._frames: list[pd.DataFrame] = []

    def add_rows(
        self,
        rows: np.ndarray,
        records: np.ndarray | None,
        part: str,
        outcome: str | np.ndarray,
        reason: str | np.ndarray,
        *,
        source: str | None = None,
    ) -> None:
        """Add one line per row (vectorised: scalars are broadcast)."""
        if outcome is not None and isinstance(outcome, str) and outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        n = len(rows)
        if n == 0:
            return
        frame = pd.DataFrame(
            {
                "source": source or self.source,
                "row": pd.array(np.asarray(rows, dtype=np.int64), dtype="Int64"),
                "record": records if records is not None else np.full(n, None, dtype=object),
                "part": part,
                "outcome": outcome,
                "reason": reason,
                "n": np.ones(n, dtype=np.int64),
            }
        )
        self._frames.append(frame)

    def add_note(
        self,
        part: str,
        outcome: str,
        reason: str,
        *,
        n: int = 1,
        source: str | None = None,
        record: str | None = None,
        row: int | None = None,
    ) -> None:
        """Add one line about a field, a value or the whole file."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        self._frames.append(
            pd.DataFrame(
                {
                    "source": [source or self.source],
                    "row": pd.array([row], dtype="Int64"),
                    "record": [record],
                    "part": [part],
                    "outcome": [outcome],
                    "reason": [reason],
                    "n": [int(n)],
                }
            )
        )

    def extend(self, frame: pd.DataFrame) -> None:
        """Add lines already shaped like the report."""
        if len(frame):
            self._frames.append(frame.loc[:, list(REPORT_COLUMNS)])

    def to_frame(self) -> pd.DataFrame:
        """All lines, row lines first in row order, then field-level lines."""
        if not self._frames:
            return empty_report()
        frames = [f for f in self._frames if len(f)]
        out = pd.concat(frames, ignore_index=True) if frames else empty_report()
        out["row"] = out["row"].astype("Int64")
        out["n"] = out["n"].astype(np.int64)
        is_row_line = (out["part"] == "row").to_numpy()
        order = np.lexsort(
            (
                ~is_row_line,
                out["row"].fillna(np.iinfo(np.int64).max).to_numpy(dtype=np.int64),
                out["source"].astype(str).to_numpy(),
            )
        )
        return out.iloc[order].reset_index(drop=True)


def empty_report() -> pd.DataFrame:
    """An empty report with the right columns and types."""
    return pd.DataFrame(
        {
            "source": pd.Series(dtype=object),
            "row": pd.Series(dtype="Int64"),
            "record": pd.Series(dtype=object),
            "part": pd.Series(dtype=object),
            "outcome": pd.Series(dtype=object),
            "reason": pd.Series(dtype=object),
            "n": pd.Series(dtype=np.int64),
        }
    )


@dataclass(frozen=True)
class ImportResult(AnalysisResult):
    """What an importer produced: the cohort tables and the import report.

    Attributes
    ----------
    table : DataFrame
        The import report (see :mod:`stepanalytics.io.import_report`).
    tables : dict of str to DataFrame
        Contract tables (``patients``, ``phases``, ``assessments``, ``items``,
        ``events``) ready for :func:`stepanalytics.io.tables.write_tables`.
    n_input_rows : int
        Rows (or resources) read from the main input.
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict, compare=False)
    n_input_rows: int = 0
    title: str = "Import"

    def row_verdicts(self) -> pd.DataFrame:
        """The one verdict line per input row (``part == "row"``)."""
        report = self.table
        return report[report["part"] == "row"].reset_index(drop=True)

    def summary(self) -> str:
        """Counts a person can check: rows in, rows imported, rows dropped and why."""
        verdicts = self.row_verdicts()
        imported = int((verdicts["outcome"] == "imported").sum())
        lines = [
            self.title,
            f"  input rows: {self.n_input_rows}; imported: {imported}; "
            f"dropped: {len(verdicts) - imported}",
        ]
        dropped = verdicts[verdicts["outcome"] == "dropped"]
        for reason, count in dropped["reason"].value_counts().sort_index().items():
            lines.append(f"    dropped {count:>8} rows: {reason}")
        others = self.table[(self.table["part"] != "row") & (self.table["outcome"] != "imported")]
        if len(others):
            grouped = others.groupby(["part", "outcome", "reason"], sort=True)["n"].sum()
            lines.append("  fields and values:")
            for key, count in grouped.items():
                part, outcome, reason = (str(k) for k in key)  # type: ignore[union-attr]
                lines.append(f"    {outcome:<8} {part}: {reason} ({count})")
        lines.append("  cohort tables:")
        for name, frame in self.tables.items():
            lines.append(f"    {name:<12} {len(frame):>9} rows")
        if self.warnings:
            lines.append("  warnings:")
            lines.extend(f"    - {w}" for w in self.warnings)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        # The report can have a line per input row (millions): show the counts, not the table.
        return f"<pre>{html.escape(self.summary())}</pre>"
