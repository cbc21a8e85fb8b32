"""Import a REDCap longitudinal project into a cohort.

:func:`import_redcap` reads a raw records export, the project's data
dictionary and a mapping file, and returns the contract tables with an
import report that gives every export row a verdict.  The rules for forms,
days, codes and duplicates are stated in the modules that apply them
(:mod:`~stepanalytics.io.redcap_forms`, :mod:`~stepanalytics.io.redcap_instruments`,
:mod:`~stepanalytics.io.redcap_care`, :mod:`~stepanalytics.io.redcap_patients`);
the walk-through is ``docs/importing.md``.

Privacy: fields flagged ``Identifier? = y`` never reach the cohort (date
fields among them are only turned into days), nor do unmapped fields; extra
patient fields pass the project's identifier guard first; record ids are
replaced by keyed-hash pseudonyms when a secret is given, and refused when
they look like record numbers and no secret is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stepanalytics.errors import CohortError, Problem, UsageError, only_problems
from stepanalytics.instruments import get_registry
from stepanalytics.io.import_report import ImportReport, ImportResult
from stepanalytics.io.mapping import MappingError, read_mapping_file
from stepanalytics.io.pseudonym import pseudonymise, record_number_problem
from stepanalytics.io.redcap_care import read_events, read_phases
from stepanalytics.io.redcap_checks import check_mapping, check_structure, used_fields
from stepanalytics.io.redcap_dictionary import DataDictionary, read_dictionary
from stepanalytics.io.redcap_export import (
    ExportRows,
    describe_rows,
    read_export,
    unused_columns,
)
from stepanalytics.io.redcap_forms import FormContext, event_days
from stepanalytics.io.redcap_instruments import drop_duplicates, imported_lines, read_instrument
from stepanalytics.io.redcap_mapping import (
    RedcapMapping,
    parse_redcap_mapping,
)
from stepanalytics.io.redcap_patients import PatientPart, build_patients
from stepanalytics.io.redcap_verdicts import row_verdicts
from stepanalytics.io.tables_assembly import (
    assemble_tables,
    last_contact_days,
    scan_extra_columns,
    stay_problems,
    without_stays,
)


def load_redcap_mapping(
    mapping: str | os.PathLike[str] | dict[str, Any] | RedcapMapping,
) -> RedcapMapping:
    """Accept a mapping as a parsed object, a dict, or a YAML file path."""
    if isinstance(mapping, RedcapMapping):
        return mapping
    if isinstance(mapping, dict):
        return parse_redcap_mapping(mapping)
    return parse_redcap_mapping(read_mapping_file(mapping), source=str(mapping))


def import_redcap(
    export: str | os.PathLike[str],
    dictionary: str | os.PathLike[str] | DataDictionary,
    mapping: str | os.PathLike[str] | dict[str, Any] | RedcapMapping,
    *,
    secret: str | None = None,
) -> ImportResult:
    """Turn a REDCap raw export into cohort tables and an import report.

    Parameters
    ----------
    export : path
        Records export, "CSV / Microsoft Excel (raw data)", all events.
    dictionary : path or DataDictionary
        The project's data dictionary CSV.
    mapping : path, dict or RedcapMapping
        What the fields mean (see ``docs/importing.md``).
    secret : str, optional, keyword-only
        Key for the pseudonyms of record ids (HMAC-SHA256).  Required when
        the mapping says ``pseudonymise: always``.

    Returns
    -------
    ImportResult
        ``tables`` (patients, phases, assessments, items, events) and the
        report as ``table``; write them with :func:`write_import`.

    Raises
    ------
    MappingError
        The mapping does not fit the dictionary or the registry.
    CohortError
        The export holds values the stated rules cannot import (every
        problem listed with its export rows).
    UsageError
        A secret is needed but missing, or too short.

    Examples
    --------
    >>> from pathlib import Path
    >>> here = Path("tests/io/fixtures/redcap")
    >>> result = import_redcap(here / "export.csv", here / "dictionary.csv",
    ...                        "examples/mappings/redcap_stepped_care.yaml")  # doctest: +SKIP
    >>> sorted(result.tables)  # doctest: +SKIP
    ['assessments', 'events', 'items', 'patients', 'phases']

    Notes
    -----
    There is no R equivalent that writes this contract; REDCapR's
    ``redcap_read()`` and REDCapTidieR's ``read_redcap()`` read the same
    export and dictionary into data frames.  Field semantics follow the
    REDCap data dictionary and export documentation (Harris et al., J
    Biomed Inform 2009;42:377-381).
    """
    export_path = Path(export)
    source = export_path.name
    dd = dictionary if isinstance(dictionary, DataDictionary) else read_dictionary(dictionary)
    spec = load_redcap_mapping(mapping)
    check_mapping(spec, dd)
    frame = read_export(export_path)
    record_column = spec.record_id or str(frame.columns[0])
    check_structure(frame, dd, spec, record_column, source)
    rows = describe_rows(frame, record_column)
    state = _event_state(rows, spec)
    has_record = rows.record_code >= 0
    readable = has_record & (state != "unknown")
    patients = build_patients(rows, dd, spec, readable)
    patient_ids = _patient_ids(rows, spec, secret, source)
    record_ok_row = np.zeros(rows.n, dtype=bool)
    record_ok_row[has_record] = patients.record_ok[rows.record_code[has_record]]
    usable = readable & (state == "known") & record_ok_row
    enrol_row = np.full(rows.n, np.nan)
    enrol_row[has_record] = patients.enrol_epoch[rows.record_code[has_record]]
    ctx = FormContext(rows, dd, spec, usable, enrol_row, event_days(rows, spec))
    tables_raw = _read_forms(ctx, patients)
    problems = patients.problems + ctx.problems
    if not problems:
        problems = _stay_problems(rows, spec, patients, tables_raw["phases"], patient_ids)
    if problems:
        raise CohortError(problems, source=source)
    mapped_last = patients.last_contact_epoch - patients.enrol_epoch
    _check_last_contact(rows, spec, patients, mapped_last, source)
    refused = scan_extra_columns(patients.table, spec.extra_patient_fields)
    last_day = last_contact_days(len(rows.record_ids), tables_raw, mapped_last)
    tables = assemble_tables(patients.table, tables_raw, patient_ids, last_day, refused=refused)
    report = ImportReport(source)
    row_verdicts(report, rows, state, patients, ctx, patient_ids, record_ok_row)
    _field_notes(report, frame, dd, spec, record_column, refused)
    for note in ctx.notes:
        report.add_note("file", "note", note)
    return ImportResult(
        table=report.to_frame(),
        tables=tables,
        n_input_rows=rows.n,
        title=f"REDCap import of {source}",
        warnings=tuple(ctx.notes),
    )


def _check_last_contact(
    rows: ExportRows,
    spec: RedcapMapping,
    patients: PatientPart,
    mapped_last: np.ndarray,
    source: str,
) -> None:
    """A last-contact date before enrolment cannot be right."""
    early = patients.record_ok & (mapped_last < 0)
    if spec.last_contact_date_field is None or not early.any():
        return
    mask = np.isin(rows.record_code, np.flatnonzero(early))
    field_name = spec.last_contact_date_field
    found = Problem.from_mask(
        "export",
        field_name,
        rows.frame,
        mask & (rows.frame[field_name].notna().to_numpy()),
        "last contact dated before enrolment",
        "correct the date in REDCap",
        redact=True,
    )
    raise CohortError(only_problems([found]), source=source)


def _stay_problems(
    rows: ExportRows,
    spec: RedcapMapping,
    patients: PatientPart,
    stays: pd.DataFrame,
    patient_ids: np.ndarray,
) -> list[Problem]:
    """Stays that break the contract, and patients without any, named by export rows."""
    ph = spec.phases
    if ph.single_phase is not None:
        return []
    columns = {
        "phase": ph.phase_field or "phase",
        "start_day": ph.start_date_field or "start",
        "end_day": ph.end_date_field or "end",
        "exit_reason": ph.exit_reason_field or "exit_reason",
    }
    found = stay_problems(
        stays.assign(row0=stays["position"]),
        patients.table,
        patient_ids,
        table="export",
        columns=columns,
    )
    missing = without_stays(patients.table, stays)
    if len(missing):
        enrol = rows.frame[spec.enrolment_date_field].notna().to_numpy()
        mask = enrol & np.isin(rows.record_code, missing)
        found.append(
            Problem(
                "export",
                spec.enrolment_date_field,
                f"{len(missing)} records have an enrolment date but no phase stay",
                f"add their stays on the form '{ph.form}', or use phases: {{single_phase: 1}}",
                rows=tuple(int(r) for r in rows.rows[mask][:10]),
                n_rows=int(mask.sum()),
            )
        )
    return found


def _event_state(rows: ExportRows, spec: RedcapMapping) -> np.ndarray:
    """``known`` / ``skip`` / ``unknown`` per row (rules.unknown_events decides about the last)."""
    if spec.redcap_events is None:
        return np.full(rows.n, "known", dtype=object)
    states = {name: ("skip" if ev.skip else "known") for name, ev in spec.redcap_events.items()}
    state = pd.Series(rows.event, dtype=object).map(states).fillna("unknown").to_numpy(dtype=object)
    unknown = state == "unknown"
    if unknown.any() and spec.rules.unknown_events == "error":
        names = pd.Series(rows.event[unknown], dtype=object).fillna("<empty>").value_counts()
        listed = ", ".join(f"{name} ({count} rows)" for name, count in names.items())
        raise MappingError(
            [
                Problem(
                    "mapping",
                    "redcap_events",
                    f"the export has events the mapping does not list: {listed}",
                    "add them to redcap_events (with a day, {} or skip), "
                    "or set rules.unknown_events: drop",
                )
            ],
            source="mapping",
        )
    return state


def _patient_ids(
    rows: ExportRows, spec: RedcapMapping, secret: str | None, source: str
) -> np.ndarray:
    """Pseudonyms (or the ids themselves) for every distinct record id."""
    ids = pd.Series(rows.record_ids, dtype=object)
    if spec.pseudonymise == "always" and secret is None:
        raise UsageError(
            "the mapping says pseudonymise: always but no secret was given; "
            "pass --secret-env VARIABLE (or secret=...)"
        )
    if secret is not None and spec.pseudonymise != "never":
        return pseudonymise(ids, secret).to_numpy(dtype=object)
    problem = record_number_problem("export", str(rows.frame.columns[0]), ids)
    if problem is not None:
        raise CohortError([problem], source=source)
    return ids.to_numpy(dtype=object)


def _read_forms(ctx: FormContext, patients: PatientPart) -> dict[str, pd.DataFrame]:
    registry = get_registry()
    items, scores = [], []
    for inst in ctx.mapping.instruments:
        got_items, got_scores = read_instrument(ctx, inst, registry)
        items.append(got_items)
        scores.append(got_scores)
    all_items = pd.concat(items, ignore_index=True) if items else pd.DataFrame()
    all_scores = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame()
    if len(all_items.columns) and len(all_scores.columns):
        all_items, all_scores = drop_duplicates(ctx, all_items, all_scores)
    for inst in ctx.mapping.instruments:
        imported_lines(ctx, inst, all_items, all_scores)
    phases = read_phases(ctx, patients.table["record_code"].to_numpy())
    events = [read_events(ctx, src, i) for i, src in enumerate(ctx.mapping.clinical_events)]
    return {
        "items": all_items,
        "assessments": all_scores,
        "phases": phases,
        "events": pd.concat(events, ignore_index=True) if events else pd.DataFrame(),
    }


def _field_notes(
    report: ImportReport,
    frame: pd.DataFrame,
    dd: DataDictionary,
    spec: RedcapMapping,
    record_column: str,
    refused: dict[str, str],
) -> None:
    used = used_fields(spec)
    unused = unused_columns(frame, dd, used, record_column)
    for column in [c for c in unused["identifier"] if c not in used]:
        report.add_note(
            f"field {column}",
            "dropped",
            "identifier (Identifier? = y in the dictionary)",
            n=int(frame[column].notna().sum()),
        )
    for name in sorted(used):
        if dd.has(name) and dd.is_identifier(name):
            report.add_note(
                f"field {name}",
                "note",
                "identifier date: only turned into days, never copied into the cohort",
            )
    for column in unused["unmapped"]:
        report.add_note(
            f"field {column}",
            "dropped",
            "not used by the mapping",
            n=int(frame[column].notna().sum()),
        )
    for column in unused["unknown"]:
        report.add_note(
            f"field {column}",
            "dropped",
            "not in the data dictionary",
            n=int(frame[column].notna().sum()),
        )
    for column, why in refused.items():
        report.add_note(f"field {column}", "dropped", f"refused by the privacy guard: {why}")
