"""The data contract: tables, columns, types and vocabularies.

This module is data, not logic: it says what a cohort looks like.  The
rules that check a table against it live in :mod:`stepanalytics.validate`,
the identifier guard in :mod:`stepanalytics.privacy`.  The contract in prose
is ``docs/data-contract.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnKind = Literal["string", "int", "number", "bool", "month", "category"]

TABLE_ORDER = ("patients", "phases", "assessments", "items", "events")
REQUIRED_TABLES = ("patients", "phases")

AGE_BANDS = ("18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90+")
SEXES = ("female", "male", "other", "unknown")
EMPLOYMENT = ("employed", "unemployed", "sick_leave", "retired", "student", "homemaker", "other")
EXIT_REASONS = ("progressed", "completed", "stepped_down", "dropped_out", "paused", "ongoing")
EVENTS = (
    "flare_up",
    "adverse_event",
    "red_flag",
    "safety_pause",
    "return_to_work",
    "booster_session",
    "telehealth_checkin",
    "reassessment",
)
SEVERITIES = ("mild", "moderate", "severe")
PRIMARY_CONDITIONS = (
    "low_back",
    "neck",
    "widespread",
    "fibromyalgia",
    "crps",
    "headache",
    "other",
)

#: Exit reasons after which a patient has no further stay.
TERMINAL_EXITS = ("completed", "dropped_out", "ongoing")

#: Default protocol name given to patients without a ``protocol`` value.
DEFAULT_PROTOCOL = "default"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table.

    Parameters
    ----------
    name : str
        Column name (lower-case snake_case).
    kind : {"string", "int", "number", "bool", "month", "category"}
        How text values are parsed; see ``docs/data-contract.md``.
    required : bool
        The column must be present.
    nullable : bool
        Empty values are allowed.
    allowed : tuple of str, optional
        Vocabulary of a ``category`` column.
    minimum : float, optional
        Smallest allowed value of a numeric column.
    """

    name: str
    kind: ColumnKind
    required: bool = True
    nullable: bool = False
    allowed: tuple[str, ...] = ()
    minimum: float | None = None
    description: str = ""


def _col(name: str, kind: ColumnKind, **kw: object) -> ColumnSpec:
    return ColumnSpec(name, kind, **kw)  # type: ignore[arg-type]


PATIENT_ID = _col("patient_id", "string", description="pseudonymous patient id")

TABLES: dict[str, tuple[ColumnSpec, ...]] = {
    "patients": (
        PATIENT_ID,
        _col("clinic_id", "string", description="the treating site"),
        _col("enrolled_month", "month", description="month of programme start, YYYY-MM"),
        _col("last_contact_day", "int", minimum=0, description="censoring time in days"),
        _col("protocol", "string", required=False, nullable=True),
        _col("age_band", "category", required=False, nullable=True, allowed=AGE_BANDS),
        _col("sex", "category", required=False, nullable=True, allowed=SEXES),
        _col("pain_duration_months", "number", required=False, nullable=True, minimum=0),
        _col("primary_condition", "string", required=False, nullable=True),
        _col("compensation_claim", "bool", required=False, nullable=True),
        _col("employment", "category", required=False, nullable=True, allowed=EMPLOYMENT),
    ),
    "phases": (
        PATIENT_ID,
        _col("phase", "int", minimum=1),
        _col("start_day", "int", minimum=0),
        _col("end_day", "int", required=False, nullable=True, minimum=0),
        _col("exit_reason", "category", allowed=EXIT_REASONS),
    ),
    "assessments": (
        PATIENT_ID,
        _col("day", "int", minimum=0),
        _col("instrument", "string"),
        _col("score", "number"),
    ),
    "items": (
        PATIENT_ID,
        _col("day", "int", minimum=0),
        _col("instrument", "string"),
        _col("item", "int", minimum=1),
        _col("value", "number", nullable=True),
    ),
    "events": (
        PATIENT_ID,
        _col("day", "int", minimum=0),
        _col("event", "category", allowed=EVENTS),
        _col("severity", "category", required=False, nullable=True, allowed=SEVERITIES),
    ),
}

#: Keys that must be unique within a table.
UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "patients": ("patient_id",),
    "assessments": ("patient_id", "day", "instrument"),
    "items": ("patient_id", "day", "instrument", "item"),
    # The same event twice on one day would count twice in safety rates.
    "events": ("patient_id", "day", "event", "severity"),
}

#: Text accepted for a ``bool`` column, case-insensitive, and what it means.
BOOL_TEXT = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "1": True,
    "0": False,
    "y": True,
    "n": False,
}


def column_specs(table: str) -> tuple[ColumnSpec, ...]:
    """Return the column specs of a contract table.

    Examples
    --------
    >>> [c.name for c in column_specs("events")]
    ['patient_id', 'day', 'event', 'severity']
    """
    return TABLES[table]


def contract_columns(table: str) -> list[str]:
    """Names of the contract columns of ``table``, in contract order."""
    return [c.name for c in TABLES[table]]
