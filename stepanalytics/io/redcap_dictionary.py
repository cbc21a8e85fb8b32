"""The REDCap data dictionary: which field is on which form, of what type.

Reads the CSV that REDCap's *Data Dictionary* page downloads (headers such
as ``Variable / Field Name`` and ``Identifier?``) and the same table as the
API's metadata export gives it (``field_name``, ``identifier``, ...).

Two REDCap conventions matter for reading exports:

* a checkbox field ``pain_sites`` with choices ``1, Back | 2, Neck`` is
  exported as one 0/1 column per choice, ``pain_sites___1`` and
  ``pain_sites___2``; REDCap writes the choice code in lower case with any
  character other than a letter, digit or underscore replaced by ``_``
  (``-1`` becomes ``pain_sites____1``);
* each form ``phq9`` adds a status column ``phq9_complete`` to the export:
  0 Incomplete, 1 Unverified, 2 Complete.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stepanalytics.errors import CohortError, Problem

# Download header (Data Dictionary page) -> API metadata name -> our name.
_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Variable / Field Name", "field_name", "field_name"),
    ("Form Name", "form_name", "form_name"),
    ("Section Header", "section_header", "section_header"),
    ("Field Type", "field_type", "field_type"),
    ("Field Label", "field_label", "field_label"),
    ("Choices, Calculations, OR Slider Labels", "select_choices_or_calculations", "choices"),
    ("Field Note", "field_note", "field_note"),
    (
        "Text Validation Type OR Show Slider Number",
        "text_validation_type_or_show_slider_number",
        "validation",
    ),
    ("Text Validation Min", "text_validation_min", "validation_min"),
    ("Text Validation Max", "text_validation_max", "validation_max"),
    ("Identifier?", "identifier", "identifier"),
    ("Branching Logic (Show field only if...)", "branching_logic", "branching_logic"),
    ("Required Field?", "required_field", "required"),
    ("Custom Alignment", "custom_alignment", "custom_alignment"),
    ("Question Number (surveys only)", "question_number", "question_number"),
    ("Matrix Group Name", "matrix_group_name", "matrix_group_name"),
    ("Matrix Ranking?", "matrix_ranking", "matrix_ranking"),
    ("Field Annotation", "field_annotation", "field_annotation"),
)
_REQUIRED = ("field_name", "form_name", "field_type", "choices", "identifier")
_CHOICE_TYPES = {"dropdown", "radio", "checkbox"}
_FIXED_CHOICES = {"yesno": {"1": "Yes", "0": "No"}, "truefalse": {"1": "True", "0": "False"}}
#: Field types whose values are never data (no column in the export).
NO_DATA_TYPES = {"descriptive"}
FORM_STATUS = {"0": "incomplete", "1": "unverified", "2": "complete"}


def checkbox_column(field: str, code: str) -> str:
    """Export column of one checkbox choice.

    Examples
    --------
    >>> checkbox_column("pain_sites", "1"), checkbox_column("x", "-1"), checkbox_column("x", "UNK")
    ('pain_sites___1', 'x____1', 'x___unk')
    """
    return f"{field}___{re.sub(r'[^a-z0-9_]', '_', code.strip().lower())}"


def parse_choices(text: str) -> dict[str, str]:
    """Parse ``"1, Female | 2, Male"`` into ``{"1": "Female", "2": "Male"}``.

    Examples
    --------
    >>> parse_choices("0, Not at all | 1, Several days|2,More than half the days")
    {'0': 'Not at all', '1': 'Several days', '2': 'More than half the days'}
    """
    out: dict[str, str] = {}
    for part in str(text).split("|"):
        if not part.strip():
            continue
        code, _, label = part.partition(",")
        out[code.strip()] = label.strip()
    return out


@dataclass(frozen=True)
class DataDictionary:
    """A REDCap project's fields.

    Attributes
    ----------
    fields : DataFrame
        One row per field, indexed by ``field_name``, with our short column
        names (``form_name``, ``field_type``, ``choices``, ``validation``,
        ``identifier``, ...).
    source : str
        The file read.
    """

    fields: pd.DataFrame
    source: str = "dictionary"

    @property
    def record_id_field(self) -> str:
        """The first field of the project: REDCap's record id."""
        return str(self.fields.index[0])

    @property
    def forms(self) -> list[str]:
        """Form (instrument) names in project order."""
        return list(dict.fromkeys(self.fields["form_name"]))

    def has(self, field: str) -> bool:
        return field in self.fields.index

    def form_of(self, field: str) -> str:
        return str(self.fields.at[field, "form_name"])

    def type_of(self, field: str) -> str:
        return str(self.fields.at[field, "field_type"])

    def validation_of(self, field: str) -> str:
        return str(self.fields.at[field, "validation"])

    def is_identifier(self, field: str) -> bool:
        return str(self.fields.at[field, "identifier"]).strip().lower() in ("y", "yes", "1")

    def is_date(self, field: str) -> bool:
        """Text fields validated as a date or date-time."""
        return self.type_of(field) == "text" and self.validation_of(field).startswith(
            ("date_", "datetime_")
        )

    def choices(self, field: str) -> dict[str, str]:
        """Codes and labels of a dropdown, radio, checkbox, yes/no or true/false field."""
        kind = self.type_of(field)
        if kind in _FIXED_CHOICES:
            return dict(_FIXED_CHOICES[kind])
        if kind in _CHOICE_TYPES:
            return parse_choices(str(self.fields.at[field, "choices"]))
        return {}

    def identifiers(self) -> list[str]:
        """Fields flagged ``Identifier? = y``."""
        return [f for f in self.fields.index if self.is_identifier(str(f))]

    def export_columns(self, field: str) -> list[str]:
        """The export columns a field fills (several for a checkbox, none for descriptive)."""
        kind = self.type_of(field)
        if kind in NO_DATA_TYPES:
            return []
        if kind == "checkbox":
            return [checkbox_column(field, code) for code in self.choices(field)]
        return [field]

    def fields_of_form(self, form: str) -> list[str]:
        return [str(f) for f in self.fields.index[self.fields["form_name"] == form]]


