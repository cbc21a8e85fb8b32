"""Turn registry YAML entries into checked dataclasses.

Every problem names the file, the entry and the field, because the person
reading the message is usually editing their own instrument file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepanalytics.errors import UsageError
from stepanalytics.instruments.registry import (
    METHODS,
    MISSING_RULES,
    Band,
    Instrument,
    Questionnaire,
    RedFlagItem,
)


class _Entry:
    """Typed access to one YAML mapping, with messages that say where."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise UsageError(f"{where} must be a mapping of fields.")
        self.data = data
        self.where = where

    def fail(self, field: str, what: str) -> UsageError:
        return UsageError(f"{self.where}.{field}: {what}")

    def has(self, field: str) -> bool:
        return self.data.get(field) is not None

    def text(self, field: str, default: str | None = None) -> str | None:
        value = self.data.get(field, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(field, f"expected text, got {value!r}.")
        return " ".join(str(value).split())

    def required_text(self, field: str) -> str:
        value = self.text(field)
        if not value:
            raise self.fail(field, "is required.")
        return value

    def number(self, field: str, *, required: bool = False) -> float | None:
        value = self.data.get(field)
        if value is None:
            if required:
                raise self.fail(field, "is required (a number).")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(field, f"expected a number, got {value!r}.")
        return float(value)

    def required_number(self, field: str) -> float:
        value = self.number(field, required=True)
        return 0.0 if value is None else value  # number() raised already when missing

    def flag(self, field: str, default: bool) -> bool:
        value = self.data.get(field, default)
        if not isinstance(value, bool):
            raise self.fail(field, f"expected true or false, got {value!r}.")
        return value

    def int_list(self, field: str) -> tuple[int, ...]:
        value = self.data.get(field) or []
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise self.fail(field, f"expected a list of item numbers, got {value!r}.")
        return tuple(value)

    def sub(self, field: str) -> _Entry | None:
        value = self.data.get(field)
        return None if value is None else _Entry(value, f"{self.where}.{field}")


def parse_questionnaire(code: str, data: Any, source: str) -> Questionnaire:
    """Read and check one ``questionnaires:`` entry."""
    entry = _Entry(data, f"{source}: questionnaires.{code}")
    n_items = entry.required_number("n_items")
    item_min = entry.required_number("item_min")
    item_max = entry.required_number("item_max")
    if n_items < 1 or n_items != int(n_items):
        raise entry.fail("n_items", f"must be a whole number >= 1, got {n_items:g}.")
    if item_max <= item_min:
        raise entry.fail("item_max", "must be greater than item_min.")
    flags = []
    for k, raw_flag in enumerate(data.get("red_flags") or []):
        flag = _Entry(raw_flag, f"{entry.where}.red_flags[{k}]")
        item = flag.required_number("item")
        at_least = flag.required_number("at_least")
        if not 1 <= item <= n_items:
            raise flag.fail("item", f"must lie in 1..{int(n_items)}.")
        flags.append(RedFlagItem(int(item), at_least, flag.required_text("message")))
    labels = data.get("item_labels") or []
    if labels and len(labels) != n_items:
        raise entry.fail("item_labels", f"needs {int(n_items)} labels, got {len(labels)}.")
    return Questionnaire(
        code=code,
        name=entry.required_text("name"),
        n_items=int(n_items),
        item_min=item_min,
        item_max=item_max,
        integer_items=entry.flag("integer", True),
        red_flags=tuple(flags),
        item_labels=tuple(str(x) for x in labels),
    )


def parse_instrument(
    code: str, data: Any, questionnaires: Mapping[str, Questionnaire], source: str
) -> Instrument:
    """Read and check one ``instruments:`` entry against its questionnaire."""
    entry = _Entry(data, f"{source}: instruments.{code}")
    method = entry.required_text("method")
    if method not in METHODS:
        raise entry.fail("method", f"must be one of {', '.join(METHODS)}, got {method!r}.")
    q_code = entry.text("questionnaire")
    items = entry.int_list("items")
    questionnaire = None
    if method == "given":
        if q_code is not None or items:
            raise entry.fail("method", "'given' instruments take no questionnaire and no items.")
    else:
        if q_code is None:
            raise entry.fail("questionnaire", f"is required for method {method!r}.")
        if q_code not in questionnaires:
            raise entry.fail("questionnaire", f"{q_code!r} is not defined under questionnaires.")
        questionnaire = questionnaires[q_code]
        if not items:
            raise entry.fail("items", "list the item numbers that make up the score.")
        bad = [i for i in items if not 1 <= i <= questionnaire.n_items] + [
            i for i in set(items) if items.count(i) > 1
        ]
        if bad:
            raise entry.fail("items", f"items must be distinct and in 1..{questionnaire.n_items}.")
    reverse = entry.int_list("reverse_items")
    if any(i not in items for i in reverse):
        raise entry.fail("reverse_items", "every reverse-keyed item must be one of 'items'.")

    score_min = entry.required_number("score_min")
    score_max = entry.number("score_max")
    if score_max is not None and score_max <= score_min:
        raise entry.fail("score_max", "must be greater than score_min.")
    multiplier = entry.number("multiplier") or 1.0
    if questionnaire is not None:
        _check_score_range(
            entry, method, multiplier, len(items), questionnaire, score_min, score_max
        )

    bands = _parse_bands(entry, score_min, score_max)
    missing = entry.sub("missing") or _Entry({}, f"{entry.where}.missing")
    rule = missing.text("rule", "none") or "none"
    if rule not in MISSING_RULES:
        raise missing.fail("rule", f"must be one of {', '.join(MISSING_RULES)}, got {rule!r}.")
    max_missing = int(missing.number("max_missing") or 0)
    if rule == "prorate" and not 1 <= max_missing < max(len(items), 1):
        raise missing.fail("max_missing", f"must lie in 1..{len(items) - 1} for 'prorate'.")
    if rule != "prorate" and max_missing:
        raise missing.fail("max_missing", "only applies to the 'prorate' rule.")

    mcid = entry.sub("mcid") or _Entry({}, f"{entry.where}.mcid")
    mcid_points, mcid_percent = mcid.number("points"), mcid.number("percent")
    if (mcid_points is not None or mcid_percent is not None) and not mcid.has("source"):
        raise mcid.fail("source", "a change that matters needs its literature source.")
    reliability = entry.sub("reliability") or _Entry({}, f"{entry.where}.reliability")
    r_value = reliability.number("value")
    if r_value is not None:
        if not 0 < r_value < 1:
            raise reliability.fail("value", f"must lie strictly between 0 and 1, got {r_value:g}.")
        if not reliability.has("source"):
            raise reliability.fail("source", "a reliability needs its literature source.")
    normative = entry.sub("normative_sd") or _Entry({}, f"{entry.where}.normative_sd")
    sd_value = normative.number("value")
    if sd_value is not None and (sd_value <= 0 or not normative.has("source")):
        raise normative.fail("value", "must be a positive number with a 'source'.")
    cutoff = entry.sub("clinical_cutoff") or _Entry({}, f"{entry.where}.clinical_cutoff")
    cutoff_value = cutoff.number("value")
    if cutoff_value is not None and not cutoff.has("source"):
        raise cutoff.fail("source", "a clinical cut-off needs its literature source.")

    return Instrument(
        code=code,
        name=entry.required_text("name"),
        questionnaire=q_code,
        items=items,
        n_items=len(items),
        item_min=None if questionnaire is None else questionnaire.item_min,
        item_max=None if questionnaire is None else questionnaire.item_max,
        integer_items=True if questionnaire is None else questionnaire.integer_items,
        method=method,
        score_min=score_min,
        score_max=score_max,
        higher_is_better=entry.flag("higher_is_better", False),
        reverse_items=reverse,
        multiplier=multiplier,
        bands=bands,
        bands_source=entry.text("bands_source"),
        mcid_points=mcid_points,
        mcid_percent=mcid_percent,
        mcid_source=mcid.text("source"),
        reliability=r_value,
        reliability_kind=reliability.text("kind"),
        reliability_source=reliability.text("source"),
        normative_sd=sd_value,
        normative_sd_source=normative.text("source"),
        clinical_cutoff=cutoff_value,
        clinical_cutoff_source=cutoff.text("source"),
        missing_rule=rule,
        max_missing=max_missing,
        missing_source=missing.text("source"),
        sources=tuple(" ".join(str(s).split()) for s in data.get("sources") or ()),
        notes=entry.text("notes"),
    )


def _check_score_range(
    entry: _Entry,
    method: str,
    multiplier: float,
    n_items: int,
    q: Questionnaire,
    score_min: float,
    score_max: float | None,
) -> None:
    """The stated range must be the range the method produces from the items."""
    if method == "sum":
        expected = (n_items * q.item_min * multiplier, n_items * q.item_max * multiplier)
    elif method == "mean":
        expected = (q.item_min, q.item_max)
    else:  # percent
        expected = (0.0, 100.0)
    if (score_min, score_max) != expected:
        raise entry.fail(
            "score_min",
            f"score range {score_min:g}..{score_max} does not match what {method!r} gives from "
            f"{n_items} items of {q.item_min:g}..{q.item_max:g}: {expected[0]:g}..{expected[1]:g}.",
        )


def _parse_bands(entry: _Entry, score_min: float, score_max: float | None) -> tuple[Band, ...]:
    raw = entry.data.get("bands") or []
    bands: list[Band] = []
    for k, pair in enumerate(raw):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or isinstance(pair[1], bool)
            or not isinstance(pair[1], (int, float))
        ):
            raise entry.fail(f"bands[{k}]", f"expected [label, lower bound], got {pair!r}.")
        bands.append(Band(pair[0], float(pair[1])))
    lowers = [b.lower for b in bands]
    if bands and (lowers[0] != score_min or lowers != sorted(set(lowers))):
        raise entry.fail(
            "bands", "lower bounds must rise strictly and the first must be score_min."
        )
    if bands and score_max is not None and lowers[-1] > score_max:
        raise entry.fail("bands", "a band starts above score_max.")
    return tuple(bands)
