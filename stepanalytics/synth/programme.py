"""Simulate clinics, patients and their path through the phases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stepanalytics.contract import AGE_BANDS, EMPLOYMENT, PRIMARY_CONDITIONS

# Cause-specific daily hazards out of each phase, after the minimum time in
# phase for progression (exponential beyond it).  Phase 4 "progression" is
# completion of the programme.
MIN_DAYS = {"default": (28, 42, 42, 60), "accelerated": (21, 28, 28, 42)}
PROGRESSION_RATE = (1 / 21, 1 / 28, 1 / 28, 1 / 45)
DROPOUT_RATE = (1 / 700, 1 / 900, 1 / 1100, 1 / 1400)
STEP_DOWN_RATE = (0.0, 1 / 600, 1 / 500, 1 / 700)
PAUSE_RATE = (1 / 1500, 1 / 1500, 1 / 2000, 1 / 2500)
WORSE_PROGRESSION_HR = 0.6
WORSE_DROPOUT_HR = 2.0


@dataclass
class Programme:
    """What the simulation of the programme produced."""

    patients: pd.DataFrame
    phases: pd.DataFrame
    clinic_table: pd.DataFrame
    slope_z: np.ndarray  # standardised patient slope effect, shared with the scores
    later_dropout: np.ndarray  # bool per patient
    completion_day: np.ndarray  # float, NaN when not completed


def simulate_clinics(rng: np.random.Generator, n_clinics: int, n_worse: int) -> pd.DataFrame:
    """Clinic ids, sizes (very unequal), protocol and which clinics are truly worse."""
    weights = rng.lognormal(0.0, 0.9, n_clinics)
    weights /= weights.sum()
    clinic_id = np.array([f"C{i + 1:02d}" for i in range(n_clinics)], dtype=object)
    protocol = np.where(np.arange(n_clinics) % 3 == 2, "accelerated", "default")
    # The worse clinics are among the larger ones, so the difference is
    # detectable; ties broken by order for determinism.
    by_size = np.argsort(-weights, kind="stable")
    worse = np.zeros(n_clinics, dtype=bool)
    worse[by_size[1 : 1 + n_worse] if n_clinics > 2 else by_size[:n_worse]] = n_worse > 0
    return pd.DataFrame(
        {"clinic_id": clinic_id, "weight": weights, "protocol": protocol, "worse": worse}
    )


def simulate_patients(
    rng: np.random.Generator, n: int, clinics: pd.DataFrame, extract: pd.Timestamp
) -> tuple[pd.DataFrame, np.ndarray]:
    """Baseline characteristics and enrolment; returns patients and follow-up window (days)."""
    k = len(clinics)
    clinic_index = rng.choice(k, size=n, p=clinics["weight"].to_numpy())
    clinic_index[: min(n, k)] = np.arange(min(n, k))  # every clinic has a patient
    days_before_extract = rng.integers(0, 730, size=n)
    enrolled = extract - pd.to_timedelta(days_before_extract, unit="D")
    age_band = rng.choice(AGE_BANDS, size=n, p=[0.1, 0.17, 0.22, 0.22, 0.16, 0.09, 0.035, 0.005])
    sex = rng.choice(["female", "male", "other", "unknown"], size=n, p=[0.6, 0.38, 0.01, 0.01])
    employment = rng.choice(EMPLOYMENT, size=n, p=[0.35, 0.1, 0.25, 0.18, 0.04, 0.05, 0.03])
    patients = pd.DataFrame(
        {
            "patient_id": np.array([f"P{i + 1:06d}" for i in range(n)], dtype=object),
            "clinic_id": clinics["clinic_id"].to_numpy()[clinic_index],
            "enrolled_month": enrolled.strftime("%Y-%m").to_numpy(dtype=object),
            "last_contact_day": np.zeros(n, dtype="int64"),
            "protocol": clinics["protocol"].to_numpy()[clinic_index],
            "age_band": age_band.astype(object),
            "sex": sex.astype(object),
            "pain_duration_months": np.round(rng.lognormal(np.log(36), 0.9, n), 1),
            "primary_condition": rng.choice(
                PRIMARY_CONDITIONS, size=n, p=[0.38, 0.14, 0.16, 0.1, 0.04, 0.06, 0.12]
            ).astype(object),
            "compensation_claim": rng.random(n) < 0.2,
            "employment": employment.astype(object),
        }
    )
    return patients, days_before_extract.astype(float)


def simulate_phases(
    rng: np.random.Generator,
    patients: pd.DataFrame,
    clinics: pd.DataFrame,
    window: np.ndarray,
    slope_z: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Semi-Markov walk through phases 1..4 with competing exits and censoring.

    Returns the stays, each patient's last contact day and completion day.
    """
    n = len(patients)
    worse = patients["clinic_id"].map(clinics.set_index("clinic_id")["worse"]).to_numpy(dtype=bool)
    accelerated = (patients["protocol"] == "accelerated").to_numpy()
    # Patients who improve faster progress faster and drop out less.
    prog_mult = np.exp(-0.4 * slope_z) * np.where(worse, WORSE_PROGRESSION_HR, 1.0)
    drop_mult = np.exp(0.5 * slope_z) * np.where(worse, WORSE_DROPOUT_HR, 1.0)
    min_days = np.where(
        accelerated[:, None], np.array(MIN_DAYS["accelerated"]), np.array(MIN_DAYS["default"])
    )

    active = np.ones(n, dtype=bool)
    phase = np.ones(n, dtype=int)
    start = np.zeros(n)
    last_contact = np.zeros(n)
    completion = np.full(n, np.nan)
    rows: list[pd.DataFrame] = []
    for _ in range(40):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        p = phase[idx] - 1
        times = np.column_stack(
            [
                min_days[idx, p]
                + rng.exponential(1.0, idx.size) / (np.take(PROGRESSION_RATE, p) * prog_mult[idx]),
                rng.exponential(1.0, idx.size) / (np.take(DROPOUT_RATE, p) * drop_mult[idx]),
                _exp_or_inf(rng, np.take(STEP_DOWN_RATE, p)),
                _exp_or_inf(rng, np.take(PAUSE_RATE, p)),
            ]
        )
        which = times.argmin(axis=1)
        end = np.floor(start[idx] + times[np.arange(idx.size), which])
        censored = end > window[idx]
        reason = np.array(["progressed", "dropped_out", "stepped_down", "paused"], dtype=object)[
            which
        ]
        reason = np.where((reason == "progressed") & (phase[idx] == 4), "completed", reason)
        reason = np.where(censored, "ongoing", reason)
        end_day = np.where(censored, np.nan, end)
        rows.append(
            pd.DataFrame(
                {
                    "patient_index": idx,
                    "phase": phase[idx],
                    "start_day": start[idx],
                    "end_day": end_day,
                    "exit_reason": reason,
                }
            )
        )
        # What happens next, patient by patient (vectorised by outcome).
        last_contact[idx] = np.where(censored, window[idx], end)
        done = censored | np.isin(reason, ["dropped_out", "completed"])
        completed = idx[reason == "completed"]
        completion[completed] = end[reason == "completed"]
        # Completers come back for a follow-up visit about 90 days later (80%).
        back = rng.random(completed.size) < 0.8
        last_contact[completed] = np.where(
            back,
            np.minimum(end[reason == "completed"] + 90, window[completed]),
            last_contact[completed],
        )
        phase[idx] = np.where(reason == "progressed", phase[idx] + 1, phase[idx])
        phase[idx] = np.where(reason == "stepped_down", phase[idx] - 1, phase[idx])
        gap = np.where(reason == "paused", 7 + np.floor(rng.exponential(14.0, idx.size)), 0.0)
        next_start = end + gap
        # A pause that runs past the extract ends follow-up at the pause.
        lost_in_pause = (reason == "paused") & (next_start > window[idx])
        done |= lost_in_pause
        start[idx] = next_start
        active[idx[done]] = False
    phases = pd.concat(rows, ignore_index=True)
    phases["end_day"] = phases["end_day"].astype("Int64")
    phases["start_day"] = phases["start_day"].astype("int64")
    return phases, last_contact.astype("int64"), completion


def _exp_or_inf(rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
    draws = rng.exponential(1.0, rate.size)
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, draws / np.where(rate > 0, rate, 1.0), np.inf)
