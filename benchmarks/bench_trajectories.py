"""fit_mixed_model's default trajectory model with the statsmodels engine: time and memory.

Model: score ~ weeks + (weeks | patient_id), REML, on simulated data with 8
visits per patient (intercept SD 8, slope SD 0.6, correlation -0.3, residual
SD 5).  Every optimizer runs independently (lbfgs, bfgs, cg, powell by
default), then the bounded polish, the Satterthwaite df and a predicted mean
trajectory.  Each size runs in a fresh process so that its peak resident
memory is its own; the data are simulated before the clock starts.

Usage: python benchmarks/bench_trajectories.py [--sizes 2000 8000]
                                               [--optimizers lbfgs bfgs cg powell]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from typing import Any

import numpy as np
import pandas as pd

VISITS = 8


def simulate(n_patients: int, seed: int = 7) -> pd.DataFrame:
    """Scores of ``n_patients`` with correlated random intercepts and slopes, 8 visits each."""
    rng = np.random.default_rng(seed)
    sd = np.array([8.0, 0.6])
    cov = np.array([[1.0, -0.3], [-0.3, 1.0]]) * np.outer(sd, sd)
    effects = rng.multivariate_normal([0.0, 0.0], cov, n_patients)
    patient = np.repeat(np.arange(n_patients), VISITS)
    weeks = np.tile(np.arange(VISITS) * 4.0, n_patients) + rng.uniform(0, 2, patient.size)
    score = 40.0 + effects[patient, 0] + (-1.0 + effects[patient, 1]) * weeks
    score += rng.normal(0.0, 5.0, patient.size)
    ids = np.char.add("P", np.char.zfill(patient.astype(str), 6))
    return pd.DataFrame({"patient_id": ids, "weeks": weeks, "score": score})


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(n_patients: int, optimizers: list[str], queue: Any) -> None:
    from stepanalytics.trajectories import fit_mixed_model, predict_trajectory

    data = simulate(n_patients)
    before = _peak_rss_mib()
    start = time.perf_counter()
    fit = fit_mixed_model(data, formula="score ~ weeks", re_formula="~weeks", optimizers=optimizers)
    fitted = time.perf_counter()
    predict_trajectory(fit)
    predicted = time.perf_counter()
    attempts = fit.attempts
    queue.put(
        {
            "patients": n_patients,
            "fit_seconds": fitted - start,
            "predict_seconds": predicted - fitted,
            "optimizer_seconds": dict(zip(attempts["optimizer"], attempts["seconds"], strict=True)),
            "other_seconds": fitted - start - float(attempts["seconds"].sum()),
            "peak_rss_mib": _peak_rss_mib(),
            "data_rss_mib": before,
            "loglik": fit.loglik,
            "converged": bool(fit.fit.converged),
            "beta": fit.to_frame()["estimate"].to_numpy(),
        }
    )


def measure(n_patients: int, optimizers: list[str]) -> dict[str, Any]:
    """Fit in a fresh process and return its timings and memory."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run, args=(n_patients, optimizers, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 8_000])
    parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "bfgs", "cg", "powell"])
    args = parser.parse_args()
    print(f"== trajectories: score ~ weeks + (weeks | patient_id), {VISITS} visits, REML")
    print(f"   optimizers: {', '.join(args.optimizers)} (each from the default start)")
    for n in args.sizes:
        r = measure(n, args.optimizers)
        runs = ", ".join(f"{k} {v:.1f}s" for k, v in r["optimizer_seconds"].items())
        print(
            f"{n:>8,} patients ({n * VISITS:,} rows): fit {r['fit_seconds']:.1f} s "
            f"[{runs}; design + Satterthwaite {r['other_seconds']:.1f}s], "
            f"prediction {r['predict_seconds']:.2f} s, peak RSS {r['peak_rss_mib']:.0f} MiB "
            f"(data {r['data_rss_mib']:.0f} MiB), loglik {r['loglik']:.3f}, "
            f"converged {r['converged']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
