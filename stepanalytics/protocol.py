"""Stepped programme protocols: phase names, expected durations, progression rules.

A cohort may carry ``protocol.yaml``.  It describes one protocol (top-level
``phases`` and ``progression``) or several (``protocols: {name: {...}}``);
each patient's ``protocol`` column names the one its clinic runs.  Without a
file, every patient follows :data:`DEFAULT_PROTOCOL_YAML`.

Example file::

    protocols:
      default:
        phases:
          - {phase: 1, name: foundation, expected_days: 42}
          - {phase: 2, name: building, expected_days: 56}
        progression:
          - from_phase: 1
            min_days_in_phase: 28
            criteria:
              - {instrument: pseq, op: ">=", value: 30}
            no_event: {event: flare_up, within_days: 14}
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from stepanalytics.contract import DEFAULT_PROTOCOL, EVENTS
from stepanalytics.errors import CohortError, Problem

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}

DEFAULT_PROTOCOL_YAML = """\
# The default four-step programme. Durations and thresholds are the
# illustrative defaults of stepanalytics; a clinic states its own.
protocols:
  default:
    phases:
      - {phase: 1, name: foundation, expected_days: 42}
      - {phase: 2, name: building, expected_days: 56}
      - {phase: 3, name: independence, expected_days: 56}
      - {phase: 4, name: maintenance, expected_days: 90}
    progression:
      - from_phase: 1
        min_days_in_phase: 28
        criteria:
          - {instrument: pseq, op: ">=", value: 30}
        no_event: {event: flare_up, within_days: 14}
      - from_phase: 2
        min_days_in_phase: 42
        criteria:
          - {instrument: pseq, op: ">=", value: 35}
        no_event: {event: flare_up, within_days: 14}
      - from_phase: 3
        min_days_in_phase: 42
        criteria:
          - {instrument: pseq, op: ">=", value: 40}
        no_event: {event: flare_up, within_days: 14}
"""


@dataclass(frozen=True)
class PhaseSpec:
    """One step of a programme."""

    phase: int
    name: str
    expected_days: int | None = None


@dataclass(frozen=True)
class ScoreCriterion:
    """A score threshold, e.g. PSEQ >= 30, judged on the latest score in the phase."""

    instrument: str
    op: str
    value: float

    def is_met(self, score: float) -> bool:
        """Whether ``score`` meets the threshold.

        Examples
        --------
        >>> ScoreCriterion("pseq", ">=", 30).is_met(31)
        True
        """
        return bool(_OPERATORS[self.op](score, self.value))


@dataclass(frozen=True)
class ProgressionRule:
    """What allows moving up from ``from_phase`` to the next phase."""

    from_phase: int
    min_days_in_phase: int = 0
    criteria: tuple[ScoreCriterion, ...] = ()
    no_event: str | None = None
    no_event_within_days: int | None = None


@dataclass(frozen=True)
class Protocol:
    """A stepped programme: its phases and progression rules.

    Examples
    --------
    >>> p = default_protocols()["default"]
    >>> p.n_phases, p.phase_name(2)
    (4, 'building')
    """

    name: str
    phases: tuple[PhaseSpec, ...]
    progression: dict[int, ProgressionRule] = field(default_factory=dict)

    @property
    def n_phases(self) -> int:
        """Number of phases (K)."""
        return len(self.phases)

    def phase_name(self, phase: int) -> str:
        """Name of phase number ``phase``."""
        for spec in self.phases:
            if spec.phase == phase:
                return spec.name
        raise KeyError(f"protocol {self.name!r} has no phase {phase}")

    @property
    def phase_names(self) -> dict[int, str]:
        """Mapping from phase number to name."""
        return {spec.phase: spec.name for spec in self.phases}


def default_protocols() -> dict[str, Protocol]:
    """The protocols used when a cohort has no ``protocol.yaml``."""
    return parse_protocols(DEFAULT_PROTOCOL_YAML)


def parse_protocols(text: str) -> dict[str, Protocol]:
    """Parse ``protocol.yaml`` text into protocols by name.

    Raises
    ------
    CohortError
        Listing every problem in the file.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _error(f"protocol.yaml is not valid YAML: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise _error("protocol.yaml must hold a mapping with 'phases' or 'protocols'")
    raw = doc.get("protocols", {DEFAULT_PROTOCOL: doc} if "phases" in doc else None)
    if not isinstance(raw, Mapping) or not raw:
        raise _error("protocol.yaml must hold 'phases' or 'protocols: {name: {...}}'")
    problems: list[Problem] = []
    protocols = {}
    for name, body in raw.items():
        try:
            protocols[str(name)] = _parse_one(str(name), body)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(_problem(f"protocol {name!r}: {exc}"))
    if problems:
        raise CohortError(problems, source="protocol.yaml")
    return protocols


def _parse_one(name: str, body: Any) -> Protocol:
    if not isinstance(body, Mapping) or "phases" not in body:
        raise ValueError("needs a 'phases' list")
    phases = tuple(
        PhaseSpec(int(p["phase"]), str(p["name"]), _opt_int(p.get("expected_days")))
        for p in body["phases"]
    )
    numbers = [p.phase for p in phases]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"phases must be numbered 1..K in order, got {numbers}")
    rules: dict[int, ProgressionRule] = {}
    for rule in body.get("progression") or []:
        from_phase = int(rule["from_phase"])
        if from_phase not in numbers:
            raise ValueError(f"progression from phase {from_phase}, which is not a phase")
        criteria = tuple(
            ScoreCriterion(str(c["instrument"]), _check_op(str(c["op"])), float(c["value"]))
            for c in rule.get("criteria") or []
        )
        no_event = rule.get("no_event") or {}
        event = no_event.get("event")
        if event is not None and event not in EVENTS:
            raise ValueError(f"no_event.event {event!r} is not one of {', '.join(EVENTS)}")
        rules[from_phase] = ProgressionRule(
            from_phase,
            int(rule.get("min_days_in_phase", 0)),
            criteria,
            event,
            _opt_int(no_event.get("within_days")),
        )
    return Protocol(name, phases, rules)


def _check_op(op: str) -> str:
    if op not in _OPERATORS:
        raise ValueError(f"operator {op!r} is not one of {', '.join(_OPERATORS)}")
    return op


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _problem(message: str) -> Problem:
    return Problem(
        "protocol",
        None,
        message,
        "see the example in docs/data-contract.md (section protocol.yaml)",
    )


def _error(message: str) -> CohortError:
    return CohortError([_problem(message)], source="protocol.yaml")
