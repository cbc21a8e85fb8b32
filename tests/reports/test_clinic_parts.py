"""Clinic-by-clinic tables computed one clinic at a time equal those of the whole cohort.

A report about one clinic of a registry never holds the other clinics'
patients: their tables are built clinic by clinic
(:mod:`stepanalytics.reports.clinic_parts`).  Each table must be exactly the
one the whole cohort gives, or reports would change with the storage format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from stepanalytics.instruments.change import measure_change
from stepanalytics.instruments.change_parts import (
    baseline_moments,
    pooled_baseline_sd,
    rescore_change,
)
from stepanalytics.io import write_duckdb
from stepanalytics.qi.adherence import protocol_adherence
from stepanalytics.qi.benchmark import benchmark_outcome
from stepanalytics.qi.completeness import completeness_funnel
from stepanalytics.qi.indicators import outcome_indicators
from stepanalytics.qi.safety import safety_rates
from stepanalytics.reports.clinic_parts import category_counts
from stepanalytics.reports.context import restrict_to_period
from stepanalytics.reports.period import parse_period
from stepanalytics.reports.shared import compute_peer_results
from stepanalytics.synth import synthesize_cohort
from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML


@pytest.fixture(scope="module")
def cohort():
    # Unequal clinics, some of which never reach the last phase in a short period.
    return synthesize_cohort(n_patients=360, n_clinics=5, seed=31)


def _equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pdt.assert_frame_equal(
        a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False, rtol=1e-9
    )


@pytest.mark.parametrize(
    ("period", "part_patients"),
    [(None, 1), ("2025", 1), (None, 150)],  # each clinic alone; clinics in groups
)
def test_every_table_equals_the_whole_cohort(cohort, period, part_patients) -> None:
    chosen = parse_period(period)
    whole = restrict_to_period(cohort, chosen)
    peers = compute_peer_results(cohort, period=chosen, part_patients=part_patients)
    codes = list(peers.instruments)
    assert set(codes) >= {"odi", "pseq", "phq9"}

    funnel = completeness_funnel(whole, instruments=codes)
    _equal(peers.completeness.table, funnel.table)
    assert peers.completeness.warnings == funnel.warnings

    indicators = outcome_indicators(
        whole, instruments=codes, by=("clinic_id",), follow_up="phase_end"
    )
    _equal(peers.outcomes.table, indicators.table)
    assert peers.outcomes.warnings == indicators.warnings
    assert peers.outcomes.table["deteriorated"].sum() > 0  # the pooled SD was used

    _equal(peers.adherence.table, protocol_adherence(whole).table)
    assert peers.adherence.stays.empty  # no patient-level rows leave a clinic

    safety = safety_rates(whole)
    _equal(peers.safety.table, safety.table)
    assert peers.safety.warnings == safety.warnings

    for column in ("age_band", "sex", "compensation_claim"):
        expected = category_counts(whole.patients[column])
        got = peers.category_totals(column)
        assert dict(got) == {str(k): int(v) for k, v in expected.items()}
    assert peers.n_patients == whole.n_patients

    compared = 0
    for comparison in peers.comparisons:
        direct = benchmark_outcome(
            whole, instrument=comparison.instrument, follow_up=peers.outcome_day
        )
        assert comparison.problem is None
        _equal(comparison.result.table, direct.table)
        assert comparison.result.warnings == direct.warnings
        compared += 1
    assert compared >= 3


@pytest.mark.parametrize("workers", [1, 2])  # in this process; in two worker processes
def test_a_stored_registry_gives_the_same_tables(cohort, tmp_path: Path, workers) -> None:
    db = write_duckdb(cohort.to_tables(), tmp_path / "r.duckdb", protocol_text=SYNTH_PROTOCOL_YAML)
    calls: list[tuple[int, int]] = []
    from_disk = compute_peer_results(
        db, part_patients=100, workers=workers, on_part=lambda *done: calls.append(done)
    )
    n_parts = calls[-1][1]
    assert calls == [(k, n_parts) for k in range(1, n_parts + 1)] and n_parts >= 3
    in_memory = compute_peer_results(cohort, part_patients=cohort.n_patients)  # one part
    for name in ("completeness", "outcomes", "adherence", "safety"):
        _equal(getattr(from_disk, name).table, getattr(in_memory, name).table)
    _equal(from_disk.patients, in_memory.patients)
    _equal(from_disk.categories, in_memory.categories)


def test_pooled_baseline_sd_equals_the_sd_of_every_baseline(cohort) -> None:
    codes = ["odi", "phq9", "pseq"]
    parts = [
        baseline_moments(cohort.subset(clinics=[c]), instruments=codes) for c in cohort.clinics
    ]
    pooled = pooled_baseline_sd(pd.concat(parts, ignore_index=True))
    whole = measure_change(cohort, instruments=codes).thresholds.set_index("instrument")
    for code in codes:
        assert pooled[code] == pytest.approx(whole.at[code, "sd_baseline"], rel=1e-12)


def test_rescoring_parts_with_the_pooled_sd_equals_scoring_the_whole(cohort) -> None:
    codes = ["odi", "phq9"]
    whole = measure_change(cohort, follow_up="phase_end", instruments=codes)
    sds = dict(zip(whole.thresholds["instrument"], whole.thresholds["sd_baseline"], strict=True))
    parts = [
        measure_change(cohort.subset(clinics=[c]), follow_up="phase_end", instruments=codes)
        for c in cohort.clinics
    ]
    pairs, _ = rescore_change(pd.concat([p.patients for p in parts]), baseline_sd=sds)
    _equal(pairs, whole.patients)
    # Each clinic alone uses its own SD: without the pooled SD the categories would differ.
    alone = pd.concat([p.patients for p in parts]).sort_values(["patient_id", "instrument"])
    assert not np.array_equal(
        alone["rci"].to_numpy(dtype=float), whole.patients["rci"].to_numpy(dtype=float)
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_problems_of_every_part_are_listed_together(cohort, tmp_path: Path, workers) -> None:
    from stepanalytics.errors import CohortError

    tables = cohort.to_tables()
    scores = tables["assessments"].copy()
    clinic_of = cohort.patients.set_index("patient_id")["clinic_id"]
    first, last = cohort.clinics[0], cohort.clinics[-1]
    odi = scores["instrument"] == "odi"
    broken = [
        scores.index[odi & (scores["patient_id"].map(clinic_of) == clinic)][0]
        for clinic in (first, last)
    ]
    scores.loc[broken, "score"] = 400.0
    orphan = scores.iloc[[0]].assign(patient_id="P99999")
    tables["assessments"] = pd.concat([scores, orphan], ignore_index=True)
    db = write_duckdb(tables, tmp_path / "bad.duckdb", protocol_text=SYNTH_PROTOCOL_YAML)
    with pytest.raises(CohortError) as info:  # the two bad rows are in different parts
        compute_peer_results(db, part_patients=1, workers=workers)
    problems = {(p.table, p.column): p for p in info.value.problems}
    assert set(problems) == {("assessments", "score"), ("assessments", "patient_id")}
    assert problems[("assessments", "score")].rows == tuple(sorted(i + 1 for i in broken))
    assert problems[("assessments", "patient_id")].n_rows == 1  # found once, not once a part
