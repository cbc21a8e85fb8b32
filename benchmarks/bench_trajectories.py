"""fit_trajectory's default model on registry-sized cohorts: fast engine vs statsmodels.

Model: score ~ weeks + (weeks | patient_id), REML, through
``fit_trajectory(cohort, "odi", engine=...)`` on a validated Cohort - so the
time includes everything a user waits for: picking the instrument's rows,
the phase clocks, the design, the fit, the Satterthwaite df and the result.
The cohort is simulated with exactly 8 ODI visits per patient (every 4 weeks,
0-4 days late), 200 clinics, three phase stays per patient, correlated
random intercepts (SD 8) and slopes (SD 0.6 per week, correlation -0.3), a
clinic intercept (SD 2) and residual SD 5; it is built and validated, and its
derived measurements table (cached on the Cohort) computed, before the clock
starts: the derivation time is reported on its own.

Every (engine, size) runs in a fresh process so that its peak memory is its
own: "fit peak" is the process's peak resident memory during the timed fit
(the kernel's high-water mark is reset just before it), "added" that peak
minus the resident memory just before the fit, "process peak" the peak over
the whole process (cohort building and validation included).  The machine
may be shared, so the fast engine's time is the best of --repeats fits of
the same cohort (statsmodels runs once).
statsmodels runs with the engine's default optimizers (lbfgs, bfgs, cg,
powell, each from the default start, then the bounded polish) unless
--statsmodels-optimizers says otherwise; it runs only at the sizes in
--statsmodels-sizes.

Usage: python benchmarks/bench_trajectories.py [--sizes 2000 8000 100000]
           [--statsmodels-sizes 2000 8000] [--statsmodels-optimizers lbfgs ...]
           [--clinic-random]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import resource
import time
from typing import Any

import numpy as np
import pandas as pd

VISITS = 8
N_CLINICS = 200


def registry_tables(n_patients: int, seed: int = 7) -> dict[str, pd.DataFrame]:
    """Contract tables of a simulated registry: patients, phase stays, 8 ODI scores each."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("P", np.char.zfill(np.arange(1, n_patients + 1).astype(str), 7))
    clinic = rng.integers(0, N_CLINICS, n_patients)
    days = np.arange(VISITS) * 28 + rng.integers(0, 5, (n_patients, VISITS))
    patients = pd.DataFrame(
        {
            "patient_id": ids.astype(object),
            "clinic_id": np.char.add("C", np.char.zfill(clinic.astype(str), 3)).astype(object),
            "enrolled_month": "2025-01",
            "last_contact_day": (days[:, -1] + rng.integers(0, 30, n_patients)).astype("int64"),
            "protocol": "default",
        }
    )
    starts = np.tile([0, 56, 126], n_patients).astype("int64")
    ends = pd.array(np.tile([55, 125, 0], n_patients), dtype="Int64")
    ends[2::3] = pd.NA  # the third stay is ongoing
    phases = pd.DataFrame(
        {
            "patient_id": np.repeat(ids, 3).astype(object),
            "phase": np.tile([1, 2, 3], n_patients).astype("int64"),
            "start_day": starts,
            "end_day": ends,
            "exit_reason": np.tile(np.array(["progressed", "progressed", "ongoing"]), n_patients),
        }
    )
    sd = np.array([8.0, 0.6])
    cov = np.array([[1.0, -0.3], [-0.3, 1.0]]) * np.outer(sd, sd)
    effects = rng.multivariate_normal([0.0, 0.0], cov, n_patients)
    clinic_effect = rng.normal(0.0, 2.0, N_CLINICS)[clinic]
    weeks = days / 7.0
    score = 40.0 + effects[:, [0]] + clinic_effect[:, None] + (-1.0 + effects[:, [1]]) * weeks
    score = np.clip(np.round(score + rng.normal(0.0, 5.0, score.shape)), 0, 100)
    assessments = pd.DataFrame(
        {
            "patient_id": np.repeat(ids, VISITS).astype(object),
            "day": days.ravel().astype("int64"),
            "instrument": "odi",
            "score": score.ravel(),
        }
    )
    return {"patients": patients, "phases": phases, "assessments": assessments}


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _run(engine: str, n_patients: int, options: dict[str, Any], queue: Any) -> None:
    from stepanalytics.cohort import Cohort
    from stepanalytics.trajectories import fit_trajectory

    # A small warm-up pays one-time costs (lazy imports) outside the clock.
    warm = Cohort.from_tables(registry_tables(60))
    fit_trajectory(warm, "odi", engine=engine, optimizers=options.get("optimizers"))
    cohort = Cohort.from_tables(registry_tables(n_patients))
    started = time.perf_counter()
    _ = cohort.measurements
    derive_seconds = time.perf_counter() - started
    times, peaks, added = [], [], []
    for _ in range(options.get("repeats", 1)):
        gc.collect()
        baseline = _status_mib("VmRSS")
        _reset_peak()
        started = time.perf_counter()
        fit = fit_trajectory(
            cohort,
            "odi",
            engine=engine,
            optimizers=options.get("optimizers"),
            clinic_effect="random" if options.get("clinic_random") else None,
        )
        times.append(time.perf_counter() - started)
        peaks.append(_status_mib("VmHWM"))
        added.append(peaks[-1] - baseline)
    queue.put(
        {
            "engine": engine,
            "patients": n_patients,
            "rows": fit.design.problem.n_obs,
            "seconds": min(times),
            "repeats": len(times),
            "derive_seconds": derive_seconds,
            "fit_peak_mib": max(peaks),
            "fit_added_mib": max(added),
            "process_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "loglik": fit.loglik,
            "converged": bool(fit.fit.converged),
            "beta": fit.to_frame()["estimate"].to_numpy(),
            "sds": fit.variance_components["estimate"].to_numpy(),
        }
    )


