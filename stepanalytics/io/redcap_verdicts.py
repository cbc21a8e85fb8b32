"""One verdict per export row: what it gave to the cohort, or why nothing.

A row is *imported* when it gave anything: a patient-level value of a kept
record, or a form that reached the items, assessments, phases or events
table.  Otherwise it is *dropped*, with the first reason that applies:

1. no record id;
2. an event the mapping does not list (``rules.unknown_events: drop``);
3. its record was dropped (no enrolment date, no clinic);
4. an event the mapping skips;
5. every form it held was dropped (the first form's reason is given; the
   form-level lines list them all);
6. nothing on it is used by the mapping (empty, identifiers or unmapped
   fields only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stepanalytics.io.import_report import ImportReport
from stepanalytics.io.redcap_export import ExportRows
from stepanalytics.io.redcap_forms import FormContext
from stepanalytics.io.redcap_patients import PatientPart


def _gave_text(positions: np.ndarray, parts: np.ndarray, n: int, patient: np.ndarray) -> np.ndarray:
    """``gave: patient, instrument phq9, ...`` per row, built from a bit mask per row."""
    names = ["patient", *sorted(set(parts.tolist()))]
    bit_of = {name: 1 << i for i, name in enumerate(names)}
    mask = np.zeros(n, dtype=np.int64)
    mask[patient] |= bit_of["patient"]
    if len(positions):
        bits = pd.Series(parts, dtype=object).map(bit_of).to_numpy(dtype=np.int64)
        np.bitwise_or.at(mask, positions, bits)
    combos = np.unique(mask[mask > 0])
    text = {int(c): "gave: " + ", ".join(nm for nm in names if int(c) & bit_of[nm]) for c in combos}
    return pd.Series(mask).map(text).to_numpy(dtype=object)


def row_verdicts(
    report: ImportReport,
    rows: ExportRows,
    state: np.ndarray,
    patients: PatientPart,
    ctx: FormContext,
    patient_ids: np.ndarray,
    record_ok_row: np.ndarray,
) -> None:
    """Add the row verdicts, the form-level lines and the recoded-cell lines to ``report``."""
    lines = ctx.lines.to_frame()
    has_record = rows.record_code >= 0
    record = np.full(rows.n, None, dtype=object)
    record[has_record] = patient_ids[rows.record_code[has_record]]
    imported = lines[lines["outcome"] == "imported"]
    positions = imported["position"].to_numpy(dtype=np.int64)
    gave = np.zeros(rows.n, dtype=bool)
    gave[positions] = True
    gave |= patients.contributed
    reason = _gave_text(
        positions, imported["part"].to_numpy(dtype=object), rows.n, patients.contributed
    )
    reason[~gave] = None
    event_text = pd.Series(rows.event, dtype=object).fillna("<empty>").to_numpy(dtype=object)

    def assign(mask: np.ndarray, text: np.ndarray | str) -> None:
        todo = mask & ~gave & pd.Series(reason, dtype=object).isna().to_numpy()
        if isinstance(text, str):
            reason[todo] = text
        else:
            reason[todo] = text[todo]

    assign(~has_record, "no record id")
    unknown = state == "unknown"
    if unknown.any():
        assign(unknown, _event_reason(event_text, unknown))
    record_reason = np.full(rows.n, None, dtype=object)
    record_reason[has_record] = patients.record_drop_reason[rows.record_code[has_record]]
    assign(has_record & ~record_ok_row, record_reason)
    skipped = state == "skip"
    if skipped.any():
        skip_text = pd.Series(event_text).map(lambda e: f"event '{e}' skipped by the mapping")
        assign(skipped, skip_text.to_numpy(dtype=object))
    dropped = lines[lines["outcome"] == "dropped"].drop_duplicates("position")
    first_drop = np.full(rows.n, None, dtype=object)
    first_drop[dropped["position"].to_numpy(dtype=np.int64)] = (
        dropped["part"] + ": " + dropped["reason"].astype(str)
    ).to_numpy(dtype=object)
    assign(first_drop != None, first_drop)  # noqa: E711
    assign(np.ones(rows.n, dtype=bool), "no data used by the mapping in this row")
    outcome = np.where(gave, "imported", "dropped").astype(object)
    report.add_rows(rows.rows, record, "row", outcome, reason)
    if len(lines):
        pos = lines["position"].to_numpy(dtype=np.int64)
        not_imported = (lines["outcome"] != "imported").to_numpy()
        frame = pd.DataFrame(
            {
                "source": report.source,
                "row": pd.array(rows.rows[pos], dtype="Int64"),
                "record": record[pos],
                "part": lines["part"].to_numpy(dtype=object),
                "outcome": lines["outcome"].to_numpy(dtype=object),
                "reason": lines["reason"].to_numpy(dtype=object),
                "n": 1,
            }
        )
        # Imported form lines are summed per part; row verdicts already name them per row.
        report.extend(frame[not_imported])
        summed = frame[~not_imported].groupby(["part", "reason"], sort=True).size()
        for key, count in summed.items():
            part, why = (str(k) for k in key)  # type: ignore[union-attr]
            report.add_note(str(part), "imported", str(why), n=int(count))
    for coded in patients.recoded:
        if len(coded):
            codes = coded["record_code"].to_numpy(dtype=np.int64)
            keep = codes >= 0
            rec = np.full(len(coded), None, dtype=object)
            rec[keep] = patient_ids[codes[keep]]
            report.extend(
                pd.DataFrame(
                    {
                        "source": report.source,
                        "row": coded["row"].astype("Int64"),
                        "record": rec,
                        "part": coded["part"],
                        "outcome": "recoded",
                        "reason": coded["reason"],
                        "n": 1,
                    }
                )
            )


def _event_reason(event_text: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    out = np.full(len(event_text), None, dtype=object)
    names = pd.Series(event_text[unknown], dtype=object)
    out[unknown] = names.map(lambda e: f"unknown event '{e}' (not in redcap_events)").to_numpy(
        dtype=object
    )
    return out
