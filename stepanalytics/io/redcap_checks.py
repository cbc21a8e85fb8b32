"""Does the mapping fit the project: its data dictionary, the registry and the export?

Run before any data is read, so a wrong field name costs the user one run,
not a million parsed rows.  Every misfit is collected and reported at once.
Date fields may be flagged as identifiers (they are only turned into days);
any other field whose value would reach the cohort may not.
"""

from __future__ import annotations

import pandas as pd

from stepanalytics.errors import CohortError, Problem
from stepanalytics.instruments import get_registry
from stepanalytics.io.mapping import MappingError
from stepanalytics.io.redcap_dictionary import DataDictionary
from stepanalytics.io.redcap_export import DAG_COLUMN, EVENT_COLUMN, check_export_columns
from stepanalytics.io.redcap_mapping import RedcapMapping


def check_against_dictionary(mapping: RedcapMapping, dictionary: DataDictionary) -> list[Problem]:
    """Every way the mapping does not fit the project's data dictionary.

    Date fields may be identifiers (they are only turned into days); any
    other field whose value would reach the cohort may not.
    """
    problems: list[Problem] = []

    def need(field: str | None, key: str, *, form: str | None = None, kind: str = "any") -> None:
        if field is None:
            return
        if not dictionary.has(field):
            problems.append(
                Problem(
                    "mapping",
                    key,
                    f"field '{field}' is not in the data dictionary",
                    "use the field's Variable / Field Name from the dictionary",
                )
            )
            return
        if form is not None and dictionary.form_of(field) != form:
            problems.append(
                Problem(
                    "mapping",
                    key,
                    f"field '{field}' is on form '{dictionary.form_of(field)}', not '{form}'",
                    "name the form the field is on",
                )
            )
        if kind == "date" and not dictionary.is_date(field):
            problems.append(
                Problem(
                    "mapping",
                    key,
                    f"field '{field}' is not a date field",
                    "use a text field validated as date_ymd/dmy/mdy or datetime",
                )
            )
        if kind == "checkbox" and dictionary.type_of(field) != "checkbox":
            problems.append(
                Problem(
                    "mapping",
                    key,
                    f"field '{field}' is not a checkbox field",
                    "use items for one field per item",
                )
            )
        if kind != "date" and dictionary.is_identifier(field):
            problems.append(
                Problem(
                    "mapping",
                    key,
                    f"field '{field}' is flagged as an identifier "
                    "(Identifier? = y) and cannot be copied into a cohort",
                    "leave it out of the mapping",
                )
            )

    need(mapping.enrolment_date_field, "enrolment.date_field", kind="date")
    need(mapping.last_contact_date_field, "last_contact.date_field", kind="date")
    for name, src in mapping.patients.items():
        need(src.field, f"patients.{name}.field")
        need(src.age_field, f"patients.{name}.age_field")
    for extra in mapping.extra_patient_fields:
        need(extra, "patients.extra")
    forms = set(dictionary.forms)
    for inst in mapping.instruments:
        key = f"instruments.{inst.code}"
        if inst.form not in forms:
            problems.append(
                Problem(
                    "mapping",
                    f"{key}.form",
                    f"form '{inst.form}' is not in the data dictionary",
                    "use the dictionary's Form Name",
                )
            )
            continue
        need(inst.date_field, f"{key}.date_field", kind="date")
        for item_field in inst.items:
            need(item_field, f"{key}.items", form=inst.form)
        need(inst.checkbox, f"{key}.checkbox", form=inst.form, kind="checkbox")
        need(inst.score, f"{key}.score", form=inst.form)
    ph = mapping.phases
    if ph.form is not None:
        need(ph.phase_field, "phases.phase_field", form=ph.form)
        need(ph.start_date_field, "phases.start_date_field", form=ph.form, kind="date")
        need(ph.end_date_field, "phases.end_date_field", form=ph.form, kind="date")
        need(ph.exit_reason_field, "phases.exit_reason_field", form=ph.form)
    for i, ev in enumerate(mapping.clinical_events):
        key = f"clinical_events[{i}]"
        need(ev.date_field, f"{key}.date_field", kind="date")
        need(ev.event_field, f"{key}.event_field", form=ev.form)
        need(ev.checkbox, f"{key}.checkbox", form=ev.form, kind="checkbox")
        need(ev.severity_field, f"{key}.severity_field", form=ev.form)
    return problems


