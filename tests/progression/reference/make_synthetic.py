"""Write the synthetic cohort's stays and multi-state rows that R reads.

Run from the repository root, then run survival_reference.R:
    .venv/bin/python tests/progression/reference/make_synthetic.py
    Rscript tests/progression/reference/survival_reference.R

The CSVs are committed: the tests compare our estimates on these very rows
with R's, so later changes to the generator do not move the references.
"""

from __future__ import annotations

from pathlib import Path

from stepanalytics.progression import build_stays, multistate_data
from stepanalytics.synth import synthesize_cohort

HERE = Path(__file__).parent
SEED = 2026
N_PATIENTS = 300

STAY_COLUMNS = [
    "patient_id", "clinic_id", "protocol", "phase", "entry", "duration_days", "outcome",
    "compensation_claim", "age_band", "sex", "pain_duration_months",
]  # fmt: skip


def main() -> None:
    cohort = synthesize_cohort(n_patients=N_PATIENTS, n_clinics=6, seed=SEED)
    stays = build_stays(cohort)
    stays[STAY_COLUMNS].to_csv(HERE / "synthetic_stays.csv", index=False)
    rows, _ = multistate_data(cohort)
    msm = rows[["patient_id", "clinic_id", "tstart", "tstop", "from_state", "to_state",
                "compensation_claim"]].copy()  # fmt: skip
    msm["to_state"] = msm["to_state"].fillna("censored")
    msm.to_csv(HERE / "synthetic_msm.csv", index=False)
    merged, _ = multistate_data(cohort, pauses="merge")
    merged = merged[["patient_id", "tstart", "tstop", "from_state", "to_state"]].copy()
    merged["to_state"] = merged["to_state"].fillna("censored")
    merged.to_csv(HERE / "synthetic_msm_merged.csv", index=False)


if __name__ == "__main__":
    main()
