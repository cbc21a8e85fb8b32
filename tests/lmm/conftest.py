"""Fixtures for the fast mixed-model engine: R reference numbers, datasets, cached fits."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepanalytics.lmm import LmmFit, fit_lmm

REFERENCE = Path(__file__).parent / "reference"

# name -> (dataset, response, fixed columns, random columns, patient, clinic); every
# design has an intercept first, as the R formulas in lmm_reference.R.
CASES: dict[str, tuple[str, str, list[str], list[str], str, str | None]] = {
    "sleepstudy_ri": ("sleepstudy", "Reaction", ["Days"], [], "Subject", None),
    "sleepstudy_rs": ("sleepstudy", "Reaction", ["Days"], ["Days"], "Subject", None),
    "dietox_rs": ("dietox", "Weight", ["Time"], ["Time"], "Pig", None),
    "dietox_quad": ("dietox", "Weight", ["Time", "Time2"], ["Time", "Time2"], "Pig", None),
    "nested": ("nested", "score", ["weeks"], ["weeks"], "patient_id", "clinic_id"),
    "singular": ("singular", "score", ["weeks"], ["weeks"], "patient_id", None),
}


@pytest.fixture(scope="session")
def lme4_reference() -> dict[str, Any]:
    """Numbers written by lmm_reference.R (lme4 + lmerTest)."""
    return json.loads((REFERENCE / "lmm_reference.json").read_text())


def load_dataset(name: str) -> pd.DataFrame:
    frame = pd.read_csv(REFERENCE / f"{name}.csv")
    if name == "dietox":
        frame["Time2"] = frame["Time"] ** 2
    return frame


def case_arrays(name: str) -> dict[str, Any]:
    """y, X, Z, groups and clinic of a reference case, with R's term names."""
    dataset, response, fixed, random, patient, clinic = CASES[name]
    frame = load_dataset(dataset)
    ones = np.ones(len(frame))
    return {
        "y": frame[response].to_numpy(float),
        "x": np.column_stack([ones, *(frame[c].to_numpy(float) for c in fixed)]),
        "z": np.column_stack([ones, *(frame[c].to_numpy(float) for c in random)]),
        "groups": frame[patient].astype(str).to_numpy(),
        "clinic": None if clinic is None else frame[clinic].astype(str).to_numpy(),
    }


@pytest.fixture(scope="session")
def reference_fit() -> Callable[[str, bool], LmmFit]:
    """Fit a reference case once per session (REML or ML)."""
    cache: dict[tuple[str, bool], LmmFit] = {}

    def get(name: str, reml: bool) -> LmmFit:
        if (name, reml) not in cache:
            a = case_arrays(name)
            cache[(name, reml)] = fit_lmm(
                a["y"], a["x"], a["z"], a["groups"], clinic=a["clinic"], reml=reml
            )
        return cache[(name, reml)]

    return get


@pytest.fixture(scope="session")
def lmm_case() -> Callable[[str], dict[str, Any]]:
    """The arrays of a reference case, as :func:`case_arrays`."""
    return case_arrays


@pytest.fixture(scope="session")
def lmm_dataset() -> Callable[[str], pd.DataFrame]:
    """A reference dataset as a DataFrame, as :func:`load_dataset`."""
    return load_dataset
