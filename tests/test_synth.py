"""The synthetic cohort: deterministic, valid, realistic, with its truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas.testing as pdt

from stepanalytics import load_cohort
from stepanalytics.synth import SynthConfig, synthesize_tables


def test_same_seed_same_tables() -> None:
    a, ta = synthesize_tables(SynthConfig(n_patients=80, n_clinics=3, seed=4))
    b, tb = synthesize_tables(SynthConfig(n_patients=80, n_clinics=3, seed=4))
    for name in a:
        pdt.assert_frame_equal(a[name], b[name])
    assert ta == tb
    c, _ = synthesize_tables(SynthConfig(n_patients=80, n_clinics=3, seed=5))
    assert not a["assessments"].equals(c["assessments"])


def test_written_cohort_validates_with_truth(small_cohort_dir: Path) -> None:
    truth = json.loads((small_cohort_dir / "truth.json").read_text())
    assert truth["config"]["seed"] == 11
    assert truth["odi_model"]["weeks"] < 0
    assert len(truth["worse_clinics"]) == 1
    assert load_cohort(small_cohort_dir).n_patients == 120


def test_cohort_looks_like_real_data() -> None:
    tables, _truth = synthesize_tables(SynthConfig(n_patients=2000, n_clinics=12, seed=3))
    patients, phases = tables["patients"], tables["phases"]
    sizes = patients["clinic_id"].value_counts()
    assert sizes.max() >= 4 * sizes.min()  # very different clinic sizes
    assert patients["enrolled_month"].nunique() >= 24  # two years of enrolment
    reasons = set(phases["exit_reason"])
    assert {
        "progressed",
        "completed",
        "stepped_down",
        "dropped_out",
        "paused",
        "ongoing",
    } <= reasons
    # More missed visits among those who later drop out.
    odi = tables["assessments"].query("instrument == 'odi'")
    visits_per_week = odi.groupby("patient_id").size() / (
        patients.set_index("patient_id")["last_contact_day"] / 7 + 1
    )
    dropped = set(phases.loc[phases["exit_reason"] == "dropped_out", "patient_id"])
    is_dropped = visits_per_week.index.isin(list(dropped))
    assert visits_per_week[is_dropped].mean() < visits_per_week[~is_dropped].mean()
    items = tables["items"]
    assert 0.01 < items["value"].isna().mean() < 0.06  # some unanswered items
    events = set(tables["events"]["event"])
    assert {"flare_up", "red_flag", "safety_pause"} <= events


def test_worse_clinic_is_truly_worse() -> None:
    tables, truth = synthesize_tables(SynthConfig(n_patients=3000, n_clinics=8, seed=9))
    worse = truth["worse_clinics"][0]
    phases = tables["phases"].merge(tables["patients"][["patient_id", "clinic_id"]])
    dropout = phases.groupby(phases["clinic_id"] == worse)["exit_reason"].apply(
        lambda s: (s == "dropped_out").mean()
    )
    assert dropout[True] > 1.3 * dropout[False]
    effects = truth["odi_model"]["clinic_slope_effects"]
    assert effects[worse] == max(effects.values())


def test_odi_slope_recovered_roughly() -> None:
    tables, truth = synthesize_tables(
        SynthConfig(n_patients=1500, n_clinics=5, seed=2, n_worse_clinics=0)
    )
    odi = tables["assessments"].query("instrument == 'odi'")

    # Within-patient least-squares slopes, averaged: close to the true mean slope.
    def slope(g):
        return np.polyfit(g["day"] / 7, g["score"], 1)[0] if len(g) >= 3 else np.nan

    slopes = odi.groupby("patient_id").apply(slope, include_groups=False).dropna()
    assert abs(slopes.median() - truth["odi_model"]["weeks"]) < 0.1
