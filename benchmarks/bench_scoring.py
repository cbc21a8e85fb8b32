"""Scoring speed: 1,000,000 item rows through the checks and score_items.

Usage: python benchmarks/bench_scoring.py [--rows 1000000] [--seed 1]

Measured on the project machine (2 cores): check_item_values 0.3 s CPU,
score_items 0.7 s CPU including its checks, peak Python heap about 110 MiB.

The items are a realistic mix of questionnaires (PHQ-9, GAD-7, PCS, PSEQ,
ODI, ISI, DASS-21, BPI, RMDQ, TSK-11), about 5% unanswered items and 1% of
item rows absent, in shuffled order.  Time is wall time of one run without
memory tracing; the peak heap comes from a second, traced run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from _measure import measured, process_peak_rss_mib

from stepanalytics.instruments import check_item_values, get_registry, score_items

MIX = ["phq9", "gad7", "pcs", "pseq", "odi", "isi", "dass21", "bpi_interference", "rmdq", "tsk11"]


def make_items(n_rows: int, seed: int) -> pd.DataFrame:
    """About ``n_rows`` item answers from complete forms of the questionnaire mix."""
    rng = np.random.default_rng(seed)
    registry = get_registry()
    per_form = np.mean([registry.questionnaire(c).n_items for c in MIX])
    n_forms = int(n_rows / per_form)
    codes = rng.choice(MIX, size=n_forms)
    blocks = []
    for code in MIX:
        spec = registry.questionnaire(code)
        forms = np.flatnonzero(codes == code)
        n = spec.n_items
        values = rng.integers(int(spec.item_min), int(spec.item_max) + 1, size=(forms.size, n))
        values = values.astype(float)
        values[rng.random(values.shape) < 0.05] = np.nan
        blocks.append(
            pd.DataFrame(
                {
                    "patient_id": np.repeat([f"P{f // 8:07d}" for f in forms], n),
                    "day": np.repeat((forms % 8) * 30, n).astype(np.int64),
                    "instrument": code,
                    "item": np.tile(np.arange(1, n + 1, dtype=np.int64), forms.size),
                    "value": values.ravel(),
                }
            )
        )
    items = pd.concat(blocks, ignore_index=True)
    items = items[rng.random(len(items)) >= 0.01]  # some item rows absent altogether
    return items.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    items = make_items(args.rows, args.seed)
    print(f"== scoring {len(items):,} item rows ({items['instrument'].nunique()} questionnaires)")
    registry = get_registry()

    wall, cpu = time.perf_counter(), time.process_time()
    problems = check_item_values(items, registry)
    checked = time.perf_counter(), time.process_time()
    result = score_items(items, registry=registry)
    done = time.perf_counter(), time.process_time()
    if problems:
        raise SystemExit("the generator made invalid answers: " + problems[0].render())
    # CPU time is shown too: wall time on a shared machine also measures the neighbours.
    print(
        f"check_item_values              wall {checked[0] - wall:6.2f} s   "
        f"cpu {checked[1] - cpu:6.2f} s"
    )
    print(
        f"score_items (checks included)  wall {done[0] - checked[0]:6.2f} s   "
        f"cpu {done[1] - checked[1]:6.2f} s"
    )
    print(
        f"   {len(result.report):,} form x instrument rows, {len(result.assessments):,} scores, "
        f"{len(result.red_flags):,} red flags"
    )
    print(result.table.to_string(index=False))
    with measured("score_items again, traced for peak memory"):
        score_items(items, registry=registry)
    print(f"process peak RSS: {process_peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
