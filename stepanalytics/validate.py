"""Check a cohort as read against the data contract, collecting every problem.

Order: required tables, the identifier guard, column types (:mod:`.parse`),
the protocol, the cross-table rules (known patients, days within follow-up,
stays that follow each other, unique keys), instrument ranges, and when only
some clinics were read the registry-wide rules (:mod:`.io.registry_checks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stepanalytics.contract import (
    DEFAULT_PROTOCOL,
    REQUIRED_TABLES,
    TABLE_ORDER,
    TABLES,
    TERMINAL_EXITS,
    UNIQUE_KEYS,
)
from stepanalytics.errors import CohortError, Problem
from stepanalytics.io.registry_checks import merge_registry_problems
from stepanalytics.io.tables import RawCohort
from stepanalytics.keys import duplicated_keys

if TYPE_CHECKING:
    from stepanalytics.instruments import Registry
from stepanalytics.parse import parse_table
from stepanalytics.privacy import scan_tables
from stepanalytics.protocol import Protocol, default_protocols, parse_protocols


@dataclass
class ValidTables:
    """Typed tables that passed every check, and notes on documented changes."""

    tables: dict[str, pd.DataFrame]
    protocols: dict[str, Protocol]
    notes: list[str] = field(default_factory=list)


def validate_tables(raw: RawCohort, *, registry: Registry | None = None) -> ValidTables:
    """Validate a raw cohort; return typed tables or raise :class:`CohortError`.

    Parameters
    ----------
    raw : RawCohort
        Tables as read by :func:`stepanalytics.io.read_raw_cohort`.
    registry : Registry, optional
        Instrument registry to check scores and items against (default: the
        built-in one; see :func:`stepanalytics.instruments.get_registry`).

    Raises
    ------
    CohortError
        With every problem found, across all tables.
    """
    problems: list[Problem] = []
    notes = list(raw.notes)
    for name in (n for n in REQUIRED_TABLES if n not in raw.tables):
        fix = f"add {name}.csv or {name}.parquet"
        problems.append(Problem(name, None, "required table is missing", fix))
    scores_read = {"assessments", "items"} & set(raw.tables_read)  # tables= may leave them out
    if scores_read and "assessments" not in raw.tables and "items" not in raw.tables:
        problems.append(
            Problem(
                "assessments",
                None,
                "neither assessments nor items is present",
                "add assessments.csv (scores) or items.csv (item answers)",
            )
        )
    problems.extend(scan_tables(raw.tables))

    typed: dict[str, pd.DataFrame] = {}
    for name in TABLE_ORDER:
        if name in raw.tables:
            frame, found = parse_table(name, raw.tables[name], TABLES[name])
            typed[name] = frame
            problems.extend(found)

    protocols = default_protocols()
    if raw.protocol_text is not None:
        try:
            protocols = parse_protocols(raw.protocol_text)
        except CohortError as err:
            problems.extend(err.problems)

    # Cross-table rules need the key columns intact; skip them for tables
    # whose columns already failed, rather than report confusing follow-ups.
    broken = {(p.table, p.column) for p in problems}
    if "patients" in typed and not _has_broken(
        broken, "patients", ("patient_id", "last_contact_day")
    ):
        patients = typed["patients"]
        if "protocol" not in patients.columns:
            patients["protocol"] = pd.Series(None, index=patients.index, dtype=object)
        n_default = int(patients["protocol"].isna().sum())
        if n_default:
            notes.append(f"{n_default} patients without a protocol follow '{DEFAULT_PROTOCOL}'")
            base = patients["protocol"]
            patients["protocol"] = base.where(base.notna(), DEFAULT_PROTOCOL)
        problems.extend(check_patients(patients, protocols))
        lookup = patients.assign(_row=patients.index).set_index("patient_id", drop=False)
        lookup = lookup[~lookup.index.duplicated()]
        for name in ("phases", "assessments", "items", "events"):
            if name in typed and not _has_broken(broken, name, ("patient_id",)):
                problems.extend(check_patient_days(name, typed[name], lookup))
        if "phases" in typed and not _has_broken(
            broken, "phases", ("phase", "start_day", "end_day", "exit_reason")
        ):
            problems.extend(check_phases(typed["phases"], lookup, protocols))
    # Duplicate items are reported by the instrument checks, with the item named.
    for name, key in UNIQUE_KEYS.items():
        if name in ("patients", "items") or name not in typed:
            continue
        if not _has_broken(broken, name, key):
            problems.extend(check_unique(name, typed[name], key))
    problems.extend(_check_instruments(typed, registry, protocols))
    if raw.registry_checked:  # the whole store's answer replaces that of the rows read
        problems = merge_registry_problems(problems, raw.registry_problems)
    if problems:
        raise CohortError(problems, source=raw.source)
    return ValidTables(typed, protocols, notes)


def _has_broken(broken: set[tuple[str, str | None]], table: str, columns: tuple[str, ...]) -> bool:
    return (table, None) in broken or any((table, c) in broken for c in columns)


def check_unique(table: str, frame: pd.DataFrame, key: tuple[str, ...]) -> list[Problem]:
    """Rows that repeat a key that must be unique (every copy is listed)."""
    if any(k not in frame.columns for k in key):
        return []
    dup = duplicated_keys(frame, key)
    label = ", ".join(key)
    found = Problem.from_mask(
        table,
        key[-1],
        frame,
        dup,
        f"the key ({label}) appears more than once",
        "keep one row per key: duplicates are an error, never averaged",
        values=frame[list(key)].astype(str).agg(" / ".join, axis=1) if dup.any() else None,
    )
    return [found] if found else []


def check_patients(patients: pd.DataFrame, protocols: dict[str, Protocol]) -> list[Problem]:
    """Unique patient ids and known protocols."""
    found: list[Problem | None] = [*check_unique("patients", patients, ("patient_id",))]
    unknown = ~patients["protocol"].isin(list(protocols)).to_numpy()
    found.append(
        Problem.from_mask(
            "patients",
            "protocol",
            patients,
            unknown,
            "the protocol is not described in protocol.yaml",
            f"use one of: {', '.join(protocols)}, or describe the protocol in protocol.yaml",
        )
    )
    return [p for p in found if p is not None]


def check_patient_days(table: str, frame: pd.DataFrame, patients: pd.DataFrame) -> list[Problem]:
    """Rows of unknown patients, and days after the patient's last contact."""
    known = frame["patient_id"].isin(patients.index).to_numpy()
    found = [
        Problem.from_mask(
            table,
            "patient_id",
            frame,
            ~known,
            "the patient is not in patients",
            "add the patient to patients or remove these rows",
        )
    ]
    last = frame["patient_id"].map(patients["last_contact_day"]).to_numpy(dtype="float64")
    day_columns = ["start_day", "end_day"] if table == "phases" else ["day"]
    for column in day_columns:
        if column not in frame.columns:
            continue
        days = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64")
        late = known & (days > last)
        found.append(
            Problem.from_mask(
                table,
                column,
                frame,
                late,
                "the day is after the patient's last_contact_day",
                "correct the day, or last_contact_day in patients (the later of the two is wrong)",
            )
        )
    return [p for p in found if p is not None]


