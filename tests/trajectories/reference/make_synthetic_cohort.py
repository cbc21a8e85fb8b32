"""Write synthetic_cohort.csv: the long ODI table of a small synthetic cohort.

Run from the repository root:  .venv/bin/python tests/trajectories/reference/make_synthetic_cohort.py
then:  cd tests/trajectories/reference && Rscript lme4_reference.R

The CSV is committed, so the tests and the R reference use the same rows even
if the generator changes later.  Columns: patient_id, clinic_id, weeks,
score, the phase clocks (weeks_phase1..4, weeks_outside_phases) and
compensation_claim.
"""

from __future__ import annotations

from pathlib import Path

from stepanalytics.synth import synthesize_cohort
from stepanalytics.trajectories import trajectory_data

SEED = 11
N_PATIENTS = 200
N_CLINICS = 5
HERE = Path(__file__).resolve().parent


def main() -> None:
    cohort = synthesize_cohort(n_patients=N_PATIENTS, n_clinics=N_CLINICS, seed=SEED)
    data = trajectory_data(cohort, "odi")
    clocks = [c for c in data.columns if c.startswith("weeks_phase")]
    columns = [
        "patient_id",
        "clinic_id",
        "weeks",
        "score",
        *clocks,
        "weeks_outside_phases",
        "compensation_claim",
    ]
    out = data[columns].sort_values(["patient_id", "weeks"], kind="stable")
    out.to_csv(HERE / "synthetic_cohort.csv", index=False, float_format="%.10g")
    print(f"wrote {len(out)} rows of {out['patient_id'].nunique()} patients")


if __name__ == "__main__":
    main()
