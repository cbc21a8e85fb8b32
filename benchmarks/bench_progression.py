"""Time to progression on a large synthetic cohort: stays, KM, CIF, Cox, multi-state.

Usage: python benchmarks/bench_progression.py [--patients 10000] [--boot 200]

Peak memory is the process's peak RSS after each step (it only grows); the
cohort itself is generated first so its share is visible in the first line.
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _measure import measured, process_peak_rss_mib

from stepanalytics.cohort import Cohort
from stepanalytics.progression import (
    build_stays,
    fit_multistate,
    fit_progression_cox,
    multistate_data,
    phase_exit_incidence,
    time_to_progression,
)
from stepanalytics.synth import SynthConfig, synthesize_tables
from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--clinics", type=int, default=40)
    parser.add_argument("--boot", type=int, default=200)
    args = parser.parse_args()
    print(f"== progression: {args.patients:,} patients, {args.clinics} clinics")
    with measured("synthetic cohort (generate + validate)"):
        tables, _ = synthesize_tables(
            SynthConfig(n_patients=args.patients, n_clinics=args.clinics, seed=1, items=False)
        )
        cohort = Cohort.from_tables(tables, protocol_text=SYNTH_PROTOCOL_YAML)
    print(f"   phase stays: {len(cohort.phases):,}")
    with measured("stay table (episodes, pauses merged)"):
        stays = build_stays(cohort)
    with measured("Kaplan-Meier per phase, by clinic + log-rank"):
        for phase in (1, 2, 3, 4):
            time_to_progression(stays, phase=phase, by="clinic_id")
    with measured("cumulative incidence per phase (IJ variance)"):
        for phase in (1, 2, 3, 4):
            phase_exit_incidence(stays, phase=phase)
    with measured("cumulative incidence per phase by clinic + Gray's test"):
        for phase in (1, 2, 3, 4):
            phase_exit_incidence(stays, phase=phase, by="clinic_id")
    with measured("Cox, phase 1, clinic strata + robust + cox.zph"):
        fit_progression_cox(
            stays, phase=1, covariates=["compensation_claim", "age_band", "sex"], clinic="strata"
        )
    with measured("Cox, Breslow ties (own Newton-Raphson), same model"):
        fit_progression_cox(
            stays,
            phase=1,
            covariates=["compensation_claim", "age_band", "sex"],
            clinic="strata",
            ties="breslow",
        )
    with measured("multi-state rows"):
        rows, _ = multistate_data(cohort)
    print(f"   multi-state rows: {len(rows):,}")
    with measured("multi-state fit, no bootstrap (AJ + IJ SEs)"):
        fit_multistate(rows, n_boot=0)
    with measured(f"multi-state fit with {args.boot} bootstrap replicates"):
        model = fit_multistate(rows, n_boot=args.boot)
    print(f"   occupation rows: {len(model.table):,}")
    # The process peak above is the cohort's; measure the model's own allocations
    # once more under tracemalloc (slower, so not timed).
    tracemalloc.start()
    fit_multistate(rows, n_boot=args.boot)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"   multi-state fit + bootstrap allocates at most {peak / 2**20:,.0f} MiB (tracemalloc)")
    print(f"peak RSS of the process: {process_peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
