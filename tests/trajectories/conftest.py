"""Fixtures for the trajectory tests: reference data, R numbers and shared fits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REFERENCE = Path(__file__).parent / "reference"


@pytest.fixture(scope="session")
def lme4_reference() -> dict[str, Any]:
    """Numbers written by reference/lme4_reference.R (lme4 1.1-31, lmerTest 3.1-3)."""
    return json.loads((REFERENCE / "lme4_reference.json").read_text())


@pytest.fixture(scope="session")
def sleepstudy() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "sleepstudy.csv", dtype={"Subject": str})


@pytest.fixture(scope="session")
def dietox() -> pd.DataFrame:
    frame = pd.read_csv(REFERENCE / "dietox.csv")
    frame["Evit"] = frame["Evit"].astype(str)
    return frame


@pytest.fixture(scope="session")
def synthetic_long() -> pd.DataFrame:
    """ODI of a 200-patient synthetic cohort (reference/make_synthetic_cohort.py)."""
    return pd.read_csv(REFERENCE / "synthetic_cohort.csv", dtype={"patient_id": str})


@pytest.fixture(scope="session")
def synth_cohort():  # type: ignore[no-untyped-def]
    """A 150-patient synthetic cohort in memory (seeded)."""
    from stepanalytics.synth import synthesize_cohort

    return synthesize_cohort(n_patients=150, n_clinics=4, seed=5)
