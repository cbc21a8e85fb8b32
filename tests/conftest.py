"""Shared fixtures: a seeded rng, a small synthetic cohort on disk, figure clean-up.

Property-based tests run the same examples on every run (``derandomize``), so
that a run of `make test` passes or fails on the code alone.  To search for
new examples, run with ``HYPOTHESIS_PROFILE=explore``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from stepanalytics.synth import write_synthetic_cohort

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator, new for every test."""
    return np.random.default_rng(20261128)


@pytest.fixture(scope="session")
def small_cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 120-patient synthetic cohort in CSV, written once per session (read-only!)."""
    folder = tmp_path_factory.mktemp("cohorts") / "small"
    write_synthetic_cohort(folder, n_patients=120, n_clinics=4, seed=11)
    return folder


@pytest.fixture
def cohort_copy(small_cohort_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the small cohort that a test may damage."""
    target = tmp_path / "cohort"
    shutil.copytree(small_cohort_dir, target)
    return target


@pytest.fixture
def read_table():
    """Read a cohort CSV table as text, exactly as written."""

    def _read(folder: Path, name: str) -> pd.DataFrame:
        return pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)

    return _read


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
