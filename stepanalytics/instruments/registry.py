"""The instrument registry: what each questionnaire is and how it is scored.

The facts live in ``registry.yaml`` next to this module (one entry per
questionnaire and per scored instrument, each threshold with its source);
this module reads them into frozen dataclasses and checks that they hang
together.  Users add their own instruments, or replace one of ours, with a
YAML file of the same shape passed as ``get_registry(extra=path)``.

Two kinds of code appear in the data:

* a *questionnaire* code is what the ``items`` table holds (``pcs``,
  ``dass21``, ``phq9``): item count, item range, safety items;
* an *instrument* code is what the ``assessments`` table holds (``pcs``,
  ``pcs_rumination``, ``dass21_stress``, ``six_mwt``): one scored number.

One questionnaire can feed several instruments (PCS total and subscales,
DASS-21 scales), and an instrument such as ``six_mwt`` has no items at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from stepanalytics.errors import UsageError

METHODS = ("sum", "mean", "percent", "given")
MISSING_RULES = ("none", "prorate", "unanswered_is_zero")


class UnknownInstrumentError(UsageError, KeyError):
    """An instrument or questionnaire code that the registry does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Band:
    """A severity band: a label and the lowest score that belongs to it."""

    label: str
    lower: float


@dataclass(frozen=True)
class RedFlagItem:
    """An item whose answer at or above ``at_least`` is a safety signal."""

    item: int
    at_least: float
    message: str


@dataclass(frozen=True)
class Questionnaire:
    """What clinics enter item by item under one ``items.instrument`` code.

    Attributes
    ----------
    code, name : str
    n_items : int
        Items are numbered 1..n_items as in the published form.
    item_min, item_max : float
        Allowed answer range (inclusive).
    integer_items : bool
        Whether answers must be whole numbers.
    instruments : tuple of str
        The instrument codes scored from this questionnaire.
    red_flags : tuple of RedFlagItem
    item_labels : tuple of str
    """

    code: str
    name: str
    n_items: int
    item_min: float
    item_max: float
    integer_items: bool = True
    instruments: tuple[str, ...] = ()
    red_flags: tuple[RedFlagItem, ...] = ()
    item_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Instrument:
    """One scored outcome measure and everything needed to interpret it.

    Attributes
    ----------
    code, name : str
    questionnaire : str or None
        Items-table code feeding this instrument; None for a measure entered
        only as a score (``six_mwt``).
    items : tuple of int
        Item numbers of the questionnaire that make up the score.
    n_items : int
        ``len(items)``.
    item_min, item_max : float or None
        Answer range of those items (None without items).
    integer_items : bool
    reverse_items : tuple of int
        Items scored as ``item_min + item_max - answer``.
    method : {"sum", "mean", "percent", "given"}
    multiplier : float
        Applied to sums (DASS-21 scales are doubled).
    score_min, score_max : float, float or None
        Score range; ``score_max`` is None when there is no upper limit.
    higher_is_better : bool
    bands : tuple of Band
        Ascending lower bounds; empty when the instrument has no bands.
    mcid_points, mcid_percent : float or None
        Change that matters, in score points and in percent of baseline.
    reliability : float or None
        For the reliable change index (Jacobson & Truax 1991).
    normative_sd : float or None
        A published baseline SD to use instead of the cohort's own.
    clinical_cutoff : float or None
        Boundary between clinical and normal range (see ``is_normal``).
    missing_rule : {"none", "prorate", "unanswered_is_zero"}
    max_missing : int
        Items that may be unanswered under the ``prorate`` rule.
    """

    code: str
    name: str
    questionnaire: str | None
    items: tuple[int, ...]
    n_items: int
    item_min: float | None
    item_max: float | None
    integer_items: bool
    method: str
    score_min: float
    score_max: float | None
    higher_is_better: bool
    reverse_items: tuple[int, ...] = ()
    multiplier: float = 1.0
    bands: tuple[Band, ...] = ()
    bands_source: str | None = None
    mcid_points: float | None = None
    mcid_percent: float | None = None
    mcid_source: str | None = None
    reliability: float | None = None
    reliability_kind: str | None = None
    reliability_source: str | None = None
    normative_sd: float | None = None
    normative_sd_source: str | None = None
    clinical_cutoff: float | None = None
    clinical_cutoff_source: str | None = None
    missing_rule: str = "none"
    max_missing: int = 0
    missing_source: str | None = None
    sources: tuple[str, ...] = ()
    notes: str | None = None

    @property
    def direction(self) -> int:
        """+1 when a higher score is better, -1 when it is worse."""
        return 1 if self.higher_is_better else -1

    def band_of(self, scores: pd.Series | np.ndarray | float) -> pd.Series:
        """Label each score with its severity band (NaN scores and no bands give <NA>).

        Examples
        --------
        >>> phq9 = get_registry().get("phq9")
        >>> list(phq9.band_of([4, 5, 9.5, 27]))
        ['minimal', 'mild', 'mild', 'severe']
        """
        values = pd.Series(np.atleast_1d(np.asarray(scores, dtype=float)))
        if not self.bands:
            return pd.Series(pd.NA, index=values.index, dtype="string")
        lowers = np.array([b.lower for b in self.bands])
        labels = np.array([b.label for b in self.bands], dtype=object)
        position = np.searchsorted(lowers, values.to_numpy(), side="right") - 1
        known = values.notna().to_numpy() & (position >= 0)
        out = np.full(len(values), None, dtype=object)
        out[known] = labels[position[known]]
        return pd.Series(out, index=values.index, dtype="string")

    def is_normal(self, scores: pd.Series | np.ndarray) -> np.ndarray:
        """True where a score lies in the normal (non-clinical) range.

        Where higher is worse the normal range is ``score < clinical_cutoff``;
        where higher is better it is ``score >= clinical_cutoff``.  Raises
        :class:`UsageError` when the instrument has no cut-off.
        """
        if self.clinical_cutoff is None:
            raise UsageError(f"Instrument {self.code!r} has no clinical cut-off in the registry.")
        values = np.asarray(scores, dtype=float)
        if self.higher_is_better:
            return values >= self.clinical_cutoff
        return values < self.clinical_cutoff


