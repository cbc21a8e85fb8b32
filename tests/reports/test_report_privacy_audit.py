"""Findings of the audit of rendered committee reports, one test (or more) each.

The audit read rendered reports of two synthetic cohorts and worked counts
out of what they show with simple arithmetic: a percentage times its
episodes, a total minus a shown count, the only non-zero category beside
hidden ones.  These tests run the report sections on the same cohorts
(``stepanalytics synth OUT --patients 300 --clinics 6 --seed 1``, whose
clinic C04 has 8 patients, and ``--patients 40 --clinics 5 --seed 2``,
whose C04 has 1) and do the same arithmetic on their output.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from stepanalytics.cohort import load_cohort
from stepanalytics.errors import UsageError
from stepanalytics.reports import RenderedReport, ReportError, render_report
from stepanalytics.reports import render as render_module
from stepanalytics.reports import sections as report
from stepanalytics.reports.cli import report_group
from stepanalytics.reports.parameters import MIN_SUPPRESSION_THRESHOLD, check_parameters
from stepanalytics.reports.sections.descriptors import shared_range
from stepanalytics.reports.sections.incidence_cells import (
    PhaseEvents,
    curve_steps_safe,
    shown_percentages,
)
from stepanalytics.reports.shared import compute_peer_results
from stepanalytics.synth import write_synthetic_cohort

T = 10  # the default small-cell threshold


def small(value: float) -> bool:
    return 1 <= int(np.floor(value + 0.5)) <= T


@pytest.fixture(scope="module")
def c1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audit") / "c1"
    write_synthetic_cohort(folder, n_patients=300, n_clinics=6, seed=1)
    return folder


@pytest.fixture(scope="module")
def c2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audit") / "c2"
    write_synthetic_cohort(folder, n_patients=40, n_clinics=5, seed=2)
    return folder


@pytest.fixture(scope="module")
def c1_all(c1: Path) -> report.ReportContext:
    return report.prepare_report(str(c1))


def _tables(section: report.Section | str) -> list[list[list[str]]]:
    html = section if isinstance(section, str) else section._repr_html_()
    soup = BeautifulSoup(html, "html.parser")
    return [
        [[c.get_text(strip=True) for c in row.find_all(["th", "td"])] for row in t.find_all("tr")]
        for t in soup.find_all("table")
    ]


def _number(text: str) -> float | None:
    match = re.match(r"^(-?\d[\d,]*(?:\.\d+)?)(?: \(\d+%\))?$", text.strip())
    return float(match.group(1).replace(",", "")) if match else None


# -- finding 3: time to progression ------------------------------------------------------


def test_incidence_percentages_give_back_no_small_count(c1_all: report.ReportContext) -> None:
    """p x episodes, the differences between weeks and what is left must not be 1..10.

    Before: phase 2 "moved up by week 4" 0.8% of 250 episodes = 2 patients.
    """
    (table,) = _tables(report.section_time_to_events(c1_all))
    header, rows = table[0], table[1:]
    weeks = [i for i, h in enumerate(header) if h.startswith("by week")]
    found = []
    for phase in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == phase]
        n = _number(mine[0][2])
        assert n is not None and n > T
        events = [_number(r[3]) for r in mine]
        if all(e is not None for e in events):
            found += [("episodes - sum(events)", n - sum(events))]  # type: ignore[arg-type]
        for k in weeks:
            shares = [_number(r[k]) for r in mine]
            if all(s is not None for s in shares):
                left = n * (1 - sum(shares) / 100)  # type: ignore[arg-type]
                found.append((f"{phase} {header[k]} still in the phase", left))
        for row, total in zip(mine, events, strict=True):
            previous = 0.0
            for k in weeks:
                share = _number(row[k])
                if share is None:
                    continue
                count = share / 100 * n
                found += [
                    (f"{phase} {row[1]} {header[k]}", count),
                    (f"{phase} {row[1]} {header[k]} not yet", n - count),
                    (
                        f"{phase} {row[1]} {header[k]} since the last week",
                        (share - previous) / 100 * n,
                    ),
                ]
                if total is not None:
                    found.append((f"{phase} {row[1]} after {header[k]}", total - count))
                previous = share
    assert [(what, round(v, 1)) for what, v in found if small(v)] == []
    assert any(_number(r[k]) is not None for r in rows for k in weeks)  # not all hidden


def test_a_percentage_standing_for_two_patients_is_hidden() -> None:
    phase = PhaseEvents(
        episodes=250,
        events={"progressed": 190, "dropped_out": 20},
        by_week={"progressed": [2, 95, 157, 190], "dropped_out": [8, 17, 18, 20]},
        estimate={"progressed": [0.008, 0.38, 0.629, 0.768], "dropped_out": [0.033, 0.067, 0.071, 0.085]},
    )  # fmt: skip
    shown = shown_percentages(
        phase, shown_rows={"progressed": True, "dropped_out": True}, threshold=T
    )
    # Moved up: 2 by week 4 (hidden); 95, 157, 190 differ by 62 and 33, and 190 - 157 = 33
    # moved up after week 12.  Dropped out: 8 by week 4; at weeks 8 and 12, 20 - 17 = 3 and
    # 20 - 18 = 2 dropped out later; only week 16 (20, none later, 250 - 20 still there).
    # Week 16 together: 250 - 190 - 20 = 40 patients left over, 36.75 read off the shares.
    assert shown == {
        "progressed": [False, True, True, True],
        "dropped_out": [False, False, False, True],
    }


def test_curves_are_drawn_only_when_every_step_is_large() -> None:
    days = np.repeat([10, 20, 30], 11)
    assert curve_steps_safe(days, ["progressed"] * days.size, threshold=T, until=112)
    with_one = np.r_[days, 25]
    outcomes = ["progressed"] * days.size + ["dropped_out"]
    assert not curve_steps_safe(with_one, outcomes, threshold=T, until=112)
    assert curve_steps_safe(with_one, outcomes, threshold=T, until=24)  # not drawn that far


def test_committee_curves_not_drawn_from_daily_steps(c1_all: report.ReportContext) -> None:
    """Before: every phase without a small total was drawn, one step per patient."""
    html = report.section_time_to_events(c1_all)._repr_html_()
    assert "<img" not in html
    assert "every step of them rests on more patients than the small-cell threshold" in html


# -- finding 4: baseline scores against completeness -------------------------------------


def test_baseline_patients_do_not_give_back_the_not_measured(c2: Path) -> None:
    """c2: due 40 at baseline, measured hidden; before, the baseline table said odi 36."""
    context = report.prepare_report(str(c2))
    completeness = _tables(report.section_completeness(context))[0]
    due = next(_number(r[2]) for r in completeness[1:] if r[1] == "baseline")
    assert due == 40
    overview = _tables(report.section_cohort_overview(context))
    baseline = next(t for t in overview if t[0][:2] == ["instrument", "patients"])
    appendix = _tables(report.section_data_quality(context))[0]
    assert appendix[0] == ["instrument", "scores", "patients", "with baseline"]
    shown = [(r[0], _number(r[1])) for r in baseline[1:]]
    shown += [(f"appendix {r[0]} {col}", _number(r[i])) for r in appendix[1:] for i, col in
              ((2, "patients"), (3, "with baseline"))]  # fmt: skip
    leaks = [(what, 40 - v) for what, v in shown if v is not None and small(40 - v)]
    assert leaks == []


# -- finding 5: tiny clinics and what describes individuals ------------------------------


def test_a_clinic_of_one_patient_gets_no_committee_report(c2: Path, tmp_path: Path) -> None:
    def no_kernel(*args: object, **kwargs: object) -> None:
        raise AssertionError("a notebook was started")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render_module, "_execute", no_kernel)
        with pytest.raises(ReportError, match="too few patients") as caught:
            render_report("qi", data=c2, clinic="C04", out_dir=tmp_path)
        result = CliRunner().invoke(
            report_group, ["qi", "--data", str(c2), "--clinic", "C04", "--out", str(tmp_path)]
        )
    assert "all-clinics reports" in str(caught.value)
    assert not re.search(r"\b1 patient", str(caught.value))  # the count itself is not told
    assert result.exit_code == 1 and "too few patients" in result.output
    assert not list(tmp_path.iterdir())
    with pytest.raises(UsageError, match="too few patients"):  # a notebook run by hand
        report.prepare_report(str(c2), clinic="C04")


def test_header_ranges_are_shared_by_more_than_the_threshold(c1: Path) -> None:
    """Before: "enrolment months 2025-06 to 2025-06" was the only patient's own month."""
    patients = load_cohort(c1).patients
    for clinic in ("C01", "C02", "C03", "C05", "C06"):
        context = report.prepare_report(str(c1), clinic=clinic)
        html = report.section_title(context)._repr_html_()
        facts = BeautifulSoup(html, "html.parser").select_one(".sa-keyfacts").find_all("div")
        months = next(d.b.get_text() for d in facts if "enrolment months" in d.get_text())
        mine = patients.loc[patients["clinic_id"] == clinic, "enrolled_month"].astype(str)
        for end in months.split(" to ") if months != "*" else []:
            sharing = mine.map(lambda m, e=end: _within(m, e)).sum()
            assert sharing > T, (clinic, months, end)


