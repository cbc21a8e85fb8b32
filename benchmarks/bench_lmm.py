"""The default random-slope model, fast engine vs statsmodels MixedLM.

Model: score ~ weeks + (weeks | patient_id), REML, 8 visits per patient, on
simulated data (intercept SD 8, slope SD 0.6, correlation -0.3, residual SD
5).  Each fit runs in a fresh process so that its wall time and peak
resident memory are its own; the data are simulated in that process, and a
50-patient warm-up fit runs, before the clock starts.  The fast engine's time
is the best of --repeats fits (the machine may be shared); statsmodels runs
once.  statsmodels
(method="lbfgs") runs only at the sizes given by --statsmodels-sizes (it
needs minutes at 8,000 patients), as a user would
run it; --single-thread-statsmodels adds a run with OpenBLAS limited to one
thread (scipy >= 1.15's L-BFGS-B is slow with threaded OpenBLAS; the fast
engine limits BLAS threads itself when threadpoolctl is installed).

Usage: python benchmarks/bench_lmm.py [--sizes 2000 8000 100000]
                                      [--statsmodels-sizes 2000 8000]
                                      [--single-thread-statsmodels]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

VISITS = 8


def simulate(n_patients: int, seed: int = 2026) -> pd.DataFrame:
    """Long-format scores of ``n_patients`` with correlated random intercepts and slopes."""
    rng = np.random.default_rng(seed)
    sd = np.array([8.0, 0.6])
    cov = np.array([[1.0, -0.3], [-0.3, 1.0]]) * np.outer(sd, sd)
    effects = rng.multivariate_normal([0.0, 0.0], cov, n_patients)
    patient = np.repeat(np.arange(n_patients), VISITS)
    weeks = np.tile(np.arange(VISITS) * 2.0, n_patients) + rng.uniform(0, 1, patient.size)
    score = 40.0 + effects[patient, 0] + (-1.0 + effects[patient, 1]) * weeks
    score += rng.normal(0.0, 5.0, patient.size)
    return pd.DataFrame({"patient_id": patient, "weeks": weeks, "score": score})


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fit_fast(data: pd.DataFrame) -> dict[str, Any]:
    from stepanalytics.lmm import fit_lmm

    ones = np.ones(len(data))
    design = np.column_stack([ones, data["weeks"].to_numpy()])
    fit = fit_lmm(
        data["score"].to_numpy(),
        design,
        design,
        data["patient_id"].to_numpy(),
        x_names=["Intercept", "weeks"],
        z_names=["Intercept", "weeks"],
    )
    return {
        "beta": fit.fixed_effects.to_numpy(),
        "loglik": fit.loglik,
        "evaluations": fit.n_evaluations,
        "converged": fit.converged,
    }


def _fit_statsmodels(data: pd.DataFrame) -> dict[str, Any]:
    import warnings

    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.mixedlm("score ~ weeks", data, groups="patient_id", re_formula="~weeks")
        fit = model.fit(reml=True, method="lbfgs")
    return {
        "beta": np.asarray(fit.fe_params),
        "loglik": float(fit.llf),
        "evaluations": None,
        "converged": bool(fit.converged),
    }


def _run(engine: str, n_patients: int, repeats: int, queue: mp.Queue) -> None:
    if engine == "statsmodels-1t":
        import os

        os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy loads OpenBLAS
    # Import before the clock starts: only the fit is timed.
    if engine == "fast":
        import stepanalytics.lmm  # noqa: F401
    else:
        import statsmodels.formula.api  # noqa: F401
    # A small warm-up fit pays one-time costs (lazy imports, library discovery).
    (_fit_fast if engine == "fast" else _fit_statsmodels)(simulate(50))
    data = simulate(n_patients)
    baseline = _rss_mib()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = (_fit_fast if engine == "fast" else _fit_statsmodels)(data)
        times.append(time.perf_counter() - start)
    elapsed = min(times)
    result.update(
        engine=engine,
        patients=n_patients,
        seconds=elapsed,
        peak_rss_mib=_peak_rss_mib(),
        added_mib=_peak_rss_mib() - baseline,
    )
    queue.put(result)


def measure(engine: str, n_patients: int, repeats: int = 1) -> dict[str, Any]:
    """Fit in a fresh process; return the best time of ``repeats``, memory and estimates."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run, args=(engine, n_patients, repeats, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 8_000, 100_000])
    parser.add_argument("--statsmodels-sizes", type=int, nargs="*", default=[2_000, 8_000])
    parser.add_argument("--single-thread-statsmodels", action="store_true")
    parser.add_argument(
        "--repeats", type=int, default=3, help="fast-engine fits per size; the best time counts"
    )
    args = parser.parse_args()

    print(f"== random-slope LMM, {VISITS} visits per patient, REML")
    header = f"{'engine':<15}{'patients':>10}{'rows':>11}{'time s':>10}{'peak RSS MiB':>14}"
    print(header + f"{'added MiB':>11}{'evals':>7}  converged")
    rows = []
    for n in args.sizes:
        engines = ["fast"]
        if n in args.statsmodels_sizes:
            engines.append("statsmodels")
            if args.single_thread_statsmodels:
                engines.append("statsmodels-1t")
        for engine in engines:
            r = measure(engine, n, args.repeats if engine == "fast" else 1)
            rows.append(r)
            evals = "" if r["evaluations"] is None else str(r["evaluations"])
            print(
                f"{engine:<15}{n:>10,}{n * VISITS:>11,}{r['seconds']:>10.2f}"
                f"{r['peak_rss_mib']:>14.0f}{r['added_mib']:>11.0f}{evals:>7}  {r['converged']}",
                flush=True,
            )
    print()
    for n in args.sizes:
        by_engine = {r["engine"]: r for r in rows if r["patients"] == n}
        fast = by_engine["fast"]
        for name in ("statsmodels", "statsmodels-1t"):
            if name not in by_engine:
                continue
            sm = by_engine[name]
            speedup = sm["seconds"] / fast["seconds"]
            diff = np.max(np.abs(fast["beta"] - sm["beta"]))
            print(
                f"{n:>8,} patients: fast engine {speedup:,.0f}x faster than {name}; "
                f"max |beta diff| {diff:.1e}; loglik fast - {name} "
                f"{fast['loglik'] - sm['loglik']:+.2e}"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
