"""The FHIR mapping file: which questionnaire is which instrument, which linkId which item.

A complete, commented example is ``examples/mappings/fhir_stepped_care.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stepanalytics.contract import EXIT_REASONS
from stepanalytics.io.mapping import MappingError, MappingReader, check_mapping_source

_TOP_KEYS = {
    "source",
    "subjects",
    "missing_codes",
    "rules",
    "questionnaires",
    "patients",
    "episodes",
    "phases",
}


@dataclass(frozen=True)
class QuestionnaireSource:
    """One instrument: the Questionnaire canonical URLs that carry it and its linkIds."""

    code: str
    urls: tuple[str, ...]
    items: dict[str, int] = field(default_factory=dict)  # linkId -> item number
    answer_codes: dict[str, float] = field(default_factory=dict)  # code or system|code -> value
    score: str | None = None  # linkId of a given total


@dataclass(frozen=True)
class FhirPhases:
    """Where phase stays come from: a CSV (``--phases``), Encounters, or one stay for all."""

    source: str = "csv"  # csv | encounters | single_phase
    single_phase: int | None = None
    phase_codes: dict[str, int] = field(default_factory=dict)  # Encounter.type code -> phase
    exit_reason_codes: dict[str, str] = field(default_factory=dict)  # dischargeDisposition code


@dataclass(frozen=True)
class FhirMapping:
    """A parsed FHIR mapping file."""

    questionnaires: tuple[QuestionnaireSource, ...]
    subjects: str = "hash"  # hash | as_is
    missing_codes: dict[str, str] = field(default_factory=dict)
    duplicates: str = "keep_last"
    early_days: int = 0
    extra_patient_columns: tuple[str, ...] = ()
    clinics: dict[str, str] = field(default_factory=dict)  # Organization reference -> clinic_id
    phases: FhirPhases = field(default_factory=FhirPhases)

    def instrument_of(self, url: str) -> QuestionnaireSource | None:
        """The instrument a canonical URL (with or without ``|version``) is mapped to."""
        for q in self.questionnaires:
            if url in q.urls:
                return q
        bare = url.split("|", 1)[0]
        for q in self.questionnaires:
            if bare in q.urls:
                return q
        return None


def parse_fhir_mapping(data: dict[str, Any], *, source: str = "mapping") -> FhirMapping:
    """Build a :class:`FhirMapping` from YAML data, or list every mistake.

    Raises
    ------
    MappingError
    """
    check_mapping_source(data, "fhir", "FHIR resources", source)
    r = MappingReader(data)
    r.unknown_keys(data, "", _TOP_KEYS)
    rules = r.section("rules")
    r.unknown_keys(rules, "rules", {"duplicates", "early_days"})
    patients = r.section("patients")
    r.unknown_keys(patients, "patients", {"extra"})
    episodes = r.section("episodes")
    r.unknown_keys(episodes, "episodes", {"clinics"})
    mapping = FhirMapping(
        questionnaires=_parse_questionnaires(r, r.section("questionnaires")),
        subjects=r.choice(data, "subjects", ("hash", "as_is"), "hash"),
        missing_codes=r.missing_codes(),
        duplicates=r.choice(rules, "rules.duplicates", ("keep_last", "error"), "keep_last"),
        early_days=r.integer(rules, "rules.early_days", 0) or 0,
        extra_patient_columns=tuple(r.names(patients, "patients.extra")),
        clinics=r.codes(episodes, "episodes.clinics") or {},
        phases=_parse_phases(r, r.section("phases")),
    )
    if not mapping.questionnaires:
        r.problem(
            "questionnaires", "is required: map at least one questionnaire URL to an instrument"
        )
    if r.problems:
        raise MappingError(r.problems, source=source)
    return mapping


def _parse_questionnaires(r: MappingReader, raw: dict[str, Any]) -> tuple[QuestionnaireSource, ...]:
    out = []
    seen: dict[str, str] = {}
    for code, spec in raw.items():
        key = f"questionnaires.{code}"
        if not isinstance(spec, dict):
            r.problem(key, "must be a mapping with urls, items and/or score")
            continue
        r.unknown_keys(spec, key, {"urls", "items", "answer_codes", "score"})
        urls = tuple(r.names(spec, f"{key}.urls"))
        if not urls:
            r.problem(f"{key}.urls", "is required: the Questionnaire canonical URL(s)")
        for url in urls:
            if url in seen and seen[url] != code:
                r.problem(f"{key}.urls", f"{url} is already mapped to {seen[url]}")
            seen[url] = str(code)
        items_raw = spec.get("items") or {}
        items: dict[str, int] = {}
        if isinstance(items_raw, list):
            items = {str(link): i for i, link in enumerate(items_raw, start=1)}
        elif isinstance(items_raw, dict):
            for link, number in items_raw.items():
                if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                    r.problem(
                        f"{key}.items.{link}",
                        f"item numbers are whole numbers from 1, not {number!r}",
                    )
                    continue
                items[str(link)] = number
        else:
            r.problem(
                f"{key}.items", "must be a list of linkIds in item order or linkId -> item number"
            )
        score = r.text(spec, f"{key}.score")
        if not items and score is None:
            r.problem(key, "needs items or score")
        out.append(
            QuestionnaireSource(
                code=str(code),
                urls=urls,
                items=items,
                answer_codes=r.numeric_codes(spec, f"{key}.answer_codes") or {},
                score=score,
            )
        )
    return tuple(out)


def _parse_phases(r: MappingReader, raw: dict[str, Any]) -> FhirPhases:
    r.unknown_keys(raw, "phases", {"from", "single_phase", "phase_codes", "exit_reason_codes"})
    single = r.integer(raw, "phases.single_phase", None)
    origin = r.choice(
        raw,
        "phases.from",
        ("csv", "encounters", "single_phase"),
        "single_phase" if single is not None else "csv",
    )
    if origin == "single_phase" and single is None:
        r.problem("phases.single_phase", "is required with from: single_phase")
    phase_codes: dict[str, int] = {}
    for code, phase in (raw.get("phase_codes") or {}).items():
        if isinstance(phase, bool) or not isinstance(phase, int) or phase < 1:
            r.problem(f"phases.phase_codes.{code}", f"must be a phase number from 1, not {phase!r}")
            continue
        phase_codes[str(code)] = phase
    if origin == "encounters" and not phase_codes:
        r.problem(
            "phases.phase_codes", "is required with from: encounters (Encounter.type code -> phase)"
        )
    return FhirPhases(
        source=origin,
        single_phase=single,
        phase_codes=phase_codes,
        exit_reason_codes=r.codes(raw, "phases.exit_reason_codes", EXIT_REASONS) or {},
    )
