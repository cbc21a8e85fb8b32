"""Import FHIR R4 QuestionnaireResponse resources into a cohort.

:func:`import_fhir` reads NDJSON (bulk export) or Bundle files, a mapping
file, and the patient and phase information (CSV files, or EpisodeOfCare
and Encounter resources among the inputs), and returns the contract tables
with an import report that gives every resource and CSV row a verdict.
The rules are stated in :mod:`~stepanalytics.io.fhir_responses` and
:mod:`~stepanalytics.io.fhir_patients`; the walk-through is
``docs/importing.md``.

Subjects are pseudonymised with a keyed hash (HMAC-SHA256) of their
canonical reference (``Patient/123``), so the same secret gives the same
patient id in every import, whether the patient came from a CSV row or an
EpisodeOfCare.  ``subjects: as_is`` keeps the reference's id instead, for
servers whose ids are already pseudonymous; ids that look like record
numbers are refused then.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from stepanalytics.errors import CohortError, Problem, UsageError
from stepanalytics.instruments import get_registry
from stepanalytics.io.fhir_mapping import FhirMapping, parse_fhir_mapping
from stepanalytics.io.fhir_patients import (
    PatientList,
    Verdicts,
    patients_from_csv,
    patients_from_episodes,
)
from stepanalytics.io.fhir_read import Located, read_resources
from stepanalytics.io.fhir_responses import read_responses
from stepanalytics.io.fhir_stays import single_stays, stays_from_csv, stays_from_encounters
from stepanalytics.io.import_report import REPORT_COLUMNS, ImportReport, ImportResult
from stepanalytics.io.mapping import MappingError, read_mapping_file
from stepanalytics.io.pseudonym import looks_like_record_number, pseudonymise, record_number_problem
from stepanalytics.io.tables_assembly import (
    assemble_tables,
    last_contact_days,
    scan_extra_columns,
    stay_problems,
    without_stays,
)

PathLike = str | os.PathLike[str]


def load_fhir_mapping(mapping: PathLike | dict[str, Any] | FhirMapping) -> FhirMapping:
    """Accept a mapping as a parsed object, a dict, or a YAML file path."""
    if isinstance(mapping, FhirMapping):
        return mapping
    if isinstance(mapping, dict):
        return parse_fhir_mapping(mapping)
    return parse_fhir_mapping(read_mapping_file(mapping), source=str(mapping))


def import_fhir(
    resources: PathLike | Iterable[PathLike],
    mapping: PathLike | dict[str, Any] | FhirMapping,
    *,
    patients: PathLike | None = None,
    phases: PathLike | None = None,
    secret: str | None = None,
) -> ImportResult:
    """Turn QuestionnaireResponse resources into cohort tables and an import report.

    Parameters
    ----------
    resources : path or paths
        NDJSON or Bundle JSON files; besides QuestionnaireResponse they may
        hold EpisodeOfCare and Encounter resources.
    mapping : path, dict or FhirMapping
        Questionnaire URLs -> instruments, linkIds -> items (``docs/importing.md``).
    patients : path, optional, keyword-only
        Patients CSV (subject, clinic_id, enrolment_date, ...); without it,
        EpisodeOfCare resources give the patients.
    phases : path, optional, keyword-only
        Phases CSV, when the mapping says ``phases: {from: csv}``.
    secret : str, optional, keyword-only
        Key of the subject pseudonyms; required unless ``subjects: as_is``.

    Returns
    -------
    ImportResult

    Raises
    ------
    MappingError, CohortError, UsageError

    Examples
    --------
    >>> result = import_fhir("tests/io/fixtures/fhir/responses.json",
    ...                      "examples/mappings/fhir_stepped_care.yaml",
    ...                      patients="tests/io/fixtures/fhir/patients.csv",
    ...                      secret="a-long-enough-secret")  # doctest: +SKIP
    >>> result.tables["items"]["instrument"].unique().tolist()  # doctest: +SKIP
    ['phq9']

    Notes
    -----
    FHIR R4 (v4.0.1) QuestionnaireResponse semantics; answers coded with
    LOINC answer lists are mapped through ``answer_codes`` or the
    ``ordinalValue`` / ``itemWeight`` extension.  R has no equivalent
    reader for this contract (the ``fhircrackr`` package flattens resources
    into tables).
    """
    spec = load_fhir_mapping(mapping)
    _check_registry(spec)
    if spec.subjects == "hash" and secret is None:
        raise UsageError(
            "subjects are pseudonymised with a keyed hash: give the secret "
            "(--secret-env VARIABLE), or set subjects: as_is in the mapping if the "
            "references are already pseudonymous"
        )
    paths = [resources] if isinstance(resources, (str, os.PathLike)) else list(resources)
    located = read_resources(paths)
    verdicts = Verdicts(n_inputs=len(located))
    by_kind: dict[str, list[Located]] = {
        "QuestionnaireResponse": [],
        "EpisodeOfCare": [],
        "Encounter": [],
    }
    for loc in located:
        if loc.kind in by_kind:
            by_kind[loc.kind].append(loc)
        elif loc.kind == "Patient":
            verdicts.add(
                loc.source,
                loc.row,
                None,
                "row",
                "dropped",
                "Patient resources are not read (they hold identifiers)",
            )
        else:
            verdicts.add(
                loc.source, loc.row, None, "row", "dropped", f"{loc.kind} resources are not used"
            )
    plist = _patients(spec, patients, by_kind["EpisodeOfCare"], verdicts)
    stays = _stays(spec, plist, phases, by_kind["Encounter"], verdicts)
    registry = get_registry()
    answers = read_responses(by_kind["QuestionnaireResponse"], spec, plist, registry, verdicts)
    problems = answers.problems + _stay_problems(spec, stays, plist, phases)
    if problems:
        raise CohortError(problems, source="resources")
    mapped_last = plist.last_epoch - plist.enrol_epoch
    early = mapped_last < 0
    if early.any():
        raise CohortError(
            [
                Problem(
                    "patients",
                    "last_contact_date",
                    f"last contact before enrolment for {int(early.sum())} patients",
                    "correct the dates",
                )
            ]
        )
    parts = {"items": answers.items, "assessments": answers.scores, "phases": stays}
    last_day = last_contact_days(len(plist.keys), parts, mapped_last)
    patient_ids = _patient_ids(plist.keys, spec, secret)
    refused = scan_extra_columns(plist.table, spec.extra_patient_columns)
    tables = assemble_tables(plist.table, parts, patient_ids, last_day, refused=refused)
    report = _report(verdicts, plist, patient_ids, spec, secret)
    for column in plist.dropped_columns:
        report.add_note(
            f"field {column}",
            "dropped",
            "not a patients column of the contract",
            source=os.path.basename(str(patients)),
        )
    for column, why in refused.items():
        report.add_note(f"field {column}", "dropped", f"refused by the privacy guard: {why}")
    for (instrument, link), count in sorted(answers.unmapped_links.items()):
        report.add_note(
            f"linkId {link}",
            "dropped",
            f"answered in {instrument} responses but not used by the mapping",
            n=count,
        )
    notes = []
    if spec.phases.source == "single_phase":
        notes.append(
            f"phases: every patient was given one ongoing stay in phase "
            f"{spec.phases.single_phase} from day 0 (mapping: single_phase)"
        )
    for note in notes:
        report.add_note("file", "note", note)
    return ImportResult(
        table=report.to_frame(),
        tables=tables,
        n_input_rows=verdicts.n_inputs,
        title="FHIR import of " + ", ".join(os.path.basename(str(p)) for p in paths),
        warnings=tuple(notes),
    )


def _check_registry(spec: FhirMapping) -> None:
    registry = get_registry()
    problems = []
    for q in spec.questionnaires:
        if q.items and q.code not in registry.questionnaire_codes:
            problems.append(
                Problem(
                    "mapping",
                    f"questionnaires.{q.code}",
                    f"'{q.code}' is not a questionnaire of the instrument registry",
                    f"use one of {', '.join(registry.questionnaire_codes)}",
                )
            )
        if q.score and q.code not in registry:
            problems.append(
                Problem(
                    "mapping",
                    f"questionnaires.{q.code}.score",
                    f"'{q.code}' is not an instrument of the registry",
                    f"use one of {', '.join(registry.codes)}",
                )
            )
    if problems:
        raise MappingError(problems, source="mapping")


def _patients(
    spec: FhirMapping, patients: PathLike | None, episodes: list[Located], verdicts: Verdicts
) -> PatientList:
    if patients is not None:
        for loc in episodes:
            verdicts.add(
                loc.source,
                loc.row,
                None,
                "row",
                "dropped",
                "EpisodeOfCare not used: the patients come from the patients CSV",
            )
        return patients_from_csv(patients, spec, verdicts)
    if episodes:
        return patients_from_episodes(episodes, spec, verdicts)
    raise UsageError(
        "no patient information: give a patients CSV (--patients) or include "
        "EpisodeOfCare resources"
    )


def _stays(
    spec: FhirMapping,
    plist: PatientList,
    phases: PathLike | None,
    encounters: list[Located],
    verdicts: Verdicts,
) -> pd.DataFrame:
    origin = spec.phases.source
    if origin != "encounters":
        for loc in encounters:
            verdicts.add(
                loc.source,
                loc.row,
                None,
                "row",
                "dropped",
                "Encounter not used: phases come from " + origin.replace("_", " "),
            )
    if origin == "single_phase":
        return single_stays(plist, spec.phases.single_phase or 1)
    if origin == "encounters":
        return stays_from_encounters(encounters, plist, spec, verdicts)
    if phases is None:
        raise UsageError("the mapping takes phases from a CSV (phases: {from: csv}): give --phases")
    return stays_from_csv(phases, plist, verdicts)


def _stay_problems(
    spec: FhirMapping, stays: pd.DataFrame, plist: PatientList, phases: PathLike | None
) -> list[Problem]:
    """Stays that break the contract, named by CSV row or Encounter entry; patients without any."""
    found: list[Problem] = []
    if spec.phases.source != "single_phase":
        if spec.phases.source == "csv":
            table = os.path.basename(str(phases))
            columns = {"start_day": "start_date", "end_day": "end_date"}
        else:
            table = "Encounter"
            columns = {
                "phase": "type",
                "start_day": "period.start",
                "end_day": "period.end",
                "exit_reason": "hospitalization.dischargeDisposition",
            }
        ids = np.array(plist.keys, dtype=object)
        found = stay_problems(
            stays.assign(row0=stays["row"] - 1), plist.table, ids, table=table, columns=columns
        )
        missing = without_stays(plist.table, stays)
        if len(missing):
            found.append(
                Problem(
                    "patients",
                    None,
                    f"{len(missing)} patients have no phase stay",
                    "add their stays, or use phases: {single_phase: 1} in the mapping",
                )
            )
    early = (stays["start_day"] < 0).to_numpy()
    if early.any():
        found.append(
            Problem(
                "phases",
                "start_day",
                f"{int(early.sum())} stays start before enrolment",
                "correct the start date or the enrolment date",
            )
        )
    return found


def _patient_ids(keys: list[str], spec: FhirMapping, secret: str | None) -> np.ndarray:
    series = pd.Series(keys, dtype=object)
    if spec.subjects == "hash" and secret is not None:
        return pseudonymise(series, secret).to_numpy(dtype=object)
    ids = series.map(lambda k: k.split("|", 1)[-1].split("/", 1)[-1])
    problem = record_number_problem("patients", "subject", ids)
    if problem is not None:
        raise CohortError([problem])
    return ids.to_numpy(dtype=object)


def _report(
    verdicts: Verdicts,
    plist: PatientList,
    patient_ids: np.ndarray,
    spec: FhirMapping,
    secret: str | None,
) -> ImportReport:
    report = ImportReport("resources")
    if not verdicts.lines:
        return report
    frame = pd.DataFrame(verdicts.lines)
    known = dict(zip(plist.keys, patient_ids, strict=True))
    keys = frame["key"]
    record = keys.map(known)
    other = record.isna() & keys.notna()
    if other.any():
        if spec.subjects == "hash" and secret is not None:
            record[other] = pseudonymise(keys[other].astype(str), secret).to_numpy(dtype=object)
        else:
            bare = keys[other].astype(str).map(lambda k: k.split("|", 1)[-1].split("/", 1)[-1])
            record[other] = np.where(looks_like_record_number(bare), "<hidden>", bare)
    frame["record"] = record.where(record.notna(), None)
    frame["row"] = frame["row"].astype("Int64")
    frame["n"] = 1
    report.extend(frame[list(REPORT_COLUMNS)])
    return report
