"""The built-in registry holds the published facts; users can add their own entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepanalytics.errors import UsageError
from stepanalytics.instruments import UnknownInstrumentError, get_registry

REQUIRED = {
    "nrs_pain", "bpi_severity", "bpi_interference", "pcs", "pcs_rumination",
    "pcs_magnification", "pcs_helplessness", "pseq", "phq9", "gad7", "dass21_depression",
    "dass21_anxiety", "dass21_stress", "odi", "rmdq", "isi", "tsk11", "six_mwt",
}  # fmt: skip

# (code, n_items, item range, score range, higher is better) from the published forms
FACTS = [
    ("nrs_pain", 1, (0, 10), (0, 10), False),
    ("bpi_severity", 4, (0, 10), (0, 10), False),
    ("bpi_interference", 7, (0, 10), (0, 10), False),
    ("pcs", 13, (0, 4), (0, 52), False),
    ("pcs_rumination", 4, (0, 4), (0, 16), False),
    ("pcs_magnification", 3, (0, 4), (0, 12), False),
    ("pcs_helplessness", 6, (0, 4), (0, 24), False),
    ("pseq", 10, (0, 6), (0, 60), True),
    ("phq9", 9, (0, 3), (0, 27), False),
    ("gad7", 7, (0, 3), (0, 21), False),
    ("dass21_depression", 7, (0, 3), (0, 42), False),
    ("dass21_anxiety", 7, (0, 3), (0, 42), False),
    ("dass21_stress", 7, (0, 3), (0, 42), False),
    ("odi", 10, (0, 5), (0, 100), False),
    ("rmdq", 24, (0, 1), (0, 24), False),
    ("isi", 7, (0, 4), (0, 28), False),
    ("tsk11", 11, (1, 4), (11, 44), False),
]


def test_every_required_instrument_is_there():
    assert set(get_registry().codes) >= REQUIRED


@pytest.mark.parametrize(("code", "n_items", "item_range", "score_range", "better"), FACTS)
def test_published_ranges_and_direction(code, n_items, item_range, score_range, better):
    spec = get_registry().get(code)
    assert spec.n_items == n_items
    assert (spec.item_min, spec.item_max) == item_range
    assert (spec.score_min, spec.score_max) == score_range
    assert spec.higher_is_better is better


def test_six_minute_walk_has_no_upper_limit_and_higher_is_better():
    spec = get_registry().get("six_mwt")
    assert spec.score_max is None and spec.higher_is_better and spec.questionnaire is None
    assert spec.mcid_points == 86


def test_subscale_and_dass_item_sets():
    reg = get_registry()
    assert reg.get("pcs_rumination").items == (8, 9, 10, 11)
    assert reg.get("pcs_magnification").items == (6, 7, 13)
    assert reg.get("pcs_helplessness").items == (1, 2, 3, 4, 5, 12)
    dass = [reg.get(f"dass21_{s}").items for s in ("depression", "anxiety", "stress")]
    assert dass[0] == (3, 5, 10, 13, 16, 17, 21)
    assert dass[1] == (2, 4, 7, 9, 15, 19, 20)
    assert dass[2] == (1, 6, 8, 11, 12, 14, 18)
    assert sorted(i for items in dass for i in items) == list(range(1, 22))
    assert reg.questionnaire("pcs").instruments == (
        "pcs", "pcs_rumination", "pcs_magnification", "pcs_helplessness"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("code", "points", "percent"),
    [("nrs_pain", 2, 30), ("odi", 10, 30), ("rmdq", 5, 30), ("phq9", 5, None),
     ("gad7", 4, None), ("pseq", 11, None), ("tsk11", 4, None), ("bpi_interference", 1, None),
     ("isi", 6, None)],
)  # fmt: skip
def test_mcid_values(code, points, percent):
    spec = get_registry().get(code)
    assert (spec.mcid_points, spec.mcid_percent) == (points, percent)
    assert spec.mcid_source


def test_every_threshold_carries_its_source():
    for spec in get_registry():
        assert spec.sources, spec.code
        assert spec.missing_source, spec.code
        if spec.reliability is not None:
            assert spec.reliability_source and spec.reliability_kind, spec.code
        if spec.mcid_points is not None or spec.mcid_percent is not None:
            assert spec.mcid_source, spec.code
        if spec.clinical_cutoff is not None:
            assert spec.clinical_cutoff_source, spec.code
        if spec.bands:
            assert spec.bands_source, spec.code
    assert all(spec.reliability is not None for spec in get_registry())


def test_phq9_item_9_is_a_safety_item():
    flags = get_registry().questionnaire("phq9").red_flags
    assert [(f.item, f.at_least) for f in flags] == [(9, 1)]


def test_band_boundaries_follow_lower_bounds():
    odi = get_registry().get("odi")
    got = odi.band_of([0, 20, 20.4, 21, 40, 41, 60, 61, 80, 81, 100]).tolist()
    assert got == ["minimal disability"] * 3 + ["moderate disability"] * 2 + [
        "severe disability"] * 2 + ["crippled"] * 2 + ["bed-bound or exaggerating"] * 2  # fmt: skip
    assert get_registry().get("tsk11").band_of([20.0]).isna().all()


def test_is_normal_respects_direction():
    reg = get_registry()
    assert reg.get("phq9").is_normal([9, 9.9, 10]).tolist() == [True, True, False]
    assert reg.get("pseq").is_normal([40, 41]).tolist() == [False, True]
    with pytest.raises(UsageError, match="no clinical cut-off"):
        reg.get("tsk11").is_normal([20])


def test_unknown_code_raises_a_project_error_that_is_also_a_key_error():
    with pytest.raises(UnknownInstrumentError, match="Unknown instrument 'odj'") as err:
        get_registry().get("odj")
    assert isinstance(err.value, KeyError) and isinstance(err.value, UsageError)
    with pytest.raises(KeyError):
        get_registry().questionnaire("dass21_stress")


USER_FILE = """
questionnaires:
  wai:
    name: Work ability index, single item
    n_items: 1
    item_min: 0
    item_max: 10