@dataclass(frozen=True)
class Registry:
    """The instruments and questionnaires stepanalytics knows.

    Examples
    --------
    >>> reg = get_registry()
    >>> reg.get("odi").score_max
    100.0
    >>> reg.questionnaire("dass21").instruments
    ('dass21_depression', 'dass21_anxiety', 'dass21_stress')
    """

    instruments: Mapping[str, Instrument]
    questionnaires: Mapping[str, Questionnaire]
    version: str = ""

    @property
    def codes(self) -> tuple[str, ...]:
        """Instrument codes (the ``assessments.instrument`` vocabulary)."""
        return tuple(self.instruments)

    @property
    def questionnaire_codes(self) -> tuple[str, ...]:
        """Questionnaire codes (the ``items.instrument`` vocabulary)."""
        return tuple(self.questionnaires)

    def get(self, code: str) -> Instrument:
        """Return the instrument with this code or raise :class:`UnknownInstrumentError`."""
        try:
            return self.instruments[code]
        except KeyError:
            raise UnknownInstrumentError(
                f"Unknown instrument {code!r}. Known instruments: {', '.join(self.codes)}. "
                "Add your own with get_registry(extra='my_instruments.yaml')."
            ) from None

    def questionnaire(self, code: str) -> Questionnaire:
        """Return the questionnaire with this items-table code."""
        try:
            return self.questionnaires[code]
        except KeyError:
            raise UnknownInstrumentError(
                f"Unknown questionnaire {code!r} in the items table. Questionnaires scored from "
                f"items: {', '.join(self.questionnaire_codes)}."
            ) from None

    def __contains__(self, code: object) -> bool:
        return code in self.instruments

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self.instruments.values())

    def __len__(self) -> int:
        return len(self.instruments)

    def to_frame(self) -> pd.DataFrame:
        """One row per instrument with range, direction, MCID, reliability and sources."""
        rows = [
            {
                "instrument": i.code,
                "name": i.name,
                "questionnaire": i.questionnaire,
                "n_items": i.n_items,
                "score_min": i.score_min,
                "score_max": i.score_max,
                "higher_is_better": i.higher_is_better,
                "bands": "; ".join(f"{b.label} >= {b.lower:g}" for b in i.bands),
                "missing_rule": i.missing_rule,
                "max_missing": i.max_missing,
                "mcid_points": i.mcid_points,
                "mcid_percent": i.mcid_percent,
                "reliability": i.reliability,
                "clinical_cutoff": i.clinical_cutoff,
            }
            for i in self
        ]
        return pd.DataFrame(rows)


