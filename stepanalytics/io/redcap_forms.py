"""Form instances of a REDCap export: which rows hold a form, may it count, on what day.

The stated rules, applied to every form the mapping uses:

* a form is *present* on a row when one of its mapped cells is filled (a
  checkbox counts when a box is ticked) or when its status says
  Unverified / Complete.  REDCap writes status 0 and unticked boxes for
  forms nobody opened, so those rows hold no form;
* a present form whose status is Incomplete (0, or no status) is dropped
  unless ``rules.incomplete_forms: keep``; Unverified (1) is kept unless
  ``rules.unverified_forms: drop``; an export without the status column
  keeps every present form and says so in the report;
* its day is its date field minus the enrolment date; when the form has no
  date field, or the date is empty or coded missing, the event's nominal
  day (``redcap_events``) is used; a form with neither is dropped;
* a form dated up to ``rules.early_days`` before enrolment counts as day 0
  (reported); dated earlier, it is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stepanalytics.errors import Problem
from stepanalytics.io.redcap_dictionary import DataDictionary
from stepanalytics.io.redcap_export import ExportRows, nonblank, ticked
from stepanalytics.io.redcap_mapping import RedcapMapping
from stepanalytics.io.values import ParsedValues, add_found, parse_dates, parse_numbers


@dataclass
class FormLines:
    """Report lines gathered while reading forms: (row position, part, outcome, reason)."""

    positions: list[np.ndarray] = field(default_factory=list)
    parts: list[np.ndarray] = field(default_factory=list)
    outcomes: list[np.ndarray] = field(default_factory=list)
    reasons: list[np.ndarray] = field(default_factory=list)

    def add(self, positions: np.ndarray, part: str, outcome: str, reason: np.ndarray | str) -> None:
        n = len(positions)
        if n == 0:
            return
        self.positions.append(np.asarray(positions, dtype=np.int64))
        self.parts.append(np.full(n, part, dtype=object))
        self.outcomes.append(np.full(n, outcome, dtype=object))
        self.reasons.append(np.broadcast_to(np.asarray(reason, dtype=object), (n,)).copy())

    def to_frame(self) -> pd.DataFrame:
        if not self.positions:
            return pd.DataFrame(
                {
                    "position": np.empty(0, dtype=np.int64),
                    "part": np.empty(0, dtype=object),
                    "outcome": np.empty(0, dtype=object),
                    "reason": np.empty(0, dtype=object),
                }
            )
        return pd.DataFrame(
            {
                "position": np.concatenate(self.positions),
                "part": np.concatenate(self.parts),
                "outcome": np.concatenate(self.outcomes),
                "reason": np.concatenate(self.reasons),
            }
        )


@dataclass
class FormContext:
    """Everything the form readers share for one import."""

    rows: ExportRows
    dictionary: DataDictionary
    mapping: RedcapMapping
    usable: np.ndarray  # rows whose forms may be read (kept record, known event not skipped)
    enrol_epoch: np.ndarray  # per row: enrolment date of the row's record (NaN if none)
    event_day: np.ndarray  # per row: nominal day of the row's event (NaN if none)
    problems: list[Problem] = field(default_factory=list)
    lines: FormLines = field(default_factory=FormLines)
    notes: list[str] = field(default_factory=list)
    _dates: dict[str, ParsedValues] = field(default_factory=dict)
    _numbers: dict[str, ParsedValues] = field(default_factory=dict)

    # -- cells ---------------------------------------------------------------

    def column(self, name: str) -> pd.Series:
        return self.rows.frame[name]

    def numbers(self, column: str) -> ParsedValues:
        """A numeric column parsed once; invalid cells become a problem."""
        if column not in self._numbers:
            comma = self.dictionary.has(column) and "comma" in self.dictionary.validation_of(column)
            parsed = parse_numbers(
                self.column(column), missing_codes=self.mapping.missing_codes, decimal_comma=comma
            )
            self._numbers[column] = parsed
            self.invalid(column, parsed.invalid & self.usable, "numbers")
        return self._numbers[column]

    def dates(self, column: str) -> ParsedValues:
        """A date column parsed once; invalid cells become a problem."""
        if column not in self._dates:
            parsed = parse_dates(
                self.column(column),
                date_format=self.mapping.date_format,
                missing_codes=self.mapping.missing_codes,
            )
            self._dates[column] = parsed
            self.invalid(column, parsed.invalid & self.usable, "dates")
        return self._dates[column]

    def invalid(self, column: str, mask: np.ndarray, what: str) -> None:
        if mask.any():
            fix = "correct them in REDCap, or add the code to missing_codes in the mapping"
            if what == "dates":
                fix += f" (dates are read as {self.mapping.date_format}: set date_format)"
            add_found(
                self.problems,
                Problem.from_mask(
                    "export",
                    column,
                    self.rows.frame,
                    mask,
                    f"values that are not {what}",
                    fix,
                    values=self.column(column),
                ),
            )

    def filled(self, columns: list[str], checkbox_columns: list[str] = ()) -> np.ndarray:  # type: ignore[assignment]
        out = np.zeros(self.rows.n, dtype=bool)
        for name in columns:
            out |= nonblank(self.column(name))
        for name in checkbox_columns:
            out |= ticked(self.column(name))
        return out

    def missing_code_lines(
        self, positions: np.ndarray, column: str, codes: np.ndarray, then: str
    ) -> None:
        """Report cells that held a missing-data code, and what became of them."""
        hit = codes != None  # noqa: E711
        if hit.any():
            meaning = self.mapping.missing_codes
            reasons = np.array(
                [
                    f"missing-data code {c} ({meaning.get(c, 'missing')}): {then}"
                    for c in codes[hit]
                ],
                dtype=object,
            )
            self.lines.add(positions[hit], f"value {column}", "recoded", reasons)

    # -- form instances -------------------------------------------------------

    def instances(self, form: str, present: np.ndarray, part: str) -> tuple[np.ndarray, np.ndarray]:
        """Positions of usable rows holding the form, and which of them may count.

        Rejected instances get a report line (``part``, dropped, why).
        """
        status = self.rows.form_status(form)
        if status is not None:
            present = present | (self.usable & np.isin(status, ("complete", "unverified")))
        positions = np.flatnonzero(present & self.usable)
        if status is None:
            note = f"the export has no {form}_complete column: form status was not checked"
            if len(positions) and note not in self.notes:
                self.notes.append(note)
            return positions, np.ones(len(positions), dtype=bool)
        state = status[positions]
        rules = self.mapping.rules
        reason = np.full(len(positions), None, dtype=object)
        incomplete = (state == "incomplete") | (state == "")
        if rules.incomplete_forms == "drop":
            reason[state == "incomplete"] = f"form {form} incomplete ({form}_complete = 0)"
            reason[state == ""] = f"form {form} has no status ({form}_complete empty)"
        if rules.unverified_forms == "drop":
            reason[state == "unverified"] = f"form {form} unverified ({form}_complete = 1)"
        accepted = pd.Series(reason, dtype=object).isna().to_numpy()
        self.lines.add(positions[~accepted], part, "dropped", reason[~accepted])
        if rules.incomplete_forms == "keep":
            kept = incomplete & accepted
            self.lines.add(positions[kept], part, "note", f"form {form} incomplete, kept by rule")
        return positions, accepted

    def days(
        self, positions: np.ndarray, date_field: str | None, part: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Day since enrolment of each instance and which instances have a usable day.

        Instances without one get a report line (dropped, why).
        """
        n = len(positions)
        day = np.full(n, np.nan)
        reason = np.full(n, None, dtype=object)
        event_day = self.event_day[positions]
        if date_field is not None:
            parsed = self.dates(date_field)
            day = parsed.values[positions] - self.enrol_epoch[positions]
            coded = parsed.missing_code[positions]
            use_event = np.isnan(day) & ~np.isnan(event_day)
            self.missing_code_lines(
                positions[use_event], date_field, coded[use_event], "day taken from the event"
            )
            no_day = np.isnan(day) & np.isnan(event_day)
            reason[no_day] = (
                f"no date ({date_field} empty or coded missing) and the event has no day"
            )
        else:
            reason[np.isnan(event_day)] = "the event has no day and the form has no date field"
        day = np.where(np.isnan(day), event_day, day)
        early = day < 0
        allowed = early & (day >= -self.mapping.rules.early_days)
        if allowed.any():
            shifted = np.array(
                [f"dated {int(-d)} days before enrolment: counted as day 0" for d in day[allowed]],
                dtype=object,
            )
            self.lines.add(positions[allowed], part, "recoded", shifted)
            day[allowed] = 0
        too_early = early & ~allowed
        reason[too_early] = np.array(
            [f"dated {int(-d)} days before enrolment" for d in day[too_early]], dtype=object
        )
        ok = pd.Series(reason, dtype=object).isna().to_numpy()
        self.lines.add(positions[~ok], part, "dropped", reason[~ok])
        return day, ok


def event_days(rows: ExportRows, mapping: RedcapMapping) -> np.ndarray:
    """Nominal day of each row's event (NaN when the mapping gives none)."""
    if mapping.redcap_events is None:
        return np.full(rows.n, np.nan)
    days = {name: float(ev.day) for name, ev in mapping.redcap_events.items() if ev.day is not None}
    mapped = pd.Series(rows.event, dtype=object).map(days)
    return mapped.to_numpy(dtype=float, na_value=np.nan)