def check_phases(
    phases: pd.DataFrame, patients: pd.DataFrame, protocols: dict[str, Protocol]
) -> list[Problem]:
    """Rules of the phase stays: see docs/data-contract.md, section phases."""
    found: list[Problem | None] = []
    start = phases["start_day"].to_numpy(dtype="float64")
    end = phases["end_day"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    ongoing = (phases["exit_reason"] == "ongoing").to_numpy()
    has_end = ~np.isnan(end)
    found.append(
        _phase_problem(
            phases,
            has_end & (end < start),
            "end_day",
            "the stay ends before it starts",
            "end_day must be on or after start_day",
        )
    )
    found.append(
        _phase_problem(
            phases,
            ongoing & has_end,
            "end_day",
            "an ongoing stay has an end_day",
            "leave end_day empty for ongoing stays, or give the exit_reason",
        )
    )
    found.append(
        _phase_problem(
            phases,
            ~ongoing & ~has_end,
            "end_day",
            "a stay that ended has no end_day",
            "give end_day, or mark the stay 'ongoing' if it has not ended",
        )
    )
    n_phases = (
        phases["patient_id"]
        .map(patients["protocol"])
        .map({name: p.n_phases for name, p in protocols.items()})
    )
    too_high = phases["phase"].to_numpy(dtype="float64") > n_phases.to_numpy(dtype="float64")
    found.append(
        _phase_problem(
            phases,
            too_high,
            "phase",
            "the phase number is beyond the protocol's last phase",
            "phase must be 1..K for the patient's protocol (see protocol.yaml)",
        )
    )

    order = phases.sort_values(["patient_id", "start_day"], kind="stable")
    same_next = (order["patient_id"].shift(-1) == order["patient_id"]).to_numpy()
    first = ~(order["patient_id"].shift(1) == order["patient_id"]).to_numpy()
    o_start = order["start_day"].to_numpy(dtype="float64")
    o_end = order["end_day"].astype("Float64").to_numpy(dtype="float64", na_value=np.inf)
    next_start = np.roll(o_start, -1)
    next_phase = np.roll(order["phase"].to_numpy(), -1)
    phase = order["phase"].to_numpy()
    reason = order["exit_reason"].to_numpy()

    found.append(
        _phase_problem(
            order,
            first & (o_start != 0),
            "start_day",
            "the patient's first stay does not start on day 0",
            "the first stay starts on day 0 (days count from enrolment)",
        )
    )
    found.append(
        _phase_problem(
            order,
            same_next & (next_start < o_end),
            "start_day",
            "stays of the same patient overlap",
            "a stay must start on or after the end_day of the stay before it",
        )
    )
    found.append(
        _phase_problem(
            order,
            same_next & np.isin(reason, TERMINAL_EXITS),
            "exit_reason",
            "a stay marked completed, dropped_out or ongoing is followed by another stay",
            "only the last stay of a patient can end this way",
        )
    )
    found.append(
        _phase_problem(
            order,
            same_next & (reason == "progressed") & (next_phase != phase + 1),
            "exit_reason",
            "'progressed' is not followed by a stay in the next phase",
            "after 'progressed' the next stay is phase + 1",
        )
    )
    found.append(
        _phase_problem(
            order,
            same_next & (reason == "stepped_down") & (next_phase >= phase),
            "exit_reason",
            "'stepped_down' is not followed by a stay in an earlier phase",
            "after 'stepped_down' the next stay is in a lower phase",
        )
    )
    found.append(
        _phase_problem(
            order,
            same_next & (reason == "paused") & (next_phase > phase),
            "exit_reason",
            "after a safety pause the patient resumes in a higher phase",
            "after 'paused' the next stay is in the same or an earlier phase",
        )
    )

    without = ~patients.index.isin(phases["patient_id"].unique())
    if without.any():  # rows as stored (``_row``), not as positions in the lookup
        rows = patients["_row"].to_numpy() if "_row" in patients else np.arange(len(patients))
        found.append(
            Problem.from_mask(
                "patients",
                "patient_id",
                patients.set_axis(rows),
                without,
                "the patient has no phase stay",
                "add the patient's stays to phases (the first starts on day 0)",
            )
        )
    return [p for p in found if p is not None]


def _phase_problem(
    frame: pd.DataFrame, mask: np.ndarray, column: str, message: str, fix: str
) -> Problem | None:
    return Problem.from_mask("phases", column, frame, np.asarray(mask, dtype=bool), message, fix)


def _check_instruments(
    typed: dict[str, pd.DataFrame],
    registry: Registry | None,
    protocols: dict[str, Protocol],
) -> list[Problem]:
    """Scores, item answers and protocol thresholds against the instrument registry.

    Rows whose key columns failed to parse were reported already; the other
    rows are still checked, so every problem is listed in one pass.
    """
    from stepanalytics.instruments import check_assessment_scores, check_item_values, get_registry

    registry = registry or get_registry()
    found: list[Problem] = []
    scores = typed.get("assessments")
    if scores is not None and {"instrument", "score"} <= set(scores.columns):
        usable = scores[scores["instrument"].notna() & scores["score"].notna()]
        found.extend(check_assessment_scores(usable, registry))
    items = typed.get("items")
    if items is not None and {"instrument", "item", "value"} <= set(items.columns):
        complete = items["instrument"].notna() & items["item"].notna()
        usable = items  # copying 28M rows costs seconds: only when something is missing
        if not (complete.all() and items["item"].dtype == "int64"):
            usable = items[complete].assign(item=items.loc[complete, "item"].astype("int64"))
        found.extend(check_item_values(usable, registry))
    found.extend(check_protocol_thresholds(protocols, registry))
    return found


def check_protocol_thresholds(protocols: dict[str, Protocol], registry: Registry) -> list[Problem]:
    """Progression criteria must name known instruments and thresholds inside their range."""
    found = []
    for protocol in protocols.values():
        for rule in protocol.progression.values():
            for criterion in rule.criteria:
                where = f"protocol {protocol.name!r}, progression from phase {rule.from_phase}"
                if criterion.instrument not in registry:
                    found.append(
                        Problem(
                            "protocol",
                            None,
                            f"{where}: instrument {criterion.instrument!r} is not in the registry",
                            f"use one of: {', '.join(registry.codes)}",
                        )
                    )
                    continue
                spec = registry.get(criterion.instrument)
                high = spec.score_max if spec.score_max is not None else np.inf
                if not spec.score_min <= criterion.value <= high:
                    found.append(
                        Problem(
                            "protocol",
                            None,
                            f"{where}: threshold {criterion.value:g} is outside the range of "
                            f"{criterion.instrument} ({spec.score_min:g} to {high:g})",
                            "give a threshold the instrument can reach",
                        )
                    )
    return found