instruments:
  wai:
    name: Work ability score
    questionnaire: wai
    items: [1]
    method: sum
    score_min: 0
    score_max: 10
    higher_is_better: true
    mcid: {points: 2, source: our clinic's consensus}
    reliability: {value: 0.8, kind: test-retest, source: our own study}
  phq9:
    override: true
    name: PHQ-9 with a local MCID
    questionnaire: phq9
    items: [1, 2, 3, 4, 5, 6, 7, 8, 9]
    method: sum
    score_min: 0
    score_max: 27
    mcid: {points: 6, source: local}
"""


def test_user_entries_are_merged_without_touching_the_package(tmp_path: Path):
    path = tmp_path / "ours.yaml"
    path.write_text(USER_FILE, encoding="utf-8")
    reg = get_registry(extra=path)
    assert reg.get("wai").higher_is_better and reg.get("wai").mcid_points == 2
    assert reg.get("phq9").mcid_points == 6
    assert "wai" in reg.questionnaire_codes and reg.get("odi").mcid_points == 10
    assert get_registry().get("phq9").mcid_points == 5  # the built-in one is untouched
    assert "wai" not in get_registry()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("instruments:\n  phq9: {name: x, method: given, score_min: 0}\n", "already exists"),
        ("instruments:\n  x: {name: x, method: median, score_min: 0}\n", "method: must be one"),
        ("instruments:\n  x: {name: x, method: sum, questionnaire: nope, items: [1],"
         " score_min: 0, score_max: 1}\n", "'nope' is not defined"),
        ("instruments:\n  x: {name: x, method: sum, questionnaire: gad7, items: [1, 9],"
         " score_min: 0, score_max: 6}\n", "items must be distinct and in 1..7"),
        ("instruments:\n  x: {name: x, method: sum, questionnaire: gad7, items: [1, 2],"
         " score_min: 0, score_max: 7}\n", "does not match"),
        ("instruments:\n  x: {name: x, method: given, score_min: 0,"
         " reliability: {value: 0.8}}\n", "needs its literature source"),
        ("instruments:\n  x: {name: x, method: given, score_min: 0,"
         " reliability: {value: 1.2, source: s}}\n", "strictly between 0 and 1"),
        ("instruments:\n  x: {name: x, method: given, score_min: 0, score_max: 9,"
         " bands: [[a, 0], [b, 5], [c, 3]]}\n", "lower bounds must rise"),
        ("instruments:\n  x: {name: x, method: sum, questionnaire: gad7, items: [1, 2],"
         " score_min: 0, score_max: 6, missing: {rule: prorate, max_missing: 2}}\n",
         "max_missing"),
        ("just text\n", "must be a mapping"),
    ],
)  # fmt: skip
def test_bad_user_entries_are_refused_with_a_message(tmp_path: Path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=message) as err:
        get_registry(extra=path)
    assert "bad.yaml" in str(err.value)


def test_missing_user_file_is_a_usage_error(tmp_path: Path):
    with pytest.raises(UsageError, match="does not exist"):
        get_registry(extra=tmp_path / "nope.yaml")


def test_to_frame_lists_every_instrument():
    frame = get_registry().to_frame()
    assert list(frame["instrument"]) == list(get_registry().codes)
    assert {"mcid_points", "reliability", "clinical_cutoff"} <= set(frame.columns)


def test_docs_describe_every_builtin_instrument():
    docs = (Path(__file__).parents[2] / "docs" / "instruments.md").read_text(encoding="utf-8")
    headings = [line for line in docs.splitlines() if line.startswith("### ")]
    for code in get_registry().codes:
        assert any(code in heading for heading in headings), code
