"""The report machinery's small parts, without running a notebook."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from bs4 import BeautifulSoup
from hypothesis import given
from hypothesis import strategies as st

from stepanalytics.errors import UsageError
from stepanalytics.reports.html import build_page, external_resources, find_identifiers
from stepanalytics.reports.kinds import report_stem
from stepanalytics.reports.period import parse_period
from stepanalytics.reports.provenance import fingerprint_data
from stepanalytics.reports.sections.common import protect_text, protected_table_html


@given(st.integers(1900, 2200), st.integers(1, 4))
def test_quarters_cover_their_three_months(year: int, quarter: int) -> None:
    period = parse_period(f"{year}Q{quarter}")
    assert period is not None and period.label == f"{year}Q{quarter}"
    months = [f"{year}-{m:02d}" for m in range(1, 13)]
    inside = [m for m in months if period.contains(m)]
    assert inside == months[3 * (quarter - 1) : 3 * quarter]


@given(st.text(max_size=12))
def test_any_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        period = parse_period(text)
    except UsageError as err:
        assert "not understood" in str(err)
    else:
        assert period is None or period.first_month <= period.last_month


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [("2025Q4", "2025-10", "2025-12"), ("2025-q1", "2025-01", "2025-03"),
     ("2025-11", "2025-11", "2025-11"), ("2024", "2024-01", "2024-12")],
)  # fmt: skip
def test_period_forms(text: str, first: str, last: str) -> None:
    period = parse_period(text)
    assert period is not None and (period.first_month, period.last_month) == (first, last)


def test_identifiers_found_as_whole_tokens_only() -> None:
    page = (
        '<p>P000012 and P0000123</p><img src="data:image/png;base64,AAP000013AA">'
        "<p>end of sentence P000014.</p>"
    )
    assert find_identifiers(page, ["P000012", "P000013", "P000014", "P000123"]) == [
        "P000012",
        "P000014",
    ]


def test_external_resources_listed() -> None:
    page = (
        '<img src="data:image/png;base64,AA"><script src="https://cdn.example/x.js"></script>'
        '<link rel="stylesheet" href="style.css"><a href="https://example.org">fine</a>'
        '<div style="background: url(http://example.org/bg.png)"></div>'
        "<style>@import 'https://fonts.example/f.css';</style>"
    )
    found = external_resources(page)
    assert len(found) == 4
    assert external_resources(build_page(title="t", body="<p>x</p>", provenance_html="")) == []


def test_protect_text_hides_small_counts_in_words() -> None:
    text = "3 patients lack a baseline; 45 of 47 patients were scored; 120 events."
    assert protect_text(text, threshold=10) == (
        "a few (at most 10) patients lack a baseline; most patients were scored; 120 events."
    )
    assert protect_text(text, threshold=None) == text


def test_protected_table_hides_a_share_with_its_count() -> None:
    frame = pd.DataFrame(
        {"phase": ["1 a", "2 b"], "patients": [30, 40], "responders": [24, 20]}
    ).assign(share=lambda d: 100 * d["responders"] / d["patients"])
    html = protected_table_html(
        frame,
        counts=["patients", "responders"],
        derived={"share": ["responders", "patients"]},
        parts=[("responders", "patients")],
        totals=False,
        threshold=10,
    )
    cells = [
        [td.get_text(strip=True) for td in row.find_all("td")]
        for row in BeautifulSoup(html, "html.parser").find_all("tr")[1:]
    ]
    # 24 of 30 responded: the 6 who did not are a small cell, so 24 and 80% are hidden too.
    assert cells == [["1 a", "30", "*", "*"], ["2 b", "40", "20", "50.0"]]


def test_fingerprint_changes_with_any_file(tmp_path: Path) -> None:
    (tmp_path / "patients.csv").write_text("patient_id\nP1\n")
    (tmp_path / ".hidden").write_text("editor state")
    first = fingerprint_data(tmp_path)
    assert [f.name for f in first.files] == ["patients.csv"]
    assert first.files[0].sha256 == hashlib.sha256(b"patient_id\nP1\n").hexdigest()
    (tmp_path / "patients.csv").write_text("patient_id\nP2\n")
    assert fingerprint_data(tmp_path).sha256 != first.sha256
    with pytest.raises(UsageError):
        fingerprint_data(tmp_path / "missing")


def test_report_names_are_safe_file_names() -> None:
    assert report_stem("qi", "North/Clinic 1", "2025Q4") == "qi_North-Clinic-1_2025Q4"
