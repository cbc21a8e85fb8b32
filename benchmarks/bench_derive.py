"""Derivation of the measurement view (phase at measurement, baseline): pandas vs DuckDB.

The inputs (assessments with clinic and protocol, and the phase stays) of a
synthetic cohort are built once and saved; each engine then runs in a
process of its own, so that its peak memory is its own.  Each child prints
the RSS after loading the inputs and after deriving, and the time of a
first (cold) and a second (warm) run.  The results are checked equal.

Usage: python benchmarks/bench_derive.py [--patients 10000 100000] [--clinics 60]
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _measure import measured, process_peak_rss_mib

ENGINES = ("pandas", "duckdb")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--clinics", type=int, default=60)
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "INPUTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _derive(*args.child)
        return
    for n_patients in args.patients:
        with tempfile.TemporaryDirectory() as tmp:
            inputs = Path(tmp) / "inputs.pkl"
            # The inputs are built in a child too: generating and validating
            # would otherwise set this process's peak.
            subprocess.run(
                [sys.executable, "-c", _BUILD, str(n_patients), str(args.clinics), str(inputs)],
                check=True,
            )
            for engine in ENGINES:
                subprocess.run(
                    [sys.executable, __file__, "--child", engine, str(inputs)], check=True
                )
            _check_equal(inputs)


_BUILD = """
import pickle, sys
from stepanalytics import Cohort
from stepanalytics.synth import SynthConfig, synthesize_tables
from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML
n, clinics, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tables, _ = synthesize_tables(SynthConfig(n_patients=n, n_clinics=clinics, seed=1))
cohort = Cohort.from_tables(tables, protocol_text=SYNTH_PROTOCOL_YAML)
frame = cohort.assessments.merge(
    cohort.patients[["patient_id", "clinic_id", "protocol"]], on="patient_id", how="left"
)
frame["weeks"] = frame["day"] / 7.0
print(f"== {n:,} patients: {len(frame):,} scores, {len(cohort.phases):,} stays", flush=True)
with open(out, "wb") as f:
    pickle.dump((frame, cohort.phases), f)
"""


def _derive(engine: str, inputs: str) -> None:
    from stepanalytics.derive import add_baseline, assign_phase

    with open(inputs, "rb") as f:
        frame, phases = pickle.load(f)
    loaded = process_peak_rss_mib()
    for run in ("cold", "warm"):
        start = time.perf_counter()
        with_phase = assign_phase(frame, phases, engine=engine)
        middle = time.perf_counter()
        derived = add_baseline(with_phase, engine=engine)
        end = time.perf_counter()
        print(
            f"   {engine:<7} {run}: assign_phase {middle - start:6.2f} s, "
            f"add_baseline {end - middle:6.2f} s, total {end - start:6.2f} s",
            flush=True,
        )
        if run == "cold":
            print(
                f"   {engine:<7} peak RSS {process_peak_rss_mib():,.0f} MiB "
                f"(inputs loaded: {loaded:,.0f} MiB)",
                flush=True,
            )
        del with_phase
    with open(f"{inputs}.{engine}", "wb") as f:
        pickle.dump(derived, f)


def _check_equal(inputs: Path) -> None:
    import pandas as pd

    with measured("   results of the engines compared"):
        frames = []
        for engine in ENGINES:
            with open(f"{inputs}.{engine}", "rb") as f:
                frames.append(pickle.load(f))
        pd.testing.assert_frame_equal(frames[1], frames[0], check_dtype=True)
    print("   the engines' frames are equal")


if __name__ == "__main__":
    main()
