"""Put the synthetic programme, measurements and truth together."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stepanalytics.synth import measures, programme

if TYPE_CHECKING:
    from stepanalytics.cohort import Cohort

SYNTH_PROTOCOL_YAML = """\
# Protocols of the synthetic cohort: most clinics run the default programme,
# every third clinic an accelerated one with shorter minimum stays.
protocols:
  default:
    phases:
      - {phase: 1, name: foundation, expected_days: 49}
      - {phase: 2, name: building, expected_days: 70}
      - {phase: 3, name: independence, expected_days: 70}
      - {phase: 4, name: maintenance, expected_days: 105}
    progression:
      - {from_phase: 1, min_days_in_phase: 28, criteria: [{instrument: pseq, op: ">=", value: 30}],
         no_event: {event: flare_up, within_days: 14}}
      - {from_phase: 2, min_days_in_phase: 42, criteria: [{instrument: pseq, op: ">=", value: 35}],
         no_event: {event: flare_up, within_days: 14}}
      - {from_phase: 3, min_days_in_phase: 42, criteria: [{instrument: pseq, op: ">=", value: 40}],
         no_event: {event: flare_up, within_days: 14}}
  accelerated:
    phases:
      - {phase: 1, name: foundation, expected_days: 42}
      - {phase: 2, name: building, expected_days: 56}
      - {phase: 3, name: independence, expected_days: 56}
      - {phase: 4, name: maintenance, expected_days: 90}
    progression:
      - {from_phase: 1, min_days_in_phase: 21, criteria: [{instrument: pseq, op: ">=", value: 30}]}
      - {from_phase: 2, min_days_in_phase: 28, criteria: [{instrument: pseq, op: ">=", value: 35}]}
      - {from_phase: 3, min_days_in_phase: 28, criteria: [{instrument: pseq, op: ">=", value: 40}]}
"""


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the synthetic cohort.

    Parameters
    ----------
    n_patients, n_clinics : int
        Size.
    seed : int
        Everything is deterministic for a seed.
    extract_date : str
        Day of the data extract (ISO date); enrolment runs over the two
        years before it.  Only enrolment months are written.
    n_worse_clinics : int
        Clinics made truly worse: slower improvement, slower progression,
        more dropout.
    items : bool
        Write questionnaire answers item by item (else only given scores).
    """

    n_patients: int = 300
    n_clinics: int = 6
    seed: int = 0
    extract_date: str = "2026-06-30"
    n_worse_clinics: int = 1
    items: bool = True


