"""All clinics minus one clinic must not give the other clinics' small count back.

On the audit cohort (``stepanalytics synth OUT --patients 300 --clinics 6
--seed 1``; C04 has 8 patients and gets no committee report) every clinic's
completeness and outcome sections are rendered and the arithmetic a reader
would do is done on them: the all-clinics count minus the clinic's count,
for due, measured and not measured, and for each outcome count.  The
all-clinics report (no clinic) is set beside every clinic's report the same
way: its counts are the totals of the same protected clinic-by-clinic table.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from stepanalytics.cohort import load_cohort
from stepanalytics.qi.completeness import completeness_funnel
from stepanalytics.qi.indicators import outcome_indicators
from stepanalytics.reports import sections as report
from stepanalytics.reports.sections.overtime import _safe
from stepanalytics.synth import write_synthetic_cohort

T = 10
CLINICS = ["C01", "C02", "C03", "C05", "C06"]  # C04 (8 patients) gets no committee report


def small(value: float) -> bool:
    return 1 <= value <= T


@pytest.fixture(scope="module")
def c1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clinic_vs_all") / "c1"
    write_synthetic_cohort(folder, n_patients=300, n_clinics=6, seed=1)
    return folder


def _tables(html: str) -> list[list[list[str]]]:
    soup = BeautifulSoup(html, "html.parser")
    return [
        [[c.get_text(strip=True) for c in row.find_all(["th", "td"])] for row in t.find_all("tr")]
        for t in soup.find_all("table")
    ]


def _number(text: str) -> float | None:
    match = re.match(r"^(-?\d[\d,]*(?:\.\d+)?)$", text.strip())
    return float(match.group(1).replace(",", "")) if match else None


@pytest.mark.parametrize("clinic", CLINICS)
def test_completeness_all_clinics_minus_the_clinic_is_never_small(c1: Path, clinic: str) -> None:
    context = report.prepare_report(str(c1), clinic=clinic)
    assert context.compare_with_all
    detail = _tables(report.section_completeness(context)._repr_html_())[0]
    assert detail[0] == ["group", "stage", "due", "measured", "measured %"]
    rows = {(r[0], r[1]): [_number(v) for v in r[2:4]] for r in detail[1:]}
    stages = {stage for _, stage in rows}
    assert {g for g, _ in rows} == {f"clinic {clinic}", "all clinics"}
    differences = 0
    for stage in stages:
        mine, everyone = rows[(f"clinic {clinic}", stage)], rows[("all clinics", stage)]
        for i in (0, 1):  # due, measured
            if mine[i] is not None and everyone[i] is not None:
                differences += 1
                assert not small(everyone[i] - mine[i]), (stage, i)
        if None not in (*mine, *everyone):  # the other clinics' not measured
            assert not small((everyone[0] - everyone[1]) - (mine[0] - mine[1])), stage
    assert differences > 0  # the check ran on shown numbers


@pytest.mark.parametrize("clinic", ["C02", "C05"])
def test_completeness_rows_are_cells_of_one_protected_table(c1: Path, clinic: str) -> None:
    """The clinic's row and the all-clinics line are the committee table's cells and totals."""
    cohort = load_cohort(c1)
    context = report.prepare_report(str(c1), clinic=clinic)
    first = context.reported_instruments[0]
    protected = completeness_funnel(
        cohort, instruments=context.reported_instruments
    ).committee_table(threshold=T)
    shown = protected.to_display()
    shown = shown[(shown["clinic_id"] == clinic) & (shown["instrument"] == first)]
    totals = protected.totals(("instrument", "stage"))
    totals = totals[totals["instrument"] == first].set_index("stage")
    detail = _tables(report.section_completeness(context)._repr_html_())[0]
    for row in detail[1:]:
        group, stage, due, measured = row[:4]
        if group == "all clinics":
            expected = [totals.at[stage, c] for c in ("eligible", "measured")]
            expected = ["*" if pd.isna(v) else str(int(v)) for v in expected]
        else:
            cell = shown[shown["stage"] == stage].iloc[0]
            expected = [str(cell["eligible"]), str(cell["measured"])]
        # the report may hide more (a second guard), never less, and shows nothing else
        for got, want in zip((due, measured), expected, strict=True):
            assert got in (want, "*"), (group, stage)
            if want == "*":
                assert got == "*", (group, stage)


_OUTCOME_COUNTS = {
    "patients": "n",
    "responders": "responders",
    "deteriorated": "deteriorated",
    "clinical to normal": "crossed",
}


@pytest.mark.parametrize("clinic", CLINICS)
def test_outcome_counts_leave_no_small_count_for_the_other_clinics(c1: Path, clinic: str) -> None:
    """Each shown outcome count, taken from the published all-clinics total, leaves 0 or > T."""
    cohort = load_cohort(c1)
    context = report.prepare_report(str(c1), clinic=clinic)
    codes = context.reported_instruments
    full = outcome_indicators(cohort, instruments=codes, by=("clinic_id",), follow_up="phase_end")
    table = full.table
    # what a reader can know of all clinics: the published totals (withheld ones <NA>)
    totals = full.committee_table(threshold=T).totals(("phase", "instrument"))
    totals = totals.set_index(["phase", "instrument"])
    tables = _tables(report.section_outcomes(context)._repr_html_())
    assert len(tables) == len(codes)
    checked = 0
    for code, shown in zip(codes, tables, strict=True):
        header = shown[0]
        assert header[0] == "phase"
        mine = table[(table["clinic_id"] == clinic) & (table["instrument"] == code)]
        for row, (_, cells) in zip(shown[1:], mine.iterrows(), strict=True):
            phase = int(row[0].split()[0])
            assert phase == cells["phase"]
            for column, source in _OUTCOME_COUNTS.items():
                value = _number(row[header.index(column)])
                if value is None:
                    continue
                assert value == cells[source]
                total = totals.at[(phase, code), source]
                if pd.isna(total):
                    continue
                others = float(total) - value
                assert not small(others), (code, phase, column, others)
                checked += 1
    assert checked > 0


def test_outcome_dots_come_from_published_totals_only(c1: Path) -> None:
    """A withheld all-clinics total leaves its dot out: the share would give it back."""
    from stepanalytics.reports.sections.outcomes import _pooled_shares

    totals = pd.DataFrame(
        {
            "phase": [1, 2],
            "instrument": ["odi", "odi"],
            "n": pd.array([40, pd.NA], dtype="Int64"),
            "responders": pd.array([10, 5], dtype="Int64"),
        }
    )
    shares = _pooled_shares(totals)["pct_responders"].to_numpy()
    assert shares[0] == pytest.approx(25.0)
    assert np.isnan(shares[1])


def test_safety_chart_needs_more_patients_than_the_threshold_each_quarter() -> None:
    """A rate per patient-week of 5 patients describes them, though its denominator is time."""
    events = pd.Series([0, 12])
    assert not _safe(events, None, T, patients=pd.Series([5, 40]))
    assert _safe(events, None, T, patients=pd.Series([11, 40]))
    assert _safe(events, None, T, patients=pd.Series([0, 40]))


# --- the all-clinics report set beside each clinic's report ------------------------------


@pytest.fixture(scope="module")
def all_clinics_sections(c1: Path) -> dict[str, list[list[list[str]]]]:
    """The all-clinics QI report's completeness and outcome tables, rendered once."""
    context = report.prepare_report(str(c1))
    assert context.clinic is None
    return {
        "completeness": _tables(report.section_completeness(context)._repr_html_()),
        "outcomes": _tables(report.section_outcomes(context)._repr_html_()),
    }