def _within(month: str, label: str) -> bool:
    if "Q" in label:
        return month[:4] == label[:4] and (int(month[5:7]) - 1) // 3 + 1 == int(label[-1])
    return month.startswith(label)


def test_shared_range_widens_then_hides() -> None:
    one = pd.Series(["2025-06"])
    assert shared_range(one, threshold=T) == "*"
    months = pd.Series(["2024-01"] * 3 + ["2024-02"] * 9 + ["2024-05"] * 11)
    assert shared_range(months, threshold=T) == "2024Q1 to 2024-05"


def test_case_mix_shows_no_zero_beside_hidden_cells(c1: Path) -> None:
    """A 0 for the other categories tells where the hidden patients are."""
    for clinic in ("C01", "C02", "C03", "C05", "C06"):
        context = report.prepare_report(str(c1), clinic=clinic)
        for table in _tables(report.section_cohort_overview(context))[:-1]:
            body = [r for r in table[1:] if r[0] != "total"]
            for column in range(1, len(table[0])):
                cells = [r[column] for r in body]
                if "*" in cells:
                    assert not any(_number(c) == 0 for c in cells), (clinic, table[0], cells)
                total = table[-1][column]
                if total == "*":  # a share beside a hidden total gives the total back
                    assert not any("%" in c for c in cells), (clinic, table[0], cells)
            if len(table[0]) == 3:  # all clinics minus this clinic: the other clinics
                for row in body:
                    mine, everyone = _number(row[1]), _number(row[2])
                    if mine is not None and everyone is not None:
                        assert not small(everyone - mine), (clinic, table[0], row)


