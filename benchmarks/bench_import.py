"""Importing a large REDCap export (and a FHIR NDJSON file) into a cohort.

The REDCap export has the fixture project's layout (tests/io/fixtures/redcap/,
49 columns, three events, repeating phase-stay and adverse-event forms, a
checkbox, identifiers, UNK codes) with six rows per record; the mapping is
examples/mappings/redcap_stepped_care.yaml.  Record ids are pseudonymised.

Usage: python benchmarks/bench_import.py [--rows 1000000] [--fhir-responses 50000]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from _measure import measured, timed

from stepanalytics.io.fhir import import_fhir
from stepanalytics.io.import_writer import write_import
from stepanalytics.io.redcap import import_redcap

ROOT = Path(__file__).parents[1]
FIXTURES = ROOT / "tests" / "io" / "fixtures"
SECRET = "benchmark-secret-0123456789"
ROWS_PER_RECORD = 6  # baseline, week 6, week 12, two phase stays, one adverse event


def _dates(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D").astype(object)


def write_redcap_export(path: Path, n_rows: int, rng: np.random.Generator) -> int:
    """A REDCap raw export of ``n_rows`` rows (rounded up to whole records)."""
    with (FIXTURES / "redcap" / "export.csv").open(newline="") as fh:
        header = next(csv.reader(fh))
    n = -(-n_rows // ROWS_PER_RECORD)
    enrol = rng.integers(
        np.datetime64("2022-01-03").astype(int), np.datetime64("2024-12-30").astype(int), n
    )
    record = np.arange(1, n + 1).astype(str).astype(object)
    dag = np.where(rng.random(n) < 0.5, "north_clinic", "south_clinic")
    blocks = []
    for kind, event, offset in [
        ("visit", "baseline_arm_1", 0),
        ("visit", "week_6_arm_1", 42),
        ("visit", "week_12_arm_1", 84),
        ("stay", "1", 0),
        ("stay", "2", 35),
        ("ae", "1", 20),
    ]:
        cols: dict[str, np.ndarray] = {h: np.full(n, "", dtype=object) for h in header}
        cols["record_id"] = record
        cols["redcap_data_access_group"] = dag
        if kind == "visit":
            cols["redcap_event_name"] = np.full(n, event, dtype=object)
            day = enrol + offset + rng.integers(-2, 3, n) * (offset > 0)
            cols["visit_date"] = _dates(day)
            pain = rng.integers(0, 11, n).astype(str).astype(object)
            pain[rng.random(n) < 0.01] = "UNK"
            cols["pain_now"] = pain
            for k in range(1, 6):
                cols[f"visit_events___{k}"] = np.where(rng.random(n) < 0.05, "1", "0")
            cols["visit_complete"] = np.full(n, "2", dtype=object)
            cols["phq9_date"] = _dates(day)
            items = rng.integers(0, 4, (n, 9))
            for k in range(9):
                values = items[:, k].astype(str).astype(object)
                values[rng.random(n) < 0.005] = "UNK"
                cols[f"phq9_{k + 1}"] = values
            cols["phq9_total"] = items.sum(axis=1).astype(str).astype(object)
            cols["phq9_complete"] = np.where(rng.random(n) < 0.03, "0", "2")
            if offset == 0:
                cols["enrol_date"] = _dates(enrol)
                cols["patient_name"] = np.full(n, "Jane Doe", dtype=object)
                cols["mrn"] = np.char.add("MRN", np.char.zfill(record.astype(str), 8)).astype(
                    object
                )
                cols["age"] = rng.integers(18, 95, n).astype(str).astype(object)
                cols["sex"] = rng.choice(["1", "2", "3", "9"], n).astype(object)
                cols["condition"] = rng.choice([str(k) for k in range(1, 8)], n).astype(object)
                cols["pain_months"] = rng.integers(3, 240, n).astype(str).astype(object)
                cols["comp_claim"] = rng.choice(["0", "1"], n).astype(object)
                cols["employment"] = rng.choice([str(k) for k in range(1, 8)], n).astype(object)
                cols["smoker"] = rng.choice(["0", "1"], n).astype(object)
                cols["enrolment_complete"] = np.full(n, "2", dtype=object)
        elif kind == "stay":
            cols["redcap_event_name"] = np.full(n, "baseline_arm_1", dtype=object)
            cols["redcap_repeat_instrument"] = np.full(n, "phase_stay", dtype=object)
            cols["redcap_repeat_instance"] = np.full(n, event, dtype=object)
            cols["stay_phase"] = np.full(n, event, dtype=object)
            cols["stay_start"] = _dates(enrol + offset)
            if event == "1":
                cols["stay_end"] = _dates(enrol + 35)
                cols["stay_exit"] = np.full(n, "1", dtype=object)
            cols["phase_stay_complete"] = np.full(n, "2", dtype=object)
        else:
            cols["redcap_event_name"] = np.full(n, "baseline_arm_1", dtype=object)
            cols["redcap_repeat_instrument"] = np.full(n, "adverse_event", dtype=object)
            cols["redcap_repeat_instance"] = np.full(n, "1", dtype=object)
            cols["ae_date"] = _dates(enrol + offset)
            cols["ae_type"] = rng.choice(["1", "2", "3", "4"], n).astype(object)
            cols["ae_severity"] = rng.choice(["1", "2", "3"], n).astype(object)
            cols["adverse_event_complete"] = np.full(n, "2", dtype=object)
        block = pd.DataFrame(cols, columns=header)
        block["_order"] = np.arange(n) * ROWS_PER_RECORD + len(blocks)
        blocks.append(block)
    frame = pd.concat(blocks, ignore_index=True).sort_values("_order").drop(columns="_order")
    frame.to_csv(path, index=False)
    return len(frame)


def write_fhir_responses(path: Path, patients: Path, n: int, rng: np.random.Generator) -> None:
    """``n`` PHQ-9 responses for n / 3 patients as NDJSON, and their patients CSV."""
    codes = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
    links = [
        "/44250-9",
        "/44255-8",
        "/44259-0",
        "/44254-1",
        "/44251-7",
        "/44258-2",
        "/44252-5",
        "/44253-3",
        "/44260-8",
    ]
    n_patients = max(1, n // 3)
    enrol = np.datetime64("2024-01-01") + rng.integers(0, 300, n_patients)
    pd.DataFrame(
        {
            "subject": [f"Patient/p{k}" for k in range(n_patients)],
            "clinic_id": "north",
            "enrolment_date": np.datetime_as_string(enrol, unit="D"),
        }
    ).to_csv(patients, index=False)
    with path.open("w") as fh:
        for k in range(n):
            pid = k % n_patients
            day = enrol[pid] + 42 * (k // n_patients)
            answers = rng.integers(0, 4, 9)
            qr = {
                "resourceType": "QuestionnaireResponse",
                "status": "completed",
                "questionnaire": "http://loinc.org/q/44249-1",
                "subject": {"reference": f"Patient/p{pid}"},
                "authored": str(day),
                "item": [
                    {
                        "linkId": "/44249-1",
                        "item": [
                            {
                                "linkId": link,
                                "answer": [
                                    {
                                        "valueCoding": {
                                            "system": "http://loinc.org",
                                            "code": codes[a],
                                        }
                                    }
                                ],
                            }
                            for link, a in zip(links, answers, strict=True)
                        ],
                    }
                ],
            }
            fh.write(json.dumps(qr) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--fhir-responses", type=int, default=50_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    mapping = ROOT / "examples" / "mappings" / "redcap_stepped_care.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export.csv"
        n = timed(
            "generate the REDCap export (not part of the import)",
            lambda: write_redcap_export(export, args.rows, rng),
        )
        print(f"== REDCap: {n:,} rows, {export.stat().st_size / 2**20:,.0f} MiB")
        result = timed(
            "import_redcap (read, map, check, report)",
            lambda: import_redcap(
                export, FIXTURES / "redcap" / "dictionary.csv", mapping, secret=SECRET
            ),
        )
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in result.tables.items())
        print(f"   tables: {sizes}; report lines {len(result.table):,}")
        with measured("write_import (write, validate with load_cohort, rename)"):
            write_import(result, Path(tmp) / "cohort")
        if args.fhir_responses:
            ndjson, patients = Path(tmp) / "r.ndjson", Path(tmp) / "patients.csv"
            write_fhir_responses(ndjson, patients, args.fhir_responses, rng)
            fhir_map = {
                "source": "fhir",
                "questionnaires": {
                    "phq9": {
                        "urls": ["http://loinc.org/q/44249-1"],
                        "items": [
                            "/44250-9",
                            "/44255-8",
                            "/44259-0",
                            "/44254-1",
                            "/44251-7",
                            "/44258-2",
                            "/44252-5",
                            "/44253-3",
                            "/44260-8",
                        ],
                        "answer_codes": {
                            "LA6568-5": 0,
                            "LA6569-3": 1,
                            "LA6570-1": 2,
                            "LA6571-9": 3,
                        },
                    }
                },
                "phases": {"single_phase": 1},
            }
            print(f"== FHIR: {args.fhir_responses:,} QuestionnaireResponses (NDJSON)")
            timed(
                "import_fhir",
                lambda: import_fhir(ndjson, fhir_map, patients=patients, secret=SECRET),
            )


if __name__ == "__main__":
    main()