@pytest.fixture(scope="module")
def clinic_sections(c1: Path) -> dict[str, dict[str, list[list[list[str]]]]]:
    """Each clinic's QI report's completeness and outcome tables, rendered once."""
    out = {}
    for clinic in CLINICS:
        context = report.prepare_report(str(c1), clinic=clinic)
        out[clinic] = {
            "completeness": _tables(report.section_completeness(context)._repr_html_()),
            "outcomes": _tables(report.section_outcomes(context)._repr_html_()),
        }
    return out


def _funnel_rows(detail: list[list[str]], group: str) -> dict[str, list[float | None]]:
    """Stage -> [due, measured] of one group of a completeness detail table (None: hidden)."""
    assert detail[0] == ["group", "stage", "due", "measured", "measured %"]
    return {r[1]: [_number(v) for v in r[2:4]] for r in detail[1:] if r[0] == group}


@pytest.mark.parametrize("clinic", CLINICS)
def test_all_clinics_report_minus_a_clinic_report_completeness_is_never_small(
    all_clinics_sections: dict[str, list[list[list[str]]]],
    clinic_sections: dict[str, dict[str, list[list[list[str]]]]],
    clinic: str,
) -> None:
    """Due, measured and not measured: all-clinics report minus the clinic's report."""
    everyone = _funnel_rows(all_clinics_sections["completeness"][0], "all clinics")
    mine = _funnel_rows(clinic_sections[clinic]["completeness"][0], f"clinic {clinic}")
    assert everyone and set(mine) <= set(everyone)
    checked = 0
    for stage, (due, measured) in mine.items():
        all_due, all_measured = everyone[stage]
        for value, total in ((due, all_due), (measured, all_measured)):
            if value is not None and total is not None:
                checked += 1
                assert not small(total - value), (stage, total, value)
        if None not in (due, measured, all_due, all_measured):
            assert due is not None and measured is not None  # for mypy
            assert all_due is not None and all_measured is not None
            assert not small((all_due - all_measured) - (due - measured)), stage
    assert checked > 0  # the check ran on shown numbers


