"""The REDCap mapping file: what each field of a REDCap project means.

A complete, commented example is ``examples/mappings/redcap_stepped_care.yaml``;
``docs/importing.md`` walks through it.  Parsing checks the file on its own
(:func:`parse_redcap_mapping`), then against the project's data dictionary
(:mod:`stepanalytics.io.redcap_checks`): every field named must exist, sit
on the form the mapping says, have a fitting type, and not be flagged as an
identifier unless it is a date that is only turned into days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stepanalytics.contract import AGE_BANDS, EMPLOYMENT, EVENTS, EXIT_REASONS, SEVERITIES, SEXES
from stepanalytics.io.mapping import MappingError, MappingReader, check_mapping_source

#: Patient attributes a mapping can fill, with their vocabulary (None = free).
PATIENT_ATTRIBUTES: dict[str, tuple[str, ...] | None] = {
    "clinic_id": None,
    "protocol": None,
    "age_band": AGE_BANDS,
    "sex": SEXES,
    "pain_duration_months": None,
    "primary_condition": None,
    "compensation_claim": None,
    "employment": EMPLOYMENT,
}
_TOP_KEYS = {
    "source",
    "record_id",
    "pseudonymise",
    "date_format",
    "missing_codes",
    "rules",
    "redcap_events",
    "enrolment",
    "last_contact",
    "patients",
    "instruments",
    "phases",
    "clinical_events",
}


@dataclass(frozen=True)
class Rules:
    """How the importer treats doubtful rows; each choice is reported when used."""

    incomplete_forms: str = "drop"  # drop | keep: forms with data whose status is 0
    unverified_forms: str = "keep"  # keep | drop: forms whose status is 1
    unknown_events: str = "drop"  # drop | error: events not listed in redcap_events
    duplicates: str = "keep_last"  # keep_last | error: same patient, day and instrument
    early_days: int = 0  # forms dated up to this many days before enrolment count as day 0


@dataclass(frozen=True)
class AttributeSource:
    """Where one patient attribute comes from (exactly one of the ways)."""

    field: str | None = None
    codes: dict[str, str] | None = None
    dag: bool = False
    value: str | None = None
    age_field: str | None = None


@dataclass(frozen=True)
class InstrumentSource:
    """One instrument: its form, its day, its items and/or its given score."""

    code: str
    form: str
    date_field: str | None = None
    items: dict[str, int] = field(default_factory=dict)
    checkbox: str | None = None
    item_values: dict[str, float] | None = None
    score: str | None = None


@dataclass(frozen=True)
class PhaseSource:
    """Phase stays: one form instance per stay, or one stay in one phase for everyone."""

    form: str | None = None
    phase_field: str | None = None
    start_date_field: str | None = None
    end_date_field: str | None = None
    exit_reason_field: str | None = None
    exit_reason_codes: dict[str, str] | None = None
    single_phase: int | None = None


@dataclass(frozen=True)
class EventSource:
    """Clinical events from a coded field or from a checkbox, dated by a date field."""

    form: str
    date_field: str
    event_codes: dict[str, str]
    event_field: str | None = None
    checkbox: str | None = None
    severity_field: str | None = None
    severity_codes: dict[str, str] | None = None


@dataclass(frozen=True)
class RedcapEvent:
    """A REDCap event (visit) of the project: its nominal day, or skipped."""

    name: str
    day: int | None = None
    skip: bool = False


@dataclass(frozen=True)
class RedcapMapping:
    """A parsed REDCap mapping file; see the module docstring."""

    enrolment_date_field: str
    patients: dict[str, AttributeSource]
    record_id: str | None = None
    pseudonymise: str = "auto"
    date_format: str = "ymd"
    missing_codes: dict[str, str] = field(default_factory=dict)
    rules: Rules = field(default_factory=Rules)
    redcap_events: dict[str, RedcapEvent] | None = None
    last_contact_date_field: str | None = None
    extra_patient_fields: tuple[str, ...] = ()
    instruments: tuple[InstrumentSource, ...] = ()
    phases: PhaseSource = field(default_factory=PhaseSource)
    clinical_events: tuple[EventSource, ...] = ()

    def forms_used(self) -> list[str]:
        forms = [i.form for i in self.instruments] + [e.form for e in self.clinical_events]
        if self.phases.form:
            forms.append(self.phases.form)
        return list(dict.fromkeys(forms))


def parse_redcap_mapping(data: dict[str, Any], *, source: str = "mapping") -> RedcapMapping:
    """Build a :class:`RedcapMapping` from the YAML data, or list every mistake.

    Raises
    ------
    MappingError
    """
    check_mapping_source(data, "redcap", "a REDCap export", source)
    r = MappingReader(data)
    r.unknown_keys(data, "", _TOP_KEYS)
    rules_raw = r.section("rules")
    r.unknown_keys(rules_raw, "rules", set(Rules.__dataclass_fields__))
    rules = Rules(
        incomplete_forms=r.choice(rules_raw, "rules.incomplete_forms", ("drop", "keep"), "drop"),
        unverified_forms=r.choice(rules_raw, "rules.unverified_forms", ("keep", "drop"), "keep"),
        unknown_events=r.choice(rules_raw, "rules.unknown_events", ("drop", "error"), "drop"),
        duplicates=r.choice(rules_raw, "rules.duplicates", ("keep_last", "error"), "keep_last"),
        early_days=r.integer(rules_raw, "rules.early_days", 0) or 0,
    )
    enrolment = r.section("enrolment")
    enrol_field = r.text(enrolment, "enrolment.date_field", required=True) or ""
    last_contact = r.section("last_contact")
    patients_raw = r.section("patients")
    patients = _parse_patients(r, patients_raw)
    mapping = RedcapMapping(
        enrolment_date_field=enrol_field,
        patients=patients,
        record_id=r.text(data, "record_id"),
        pseudonymise=r.choice(data, "pseudonymise", ("auto", "always", "never"), "auto"),
        date_format=r.date_format(),
        missing_codes=r.missing_codes(),
        rules=rules,
        redcap_events=_parse_events(r, data.get("redcap_events")),
        last_contact_date_field=r.text(last_contact, "last_contact.date_field"),
        extra_patient_fields=tuple(r.names(patients_raw, "patients.extra")),
        instruments=_parse_instruments(r, r.section("instruments")),
        phases=_parse_phases(r, r.section("phases")),
        clinical_events=_parse_clinical_events(r, data.get("clinical_events")),
    )
    if r.problems:
        raise MappingError(r.problems, source=source)
    return mapping


def _parse_patients(r: MappingReader, raw: dict[str, Any]) -> dict[str, AttributeSource]:
    r.unknown_keys(raw, "patients", {*PATIENT_ATTRIBUTES, "extra"})
    out: dict[str, AttributeSource] = {}
    for name, vocabulary in PATIENT_ATTRIBUTES.items():
        key = f"patients.{name}"
        spec = raw.get(name)
        if spec is None:
            if name == "clinic_id":
                r.problem(key, "is required: give {dag: true} or {field: ..., codes: ...}")
            continue
        if not isinstance(spec, dict):
            spec = {"value": spec}
        r.unknown_keys(spec, key, {"field", "codes", "dag", "value", "age_field"})
        ways = [
            k for k in ("field", "dag", "value", "age_field") if spec.get(k) not in (None, False)
        ]
        if len(ways) != 1:
            r.problem(key, "give exactly one of field, dag, value or age_field")
            continue
        if spec.get("age_field") is not None and name != "age_band":
            r.problem(key, "age_field can only fill age_band")
        if spec.get("dag") and name != "clinic_id":
            r.problem(key, "dag can only fill clinic_id")
        codes = r.codes(spec, f"{key}.codes", vocabulary)
        value = spec.get("value")
        if value is not None and vocabulary is not None and str(value) not in vocabulary:
            r.problem(f"{key}.value", f"{value!r} is not one of {', '.join(vocabulary)}")
        out[name] = AttributeSource(
            field=r.text(spec, f"{key}.field"),
            codes=codes,
            dag=bool(spec.get("dag")),
            value=None if value is None else str(value),
            age_field=r.text(spec, f"{key}.age_field"),
        )
    return out


def _parse_events(r: MappingReader, raw: Any) -> dict[str, RedcapEvent] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        r.problem("redcap_events", "must map each unique event name to {day: N}, {} or skip")
        return None
    out: dict[str, RedcapEvent] = {}
    for name, spec in raw.items():
        key = f"redcap_events.{name}"
        if spec == "skip":
            out[str(name)] = RedcapEvent(str(name), skip=True)
        elif spec is None or isinstance(spec, dict):
            day = r.integer(spec or {}, f"{key}.day", None)
            if day is not None and day < 0:
                r.problem(f"{key}.day", "must be 0 or more (days since enrolment)")
            out[str(name)] = RedcapEvent(str(name), day=day)
        else:
            r.problem(key, "must be {day: N}, {} (day from date fields only) or skip")
    return out


def _parse_instruments(r: MappingReader, raw: dict[str, Any]) -> tuple[InstrumentSource, ...]:
    out = []
    for code, spec in raw.items():
        key = f"instruments.{code}"
        if not isinstance(spec, dict):
            r.problem(key, "must be a mapping with form, items / checkbox / score")
            continue
        r.unknown_keys(
            spec, key, {"form", "date_field", "items", "checkbox", "item_values", "score"}
        )
        items = _parse_items(r, spec.get("items"), f"{key}.items")
        checkbox = r.text(spec, f"{key}.checkbox")
        score = r.text(spec, f"{key}.score")
        if not items and checkbox is None and score is None:
            r.problem(key, "needs items, checkbox or score")
        if items and checkbox is not None:
            r.problem(key, "give items or checkbox, not both")
        out.append(
            InstrumentSource(
                code=str(code),
                form=r.text(spec, f"{key}.form", required=True) or "",
                date_field=r.text(spec, f"{key}.date_field"),
                items=items,
                checkbox=checkbox,
                item_values=r.numeric_codes(spec, f"{key}.item_values"),
                score=score,
            )
        )
    return tuple(out)


def _parse_items(r: MappingReader, raw: Any, key: str) -> dict[str, int]:
    """A list of fields (item number = position) or a mapping field -> item number."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        return {str(f).strip(): i for i, f in enumerate(raw, start=1)}
    if isinstance(raw, dict):
        out = {}
        for f, number in raw.items():
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                r.problem(f"{key}.{f}", f"item numbers are whole numbers from 1, not {number!r}")
                continue
            out[str(f).strip()] = number
        if len(set(out.values())) != len(out):
            r.problem(key, "two fields have the same item number")
        return out
    r.problem(key, "must be a list of fields in item order or a mapping field -> item number")
    return {}