def test_phase_flow_columns_do_not_depend_on_the_data(c1: Path) -> None:
    context = report.prepare_report(str(c1), clinic="C03")
    (table,) = _tables(report.section_phase_flow(context))
    assert table[0] == [
        "phase", "progressed", "completed", "stepped_down", "paused", "dropped_out", "ongoing",
        "total",
    ]  # fmt: skip
    for row in table[1:-1]:
        if "*" in row:
            assert "0" not in row[1:], row


def test_no_all_clinics_column_when_the_other_clinics_are_few(c2: Path) -> None:
    """c2: C05 has 30 patients, the four others 10; all minus C05 would describe them."""
    context = report.prepare_report(str(c2), clinic="C05")
    assert not context.compare_with_all
    html = report.section_cohort_overview(context)._repr_html_()
    assert "all clinics" not in " ".join(t[0][-1] for t in _tables(html))
    completeness = _tables(report.section_completeness(context))[0]
    assert {r[0] for r in completeness[1:]} == {"clinic C05"}


# -- finding 9: parameters checked before a kernel starts --------------------------------


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("suppression_threshold=abc", "suppression_threshold must be a whole number"),
        ("suppression_threshold=0", "at least 2"),
        ("suppression_threshold=1", "at least 2"),
        ("suppression_threshold=True", "suppression_threshold must be a whole number"),
        ("instruments=odi", "instruments must be a list"),
        ("instruments=['odx']", "unknown instrument code(s) ['odx']"),
    ],
)
def test_bad_parameter_values_exit_2_before_any_kernel(
    c2: Path, tmp_path: Path, param: str, message: str
) -> None:
    def no_kernel(*args: object, **kwargs: object) -> None:
        raise AssertionError("a notebook was started")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render_module, "_execute", no_kernel)
        result = CliRunner().invoke(
            report_group, ["qi", "--data", str(c2), "--out", str(tmp_path), "--param", param]
        )
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


@given(st.one_of(st.integers(-5, 1000), st.floats(), st.text(max_size=4), st.booleans()))
def test_only_whole_numbers_from_2_are_thresholds(value: object) -> None:
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= 2
    try:
        checked = check_parameters({"suppression_threshold": value})
    except UsageError as err:
        assert not valid and "suppression_threshold" in str(err)
    else:
        assert valid and checked["suppression_threshold"] == value >= MIN_SUPPRESSION_THRESHOLD


# -- the explorer's model line, and a warning that leaked to the terminal ----------------


def test_model_line_names_the_engine_that_ran(rendered_reports: dict[str, RenderedReport]) -> None:
    text = BeautifulSoup(rendered_reports["explorer"].html.read_text(), "html.parser").get_text()
    assert "REML (fast engine, validated against lme4)" in text
    assert "several optimizers keeping the best likelihood" not in text


def test_peer_comparison_of_a_small_cohort_warns_nothing_on_the_terminal(c2: Path) -> None:
    """c2's case-mix model nearly separates; statsmodels overflowed exp() on stderr."""
    cohort = load_cohort(c2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peers = compute_peer_results(cohort)
    assert peers.comparisons
    assert [str(w.message) for w in caught if "overflow" in str(w.message)] == []
