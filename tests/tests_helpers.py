"""Builders of a small valid cohort that refusal tests damage one way at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepanalytics import CohortError, load_cohort

PATIENTS = (
    "patient_id,clinic_id,enrolled_month,last_contact_day,age_band,sex,employment,"
    "compensation_claim,pain_duration_months\n"
    "P00001,C1,2025-01,100,40-49,female,employed,false,24\n"
    "P00002,C1,2025-02,50,90+,male,retired,true,6.5\n"
)
PHASES = (
    "patient_id,phase,start_day,end_day,exit_reason\n"
    "P00001,1,0,40,progressed\nP00001,2,40,,ongoing\nP00002,1,0,50,dropped_out\n"
)
SCORES = "patient_id,day,instrument,score\nP00001,0,odi,40\nP00001,45,odi,30\nP00002,3,odi,52\n"
EVENTS = "patient_id,day,event,severity\nP00001,10,flare_up,mild\n"


def build(folder: Path, **tables: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"patients": PATIENTS, "phases": PHASES, "assessments": SCORES, "events": EVENTS}
    texts.update(tables)
    for name, text in texts.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return folder


def refusal(folder: Path) -> str:
    with pytest.raises(CohortError) as info:
        load_cohort(folder)
    return str(info.value)


def add_column(text: str, name: str, values: list[str]) -> str:
    lines = text.strip().split("\n")
    out = [lines[0] + f",{name}"] + [
        f"{line},{v}" for line, v in zip(lines[1:], values, strict=False)
    ]
    return "\n".join(out) + "\n"
