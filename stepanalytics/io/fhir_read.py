"""Reading FHIR R4 resources: NDJSON (bulk data export) or Bundle JSON.

Also the small pieces every FHIR importer needs: subject references in one
canonical form, ``dateTime`` values as days, the flat list of a
QuestionnaireResponse's answers (groups and answers nest items), and an
answer's number.

References: FHIR R4 (v4.0.1) QuestionnaireResponse, Bundle and Reference;
FHIR Bulk Data Access IG (NDJSON, one resource per line).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepanalytics.errors import CohortError, Problem

ORDINAL_EXTENSIONS = (
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
)
#: Code systems whose codes say "no answer" rather than giving one.
ABSENT_SYSTEMS = (
    "http://terminology.hl7.org/CodeSystem/data-absent-reason",
    "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
)
_EPOCH = dt.date(1970, 1, 1).toordinal()
_REFERENCE = re.compile(r"(?:^|/)([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


@dataclass(frozen=True)
class Located:
    """A resource and where it was read: file name and 1-based line or Bundle entry."""

    source: str
    row: int
    resource: dict[str, Any]
    unit: str = "line"  # "line" of an NDJSON file or "entry" of a Bundle

    @property
    def kind(self) -> str:
        return str(self.resource.get("resourceType", ""))

    @property
    def where(self) -> str:
        """``bundle.json entry 3`` or ``responses.ndjson line 7``."""
        return f"{self.source} {self.unit} {self.row}"


def read_resources(paths: Iterable[str | os.PathLike[str]]) -> list[Located]:
    """Read every resource of NDJSON and Bundle / single-resource JSON files.

    Raises
    ------
    CohortError
        When a line or file is not JSON, or a line is not a FHIR resource;
        all such lines are listed.
    """
    out: list[Located] = []
    problems: list[Problem] = []
    for path in paths:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise CohortError(
                [
                    Problem(
                        "resources",
                        None,
                        f"{file.name}: cannot read ({exc})",
                        "give NDJSON or JSON files in UTF-8",
                    )
                ]
            ) from exc
        whole = _whole_json(text)
        if whole is not None:
            out.extend(_from_json(file.name, whole))
            continue
        bad: list[int] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                resource = json.loads(line)
            except json.JSONDecodeError:
                bad.append(number)
                continue
            if not isinstance(resource, dict) or "resourceType" not in resource:
                bad.append(number)
                continue
            out.append(Located(file.name, number, resource))
        if bad:
            problems.append(
                Problem(
                    "resources",
                    None,
                    f"{file.name}: lines that are not FHIR resources in JSON",
                    "give NDJSON (one resource per line) or a Bundle; export the data again",
                    rows=tuple(bad[:10]),
                    n_rows=len(bad),
                )
            )
    if problems:
        raise CohortError(problems)
    return out


def _whole_json(text: str) -> Any:
    """The file as one JSON value, or None when it is NDJSON (several lines of JSON)."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        return None


def _from_json(name: str, data: Any) -> Iterator[Located]:
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        full_urls = _patient_full_urls(data)
        for number, entry in enumerate(data.get("entry") or [], start=1):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict):
                yield Located(name, number, _resolve_urns(resource, full_urls), "entry")
    elif isinstance(data, dict) and "resourceType" in data:
        yield Located(name, 1, data, "file")
    else:
        raise CohortError(
            [
                Problem(
                    "resources",
                    None,
                    f"{name}: not a FHIR Bundle or resource",
                    "give NDJSON (one resource per line) or a Bundle",
                )
            ]
        )


def _patient_full_urls(bundle: Mapping[str, Any]) -> dict[str, str]:
    """Bundle-internal ``urn:uuid:`` full URLs of Patient entries -> ``Patient/<id>``."""
    out = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if (
            resource.get("resourceType") == "Patient"
            and entry.get("fullUrl")
            and resource.get("id")
        ):
            out[str(entry["fullUrl"])] = f"Patient/{resource['id']}"
    return out


def _resolve_urns(resource: dict[str, Any], full_urls: Mapping[str, str]) -> dict[str, Any]:
    if not full_urls:
        return resource
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict) and ref.get("reference") in full_urls:
            resource = {**resource, key: {**ref, "reference": full_urls[ref["reference"]]}}
    return resource


