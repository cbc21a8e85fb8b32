"""Clinic-by-clinic tables of unusual cohorts, computed a part at a time, equal the whole cohort's.

:mod:`tests.reports.test_clinic_parts` checks an ordinary synthetic cohort.
Here the cohort is edited by hand into the shapes a registry really has: a
clinic whose patients were never measured, a clinic without events, no
events table, scores given only as item answers (or only as scores), a
clinic with one patient, a registry of one clinic, periods in which few
clinics enrolled, outcomes nobody was measured with.  Each time the peer
results, read part by part (from memory or from a stored registry), must be
the tables the whole-cohort functions give, with the same warnings, and a
comparison that cannot be made must carry the whole cohort's reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stepanalytics.cohort import Cohort
from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.instruments.change_parts import baseline_moments, rescore_change
from stepanalytics.io import write_duckdb
from stepanalytics.qi.adherence import protocol_adherence
from stepanalytics.qi.benchmark import benchmark_outcome
from stepanalytics.qi.completeness import completeness_funnel
from stepanalytics.qi.indicators import outcome_indicators
from stepanalytics.qi.safety import safety_rates
from stepanalytics.reports.clinic_parts import category_counts
from stepanalytics.reports.context import restrict_to_period
from stepanalytics.reports.period import parse_period
from stepanalytics.reports.sections.overview import CASE_MIX_COLUMNS
from stepanalytics.reports.shared import PeerResults, compute_peer_results
from stepanalytics.synth import synthesize_cohort
from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML

Tables = dict[str, pd.DataFrame]

# The whole-cohort reference (benchmark_outcome) meets near-separation in these small
# cohorts; statsmodels then overflows exp() computing fitted values of 0 or 1.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")


@pytest.fixture(scope="module")
def base() -> Cohort:
    # Four clinics of very different sizes (one has 3 patients), on two protocols.
    return synthesize_cohort(n_patients=120, n_clinics=4, seed=77)


def _build(tables: Tables) -> Cohort:
    return Cohort.from_tables(tables, protocol_text=SYNTH_PROTOCOL_YAML, source="edited")


def _clinic_rows(tables: Tables, name: str, clinic: str) -> pd.Series:
    clinic_of = tables["patients"].set_index("patient_id")["clinic_id"]
    return tables[name]["patient_id"].map(clinic_of) == clinic


def _without_clinic_scores(tables: Tables) -> Tables:
    for name in ("assessments", "items"):
        tables[name] = tables[name][~_clinic_rows(tables, name, "C02")]
    return tables


def _without_clinic_odi(tables: Tables) -> Tables:
    scores = tables["assessments"]
    tables["assessments"] = scores[
        ~(_clinic_rows(tables, "assessments", "C01") & (scores["instrument"] == "odi"))
    ]
    return tables


def _without_clinic_events(tables: Tables) -> Tables:
    tables["events"] = tables["events"][~_clinic_rows(tables, "events", "C03")]
    return tables


def _dropping(*names: str) -> Callable[[Tables], Tables]:
    def edit(tables: Tables) -> Tables:
        return {k: v for k, v in tables.items() if k not in names}

    return edit


def _one_patient_clinic(tables: Tables) -> Tables:
    patients = tables["patients"]
    small = patients.loc[patients["clinic_id"] == "C04", "patient_id"]
    dropped = set(small.iloc[1:])
    return {k: v[~v["patient_id"].isin(dropped)] for k, v in tables.items()}


def _one_clinic(tables: Tables) -> Tables:
    keep = set(tables["patients"].loc[tables["patients"]["clinic_id"] == "C01", "patient_id"])
    return {k: v[v["patient_id"].isin(keep)] for k, v in tables.items()}


EDITS: dict[str, Callable[[Tables], Tables]] = {
    "a clinic never measured": _without_clinic_scores,
    "a clinic without odi": _without_clinic_odi,
    "a clinic without events": _without_clinic_events,
    "no events table": _dropping("events"),
    "item answers only": _dropping("assessments"),
    "given scores only": _dropping("items"),
    "a clinic with one patient": _one_patient_clinic,
    "one clinic": _one_clinic,
}


def _equal(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    pdt.assert_frame_equal(
        a.reset_index(drop=True),
        b.reset_index(drop=True),
        check_dtype=False,
        rtol=1e-9,
        obj=what,
    )


def _assert_same_as_whole(peers: PeerResults, whole: Cohort) -> None:
    """Every table, warning and comparison of ``peers`` is the whole cohort's."""
    codes = list(peers.instruments)
    funnel = completeness_funnel(whole, instruments=codes)
    _equal(peers.completeness.table, funnel.table, "completeness")
    assert peers.completeness.warnings == funnel.warnings
    indicators = outcome_indicators(
        whole, instruments=codes, by=("clinic_id",), follow_up="phase_end"
    )
    _equal(peers.outcomes.table, indicators.table, "outcomes")
    assert peers.outcomes.warnings == indicators.warnings
    _equal(peers.adherence.table, protocol_adherence(whole).table, "adherence")
    safety = safety_rates(whole)
    _equal(peers.safety.table, safety.table, "safety")
    assert peers.safety.warnings == safety.warnings
    for column in CASE_MIX_COLUMNS:
        if column in whole.patients.columns:
            expected = category_counts(whole.patients[column])
            assert dict(peers.category_totals(column)) == {
                str(k): int(v) for k, v in expected.items()
            }
    assert peers.n_patients == whole.n_patients
    scored = set(whole.instruments)
    assert [c.instrument for c in peers.comparisons] == [c for c in codes if c in scored]
    for comparison in peers.comparisons:
        try:
            direct = benchmark_outcome(
                whole, instrument=comparison.instrument, follow_up=peers.outcome_day
            )
        except AnalysisError as err:
            assert comparison.problem == str(err)
            assert comparison.result is None
            continue
        assert comparison.problem is None
        _equal(comparison.result.table, direct.table, f"comparison of {comparison.instrument}")
        assert comparison.result.warnings == direct.warnings