def read_dictionary(path: str | os.PathLike[str]) -> DataDictionary:
    """Read a REDCap data dictionary CSV (download or API metadata layout).

    Raises
    ------
    CohortError
        When required columns are missing or field names repeat.

    Examples
    --------
    >>> import io
    >>> text = ('"Variable / Field Name","Form Name","Section Header","Field Type","Field Label",'
    ...         '"Choices, Calculations, OR Slider Labels","Identifier?"\\n'
    ...         'record_id,enrolment,,text,Record ID,,\\n'
    ...         'sex,enrolment,,radio,Sex,"1, Female | 2, Male",\\n')
    >>> d = read_dictionary(io.StringIO(text))
    >>> d.record_id_field, d.choices("sex")
    ('record_id', {'1': 'Female', '2': 'Male'})
    """
    source = str(path) if isinstance(path, (str, os.PathLike)) else "dictionary"
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CohortError(
            [
                Problem(
                    "dictionary",
                    None,
                    f"cannot read the file: {exc}",
                    "download the data dictionary again from REDCap (Data Dictionary > Download)",
                )
            ],
            source=source,
        ) from exc
    rename: dict[str, str] = {}
    for header, api_name, ours in _COLUMNS:
        for column in raw.columns:
            if column.strip() in (header, api_name):
                rename[column] = ours
    frame = raw.rename(columns=rename)
    problems: list[Problem] = []
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        wanted = {ours: header for header, _, ours in _COLUMNS}
        problems.append(
            Problem(
                "dictionary",
                None,
                "columns missing: " + ", ".join(f"'{wanted[c]}'" for c in missing),
                "give the data dictionary CSV exactly as REDCap downloads it",
            )
        )
        raise CohortError(problems, source=source)
    for _, _, ours in _COLUMNS:
        if ours not in frame.columns:
            frame[ours] = ""
    frame["field_name"] = frame["field_name"].str.strip()
    frame["form_name"] = frame["form_name"].str.strip()
    frame["field_type"] = frame["field_type"].str.strip().str.lower()
    frame["validation"] = frame["validation"].str.strip().str.lower()
    frame.index = pd.RangeIndex(len(frame))
    dup = frame["field_name"].duplicated(keep=False)
    found = Problem.from_mask(
        "dictionary",
        "Variable / Field Name",
        frame,
        dup,
        "field names repeat",
        "each REDCap field name appears once; download the dictionary again",
        values=frame["field_name"],
    )
    empty = frame["field_name"] == ""
    blank = Problem.from_mask(
        "dictionary",
        "Variable / Field Name",
        frame,
        empty,
        "rows without a field name",
        "remove the empty rows",
    )
    problems.extend(p for p in (found, blank) if p is not None)
    if problems:
        raise CohortError(problems, source=source)
    return DataDictionary(frame.set_index("field_name"), source=Path(source).name)
