"""One clinic's QI report from a large registry in DuckDB: time and peak memory.

Each step runs in a fresh process so that its peak memory is its own
(``ru_maxrss`` only grows); the notebook kernel is a child process and its
peak is reported too.

Steps: the peer results computed part by part (validating each clinic as
it is read), in one process and in worker processes; the clinic's report
rendered from them (the notebook reads only the clinic); the whole
``stepanalytics report qi --clinic`` path end to end; and, for comparison,
loading the whole registry into pandas, which is what a clinic's report
needed before.

The registry is written as `stepanalytics ingest` writes it (with the stored
scoring, so item answers are not read again); ``--plain`` leaves that out.

Usage: python benchmarks/bench_registry_report.py [--patients 100000] [--clinics 60] [--plain]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _measure import measured, process_peak_rss_mib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--clinics", type=int, default=60)
    parser.add_argument(
        "--plain",
        action="store_true",
        help="a registry written without the stored scoring of `stepanalytics ingest`",
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--clinic", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "make":
        n_patients, n_clinics = (int(v) for v in args.out.split(","))
        _make_registry(Path(args.db), n_patients, n_clinics, plain=args.clinic == "plain")
        return
    if args.step:
        _run_step(args.step, Path(args.db), args.clinic, Path(args.out))
        return
    print(f"== one clinic's QI report: {args.patients:,} patients, {args.clinics} clinics")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = root / "registry.duckdb"
        # Linux keeps a process's peak memory across exec: every step, generating the
        # registry too, runs in a child of this small process.
        made = subprocess.run(
            [sys.executable, __file__, "--step", "make", "--db", str(db),
             "--clinic", "plain" if args.plain else "",
             "--out", f"{args.patients},{args.clinics}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        print(made.stdout.strip())
        clinic = made.stdout.strip().splitlines()[-1].split("clinic ")[1].split(":")[0]
        steps = ("peers_one_process", "peers", "report_from_peers", "report_end_to_end")
        for step in (*steps, "whole_load"):
            _spawn(step, db, clinic, root)


def _make_registry(db: Path, n_patients: int, n_clinics: int, *, plain: bool) -> None:
    from stepanalytics.io import write_duckdb
    from stepanalytics.synth import SynthConfig, synthesize_tables
    from stepanalytics.synth.generate import SYNTH_PROTOCOL_YAML

    with measured("generate and write the registry (DuckDB)"):
        tables, _ = synthesize_tables(
            SynthConfig(n_patients=n_patients, n_clinics=n_clinics, seed=1)
        )
        write_duckdb(tables, db, protocol_text=SYNTH_PROTOCOL_YAML)
    if not plain:
        from stepanalytics import load_cohort

        with measured("ingest it (validate, score, store the scoring)"):
            cohort = load_cohort(db, tables=("assessments", "items", "events"))
            write_duckdb(
                cohort.to_tables(),
                db,
                protocol_text=SYNTH_PROTOCOL_YAML,
                scored=cohort,
                overwrite=True,
            )
            del cohort
    sizes = tables["patients"]["clinic_id"].value_counts().sort_values(kind="stable")
    clinic = str(sizes.index[len(sizes) // 2])  # a clinic of middling size
    n_clinic = int(sizes.iloc[len(sizes) // 2])
    size = db.stat().st_size / 2**20
    print(f"   registry {size:,.0f} MiB; clinic {clinic}: {n_clinic:,} patients")


def _spawn(step: str, db: Path, clinic: str, root: Path) -> None:
    command = [sys.executable, __file__, "--step", step, "--db", str(db), "--clinic", clinic]
    result = subprocess.run(
        [*command, "--out", str(root / "out")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        print(f"{step} failed:\n{result.stderr[-2000:]}")
        return
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"{facts['label']:<58} {facts['seconds']:8.2f} s   peak RSS {facts['peak_mib']:8.0f} MiB"
        + (f"   kernel {facts['kernel_mib']:6.0f} MiB" if facts.get("kernel_mib") else "")
        + (f"   each worker {facts['workers_mib']:6.0f} MiB" if facts.get("workers_mib") else ""),
        flush=True,
    )


def _run_step(step: str, db: Path, clinic: str, out: Path) -> None:
    from stepanalytics.reports import render_report
    from stepanalytics.reports.clinic_parts import PEER_WORKERS
    from stepanalytics.reports.shared import compute_peer_results, write_shared

    started = time.perf_counter()
    if step == "peers_one_process":
        label = "peer results, part by part, in this process"
        compute_peer_results(db, workers=1)
    elif step == "peers":
        label = f"peer results, parts read by {PEER_WORKERS} worker processes"
        write_shared(compute_peer_results(db, workers=PEER_WORKERS), out / "_shared")
    elif step == "report_from_peers":
        label = f"clinic {clinic}'s QI report from the peer results"
        shared = out / "_shared" / "peers_all-periods.pkl"
        render_report("qi", data=db, clinic=clinic, out_dir=out, shared=shared)
    elif step == "report_end_to_end":
        label = f"clinic {clinic}'s QI report end to end"
        render_report("qi", data=db, clinic=clinic, out_dir=out)
    else:
        from stepanalytics import load_cohort

        label = "for comparison: the whole registry into pandas"
        load_cohort(db)
    seconds = time.perf_counter() - started
    kernel = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**10
    facts = {
        "label": label,
        "seconds": seconds,
        "peak_mib": process_peak_rss_mib(),
        # A child forked from a big process starts with that process's peak (Linux keeps
        # it across fork and exec): only the kernel started from a small process is honest.
        "kernel_mib": kernel if step == "report_from_peers" else None,
        "workers_mib": kernel if step == "peers" else None,
    }
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
