"""QuestionnaireResponse resources to the items and assessments tables.

Stated rules, each reported when it applies:

* only ``completed`` and ``amended`` responses count; ``in-progress``,
  ``stopped`` and ``entered-in-error`` ones are dropped;
* a response whose questionnaire URL is not mapped, whose subject is not an
  imported patient or whose ``authored`` has no full date is dropped;
* the day is the ``authored`` date (as written, time ignored) minus the
  enrolment date; up to ``rules.early_days`` before enrolment counts as day
  0, earlier is dropped;
* every mapped linkId gives an item, unanswered when it has no answer, a
  data-absent or NullFlavor code, a missing-data code as text, or more than
  one answer; answers that cannot be read as numbers, and values outside
  the registry's range, stop the import with the resources listed;
* a response with no mapped answer is dropped;
* two responses for one patient, instrument and day: the one authored
  later is kept (ties: ``amended`` over ``completed``, then the later one in
  the input), or the import stops with ``rules.duplicates: error``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stepanalytics.errors import Problem
from stepanalytics.instruments import Registry
from stepanalytics.io.fhir_mapping import FhirMapping, QuestionnaireSource
from stepanalytics.io.fhir_patients import PatientList, Verdicts
from stepanalytics.io.fhir_read import (
    Located,
    answer_number,
    epoch_day,
    flatten_answers,
    subject_key,
)

COUNTING = ("completed", "amended")


@dataclass
class Response:
    """One usable response, before duplicate handling."""

    loc: Located
    key: str
    code: int
    day: int
    instrument: str
    items: dict[int, float]
    score: float | None
    order: tuple[str, int, int]


@dataclass
class ResponseResults:
    items: pd.DataFrame
    scores: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    unmapped_links: Counter[tuple[str, str]] = field(default_factory=Counter)


def _value_problems(
    errors: dict[tuple[str, str], list[Located]], what: str, fix: str
) -> list[Problem]:
    out = []
    for (instrument, link), locs in sorted(errors.items()):
        sources = sorted({loc.source for loc in locs})
        out.append(
            Problem(
                "QuestionnaireResponse",
                f"{instrument} linkId {link}",
                f"{what} ({', '.join(sources)})",
                fix,
                rows=tuple(loc.row for loc in locs[:10]),
                n_rows=len(locs),
            )
        )
    return out


def read_responses(
    responses: list[Located],
    mapping: FhirMapping,
    patients: PatientList,
    registry: Registry,
    verdicts: Verdicts,
) -> ResponseResults:
    """Usable responses as items and given scores; every response gets a verdict."""
    codes = patients.code_of()
    unreadable: dict[tuple[str, str], list[Located]] = defaultdict(list)
    outside: dict[tuple[str, str], list[Located]] = defaultdict(list)
    unmapped: Counter[tuple[str, str]] = Counter()
    kept: list[Response] = []
    for index, loc in enumerate(responses):
        res = loc.resource
        key = subject_key(res.get("subject"))
        status = str(res.get("status", ""))
        url = str(res.get("questionnaire", ""))
        q = mapping.instrument_of(url) if url else None
        authored = epoch_day(res.get("authored"))
        why = None
        if status not in COUNTING:
            why = f"status {status or '<none>'} (only completed and amended responses count)"
        elif q is None:
            why = f"questionnaire {url or '<none>'} is not in the mapping"
        elif key is None:
            why = "no subject reference"
        elif key not in codes:
            why = "subject is not an imported patient"
        elif authored is None:
            why = "authored has no full date"
        if why is not None or q is None or key is None:
            verdicts.add(loc.source, loc.row, key, "row", "dropped", why or "")
            continue
        code = codes[key]
        day = int(authored - patients.enrol_epoch[code])
        if day < -mapping.early_days:
            verdicts.add(
                loc.source, loc.row, key, "row", "dropped", f"authored {-day} days before enrolment"
            )
            continue
        if day < 0:
            verdicts.add(
                loc.source,
                loc.row,
                key,
                f"instrument {q.code}",
                "recoded",
                f"authored {-day} days before enrolment: counted as day 0",
            )
            day = 0
        items, score = _answers(loc, q, mapping, verdicts, key, unreadable, unmapped)
        _check_range(loc, q, items, score, registry, outside)
        if score is None and all(np.isnan(v) for v in items.values()):
            verdicts.add(
                loc.source, loc.row, key, "row", "dropped", "no mapped item answered and no score"
            )
            continue
        order = (str(res.get("authored", "")), int(status == "amended"), index)
        kept.append(Response(loc, key, code, day, q.code, items, score, order))
    problems = _value_problems(
        unreadable,
        "answers that cannot be read as numbers",
        "map the answer codes with answer_codes, or correct the responses",
    )
    problems += _value_problems(
        outside,
        "values outside the instrument's range in the registry",
        "correct the responses or the answer_codes; values are never clipped",
    )
    kept, dup_problems = _drop_duplicates(kept, mapping, verdicts)
    problems += dup_problems
    for r in kept:
        what = " and ".join(
            w for w, has in (("items", r.items), ("score", r.score is not None)) if has
        )
        verdicts.add(
            r.loc.source, r.loc.row, r.key, "row", "imported", f"gave: {what} of {r.instrument}"
        )
    return ResponseResults(*_frames(kept), problems=problems, unmapped_links=unmapped)


def _answers(
    loc: Located,
    q: QuestionnaireSource,
    mapping: FhirMapping,
    verdicts: Verdicts,
    key: str,
    unreadable: dict[tuple[str, str], list[Located]],
    unmapped: Counter[tuple[str, str]],
) -> tuple[dict[int, float], float | None]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for link, answers in flatten_answers(loc.resource.get("item") or []):
        if link in q.items or link == q.score:
            found[link].extend(answers)
        elif answers:
            unmapped[(q.code, link)] += 1
    items: dict[int, float] = {}
    score: float | None = None
    links = [*q.items, *([q.score] if q.score else [])]
    for link in links:
        answers = found.get(link, [])
        value = np.nan
        if len(answers) > 1:
            verdicts.add(
                loc.source,
                loc.row,
                key,
                f"value {link}",
                "recoded",
                f"{len(answers)} answers to one item: not answered",
            )
        elif answers:
            number, missing, error = answer_number(
                answers[0], q.answer_codes, mapping.missing_codes
            )
            if error is not None:
                unreadable[(q.code, link)].append(loc)
            elif missing is not None:
                verdicts.add(
                    loc.source,
                    loc.row,
                    key,
                    f"value {link}",
                    "recoded",
                    f"missing-data code {missing}: not answered",
                )
            elif number is not None:
                value = number
        if link == q.score:
            score = None if np.isnan(value) else float(value)
        if link in q.items:
            items[q.items[link]] = value
    return items, score


def _check_range(
    loc: Located,
    q: QuestionnaireSource,
    items: dict[int, float],
    score: float | None,
    registry: Registry,
    outside: dict[tuple[str, str], list[Located]],
) -> None:
    if q.items:
        spec = registry.questionnaire(q.code)
        link_of = {number: link for link, number in q.items.items()}
        for number, value in items.items():
            if np.isnan(value):
                continue
            bad = value < spec.item_min or value > spec.item_max
            if spec.integer_items:
                bad = bad or value != round(value)
            if bad:
                outside[(q.code, link_of[number])].append(loc)
    if score is not None and q.score is not None:
        inst = registry.get(q.code)
        upper = np.inf if inst.score_max is None else inst.score_max
        if score < inst.score_min or score > upper:
            outside[(q.code, q.score)].append(loc)


def _drop_duplicates(
    kept: list[Response], mapping: FhirMapping, verdicts: Verdicts
) -> tuple[list[Response], list[Problem]]:
    groups: dict[tuple[int, str, int], list[Response]] = defaultdict(list)
    for r in kept:
        groups[(r.code, r.instrument, r.day)].append(r)
    out: list[Response] = []
    problems: list[Problem] = []
    for group in groups.values():
        group.sort(key=lambda r: r.order)
        winner = group[-1]
        out.append(winner)
        for loser in group[:-1]:
            if mapping.duplicates == "error":
                problems.append(
                    Problem(
                        "QuestionnaireResponse",
                        winner.instrument,
                        f"{loser.loc.source}: two responses of one patient on one day",
                        "remove one, or set rules.duplicates: keep_last",
                        rows=(loser.loc.row, winner.loc.row),
                        n_rows=2,
                    )
                )
                continue
            verdicts.add(
                loser.loc.source,
                loser.loc.row,
                loser.key,
                "row",
                "dropped",
                f"same patient, instrument and day as {winner.loc.where}: "
                "the later response was kept",
            )
    out.sort(key=lambda r: r.order[2])
    return out, problems


def _frames(kept: list[Response]) -> tuple[pd.DataFrame, pd.DataFrame]:
    item_rows = [
        (r.code, r.day, r.instrument, number, value)
        for r in kept
        for number, value in sorted(r.items.items())
    ]
    items = pd.DataFrame(item_rows, columns=["record_code", "day", "instrument", "item", "value"])
    score_rows = [(r.code, r.day, r.instrument, r.score) for r in kept if r.score is not None]
    scores = pd.DataFrame(score_rows, columns=["record_code", "day", "instrument", "score"])
    return items, scores