def _parse_phases(r: MappingReader, raw: dict[str, Any]) -> PhaseSource:
    known = {
        "form",
        "phase_field",
        "start_date_field",
        "end_date_field",
        "exit_reason_field",
        "exit_reason_codes",
        "single_phase",
    }
    r.unknown_keys(raw, "phases", known)
    single = r.integer(raw, "phases.single_phase", None)
    if single is not None:
        if len(raw) > 1:
            r.problem("phases", "single_phase stands alone: remove the other keys")
        return PhaseSource(single_phase=single)
    if not raw:
        r.problem("phases", "is required: describe the phase-stay form, or give single_phase: 1")
        return PhaseSource()
    return PhaseSource(
        form=r.text(raw, "phases.form", required=True),
        phase_field=r.text(raw, "phases.phase_field", required=True),
        start_date_field=r.text(raw, "phases.start_date_field", required=True),
        end_date_field=r.text(raw, "phases.end_date_field"),
        exit_reason_field=r.text(raw, "phases.exit_reason_field", required=True),
        exit_reason_codes=r.codes(raw, "phases.exit_reason_codes", EXIT_REASONS),
    )


def _parse_clinical_events(r: MappingReader, raw: Any) -> tuple[EventSource, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.problem("clinical_events", "must be a list of sources")
        return ()
    out = []
    for i, spec in enumerate(raw):
        key = f"clinical_events[{i}]"
        if not isinstance(spec, dict):
            r.problem(key, "must be a mapping")
            continue
        known = {
            "form",
            "date_field",
            "event_field",
            "checkbox",
            "event_codes",
            "severity_field",
            "severity_codes",
        }
        r.unknown_keys(spec, key, known)
        event_field = r.text(spec, f"{key}.event_field")
        checkbox = r.text(spec, f"{key}.checkbox")
        if (event_field is None) == (checkbox is None):
            r.problem(key, "give exactly one of event_field or checkbox")
        codes = r.codes(spec, f"{key}.event_codes", EVENTS)
        if codes is None:
            r.problem(f"{key}.event_codes", "is required: map each code to an event name")
        out.append(
            EventSource(
                form=r.text(spec, f"{key}.form", required=True) or "",
                date_field=r.text(spec, f"{key}.date_field", required=True) or "",
                event_codes=codes or {},
                event_field=event_field,
                checkbox=checkbox,
                severity_field=r.text(spec, f"{key}.severity_field"),
                severity_codes=r.codes(spec, f"{key}.severity_codes", SEVERITIES),
            )
        )
    return tuple(out)
