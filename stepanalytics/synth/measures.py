"""Simulate visits, scores, item answers and events on top of the programme."""

from __future__ import annotations

import numpy as np
import pandas as pd

# ODI truth: a linear mixed model in weeks since enrolment.
ODI = {
    "intercept": 44.0,
    "weeks": -0.45,
    "compensation_claim": 6.0,
    "sd_intercept": 11.0,
    "sd_slope": 0.2,
    "corr": -0.3,
    "residual_sd": 5.0,
    "clinic_slope_sd": 0.06,
    "worse_clinic_slope": 0.3,
}
VISIT_EVERY_DAYS = 28
MISS_PROB = 0.15
MISS_PROB_LATER_DROPOUT = 0.35
ITEM_MISSING_PROB = 0.03
FLARE_UP_EVERY_DAYS = 140
ADVERSE_EVENT_EVERY_DAYS = 900
RED_FLAG_EVERY_DAYS = 2500


def patient_effects(rng: np.random.Generator, n: int) -> np.ndarray:
    """Correlated random intercepts and slopes for ODI (n x 2)."""
    sd0, sd1, r = ODI["sd_intercept"], ODI["sd_slope"], ODI["corr"]
    cov = np.array([[sd0**2, r * sd0 * sd1], [r * sd0 * sd1, sd1**2]])
    return rng.multivariate_normal(np.zeros(2), cov, size=n)


def simulate_visits(
    rng: np.random.Generator,
    last_contact: np.ndarray,
    phases: pd.DataFrame,
    later_dropout: np.ndarray,
) -> pd.DataFrame:
    """Visit days per patient: every 4 weeks (jittered), at each phase end; some missed."""
    n = last_contact.size
    n_sched = last_contact // VISIT_EVERY_DAYS + 1
    patient = np.repeat(np.arange(n), n_sched)
    k = np.arange(patient.size) - np.repeat(np.cumsum(n_sched) - n_sched, n_sched)
    day = k * VISIT_EVERY_DAYS + rng.integers(-3, 4, patient.size)
    day = np.where(k == 0, rng.integers(0, 4, patient.size), day)
    day = np.clip(day, 0, last_contact[patient])
    # Patients who drop out fill in nothing on the day they leave.
    ends = phases.dropna(subset=["end_day"])
    ends = ends[ends["exit_reason"] != "dropped_out"]
    visits = pd.DataFrame(
        {
            "patient_index": np.concatenate([patient, ends["patient_index"].to_numpy()]),
            "day": np.concatenate([day, ends["end_day"].to_numpy(dtype="int64")]),
            "kind": np.concatenate(
                [np.where(k == 0, "baseline", "routine"), np.full(len(ends), "phase_end")]
            ),
        }
    )
    visits = visits.drop_duplicates(["patient_index", "day"]).reset_index(drop=True)
    miss = np.where(later_dropout[visits["patient_index"]], MISS_PROB_LATER_DROPOUT, MISS_PROB)
    miss = np.where(visits["kind"] == "baseline", 0.05, miss)
    visits = visits[rng.random(len(visits)) >= miss]
    return visits.sort_values(["patient_index", "day"]).reset_index(drop=True)


