"""Rendering time: one clinic's QI report, and a batch of 10 clinics.

Usage: python benchmarks/bench_reports.py [--patients 1000] [--clinics 10] [--workers 2]

Times include everything a user waits for: validating the cohort, starting
the notebook kernel, the analyses, conversion to HTML and the checks.  The
batch computes the peer comparisons once and renders 10 QI reports plus the
benchmark in worker processes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _measure import measured

from stepanalytics.reports import render_batch, render_report
from stepanalytics.synth import write_synthetic_cohort


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--clinics", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"== reports: {args.patients:,} patients, {args.clinics} clinics")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cohort"
        write_synthetic_cohort(data, n_patients=args.patients, n_clinics=args.clinics, seed=7)
        with measured("one clinic's QI report (HTML)"):
            report = render_report("qi", data=data, clinic="C01", out_dir=Path(tmp) / "one")
        print(f"   {report.html.name}: {report.html.stat().st_size / 1024:,.0f} KiB")
        with measured("one clinic's QI report (HTML + PDF)"):
            render_report("qi", data=data, clinic="C01", out_dir=Path(tmp) / "pdf", pdf=True)
        with measured("cohort explorer (all clinics)"):
            render_report("explorer", data=data, out_dir=Path(tmp) / "explorer")
        started = time.perf_counter()
        with measured(f"batch: {args.clinics} QI reports + benchmark, {args.workers} workers"):
            summary = render_batch(
                data, out_dir=Path(tmp) / "batch", workers=args.workers, progress=False
            )
        elapsed = time.perf_counter() - started
        ok = len(summary.succeeded)
        print(f"   {ok} of {len(summary.items)} written, {elapsed / max(ok, 1):.1f} s per report")
        for item in summary.failed:
            print(f"   FAILED {item.label}: {(item.error or '').splitlines()[0]}")


if __name__ == "__main__":
    main()