@pytest.mark.parametrize("edit", list(EDITS))
def test_unusual_cohorts_read_from_a_store_give_the_whole_cohort_tables(
    base: Cohort, edit: str, tmp_path: Path
) -> None:
    cohort = _build(EDITS[edit](base.to_tables()))
    db = write_duckdb(cohort.to_tables(), tmp_path / "r.duckdb", protocol_text=SYNTH_PROTOCOL_YAML)
    peers = compute_peer_results(db, part_patients=1)  # every clinic read alone
    _assert_same_as_whole(peers, cohort)


def test_a_clinic_never_measured_in_a_partitioned_parquet_folder(
    base: Cohort, tmp_path: Path
) -> None:
    cohort = _build(_without_clinic_scores(base.to_tables()))
    folder = tmp_path / "registry"
    folder.mkdir()
    (folder / "protocol.yaml").write_text(SYNTH_PROTOCOL_YAML)
    clinic_of = cohort.patients.set_index("patient_id")["clinic_id"]
    for name, frame in cohort.to_tables().items():
        if "clinic_id" not in frame.columns:
            frame = frame.assign(clinic_id=frame["patient_id"].map(clinic_of))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_to_dataset(table, folder / name, partition_cols=["clinic_id"])
    # C02 has no folder in the score tables at all.
    assert not (folder / "assessments" / "clinic_id=C02").exists()
    _assert_same_as_whole(compute_peer_results(folder, part_patients=1), cohort)


def _months_with(cohort: Cohort, n_clinics: int) -> list[str]:
    enrolled = cohort.patients.groupby("enrolled_month")["clinic_id"].nunique()
    return sorted(enrolled.index[enrolled == n_clinics])


def test_a_period_with_one_clinic_gives_reasons_not_comparisons(
    base: Cohort, tmp_path: Path
) -> None:
    month = _months_with(base, 1)[0]
    period = parse_period(month)
    whole = restrict_to_period(base, period)
    assert len(whole.clinics) == 1 < len(base.clinics)
    db = write_duckdb(base.to_tables(), tmp_path / "r.duckdb", protocol_text=SYNTH_PROTOCOL_YAML)
    # Two worker processes: the parts of the clinics without patients in the month come back empty.
    peers = compute_peer_results(db, period=period, part_patients=1, workers=2)
    assert peers.comparisons
    for comparison in peers.comparisons:
        assert comparison.problem is not None
        assert "only 1 clinic" in comparison.problem or "cannot be compared" in comparison.problem
    _assert_same_as_whole(peers, whole)