def check_mapping(spec: RedcapMapping, dd: DataDictionary) -> None:
    """Raise :class:`MappingError` listing every misfit with the dictionary and the registry."""
    problems = check_against_dictionary(spec, dd)
    registry = get_registry()
    for inst in spec.instruments:
        if (inst.items or inst.checkbox) and inst.code not in registry.questionnaire_codes:
            problems.append(
                Problem(
                    "mapping",
                    f"instruments.{inst.code}",
                    f"'{inst.code}' is not a questionnaire of the "
                    "instrument registry, so its items cannot be scored",
                    f"use one of {', '.join(registry.questionnaire_codes)}",
                )
            )
        if inst.score and inst.code not in registry:
            problems.append(
                Problem(
                    "mapping",
                    f"instruments.{inst.code}.score",
                    f"'{inst.code}' is not an instrument of the registry",
                    f"use one of {', '.join(registry.codes)}",
                )
            )
    if problems:
        raise MappingError(problems, source="mapping")


def check_structure(
    frame: pd.DataFrame, dd: DataDictionary, spec: RedcapMapping, record_column: str, source: str
) -> None:
    """Raise :class:`CohortError` when the export lacks columns the mapping needs."""
    problems: list[Problem] = []
    if record_column not in frame.columns:
        problems.append(
            Problem(
                "export",
                record_column,
                "the record id column is missing",
                "set record_id in the mapping to the export's first column",
            )
        )
    if spec.redcap_events is not None and EVENT_COLUMN not in frame.columns:
        problems.append(
            Problem(
                "export",
                EVENT_COLUMN,
                "the mapping lists redcap_events but the export has no redcap_event_name column",
                "export a longitudinal project with all events, or drop redcap_events",
            )
        )
    if spec.patients["clinic_id"].dag and DAG_COLUMN not in frame.columns:
        problems.append(
            Problem(
                "export",
                DAG_COLUMN,
                "clinic_id comes from the data access group "
                "but the export has no redcap_data_access_group column",
                "tick 'include the Data Access Group' when exporting",
            )
        )
    needed: dict[str, list[str]] = {
        "enrolment.date_field": [spec.enrolment_date_field],
        "last_contact.date_field": [f for f in [spec.last_contact_date_field] if f],
        "patients": [f for s in spec.patients.values() for f in (s.field, s.age_field) if f]
        + list(spec.extra_patient_fields),
    }
    for inst in spec.instruments:
        needed[f"instruments.{inst.code}"] = [
            f for f in [*inst.items, inst.checkbox, inst.score, inst.date_field] if f
        ]
    ph = spec.phases
    needed["phases"] = [
        f
        for f in (ph.phase_field, ph.start_date_field, ph.end_date_field, ph.exit_reason_field)
        if f
    ]
    for i, ev in enumerate(spec.clinical_events):
        needed[f"clinical_events[{i}]"] = [
            f for f in (ev.date_field, ev.event_field, ev.checkbox, ev.severity_field) if f
        ]
    problems += check_export_columns(frame, dd, needed, source)
    if problems:
        raise CohortError(problems, source=source)


def used_fields(spec: RedcapMapping) -> set[str]:
    """Every dictionary field the mapping reads."""
    used = {spec.enrolment_date_field, *spec.extra_patient_fields}
    if spec.last_contact_date_field:
        used.add(spec.last_contact_date_field)
    for s in spec.patients.values():
        used.update(f for f in (s.field, s.age_field) if f)
    for inst in spec.instruments:
        used.update(f for f in (*inst.items, inst.checkbox, inst.score, inst.date_field) if f)
    ph = spec.phases
    used.update(
        f
        for f in (ph.phase_field, ph.start_date_field, ph.end_date_field, ph.exit_reason_field)
        if f
    )
    for ev in spec.clinical_events:
        used.update(f for f in (ev.date_field, ev.event_field, ev.checkbox, ev.severity_field) if f)
    return used
