"""Write the multi-state rows that multistate_by_reference.R reads (groups compared).

Run from the repository root, then run the R script:
    .venv/bin/python tests/progression/reference/make_multistate_by.py
    Rscript tests/progression/reference/multistate_by_reference.R

The CSV is committed: the tests compare our per-group fits on these very
rows with R's, so later changes to the generator do not move the references.
"""

from __future__ import annotations

from pathlib import Path

from stepanalytics.progression import multistate_data
from stepanalytics.synth import synthesize_cohort

HERE = Path(__file__).parent
SEED = 2026
N_PATIENTS = 300

COLUMNS = ["patient_id", "clinic_id", "protocol", "compensation_claim", "tstart", "tstop",
           "from_state", "to_state"]  # fmt: skip


def main() -> None:
    cohort = synthesize_cohort(n_patients=N_PATIENTS, n_clinics=6, seed=SEED)
    rows, _ = multistate_data(cohort)
    rows = rows[COLUMNS].copy()
    rows["to_state"] = rows["to_state"].fillna("censored")
    rows.to_csv(HERE / "synthetic_msm_by.csv", index=False)


if __name__ == "__main__":
    main()
