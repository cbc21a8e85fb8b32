"""Quality-improvement analytics on a large synthetic cohort: time and memory.

Usage: python benchmarks/bench_qi.py [--patients 20000] [--clinics 40]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from _measure import measured, timed

from stepanalytics.cohort import Cohort
from stepanalytics.qi import (
    attrition_check,
    benchmark_outcome,
    completeness_funnel,
    control_chart,
    outcome_indicators,
    protocol_adherence,
    safety_rates,
    safety_series,
    suppress_table,
)
from stepanalytics.synth import SynthConfig, synthesize_tables
from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--clinics", type=int, default=40)
    args = parser.parse_args()
    print(f"== qi: {args.patients:,} patients, {args.clinics} clinics")
    with measured("build cohort (not QI)"):
        tables, _ = synthesize_tables(
            SynthConfig(n_patients=args.patients, n_clinics=args.clinics, seed=1)
        )
        cohort = Cohort.from_tables(tables, protocol_text=SYNTH_PROTOCOL_YAML)
        _ = cohort.measurements
    timed("completeness_funnel (all instruments)", lambda: completeness_funnel(cohort))
    timed(
        "attrition_check (odi, phq9)", lambda: attrition_check(cohort, instruments=["odi", "phq9"])
    )
    timed(
        "outcome_indicators (odi, by clinic and quarter)",
        lambda: outcome_indicators(cohort, instruments=["odi"], period="quarter"),
    )
    timed(
        "benchmark_outcome (odi responder, case mix + EB)",
        lambda: benchmark_outcome(cohort, instrument="odi", indicator="responder"),
    )
    timed(
        "benchmark_outcome (odi improvement)",
        lambda: benchmark_outcome(cohort, instrument="odi", indicator="improvement"),
    )
    timed("protocol_adherence", lambda: protocol_adherence(cohort))
    timed("safety_rates (clinic x phase x event)", lambda: safety_rates(cohort))
    series = timed(
        "safety_series (flare_up, monthly)", lambda: safety_series(cohort, event="flare_up")
    )
    timed(
        "control_chart (u, monthly)",
        lambda: control_chart(
            series, chart="u", count="events", denominator="patient_weeks", period="month"
        ),
    )
    rng = np.random.default_rng(1)
    counts = pd.DataFrame(rng.integers(0, 40, size=(args.clinics, 6)))
    timed(f"suppress_table ({args.clinics} x 6 with margins)", lambda: suppress_table(counts))


if __name__ == "__main__":
    main()
