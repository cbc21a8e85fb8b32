"""Registry-wide rules when only some clinics are read (DuckDB, partitioned Parquet, CSV).

The oracle is the whole-registry validation: reading every clinic in turn
must report exactly the problems (table, column, message, rows) that loading
the whole registry reports.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepanalytics import CohortError, load_cohort
from stepanalytics.errors import Problem
from stepanalytics.io import write_duckdb, write_tables
from stepanalytics.io.registry_checks import REGISTRY_NOTE
from stepanalytics.synth import synthesize_cohort
from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML

ROW_TABLES = ("phases", "assessments", "items", "events")
Key = tuple[str, str | None, str]


@lru_cache(maxsize=1)
def _base() -> dict[str, pd.DataFrame]:
    return synthesize_cohort(n_patients=30, n_clinics=3, seed=5).to_tables()


def _tables() -> dict[str, pd.DataFrame]:
    return {name: frame.copy() for name, frame in _base().items()}


def _store(kind: str, tables: dict[str, pd.DataFrame], where: Path) -> Path:
    """Write the tables as a DuckDB file, a folder partitioned by clinic, or CSV."""
    if kind == "duckdb":
        return write_duckdb(tables, where / "r.duckdb", protocol_text=SYNTH_PROTOCOL_YAML)
    if kind == "csv":
        return write_tables(tables, where / "csv", protocol_text=SYNTH_PROTOCOL_YAML)
    folder = where / "registry"
    folder.mkdir()
    (folder / "protocol.yaml").write_text(SYNTH_PROTOCOL_YAML)
    patients = tables["patients"]
    clinic_of = patients.drop_duplicates("patient_id").set_index("patient_id")["clinic_id"]
    for name, frame in tables.items():
        frame = frame.copy()
        if "clinic_id" not in frame.columns:
            frame["clinic_id"] = frame["patient_id"].map(clinic_of)
        pq.write_to_dataset(
            pa.Table.from_pandas(frame, preserve_index=False),
            folder / name,
            partition_cols=["clinic_id"],
        )
    return folder


def _problems(path: Path, **kw: object) -> list[Problem]:
    try:
        load_cohort(path, **kw)  # type: ignore[arg-type]
    except CohortError as err:
        return err.problems
    return []


def _by_rule(problems: list[Problem]) -> dict[Key, set[int]]:
    out: dict[Key, set[int]] = {}
    for p in problems:
        key = (p.table, p.column, p.message.removesuffix(REGISTRY_NOTE))
        out.setdefault(key, set()).update(p.rows)
    return out


def _clinic_by_clinic(path: Path, clinics: list[str]) -> dict[Key, set[int]]:
    union: dict[Key, set[int]] = {}
    for clinic in clinics:
        for key, rows in _by_rule(_problems(path, clinics=[clinic])).items():
            union.setdefault(key, set()).update(rows)
    return union


# -- one rule at a time, the bad row in a clinic not asked for ----------------------


def _duplicate_in_other_clinic(t: dict[str, pd.DataFrame]) -> int:
    first = t["patients"].index[t["patients"]["clinic_id"] == "C01"][0]
    copy = t["patients"].loc[[first]].assign(clinic_id="C02")
    t["patients"] = pd.concat([t["patients"], copy], ignore_index=True)
    return len(t["patients"])  # the copy's 1-based row


def _clinic_emptied(t: dict[str, pd.DataFrame]) -> int:
    row = int(np.flatnonzero(t["patients"]["clinic_id"] == "C02")[0])
    t["patients"].loc[row, "clinic_id"] = None
    return row + 1


def _orphan(table: str):
    def damage(t: dict[str, pd.DataFrame]) -> int:
        copy = t[table].iloc[[0]].assign(patient_id="GONE01")
        t[table] = pd.concat([t[table], copy], ignore_index=True)
        return len(t[table])

    return damage


RULES = [
    ("patients", "patient_id", "appears more than once", _duplicate_in_other_clinic),
    ("patients", "clinic_id", "required value is empty", _clinic_emptied),
    *((t, "patient_id", "the patient is not in patients", _orphan(t)) for t in ROW_TABLES),
]


@pytest.mark.parametrize("kind", ["duckdb", "parquet", "csv"])
@pytest.mark.parametrize(
    ("table", "column", "words", "damage"), RULES, ids=[f"{r[0]}.{r[1]}:{r[2]}" for r in RULES]
)
def test_rule_found_in_a_clinic_not_read(
    kind: str, table: str, column: str, words: str, damage, tmp_path: Path
) -> None:
    tables = _tables()
    stored_row = damage(tables)
    path = _store(kind, tables, tmp_path)
    with pytest.raises(CohortError) as info:
        load_cohort(path, clinics=["C03"])
    found = [p for p in info.value.problems if p.table == table and p.column == column]
    assert len(found) == 1 and words in found[0].message
    assert found[0].message.endswith(REGISTRY_NOTE)
    assert "found in the whole registry" in str(info.value)
    whole = [p for p in _problems(path) if (p.table, p.column) == (table, column)]
    # The rows named are those a whole-registry load names ...
    assert found[0].rows == whole[0].rows and found[0].n_rows == whole[0].n_rows
    # ... which for a DuckDB file or CSV are the stored rows damaged.
    if kind != "parquet":
        assert stored_row in found[0].rows


def test_duplicate_lists_both_copies_with_the_id(tmp_path: Path) -> None:
    tables = _tables()
    copy_row = _duplicate_in_other_clinic(tables)
    pid = tables["patients"].iloc[-1]["patient_id"]
    original = int(np.flatnonzero(tables["patients"]["patient_id"] == pid)[0]) + 1
    db = _store("duckdb", tables, tmp_path)
    problem = next(p for p in _problems(db, clinics=["C03"]) if p.column == "patient_id")
    assert problem.rows == (original, copy_row) and problem.n_rows == 2
    assert problem.examples == (repr(pid),)


def test_identifier_like_examples_are_hidden(tmp_path: Path) -> None:
    tables = _tables()
    copy = tables["events"].iloc[[0]].assign(patient_id="ann@example.org")
    tables["events"] = pd.concat([tables["events"], copy], ignore_index=True)
    db = _store("duckdb", tables, tmp_path)
    problem = next(p for p in _problems(db, clinics=["C01"]) if p.table == "events")
    assert "example.org" not in problem.render()
    assert problem.examples == ("<hidden: looks like personal data>",)


def test_clean_registry_reads_each_clinic(tmp_path: Path) -> None:
    db = _store("duckdb", _tables(), tmp_path)
    cohort = load_cohort(db, clinics=["C02"])
    assert cohort.clinics == ["C02"]
    assert any("checked in the whole registry" in n for n in cohort.notes)


# -- clinic by clinic equals the whole registry, for random damage ------------------


def _damage(tables: dict[str, pd.DataFrame], seed: int, kinds: set[str]) -> list[str]:
    """Damage ``tables`` in place; return the clinics that still have patients."""
    rng = np.random.default_rng(seed)
    patients = tables["patients"]
    chosen = rng.permutation(len(patients))
    blank, twin, late = chosen[:2], chosen[2:4], chosen[4:6]
    if "local" in kinds:  # seen by the clinic's own read too
        for row in late:
            pid, last = patients.loc[row, ["patient_id", "last_contact_day"]]
            hit = np.flatnonzero(tables["assessments"]["patient_id"] == pid)
            if hit.size:
                tables["assessments"].loc[hit[-1], "day"] = int(last) + 3
    if "duplicate" in kinds:
        copies = patients.loc[twin].copy()
        copies["clinic_id"] = copies["clinic_id"].map({"C01": "C02", "C02": "C03", "C03": "C01"})
        patients = pd.concat([patients, copies], ignore_index=True)
    if "no_clinic" in kinds:
        patients.loc[blank, "clinic_id"] = None
    if "orphan" in kinds:
        for i, table in enumerate(rng.choice(ROW_TABLES, size=2, replace=False)):
            rows = rng.choice(len(tables[table]), size=int(rng.integers(1, 3)), replace=False)
            copy = tables[table].iloc[np.sort(rows)].assign(patient_id=f"GONE{i}")
            tables[table] = pd.concat([tables[table], copy], ignore_index=True)
    tables["patients"] = patients
    return sorted(patients["clinic_id"].dropna().unique())


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    kinds=st.sets(st.sampled_from(["local", "duplicate", "no_clinic", "orphan"]), min_size=1),
)
@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_clinic_by_clinic_finds_what_the_whole_registry_finds(
    kind: str, seed: int, kinds: set[str]
) -> None:
    tables = _tables()
    clinics = _damage(tables, seed, kinds)
    with tempfile.TemporaryDirectory() as where:
        path = _store(kind, tables, Path(where))
        whole = _problems(path)
        assert whole, "the damage must be found"
        assert all(p.n_rows == len(p.rows) for p in whole)  # every row is listed
        by_clinic = _clinic_by_clinic(path, clinics)
        expected = _by_rule(whole)
        _drop_follow_ups(by_clinic, expected, partitioned=kind == "parquet")
        assert by_clinic == expected


ORPHAN = "the patient is not in patients"
DUPLICATE = "the key (patient_id) appears more than once"
NO_STAY = ("patients", "patient_id", "the patient has no phase stay")


def _drop_follow_ups(
    by_clinic: dict[Key, set[int]], expected: dict[Key, set[int]], *, partitioned: bool
) -> None:
    """Leave out the known follow-ups of the registry-wide problems (docs/data-contract.md).

    Rows of unknown patients are read by no clinic: the whole registry also
    checks them against the other rules (a copied stay that does not start
    on day 0, ...), clinic by clinic they are reported as orphans only.  In
    a folder partitioned by clinic, a patient's rows live in one clinic's
    partitions, so the other clinic holding a copy of the patient sees it
    without stays.
    """
    orphan_rows = {k[0]: rows for k, rows in expected.items() if k[2] == ORPHAN}
    for key in list(expected):
        if key[2] != ORPHAN and key[0] in orphan_rows:
            expected[key] -= orphan_rows[key[0]]
            if not expected[key]:
                del expected[key]
    if partitioned and NO_STAY in by_clinic:
        extra = by_clinic[NO_STAY] - expected.get(NO_STAY, set())
        assert extra <= by_clinic.get(("patients", "patient_id", DUPLICATE), set())
        by_clinic[NO_STAY] -= extra
        if not by_clinic[NO_STAY]:
            del by_clinic[NO_STAY]