def get_registry(extra: str | Path | None = None) -> Registry:
    """Return the built-in registry, merged with a user's YAML file when given.

    Parameters
    ----------
    extra : str or Path, optional
        A YAML file with ``questionnaires:`` and/or ``instruments:`` sections
        in the shape of the built-in ``registry.yaml``.  New codes are added;
        an existing code is replaced only if its entry says ``override: true``.

    Returns
    -------
    Registry

    Raises
    ------
    UsageError
        When the file cannot be read or an entry is incomplete or inconsistent;
        the message names the file, the entry and the field.

    Examples
    --------
    >>> reg = get_registry()
    >>> "phq9" in reg and reg.get("pseq").higher_is_better
    True
    """
    if extra is None:
        return _builtin_registry()
    base = _builtin_raw()
    user = _read_yaml(Path(extra))
    merged = _merge(base, user, source=str(extra))
    return _build(merged, source=str(extra))


@lru_cache(maxsize=1)
def _builtin_registry() -> Registry:
    return _build(_builtin_raw(), source="stepanalytics/instruments/registry.yaml")


def _builtin_raw() -> dict[str, Any]:
    text = resources.files("stepanalytics.instruments").joinpath("registry.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"Instrument file {path} does not exist. Give the path of a YAML file.")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise UsageError(f"Instrument file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not ({"instruments", "questionnaires"} & set(data)):
        raise UsageError(
            f"Instrument file {path} must be a mapping with an 'instruments:' and/or "
            "'questionnaires:' section, as in stepanalytics/instruments/registry.yaml."
        )
    return data


def _merge(base: dict[str, Any], user: dict[str, Any], *, source: str) -> dict[str, Any]:
    merged: dict[str, Any] = {
        key: dict(base.get(key) or {}) for key in ("questionnaires", "instruments")
    }
    merged["version"] = f"{base.get('version', '')}+{Path(source).name}"
    for section in ("questionnaires", "instruments"):
        entries = user.get(section) or {}
        if not isinstance(entries, dict):
            raise UsageError(f"{source}: '{section}' must map codes to entries.")
        for code, entry in entries.items():
            if not isinstance(entry, dict):
                raise UsageError(f"{source}: {section}.{code} must be a mapping of fields.")
            if code in merged[section] and not entry.get("override", False):
                raise UsageError(
                    f"{source}: {section}.{code} already exists in the built-in registry. "
                    "Use another code, or add 'override: true' to replace the built-in entry."
                )
            merged[section][str(code)] = {k: v for k, v in entry.items() if k != "override"}
    return merged


# Reading and checking entries ------------------------------------------------


def _build(raw: dict[str, Any], *, source: str) -> Registry:
    from stepanalytics.instruments._entries import parse_instrument, parse_questionnaire

    q_raw = raw.get("questionnaires") or {}
    i_raw = raw.get("instruments") or {}
    questionnaires = {str(c): parse_questionnaire(str(c), e, source) for c, e in q_raw.items()}
    instruments = {
        str(c): parse_instrument(str(c), e, questionnaires, source) for c, e in i_raw.items()
    }
    fed: dict[str, list[str]] = {code: [] for code in questionnaires}
    for instrument in instruments.values():
        if instrument.questionnaire is not None:
            fed[instrument.questionnaire].append(instrument.code)
    linked = {code: _with_instruments(q, tuple(fed[code])) for code, q in questionnaires.items()}
    return Registry(
        instruments=instruments, questionnaires=linked, version=str(raw.get("version", ""))
    )


def _with_instruments(q: Questionnaire, instruments: tuple[str, ...]) -> Questionnaire:
    return Questionnaire(
        code=q.code,
        name=q.name,
        n_items=q.n_items,
        item_min=q.item_min,
        item_max=q.item_max,
        integer_items=q.integer_items,
        instruments=instruments,
        red_flags=q.red_flags,
        item_labels=q.item_labels,
    )