def simulate_given_scores(
    rng: np.random.Generator,
    visits: pd.DataFrame,
    effects: np.ndarray,
    clinic_slope: np.ndarray,
    compensation: np.ndarray,
) -> pd.DataFrame:
    """ODI and pain NRS at every visit, six-minute walk at baseline and phase ends."""
    i = visits["patient_index"].to_numpy()
    weeks = visits["day"].to_numpy() / 7.0
    odi = (
        ODI["intercept"]
        + ODI["compensation_claim"] * compensation[i]
        + effects[i, 0]
        + (ODI["weeks"] + effects[i, 1] + clinic_slope[i]) * weeks
        + rng.normal(0, ODI["residual_sd"], i.size)
    )
    pain = (
        6.4
        + 0.12 * effects[i, 0]
        + (-0.04 + 2.0 * effects[i, 1]) * weeks
        + rng.normal(0, 1.0, i.size)
    )
    walk_rows = visits["kind"].isin(["baseline", "phase_end"]).to_numpy()
    walk = (
        360 - 2.5 * effects[i, 0] + (3.0 - 40 * effects[i, 1]) * weeks + rng.normal(0, 35, i.size)
    )
    frames = [
        _scores(visits, "odi", np.clip(np.round(odi), 0, 100)),
        _scores(visits, "nrs_pain", np.clip(np.round(pain), 0, 10)),
        _scores(visits[walk_rows], "six_mwt", np.clip(np.round(walk[walk_rows]), 0, None)),
    ]
    return pd.concat(frames, ignore_index=True)


def _scores(visits: pd.DataFrame, instrument: str, score: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_index": visits["patient_index"].to_numpy(),
            "day": visits["day"].to_numpy(),
            "instrument": instrument,
            "score": score,
        }
    )


def simulate_items(
    rng: np.random.Generator, visits: pd.DataFrame, effects: np.ndarray
) -> pd.DataFrame:
    """Item answers: PSEQ and PHQ-9 at every visit, GAD-7 and ISI at every other,
    PCS at baseline and phase ends."""
    i = visits["patient_index"].to_numpy()
    weeks = visits["day"].to_numpy() / 7.0
    # Standardised patient severity and improvement shared by all questionnaires.
    z0 = effects[i, 0] / ODI["sd_intercept"]
    z1 = effects[i, 1] / ODI["sd_slope"]
    severity = 0.55 + 0.15 * z0 - (0.008 + 0.004 * z1) * weeks  # 0..1, higher is worse
    every_other = (visits.groupby("patient_index").cumcount().to_numpy() % 2) == 0
    phase_points = visits["kind"].isin(["baseline", "phase_end"]).to_numpy()
    blocks = [
        _answers(rng, visits, "pseq", 10, 0, 6, 1.0 - severity, np.ones(i.size, bool)),
        _answers(rng, visits, "phq9", 9, 0, 3, severity - 0.1, np.ones(i.size, bool)),
        _answers(rng, visits, "gad7", 7, 0, 3, severity - 0.15, every_other),
        _answers(rng, visits, "isi", 7, 0, 4, severity, every_other),
        _answers(rng, visits, "pcs", 13, 0, 4, severity - 0.1, phase_points),
    ]
    # PHQ-9 item 9 (self-harm thoughts) is rarer than the mood items: the
    # PHQ-9 block is the second, its item 9 every ninth row.
    phq9 = blocks[1]["value"].to_numpy()
    item9 = phq9[8::9]
    item9[(rng.random(item9.size) < 0.9) & ~np.isnan(item9)] = 0.0
    phq9[8::9] = item9
    blocks[1]["value"] = phq9
    return pd.concat(blocks, ignore_index=True)


def _answers(
    rng: np.random.Generator,
    visits: pd.DataFrame,
    instrument: str,
    n_items: int,
    lo: int,
    hi: int,
    level: np.ndarray,
    keep: np.ndarray,
) -> pd.DataFrame:
    rows = np.flatnonzero(keep)
    latent = np.clip(level[rows], 0.0, 1.0)
    answers = np.clip(
        np.round(lo + (hi - lo) * latent[:, None] + rng.normal(0, 0.7, (rows.size, n_items))),
        lo,
        hi,
    )
    answers[rng.random(answers.shape) < ITEM_MISSING_PROB] = np.nan
    return pd.DataFrame(
        {
            "patient_index": np.repeat(visits["patient_index"].to_numpy()[rows], n_items),
            "day": np.repeat(visits["day"].to_numpy()[rows], n_items),
            "instrument": instrument,
            "item": np.tile(np.arange(1, n_items + 1), rows.size),
            "value": answers.ravel(),
        }
    )


