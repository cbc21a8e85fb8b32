"""A batch of per-clinic QI reports: local process pool vs a Dask LocalCluster.

Usage: python benchmarks/bench_batch.py [--patients 2500] [--clinics 50] [--workers 2]
                                        [--modes pool,dask,dask-scatter] [--pdf]

Each mode renders the same batch (one QI report per clinic plus the clinic
benchmark, peer results computed once in this process) into its own folder:

- ``pool``: ``concurrent.futures`` process pool (spawn), ``--workers`` processes;
- ``dask``: a Dask LocalCluster of ``--workers`` processes (one thread each),
  peer results read by path (``--scheduler local``);
- ``dask-scatter``: the same cluster, peer results and notebooks scattered to
  the workers and the reports sent back (what a remote cluster does by
  default), to show what shipping costs.

Times are wall times of the whole batch as a user waits for it (validation,
peer comparisons, starting the workers or cluster, every notebook, the
index).  Memory: the peak resident set of this (client) process, and the
peak of the summed resident sets of the whole process tree (client, workers,
nannies, notebook kernels), sampled every 0.2 s (shared pages are counted in
every process that maps them, so this overstates the tree's true use a little).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))

from _measure import process_peak_rss_mib

from stepanalytics.reports import render_batch
from stepanalytics.synth import write_synthetic_cohort

MODES = {
    "pool": {"scheduler": None, "ship": "auto"},
    "dask": {"scheduler": "local", "ship": "path"},
    "dask-scatter": {"scheduler": "local", "ship": "scatter"},
}


class TreeMemory:
    """Peak of the summed RSS of this process and all its descendants."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # ended between listing and reading
                    total += process.memory_info().rss
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2500)
    parser.add_argument("--clinics", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", default="pool,dask", help=f"comma-separated: {', '.join(MODES)}")
    parser.add_argument("--pdf", action="store_true", help="also write PDFs")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    print(
        f"== batch of per-clinic reports: {args.patients:,} patients, {args.clinics} clinics, "
        f"{args.workers} workers",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cohort"
        write_synthetic_cohort(
            data, n_patients=args.patients, n_clinics=args.clinics, seed=args.seed
        )
        for mode in modes:
            started = time.perf_counter()
            with TreeMemory() as tree:
                summary = render_batch(
                    data,
                    out_dir=Path(tmp) / mode,
                    workers=args.workers,
                    pdf=args.pdf,
                    progress=False,
                    **MODES[mode],
                )
            seconds = time.perf_counter() - started
            ok = len(summary.succeeded)
            rows.append((mode, seconds, ok, len(summary.items), tree.peak_bytes / 2**20))
            print(
                f"{mode:<14} {seconds:8.1f} s   {ok} of {len(summary.items)} written   "
                f"{seconds / max(len(summary.items), 1):5.2f} s per report   "
                f"peak RSS: client {process_peak_rss_mib():6.0f} MiB, "
                f"process tree {tree.peak_bytes / 2**20:6.0f} MiB",
                flush=True,
            )
            for item in summary.failed:
                print(f"   FAILED {item.label}: {(item.error or '').splitlines()[0]}")
    if len(rows) > 1:
        base = rows[0]
        for mode, seconds, *_ in rows[1:]:
            print(f"{mode} / {base[0]}: {seconds / base[1]:.2f}x the wall time")


if __name__ == "__main__":
    main()