def measure(engine: str, n_patients: int, **options: Any) -> dict[str, Any]:
    """Fit in a fresh process; return time, memory and the estimates."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run, args=(engine, n_patients, options, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 8_000, 100_000])
    parser.add_argument("--statsmodels-sizes", type=int, nargs="*", default=[2_000, 8_000])
    parser.add_argument("--statsmodels-optimizers", nargs="+", default=None)
    parser.add_argument("--clinic-random", action="store_true", help="fast engine only")
    parser.add_argument(
        "--repeats", type=int, default=3, help="fast-engine fits per size; the best time counts"
    )
    args = parser.parse_args()
    model = "score ~ weeks + (weeks | patient_id)"
    if args.clinic_random:
        model += " + (1 | clinic_id)"
    print(f"== fit_trajectory: {model}, REML, {VISITS} visits per patient, {N_CLINICS} clinics")
    print(
        f"{'engine':<12}{'patients':>10}{'rows':>11}{'fit s':>9}{'derive s':>10}"
        f"{'fit peak MiB':>14}{'added MiB':>11}{'process MiB':>13}  converged"
    )
    rows = []
    for n in args.sizes:
        engines = ["fast"]
        if n in args.statsmodels_sizes and not args.clinic_random:
            engines.append("statsmodels")
        for engine in engines:
            options: dict[str, Any] = {"clinic_random": args.clinic_random, "repeats": 1}
            if engine == "statsmodels":
                options["optimizers"] = args.statsmodels_optimizers
            else:
                options["repeats"] = args.repeats
            r = measure(engine, n, **options)
            rows.append(r)
            print(
                f"{engine:<12}{n:>10,}{r['rows']:>11,}{r['seconds']:>9.2f}{r['derive_seconds']:>10.2f}"
                f"{r['fit_peak_mib']:>14.0f}{r['fit_added_mib']:>11.0f}"
                f"{r['process_peak_mib']:>13.0f}  {r['converged']}",
                flush=True,
            )
    print()
    for n in args.sizes:
        by_engine = {r["engine"]: r for r in rows if r["patients"] == n}
        if "statsmodels" not in by_engine:
            continue
        fast, sm = by_engine["fast"], by_engine["statsmodels"]
        print(
            f"{n:>8,} patients: fast engine {sm['seconds'] / fast['seconds']:,.0f}x faster; "
            f"max |beta diff| {np.max(np.abs(fast['beta'] - sm['beta'])):.1e}; "
            f"max |SD diff| {np.max(np.abs(fast['sds'] - sm['sds'])):.1e}; "
            f"loglik fast - statsmodels {fast['loglik'] - sm['loglik']:+.2e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
