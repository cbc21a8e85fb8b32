"""Mapping files: the small YAML a user writes to say what their export means.

This module holds what REDCap and FHIR mappings share: reading the YAML,
collecting every mistake before failing (:class:`MappingError`), and
typed getters that name the offending key (``instruments.phq9.items``).
The two formats' own sections live in :mod:`stepanalytics.io.redcap_mapping`
and :mod:`stepanalytics.io.fhir_mapping`; ``docs/importing.md`` and
``examples/mappings/`` show complete files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stepanalytics.contract import EVENTS, EXIT_REASONS, SEVERITIES
from stepanalytics.errors import CohortError, Problem
from stepanalytics.io.values import DATE_FORMATS, DEFAULT_MISSING_CODES

_MAPPING_FIX = "correct the mapping file (see docs/importing.md and examples/mappings/)"


@dataclass
class MappingError(CohortError):
    """The mapping file is not valid, or does not fit the export; lists every problem."""

    def render(self) -> str:
        where = f" ({self.source})" if self.source else ""
        n = len(self.problems)
        head = f"The mapping was refused{where}: {n} problem{'s' if n != 1 else ''} found."
        body = [p.render() for p in self.problems]
        return "\n".join([head, *body, "Nothing was imported."])


def read_mapping_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a mapping YAML file into a dict.

    Raises
    ------
    MappingError
        When the file cannot be read or is not a YAML mapping.
    """
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MappingError(
            [Problem("mapping", None, f"cannot read the file: {exc}", _MAPPING_FIX)], source=source
        ) from exc
    if not isinstance(data, dict):
        raise MappingError(
            [Problem("mapping", None, "the file is not a YAML mapping of keys", _MAPPING_FIX)],
            source=source,
        )
    return data


def check_mapping_source(data: Mapping[str, Any], expected: str, what: str, source: str) -> None:
    """Refuse a mapping file written for another kind of source (REDCap vs FHIR).

    Examples
    --------
    >>> check_mapping_source({"source": "fhir"}, "fhir", "FHIR resources", "m.yaml")
    >>> try:
    ...     check_mapping_source({"source": "fhir"}, "redcap", "a REDCap export", "m.yaml")
    ... except MappingError as err:
    ...     print(err.problems[0].message)
    this is a mapping for 'fhir' data, not for a REDCap export
    """
    found = data.get("source", expected)
    if found != expected:
        problem = Problem(
            "mapping",
            "source",
            f"this is a mapping for {found!r} data, not for {what}",
            f"give the {'FHIR' if expected == 'fhir' else 'REDCap'} mapping file",
        )
        raise MappingError([problem], source=source)


class MappingReader:
    """Typed access to a mapping's keys that records problems instead of raising.

    Examples
    --------
    >>> r = MappingReader({"rules": {"duplicates": "sometimes"}})
    >>> r.choice(r.section("rules"), "rules.duplicates", ("keep_last", "error"), "keep_last")
    'keep_last'
    >>> r.problems[0].column
    'rules.duplicates'
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: list[Problem] = []

    def problem(self, key: str, message: str, fix: str = _MAPPING_FIX) -> None:
        self.problems.append(Problem("mapping", key, message, fix))

    def section(self, key: str, parent: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A nested mapping (empty when absent; a problem when not a mapping)."""
        source = self.data if parent is None else parent
        value = source.get(key.rsplit(".", 1)[-1])
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(key, f"must be a mapping of keys, not {type(value).__name__}")
            return {}
        return value

    def text(self, parent: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
        value = parent.get(key.rsplit(".", 1)[-1])
        if value is None:
            if required:
                self.problem(key, "is required")
            return None
        if isinstance(value, (dict, list)):
            self.problem(key, "must be a single name")
            return None
        return str(value).strip()

    def integer(self, parent: Mapping[str, Any], key: str, default: int | None) -> int | None:
        value = parent.get(key.rsplit(".", 1)[-1], default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be a whole number, not {value!r}")
            return default
        return value

    def choice(
        self, parent: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str
    ) -> str:
        value = parent.get(key.rsplit(".", 1)[-1], default)
        if str(value) not in allowed:
            self.problem(key, f"must be one of {', '.join(allowed)}, not {value!r}")
            return default
        return str(value)

    def names(self, parent: Mapping[str, Any], key: str) -> list[str]:
        value = parent.get(key.rsplit(".", 1)[-1])
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(key, "must be a list of names")
            return []
        return [str(v).strip() for v in value]

    def codes(
        self, parent: Mapping[str, Any], key: str, allowed: tuple[str, ...] | None = None
    ) -> dict[str, str] | None:
        """A code -> meaning table; keys become text (quote codes such as "01" in YAML)."""
        value = parent.get(key.rsplit(".", 1)[-1])
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(key, "must map each code to its meaning, e.g. {1: female, 2: male}")
            return None
        out = {str(k).strip(): str(v).strip() for k, v in value.items()}
        if allowed is not None:
            bad = sorted({v for v in out.values() if v not in allowed})
            if bad:
                self.problem(
                    key,
                    f"meanings not in the contract's vocabulary: {', '.join(bad)}",
                    f"use only: {', '.join(allowed)}",
                )
        return out

    def numeric_codes(self, parent: Mapping[str, Any], key: str) -> dict[str, float] | None:
        """A code -> number table (e.g. answer codes to item values)."""
        value = parent.get(key.rsplit(".", 1)[-1])
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(key, "must map each code to a number, e.g. {LA6568-5: 0}")
            return None
        out: dict[str, float] = {}
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.problem(f"{key}.{k}", f"must be a number, not {v!r}")
                continue
            out[str(k).strip()] = float(v)
        return out

    def missing_codes(self) -> dict[str, str]:
        """The ``missing_codes`` section: a list of codes or a code -> meaning table."""
        value = self.data.get("missing_codes")
        if value is None:
            return dict(DEFAULT_MISSING_CODES)
        if isinstance(value, list):
            return {
                str(v).strip(): DEFAULT_MISSING_CODES.get(str(v).strip(), "missing") for v in value
            }
        if isinstance(value, dict):
            return {str(k).strip(): str(v) for k, v in value.items()}
        self.problem("missing_codes", "must be a list of codes or a mapping code -> meaning")
        return dict(DEFAULT_MISSING_CODES)

    def date_format(self) -> str:
        return self.choice(self.data, "date_format", tuple(DATE_FORMATS), "ymd")

    def unknown_keys(self, parent: Mapping[str, Any], prefix: str, known: set[str]) -> None:
        """Flag keys the importer would ignore: a typo must not pass silently."""
        for key in parent:
            if str(key) not in known:
                where = f"{prefix}.{key}" if prefix else str(key)
                self.problem(
                    where,
                    "is not a key this importer knows",
                    f"use one of: {', '.join(sorted(known))}",
                )


#: Vocabularies a mapping may map codes onto.
VOCABULARIES = {"event": EVENTS, "severity": SEVERITIES, "exit_reason": EXIT_REASONS}