def subject_key(reference: Any) -> str | None:
    """One canonical text for a patient reference, or None when there is none.

    ``Patient/123``, ``https://ehr.example.org/fhir/Patient/123`` and
    ``Patient/123/_history/2`` all give ``Patient/123``; a bare ``123`` (as
    written in a patients CSV) gives ``Patient/123``; a logical reference by
    identifier gives ``system|value``.

    Examples
    --------
    >>> subject_key({"reference": "https://ehr.example.org/fhir/Patient/123/_history/2"})
    'Patient/123'
    >>> subject_key("123"), subject_key({"identifier": {"system": "urn:mrn", "value": "77"}})
    ('Patient/123', 'urn:mrn|77')
    """
    if isinstance(reference, dict):
        if reference.get("reference"):
            return subject_key(str(reference["reference"]))
        identifier = reference.get("identifier")
        if isinstance(identifier, dict) and identifier.get("value"):
            return f"{identifier.get('system', '')}|{identifier['value']}"
        return None
    if reference is None:
        return None
    text = str(reference).strip()
    if not text:
        return None
    if text.startswith(("urn:uuid:", "urn:oid:")):
        return text
    found = _REFERENCE.search(text)
    if found:
        return f"{found.group(1)}/{found.group(2)}"
    return f"Patient/{text}"


def epoch_day(value: Any) -> int | None:
    """Days since 1970-01-01 of a FHIR ``date`` / ``dateTime`` with a full date, else None.

    The date is taken as written (local to where it was recorded); the time
    and zone are ignored, since the contract's clock is whole days.

    Examples
    --------
    >>> epoch_day("1970-01-02T23:30:00+01:00"), epoch_day("2024-03"), epoch_day(None)
    (1, None, None)
    """
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10]).toordinal() - _EPOCH
    except ValueError:
        return None


def flatten_answers(
    items: Iterable[Mapping[str, Any]],
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """``(linkId, answers)`` for every item, however deep (groups and answer.item).

    Examples
    --------
    >>> qr_items = [{"linkId": "g1", "item": [{"linkId": "q1", "answer": [{"valueInteger": 2,
    ...     "item": [{"linkId": "q1a", "answer": [{"valueBoolean": True}]}]}]}]}]
    >>> [(link, len(a)) for link, a in flatten_answers(qr_items)]
    [('g1', 0), ('q1', 1), ('q1a', 1)]
    """
    for item in items or []:
        answers = [a for a in item.get("answer") or [] if isinstance(a, dict)]
        yield str(item.get("linkId", "")), answers
        yield from flatten_answers(item.get("item") or [])
        for answer in answers:
            yield from flatten_answers(answer.get("item") or [])


def answer_number(
    answer: Mapping[str, Any], codes: Mapping[str, float], missing_codes: Mapping[str, str]
) -> tuple[float | None, str | None, str | None]:
    """The number an answer stands for.

    Returns
    -------
    (value, missing, error)
        ``value`` when the answer gives one; ``missing`` names the code when
        it says "no answer" (a data-absent-reason or NullFlavor coding, or a
        missing-data code written as text); ``error`` says why the answer
        cannot be read.

    Examples
    --------
    >>> answer_number({"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3"}},
    ...               {"LA6569-3": 1.0}, {})
    (1.0, None, None)
    >>> answer_number({"valueString": "UNK"}, {}, {"UNK": "unknown"})
    (None, 'UNK', None)
    """
    for key in ("valueInteger", "valueDecimal"):
        if key in answer:
            value = answer[key]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value), None, None
            return None, None, f"{key} is not a number"
    if "valueBoolean" in answer:
        return (1.0 if answer["valueBoolean"] is True else 0.0), None, None
    if "valueQuantity" in answer:
        value = (answer["valueQuantity"] or {}).get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None, None
        return None, None, "valueQuantity without a number"
    if "valueCoding" in answer:
        return _coding_number(answer["valueCoding"] or {}, codes)
    if "valueString" in answer:
        text = str(answer["valueString"]).strip()
        if text in missing_codes:
            return None, text, None
        if text in codes:
            return codes[text], None, None
        if _NUMBER.fullmatch(text):
            return float(text), None, None
        return None, None, "valueString that is not a number"
    kinds = [k for k in answer if k.startswith("value")]
    return None, None, f"{kinds[0] if kinds else 'no value[x]'} cannot be read as a number"


def _coding_number(
    coding: Mapping[str, Any], codes: Mapping[str, float]
) -> tuple[float | None, str | None, str | None]:
    system, code = str(coding.get("system", "")), str(coding.get("code", ""))
    if system in ABSENT_SYSTEMS:
        return None, code, None
    for key in (f"{system}|{code}", code):
        if key in codes:
            return codes[key], None, None
    for ext in coding.get("extension") or []:
        if ext.get("url") in ORDINAL_EXTENSIONS:
            value = ext.get("valueDecimal", ext.get("valueInteger"))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value), None, None
    if _NUMBER.fullmatch(code):
        return float(code), None, None
    return None, None, f"answer code {code!r} is not in answer_codes"
