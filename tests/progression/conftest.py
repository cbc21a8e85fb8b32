"""Fixtures of the progression tests: R reference outputs and a synthetic cohort.

The numbers under reference/ come from R (survival, cmprsk), written by
reference/survival_reference.R; R is not needed to run the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from stepanalytics.synth import synthesize_cohort

REFERENCE = Path(__file__).parent / "reference"


class Reference:
    """Reads R outputs (and the data R read) from tests/progression/reference."""

    #: Tolerances of the issue: probabilities absolute, coefficients relative.
    prob_tol = 1e-6
    coef_rtol = 1e-4

    def json(self, name: str) -> Any:
        return json.loads((REFERENCE / name).read_text())

    def csv(self, name: str, **options: Any) -> pd.DataFrame:
        return pd.read_csv(REFERENCE / name, **options)


@pytest.fixture(scope="session")
def ref() -> Reference:
    """Access to the committed R reference outputs."""
    return Reference()


@pytest.fixture(scope="session")
def synthetic_cohort() -> Any:
    """A 300-patient synthetic cohort (read-only)."""
    return synthesize_cohort(n_patients=300, n_clinics=6, seed=2026)


@pytest.fixture(scope="session")
def mgus2() -> pd.DataFrame:
    """survival::mgus2 with the competing-risk time and outcome of the survival vignette."""
    frame = Reference().csv("mgus2.csv")
    frame["outcome"] = frame["event"].map({0: "censored", 1: "pcm", 2: "death"})
    return frame


@pytest.fixture(scope="session")
def rossi() -> pd.DataFrame:
    """The Rossi recidivism data (lifelines' copy) with R's prio_band factor."""
    reference = Reference()
    return reference.csv("rossi.csv").merge(reference.csv("rossi_prio_band.csv"), on="id")
