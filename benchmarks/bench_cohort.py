"""Generation, loading and validation of a large synthetic cohort.

Times: generating the tables; writing Parquet and CSV; loading + validating
(+ scoring items) from each format and from DuckDB; deriving the
measurement view; loading from an ingested DuckDB file that keeps the
scores from items (in a child process, so its peak memory is its own);
loading one clinic only from DuckDB and from a Parquet folder partitioned
by clinic.

Usage: python benchmarks/bench_cohort.py [--patients 100000] [--clinics 60] [--skip-csv]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pyarrow as pa
import pyarrow.parquet as pq
from _measure import measured, process_peak_rss_mib

from stepanalytics import load_cohort
from stepanalytics.io import write_duckdb, write_tables
from stepanalytics.synth import SynthConfig, synthesize_tables
from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--clinics", type=int, default=60)
    parser.add_argument("--skip-csv", action="store_true")
    parser.add_argument("--load-stored", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_stored:  # the child process of the stored-scores step
        _load_stored(args.load_stored)
        return
    print(f"== cohort: {args.patients:,} patients, {args.clinics} clinics")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with measured("generate tables (in memory)"):
            config = SynthConfig(n_patients=args.patients, n_clinics=args.clinics, seed=1)
            tables, _ = synthesize_tables(config)
        print("   rows: " + ", ".join(f"{k} {len(v):,}" for k, v in tables.items()))
        formats = ["parquet"] if args.skip_csv else ["parquet", "csv"]
        for fmt in formats:
            with measured(f"write {fmt}"):
                write_tables(tables, root / fmt, fmt=fmt, protocol_text=SYNTH_PROTOCOL_YAML)
        for fmt in formats:
            with measured(f"load + validate + score items ({fmt})"):
                cohort = load_cohort(root / fmt)
        with measured("derive measurements (phase, baseline)"):
            _ = cohort.measurements
        with measured("write DuckDB (ingest, scores from items kept)"):
            db = write_duckdb(
                cohort.to_tables(),
                root / "c.duckdb",
                protocol_text=SYNTH_PROTOCOL_YAML,
                scored=cohort,
            )
        clinic = cohort.clinics[len(cohort.clinics) // 2]
        n_clinic = int((cohort.patients["clinic_id"] == clinic).sum())
        partitioned = _partition_by_clinic(cohort, root / "partitioned")
        # One cohort in memory at a time keeps the peak honest.
        del cohort, tables
        gc.collect()
        subprocess.run([sys.executable, __file__, "--load-stored", str(db)], check=True)
        with measured("load + validate + score items (DuckDB)"):
            # Asking for items reads and scores them, as every load did before.
            load_cohort(db, tables=["assessments", "items", "events"])
        gc.collect()
        with measured(f"load one clinic ({n_clinic:,} patients) from DuckDB, stored scores"):
            load_cohort(db, clinics=[clinic])
        with measured("load one clinic from Parquet partitioned by clinic"):
            load_cohort(partitioned, clinics=[clinic])
    print(f"peak RSS of the process: {process_peak_rss_mib():,.0f} MiB")


def _load_stored(db: Path) -> None:
    start = time.perf_counter()
    cohort = load_cohort(db)
    elapsed = time.perf_counter() - start
    if "items" in cohort.tables_read:
        raise SystemExit("the stored scores were not used: " + "; ".join(cohort.notes))
    # ru_maxrss survives fork and exec on Linux (it would show the parent's
    # peak); VmHWM belongs to this process's own memory map.
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    hwm = [int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")]
    peak = f"{hwm[0]:8.0f} MiB (own process)" if hwm else "n/a"
    label = "load from an ingested DuckDB (stored scores)"
    print(f"{label:<50} {elapsed:8.2f} s   peak RSS {peak}", flush=True)
    print(f"   ({len(cohort.assessments):,} scores; items not read)", flush=True)


def _partition_by_clinic(cohort, folder: Path) -> Path:
    folder.mkdir()
    (folder / "protocol.yaml").write_text(SYNTH_PROTOCOL_YAML)
    clinic_of = cohort.patients.set_index("patient_id")["clinic_id"]
    for name, frame in cohort.to_tables().items():
        if "clinic_id" not in frame.columns:
            frame = frame.assign(clinic_id=frame["patient_id"].map(clinic_of))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_to_dataset(table, folder / name, partition_cols=["clinic_id"])
    return folder


if __name__ == "__main__":
    main()
