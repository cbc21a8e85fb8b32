"""Generation, loading and validation of a large synthetic cohort.

Usage: python benchmarks/bench_cohort.py [--patients 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _measure import measured, process_peak_rss_mib

from stepanalytics import load_cohort
from stepanalytics.io.tables import write_tables
from stepanalytics.synth import SynthConfig, synthesize_tables
from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--clinics", type=int, default=60)
    args = parser.parse_args()
    print(f"== cohort: {args.patients:,} patients, {args.clinics} clinics")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with measured("generate tables (in memory)"):
            tables, _ = synthesize_tables(
                SynthConfig(n_patients=args.patients, n_clinics=args.clinics, seed=1)
            )
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in tables.items())
        print(f"   rows: {sizes}")
        for fmt in ("parquet", "csv"):
            folder = Path(tmp) / fmt
            with measured(f"write {fmt}"):
                write_tables(tables, folder, fmt=fmt, protocol_text=SYNTH_PROTOCOL_YAML)
            print(f"   generate + write {fmt}: {time.perf_counter() - t0:.1f} s")
            with measured(f"load + validate + score items ({fmt})"):
                cohort = load_cohort(folder)
            with measured("derive measurements (phase, baseline)"):
                _ = cohort.measurements
            t0 = time.perf_counter()
    print(f"peak RSS of the process: {process_peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