def simulate_events(
    rng: np.random.Generator,
    last_contact: np.ndarray,
    phases: pd.DataFrame,
    employment: np.ndarray,
) -> pd.DataFrame:
    """Flare-ups, adverse events, red flags, pauses, phase-4 contacts and return to work."""
    frames = [
        _poisson_events(rng, last_contact, "flare_up", FLARE_UP_EVERY_DAYS, with_severity=True),
        _poisson_events(
            rng, last_contact, "adverse_event", ADVERSE_EVENT_EVERY_DAYS, with_severity=True
        ),
        _poisson_events(rng, last_contact, "red_flag", RED_FLAG_EVERY_DAYS, with_severity=False),
    ]
    ended = phases.dropna(subset=["end_day"])
    pauses = ended[ended["exit_reason"] == "paused"]
    frames.append(_at(pauses, "safety_pause", pauses["end_day"].to_numpy(dtype="int64")))
    reassessed = ended[ended["exit_reason"] != "dropped_out"]
    frames.append(_at(reassessed, "reassessment", reassessed["end_day"].to_numpy(dtype="int64")))
    # Phase 4: telehealth every 14 days and a booster every 42 days.
    p4 = phases[phases["phase"] == 4]
    p4_end = p4["end_day"].fillna(-1).to_numpy(dtype=float)
    p4_end = np.where(p4_end < 0, last_contact[p4["patient_index"]], p4_end)
    for event, every in (("telehealth_checkin", 14), ("booster_session", 42)):
        frames.append(_periodic(p4, p4_end, event, every))
    # Return to work for some working-age patients on sick leave or unemployed, in phase 3.
    p3 = phases[(phases["phase"] == 3)]
    eligible = np.isin(employment[p3["patient_index"]], ["sick_leave", "unemployed"])
    p3 = p3[eligible & (rng.random(len(p3)) < 0.35)]
    rtw_day = p3["start_day"].to_numpy() + 14
    limit = np.minimum(
        p3["end_day"].fillna(10**9).to_numpy(dtype=float), last_contact[p3["patient_index"]]
    )
    p3 = p3[rtw_day <= limit]
    frames.append(_at(p3, "return_to_work", p3["start_day"].to_numpy(dtype="int64") + 14))
    events = pd.concat(frames, ignore_index=True)
    return events.drop_duplicates(["patient_index", "day", "event"]).sort_values(
        ["patient_index", "day"], kind="stable"
    )


def _poisson_events(
    rng: np.random.Generator,
    last_contact: np.ndarray,
    event: str,
    every: float,
    *,
    with_severity: bool,
) -> pd.DataFrame:
    counts = rng.poisson(last_contact / every)
    patient = np.repeat(np.arange(last_contact.size), counts)
    day = np.floor(rng.random(patient.size) * (last_contact[patient] + 1)).astype("int64")
    severity = (
        rng.choice(
            np.array(["mild", "moderate", "severe"], dtype=object), patient.size, p=[0.6, 0.3, 0.1]
        )
        if with_severity
        else np.full(patient.size, None, dtype=object)
    )
    return pd.DataFrame(
        {"patient_index": patient, "day": day, "event": event, "severity": severity}
    )


def _at(stays: pd.DataFrame, event: str, day: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_index": stays["patient_index"].to_numpy(),
            "day": day,
            "event": event,
            "severity": None,
        }
    )


def _periodic(stays: pd.DataFrame, end: np.ndarray, event: str, every: int) -> pd.DataFrame:
    start = stays["start_day"].to_numpy()
    counts = np.maximum((end - start) // every, 0).astype(int)
    row = np.repeat(np.arange(len(stays)), counts)
    k = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    return pd.DataFrame(
        {
            "patient_index": stays["patient_index"].to_numpy()[row],
            "day": (start[row] + k * every).astype("int64"),
            "event": event,
            "severity": None,
        }
    )