def test_all_clinics_line_is_the_same_in_every_report(
    all_clinics_sections: dict[str, list[list[list[str]]]],
    clinic_sections: dict[str, dict[str, list[list[list[str]]]]],
) -> None:
    """The all-clinics report's funnel is the line every clinic's report shows beside it."""
    everyone = [r for r in all_clinics_sections["completeness"][0][1:] if r[0] == "all clinics"]
    assert everyone
    for clinic in CLINICS:
        beside = [
            r for r in clinic_sections[clinic]["completeness"][0][1:] if r[0] == "all clinics"
        ]
        assert beside == everyone, clinic


def _outcome_rows(tables: list[list[list[str]]]) -> list[dict[int, dict[str, float | None]]]:
    """Per outcome table: phase -> shown counts (None: hidden)."""
    out = []
    for table in tables:
        header = table[0]
        assert header[0] == "phase"
        out.append(
            {
                int(row[0].split()[0]): {
                    column: _number(row[header.index(column)]) for column in _OUTCOME_COUNTS
                }
                for row in table[1:]
            }
        )
    return out


@pytest.mark.parametrize("clinic", CLINICS)
def test_all_clinics_report_minus_a_clinic_report_outcomes_is_never_small(
    c1: Path,
    all_clinics_sections: dict[str, list[list[list[str]]]],
    clinic_sections: dict[str, dict[str, list[list[list[str]]]]],
    clinic: str,
) -> None:
    """Patients, responders, deteriorated, clinical to normal: all clinics minus the clinic."""
    everyone_codes = report.prepare_report(str(c1)).reported_instruments
    everyone_rows = _outcome_rows(all_clinics_sections["outcomes"])
    everyone = dict(zip(everyone_codes, everyone_rows, strict=True))
    codes = report.prepare_report(str(c1), clinic=clinic).reported_instruments
    mine = dict(zip(codes, _outcome_rows(clinic_sections[clinic]["outcomes"]), strict=True))
    checked = 0
    for code, phases in mine.items():
        for phase, counts in phases.items():
            totals = everyone[code][phase]
            for column, value in counts.items():
                total = totals[column]
                if value is None or total is None:
                    continue
                checked += 1
                assert not small(total - value), (code, phase, column, total, value)
    assert checked > 0
