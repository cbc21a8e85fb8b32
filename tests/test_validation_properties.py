"""Property-based: random damage to a valid cohort never causes a traceback,
and whatever loads is exactly what was written (no silently altered row)."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepanalytics import CohortError, load_cohort
from stepanalytics.contract import DEFAULT_PROTOCOL, TABLES
from stepanalytics.synth import write_synthetic_cohort

NASTY = st.one_of(
    st.sampled_from(
        ["", "NA", "null", "-1", "3.5", "1e400", "nan", "inf", "2025-03-01", "ann@example.org",
         "90+", "female", "ongoing", "0", "TRUE", " 4", "12 High Street", "P0001", "odi", "9" * 12]
    ),
    st.text(max_size=12),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)  # fmt: skip


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prop") / "base"
    write_synthetic_cohort(folder, n_patients=12, n_clinics=2, seed=5)
    return folder


def _text_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {
        name: pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in ("patients", "phases", "assessments", "items", "events")
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_damage_is_refused_or_loaded_unchanged(base_dir: Path, data: st.DataObject) -> None:
    tables = _text_tables(base_dir)
    name = data.draw(st.sampled_from(sorted(tables)))
    frame = tables[name]
    row = data.draw(st.integers(0, len(frame) - 1))
    column = data.draw(st.sampled_from(list(frame.columns)))
    value = data.draw(NASTY)
    frame.loc[row, column] = value
    work = Path(tempfile.mkdtemp())
    try:
        shutil.copy(base_dir / "protocol.yaml", work / "protocol.yaml")
        for table, content in tables.items():
            content.to_csv(work / f"{table}.csv", index=False)
        try:
            cohort = load_cohort(work)
        except CohortError as err:
            assert err.problems, "a refusal must list its problems"
            assert all(p.fix for p in err.problems)
            return
        # Loaded: every row is there, and the damaged cell holds what was written.
        loaded = getattr(cohort, name)
        assert len(cohort.patients) == len(tables["patients"])
        assert len(cohort.phases) == len(tables["phases"])
        assert len(cohort.events) == len(tables["events"])
        assert len(cohort.items) == len(tables["items"])
        if (name, column, value) == ("patients", "protocol", ""):
            # The one documented change: a patient without a protocol follows the
            # default one, and a note says how many do.
            assert loaded.loc[row, column] == DEFAULT_PROTOCOL
            assert any(f"follow '{DEFAULT_PROTOCOL}'" in note for note in cohort.notes)
        elif name in ("patients", "events", "items"):
            _assert_same_value(loaded.loc[row, column], value, name, column)
    finally:
        shutil.rmtree(work)


def _assert_same_value(loaded: object, written: str, table: str, column: str) -> None:
    kinds = {c.name: c.kind for c in TABLES[table]}
    kind = kinds.get(column, "string")
    if written == "":
        assert loaded is None or pd.isna(loaded)
    elif kind in ("int", "number"):
        assert math.isclose(float(loaded), float(written))  # type: ignore[arg-type]
    elif kind == "bool":
        assert str(loaded).lower() == {"1": "true", "0": "false", "y": "true", "n": "false"}.get(
            written.lower(), written.lower().replace("yes", "true").replace("no", "false")
        )
    else:
        assert loaded == written
