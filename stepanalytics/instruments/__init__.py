"""Instruments: the registry, item scoring, checks and clinically meaningful change.

Re-exports only; each idea lives in its own module:

* :mod:`~stepanalytics.instruments.registry` what each instrument is (data in
  ``registry.yaml``), :func:`get_registry`;
* :mod:`~stepanalytics.instruments.checks` scores and item answers against the
  registry, as :class:`~stepanalytics.errors.Problem` records;
* :mod:`~stepanalytics.instruments.scoring` :func:`score_items`;
* :mod:`~stepanalytics.instruments.change` baselines, follow-ups, MCID
  responders and the reliable change index.
"""

from stepanalytics.instruments.change import ChangeResult, measure_change
from stepanalytics.instruments.checks import check_assessment_scores, check_item_values
from stepanalytics.instruments.registry import (
    Band,
    Instrument,
    Questionnaire,
    Registry,
    UnknownInstrumentError,
    get_registry,
)
from stepanalytics.instruments.scoring import ScoringResult, describe_missing_rule, score_items

__all__ = [
    "Band",
    "ChangeResult",
    "Instrument",
    "Questionnaire",
    "Registry",
    "ScoringResult",
    "UnknownInstrumentError",
    "check_assessment_scores",
    "check_item_values",
    "describe_missing_rule",
    "get_registry",
    "measure_change",
    "score_items",
]
