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

    The file is read strictly: unknown keys (often typos such as
    ``min_day_in_phase``), wrong types, negative durations, two rules for the
    same phase and rules out of the last phase are all refused, so that a
    protocol never silently means something else than what was written.

    Raises
    ------
    CohortError
        Listing every problem in the file.

    Examples
    --------
    >>> p = parse_protocols("phases: [{phase: 1, name: a}, {phase: 2, name: b}]")
    >>> p["default"].phase_names
    {1: 'a', 2: 'b'}
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _error(f"protocol.yaml is not valid YAML: {exc}") from exc
    problems: list[Problem] = []
    if not isinstance(doc, Mapping):
        raise _error("protocol.yaml must hold a mapping with 'phases' or 'protocols'")
    if "protocols" in doc:
        _known_keys(doc, {"protocols"}, "protocol.yaml", problems)
        raw = doc["protocols"]
        if not isinstance(raw, Mapping) or not raw:
            raise _error("'protocols' must map protocol names to {phases: ..., progression: ...}")
    else:
        raw = {DEFAULT_PROTOCOL: doc}
    protocols = {}
    for name, body in raw.items():
        parsed = _parse_one(str(name), body, problems)
        if parsed is not None:
            protocols[str(name)] = parsed
    if problems:
        raise CohortError(problems, source="protocol.yaml")
    return protocols


def _parse_one(name: str, body: Any, problems: list[Problem]) -> Protocol | None:
    where = f"protocol {name!r}"
    if not isinstance(body, Mapping) or "phases" not in body:
        problems.append(_problem(f"{where} needs a 'phases' list"))
        return None
    _known_keys(body, {"phases", "progression"}, where, problems)
    phases = []
    for k, entry in enumerate(_list(body["phases"], f"{where}: phases", problems)):
        at = f"{where}: phases[{k}]"
        if not _known_keys(entry, {"phase", "name", "expected_days"}, at, problems):
            continue
        number = _whole(entry.get("phase"), f"{at}.phase", problems, minimum=1)
        label = entry.get("name")
        if not isinstance(label, str) or not label:
            problems.append(_problem(f"{at}.name must be a text such as 'foundation'"))
        expected = _whole(
            entry.get("expected_days"), f"{at}.expected_days", problems, optional=True
        )
        if number is not None and isinstance(label, str) and label:
            phases.append(PhaseSpec(number, label, expected))
    numbers = [p.phase for p in phases]
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(_problem(f"{where}: phases must be numbered 1..K in order, got {numbers}"))
        return None
    rules: dict[int, ProgressionRule] = {}
    for k, rule in enumerate(
        _list(body.get("progression") or [], f"{where}: progression", problems)
    ):
        parsed = _parse_rule(rule, f"{where}: progression[{k}]", len(numbers), problems)
        if parsed is None:
            continue
        if parsed.from_phase in rules:
            problems.append(
                _problem(f"{where}: two progression rules from phase {parsed.from_phase}")
            )
        rules[parsed.from_phase] = parsed
    return Protocol(name, tuple(phases), rules)


def _parse_rule(
    rule: Any, at: str, n_phases: int, problems: list[Problem]
) -> ProgressionRule | None:
    allowed = {"from_phase", "min_days_in_phase", "criteria", "no_event"}
    if not _known_keys(rule, allowed, at, problems):
        return None
    start = len(problems)
    from_phase = _whole(rule.get("from_phase"), f"{at}.from_phase", problems, minimum=1)
    if from_phase is not None and from_phase >= n_phases:
        problems.append(
            _problem(
                f"{at}.from_phase is {from_phase}, but phase {n_phases} is the last phase: "
                "there is no phase to move up to"
            )
        )
    min_days = _whole(rule.get("min_days_in_phase", 0), f"{at}.min_days_in_phase", problems)
    criteria = []
    for j, c in enumerate(_list(rule.get("criteria") or [], f"{at}.criteria", problems)):
        cat = f"{at}.criteria[{j}]"
        if not _known_keys(c, {"instrument", "op", "value"}, cat, problems):
            continue
        instrument, op, value = c.get("instrument"), c.get("op"), c.get("value")
        if not isinstance(instrument, str):
            problems.append(_problem(f"{cat}.instrument must be an instrument code such as pseq"))
        if op not in _OPERATORS:
            problems.append(_problem(f"{cat}.op {op!r} is not one of {', '.join(_OPERATORS)}"))
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            problems.append(_problem(f"{cat}.value must be a number, not {value!r}"))
        elif isinstance(instrument, str) and op in _OPERATORS:
            criteria.append(ScoreCriterion(instrument, str(op), float(value)))
    no_event = rule.get("no_event") or {}
    event, within = None, None
    if _known_keys(no_event, {"event", "within_days"}, f"{at}.no_event", problems) and no_event:
        event = no_event.get("event")
        if event not in EVENTS:
            problems.append(
                _problem(f"{at}.no_event.event {event!r} is not one of {', '.join(EVENTS)}")
            )
        within = _whole(no_event.get("within_days"), f"{at}.no_event.within_days", problems)
    if len(problems) > start or from_phase is None or min_days is None:
        return None
    return ProgressionRule(from_phase, min_days, tuple(criteria), event, within)


def _known_keys(value: Any, allowed: set[str], where: str, problems: list[Problem]) -> bool:
    """True when ``value`` is a mapping with only ``allowed`` keys (problems noted)."""
    if not isinstance(value, Mapping):
        problems.append(_problem(f"{where} must be a mapping (key: value), not {value!r}"))
        return False
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        problems.append(
            _problem(
                f"{where}: unknown key(s) {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(allowed))}; check the spelling)"
            )
        )
    return True


def _list(value: Any, where: str, problems: list[Problem]) -> list[Any]:
    if not isinstance(value, list):
        problems.append(_problem(f"{where} must be a list (lines starting with '- ')"))
        return []
    return value


def _whole(
    value: Any, where: str, problems: list[Problem], *, minimum: int = 0, optional: bool = False
) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(_problem(f"{where} must be a whole number, not {value!r}"))
        return None
    if value < minimum:
        problems.append(_problem(f"{where} must be at least {minimum}, not {value}"))
        return None
    return value


def _problem(message: str) -> Problem:
    return Problem(
        "protocol",
        None,
        message,
        "see the example in docs/data-contract.md (section protocol.yaml)",
    )


def _error(message: str) -> CohortError:
    return CohortError([_problem(message)], source="protocol.yaml")