def test_a_period_in_which_some_clinics_enrolled_nobody(base: Cohort) -> None:
    month = _months_with(base, 2)[0]
    period = parse_period(month)
    whole = restrict_to_period(base, period)
    assert len(whole.clinics) == 2
    _assert_same_as_whole(compute_peer_results(base, period=period, part_patients=1), whole)


def test_a_baseline_sd_that_cannot_be_used_is_reported_as_for_the_whole_cohort(
    base: Cohort, tmp_path: Path
) -> None:
    # nrs_pain was measured in one patient only: one baseline, no SD, no reliable change.
    tables = base.to_tables()
    scores = tables["assessments"]
    pain = scores["instrument"] == "nrs_pain"
    first = scores.loc[pain & (scores["day"] <= 14), "patient_id"].iloc[0]
    tables["assessments"] = scores[~pain | (scores["patient_id"] == first)]
    cohort = _build(tables)
    expected = (
        "nrs_pain: no usable baseline SD (SD of 1 baseline scores in these data); RCI not computed."
    )
    whole = outcome_indicators(
        cohort, instruments=["odi", "nrs_pain"], by=("clinic_id",), follow_up="phase_end"
    )
    assert expected in whole.warnings
    db = write_duckdb(tables, tmp_path / "r.duckdb", protocol_text=SYNTH_PROTOCOL_YAML)
    for source in (cohort, db):
        peers = compute_peer_results(source, instruments=["odi", "nrs_pain"], part_patients=1)
        assert peers.outcomes.warnings == whole.warnings
        _assert_same_as_whole(peers, cohort)


def test_rescoring_from_moments_warns_about_an_instrument_without_pairs() -> None:
    # b's only pain score is its baseline and a's phase never ended: no pair for nrs_pain,
    # but the whole cohort still says that its SD (one baseline) cannot be used.
    scores = pd.DataFrame(
        {
            "patient_id": ["a", "a", "b"],
            "day": [0, 60, 3],
            "instrument": ["odi", "odi", "nrs_pain"],
            "score": [40.0, 20.0, 7.0],
        }
    )
    from stepanalytics.instruments.change import measure_change

    whole = measure_change(scores, follow_up="last")
    pairs = whole.patients[whole.patients["instrument"] == "odi"]  # what a part kept
    again, warnings = rescore_change(pairs, moments=baseline_moments(scores))
    assert warnings == whole.warnings
    assert "nrs_pain: no usable baseline SD (SD of 1 baseline scores in these data)" in (
        " ".join(warnings)
    )
    _equal(again, pairs, "pairs")
    with pytest.raises(UsageError, match="exactly one of baseline_sd and moments"):
        rescore_change(pairs)


@pytest.mark.parametrize(
    "instruments",
    [["odi"], ["odi", "rmdq"], ["rmdq"]],  # rmdq: nobody was measured with it
)
def test_chosen_outcomes_and_one_nobody_was_measured_with(base: Cohort, instruments) -> None:
    peers = compute_peer_results(base, instruments=instruments, part_patients=1)
    assert peers.instruments == tuple(instruments)
    assert "rmdq" not in base.instruments
    _assert_same_as_whole(peers, base)


def test_each_outcome_is_covered_once_and_a_typo_is_refused(base: Cohort) -> None:
    peers = compute_peer_results(base, instruments=["odi", "odi"], part_patients=base.n_patients)
    assert peers.instruments == ("odi",)
    assert [c.instrument for c in peers.comparisons] == ["odi"]
    with pytest.raises(UsageError, match=r"unknown instrument code\(s\) \['odx'\]"):
        compute_peer_results(base, instruments=["odi", "odx"])


@pytest.mark.parametrize("workers", [1, 2])
def test_parts_just_larger_than_one_clinic(base: Cohort, tmp_path: Path, workers) -> None:
    sizes = base.patients["clinic_id"].value_counts().sort_index()
    db = write_duckdb(base.to_tables(), tmp_path / "r.duckdb", protocol_text=SYNTH_PROTOCOL_YAML)
    # The first clinic and the next together, then the rest clinic by clinic or in a pair.
    peers = compute_peer_results(db, part_patients=int(sizes.iloc[0]) + 1, workers=workers)
    _assert_same_as_whole(peers, base)