def synthesize_tables(config: SynthConfig) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Simulate the contract tables and return them with the truth used.

    Examples
    --------
    >>> tables, truth = synthesize_tables(SynthConfig(n_patients=40, n_clinics=3, seed=5))
    >>> sorted(tables)
    ['assessments', 'events', 'items', 'patients', 'phases']
    >>> truth["odi_model"]["weeks"]
    -0.45
    """
    if config.n_patients < 1 or config.n_clinics < 1:
        raise ValueError("n_patients and n_clinics must be at least 1")
    rng = np.random.default_rng(config.seed)
    extract = pd.Timestamp(config.extract_date)
    clinics = programme.simulate_clinics(rng, config.n_clinics, config.n_worse_clinics)
    patients, window = programme.simulate_patients(rng, config.n_patients, clinics, extract)
    effects = measures.patient_effects(rng, config.n_patients)
    slope_z = effects[:, 1] / measures.ODI["sd_slope"]
    phases, last_contact, completion = programme.simulate_phases(
        rng, patients, clinics, window, slope_z
    )
    patients["last_contact_day"] = last_contact
    later_dropout = np.zeros(config.n_patients, dtype=bool)
    later_dropout[phases.loc[phases["exit_reason"] == "dropped_out", "patient_index"]] = True

    clinic_slope = rng.normal(0, measures.ODI["clinic_slope_sd"], config.n_clinics)
    clinic_slope += np.where(clinics["worse"], measures.ODI["worse_clinic_slope"], 0.0)
    clinic_of = patients["clinic_id"].map(
        dict(zip(clinics["clinic_id"], range(config.n_clinics), strict=False))
    )
    patient_clinic_slope = clinic_slope[clinic_of.to_numpy()]

    visits = measures.simulate_visits(rng, last_contact, phases, later_dropout)
    visits = _after_completion(visits, completion, last_contact)
    compensation = patients["compensation_claim"].to_numpy(dtype=float)
    given = measures.simulate_given_scores(rng, visits, effects, patient_clinic_slope, compensation)
    events = measures.simulate_events(
        rng, last_contact, phases, patients["employment"].to_numpy(dtype=object)
    )
    ids = patients["patient_id"].to_numpy(dtype=object)
    tables = {
        "patients": patients,
        "phases": _with_ids(phases, ids),
        "assessments": _with_ids(given, ids),
        "events": _with_ids(events, ids),
    }
    if config.items:
        tables["items"] = _with_ids(measures.simulate_items(rng, visits, effects), ids)
    else:
        tables["assessments"] = pd.concat(
            [tables["assessments"], _pseq_scores(rng, visits, effects, ids)], ignore_index=True
        )
    truth = _truth(config, clinics, clinic_slope)
    return tables, truth


def _after_completion(
    visits: pd.DataFrame, completion: np.ndarray, last_contact: np.ndarray
) -> pd.DataFrame:
    """After completing the programme only the follow-up visit remains."""
    done = completion[visits["patient_index"]]
    day = visits["day"].to_numpy()
    keep = np.isnan(done) | (day <= done)
    followed = ~np.isnan(completion) & (last_contact > np.nan_to_num(completion, nan=0))
    follow_up = pd.DataFrame(
        {
            "patient_index": np.flatnonzero(followed),
            "day": last_contact[followed],
            "kind": "follow_up",
        }
    )
    out = pd.concat([visits[keep], follow_up], ignore_index=True)
    out = out.drop_duplicates(["patient_index", "day"])
    return out.sort_values(["patient_index", "day"]).reset_index(drop=True)


def _pseq_scores(
    rng: np.random.Generator, visits: pd.DataFrame, effects: np.ndarray, ids: np.ndarray
) -> pd.DataFrame:
    items = measures.simulate_items(rng, visits, effects)
    pseq = items[items["instrument"] == "pseq"].dropna(subset=["value"])
    scores = pseq.groupby(["patient_index", "day"], as_index=False)["value"].mean()
    scores["score"] = np.round(scores["value"] * 10)
    scores["instrument"] = "pseq"
    return _with_ids(scores[["patient_index", "day", "instrument", "score"]], ids)


def _with_ids(frame: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    """Replace the internal patient index by the patient id, as the first column."""
    columns = {"patient_id": ids[frame["patient_index"].to_numpy()]}
    columns.update({c: frame[c].array for c in frame.columns if c != "patient_index"})
    return pd.DataFrame(columns)


def _truth(config: SynthConfig, clinics: pd.DataFrame, clinic_slope: np.ndarray) -> dict[str, Any]:
    odi = dict(measures.ODI)
    return {
        "generator": "stepanalytics.synth",
        "config": asdict(config),
        "odi_model": {
            **odi,
            "formula": "odi ~ weeks + compensation_claim + (weeks | patient_id) "
            "+ clinic slope effects; scores rounded and clipped to 0..100",
            "clinic_slope_effects": dict(
                zip(clinics["clinic_id"], np.round(clinic_slope, 6), strict=False)
            ),
        },
        "worse_clinics": clinics.loc[clinics["worse"], "clinic_id"].tolist(),
        "clinic_protocols": dict(zip(clinics["clinic_id"], clinics["protocol"], strict=False)),
        "hazards_per_day": {
            "note": "cause-specific exponential hazards; progression only after the "
            "protocol's minimum days in phase; multiplied by exp(-0.4 z) for progression "
            "and exp(0.5 z) for dropout (z: standardised ODI slope effect), and for "
            "worse clinics by the worse_clinic hazard ratios",
            "min_days_in_phase": programme.MIN_DAYS,
            "progression": list(programme.PROGRESSION_RATE),
            "dropout": list(programme.DROPOUT_RATE),
            "step_down": list(programme.STEP_DOWN_RATE),
            "pause": list(programme.PAUSE_RATE),
            "worse_clinic_progression_hr": programme.WORSE_PROGRESSION_HR,
            "worse_clinic_dropout_hr": programme.WORSE_DROPOUT_HR,
        },
        "visits": {
            "every_days": measures.VISIT_EVERY_DAYS,
            "miss_prob": measures.MISS_PROB,
            "miss_prob_later_dropout": measures.MISS_PROB_LATER_DROPOUT,
            "item_missing_prob": measures.ITEM_MISSING_PROB,
        },
    }


def synthesize_cohort(
    n_patients: int = 300, n_clinics: int = 6, seed: int = 0, **options: Any
) -> Cohort:
    """Simulate and validate a cohort in memory.

    Examples
    --------
    >>> cohort = synthesize_cohort(n_patients=30, n_clinics=2, seed=7)
    >>> cohort.n_patients, len(cohort.clinics)
    (30, 2)
    """
    from stepanalytics import cohort

    config = SynthConfig(n_patients=n_patients, n_clinics=n_clinics, seed=seed, **options)
    tables, _ = synthesize_tables(config)
    return cohort.Cohort.from_tables(
        tables, protocol_text=SYNTH_PROTOCOL_YAML, source=f"synthetic(seed={seed})"
    )


def write_synthetic_cohort(
    folder: str | os.PathLike[str],
    n_patients: int = 300,
    n_clinics: int = 6,
    seed: int = 0,
    *,
    fmt: str = "csv",
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Write a synthetic cohort (tables, protocol.yaml, truth.json) into ``folder``."""
    from stepanalytics.io.tables import write_tables

    config = SynthConfig(n_patients=n_patients, n_clinics=n_clinics, seed=seed, **options)
    tables, truth = synthesize_tables(config)
    return write_tables(
        tables,
        folder,
        fmt=fmt,
        protocol_text=SYNTH_PROTOCOL_YAML,
        extra_files={"truth.json": json.dumps(truth, indent=2, default=_json_default)},
        overwrite=overwrite,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
