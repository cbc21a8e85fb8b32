"""Write the synthetic reference datasets read by lmm_reference.R and the tests.

nested.csv: a small registry, 20 clinics x 30 patients, up to 6 visits at
irregular weeks; clinic random intercept (SD 3), correlated patient intercept
and slope (SDs 8 and 0.4, correlation -0.3), residual SD 5.

singular.csv: 40 patients x 5 visits with a random intercept and *no* slope
variance, fitted with a random slope: the slope variance lands on its
boundary (a singular fit in lme4's sense).

Run once; the CSVs are committed.

    .venv/bin/python tests/lmm/reference/make_reference_data.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20260109
N_CLINICS, PATIENTS_PER_CLINIC = 20, 30
PLANNED_WEEKS = np.array([0.0, 2.0, 4.0, 8.0, 12.0, 16.0])


def make_nested(seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    clinic_effect = rng.normal(0.0, 3.0, N_CLINICS)
    sd = np.array([8.0, 0.4])
    corr = np.array([[1.0, -0.3], [-0.3, 1.0]])
    cov = corr * np.outer(sd, sd)
    rows = []
    for c in range(N_CLINICS):
        for i in range(PATIENTS_PER_CLINIC):
            b0, b1 = rng.multivariate_normal([0.0, 0.0], cov)
            n_visits = int(rng.integers(3, 7))  # 3..6 visits: some patients leave early
            weeks = PLANNED_WEEKS[:n_visits] + rng.uniform(-0.5, 0.5, n_visits) * (
                PLANNED_WEEKS[:n_visits] > 0
            )
            for w in weeks:
                score = 50.0 + clinic_effect[c] + b0 + (-1.0 + b1) * w + rng.normal(0.0, 5.0)
                rows.append((f"C{c + 1:02d}", f"C{c + 1:02d}-P{i + 1:02d}", round(w, 3), score))
    frame = pd.DataFrame(rows, columns=["clinic_id", "patient_id", "weeks", "score"])
    frame["score"] = frame["score"].round(2)
    return frame


def make_singular(seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 2)
    n_patients, n_visits = 40, 5
    patient = np.repeat(np.arange(n_patients), n_visits)
    weeks = np.tile(np.arange(n_visits) * 2.0, n_patients)
    score = 30.0 - 0.5 * weeks + rng.normal(0.0, 4.0, n_patients)[patient]
    score = score + rng.normal(0.0, 3.0, patient.size)
    return pd.DataFrame(
        {"patient_id": [f"P{p + 1:02d}" for p in patient], "weeks": weeks, "score": score.round(2)}
    )


if __name__ == "__main__":
    here = Path(__file__).parent
    make_nested().to_csv(here / "nested.csv", index=False)
    make_singular().to_csv(here / "singular.csv", index=False)
    print(f"wrote nested.csv and singular.csv in {here}")
