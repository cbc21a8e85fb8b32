"""Phase stays for a FHIR import: a phases CSV, Encounter resources, or one stay each.

* phases CSV (``--phases``): ``subject``, ``phase``, ``start_date``,
  ``end_date``, ``exit_reason`` (contract vocabulary); empty end and exit
  reason mean ``ongoing``;
* Encounter resources: ``type`` coding -> phase (``phases.phase_codes``),
  ``period`` -> start and end, ``hospitalization.dischargeDisposition`` ->
  exit reason (``phases.exit_reason_codes``); no end and no disposition
  means ``ongoing``; Encounters of other types are reported and left out;
* ``single_phase``: one ongoing stay in that phase from day 0 for everyone.

Stated rules: a stay without a start, or with an end but no exit reason,
stops the import (a stay cannot be guessed); a stay of a subject that is
not an imported patient, or an entered-in-error / cancelled Encounter, is
dropped and reported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stepanalytics.contract import EXIT_REASONS
from stepanalytics.errors import CohortError, Problem
from stepanalytics.io.fhir_mapping import FhirMapping
from stepanalytics.io.fhir_patients import PatientList, Verdicts, csv_dates, read_csv_table
from stepanalytics.io.fhir_read import Located, epoch_day, subject_key
from stepanalytics.io.values import add_found

_SKIP_STATUS = ("entered-in-error", "cancelled")


def single_stays(patients: PatientList, phase: int) -> pd.DataFrame:
    """One ongoing stay in ``phase`` from day 0 for every patient."""
    n = len(patients.keys)
    return pd.DataFrame(
        {
            "record_code": np.arange(n),
            "phase": phase,
            "start_day": 0,
            "end_day": pd.array([None] * n, dtype="Int64"),
            "exit_reason": "ongoing",
        }
    )


def stays_from_csv(
    path: str | os.PathLike[str], patients: PatientList, verdicts: Verdicts
) -> pd.DataFrame:
    """Phase stays from a CSV with subject, phase, start_date, end_date, exit_reason."""
    name = Path(path).name
    frame = read_csv_table(
        path, ("subject", "phase", "start_date", "end_date", "exit_reason"), "phases"
    )
    verdicts.n_inputs += len(frame)
    problems: list[Problem] = []
    start = csv_dates(frame, "start_date", "phases", problems)
    end = csv_dates(frame, "end_date", "phases", problems)
    phase = pd.to_numeric(frame["phase"], errors="coerce").to_numpy(dtype=float)
    bad_phase = np.isnan(phase) | (phase < 1) | (phase != np.round(phase))
    if bad_phase.any():
        add_found(
            problems,
            Problem.from_mask(
                "phases",
                "phase",
                frame,
                bad_phase,
                "phases that are not whole numbers from 1",
                "write the phase number",
            ),
        )
    exit_reason = frame["exit_reason"].replace("", None).to_numpy(dtype=object)
    exit_reason = np.where((exit_reason == None) & np.isnan(end), "ongoing", exit_reason)  # noqa: E711
    bad_exit = ~np.isin(exit_reason.astype(str), EXIT_REASONS)
    if bad_exit.any():
        add_found(
            problems,
            Problem.from_mask(
                "phases",
                "exit_reason",
                frame,
                bad_exit,
                "exit reasons outside the contract's vocabulary",
                f"use one of {', '.join(EXIT_REASONS)}",
            ),
        )
    no_start = np.isnan(start)
    if no_start.any():
        add_found(
            problems,
            Problem.from_mask(
                "phases",
                "start_date",
                frame,
                no_start,
                "stays without a start date",
                "fill in start_date",
            ),
        )
    if problems:
        raise CohortError(problems, source=name)
    codes = patients.code_of()
    out = []
    for i, subject in enumerate(frame["subject"]):
        key = subject_key(subject) if subject else None
        code = codes.get(key) if key else None
        if code is None:
            verdicts.add(name, i + 1, key, "row", "dropped", "subject is not an imported patient")
            continue
        out.append(
            (
                code,
                int(phase[i]),
                start[i] - patients.enrol_epoch[code],
                end[i] - patients.enrol_epoch[code],
                exit_reason[i],
                i + 1,  # 1-based row of the CSV, like Encounter entries
            )
        )
        verdicts.add(name, i + 1, key, "row", "imported", "gave: phases")
    return _stays_frame(out)


def stays_from_encounters(
    encounters: list[Located], patients: PatientList, mapping: FhirMapping, verdicts: Verdicts
) -> pd.DataFrame:
    """Phase stays from Encounter resources whose type names a phase."""
    codes = patients.code_of()
    out = []
    problems: list[Problem] = []
    for loc in encounters:
        res = loc.resource
        key = subject_key(res.get("subject"))
        phase = _first_code(res.get("type") or [], mapping.phases.phase_codes)
        period = res.get("period") or {}
        why = None
        if res.get("status") in _SKIP_STATUS:
            why = f"Encounter status {res.get('status')}"
        elif key not in codes:
            why = "subject is not an imported patient"
        elif phase is None:
            why = "not a phase stay (no Encounter.type code in phases.phase_codes)"
        if why is not None:
            verdicts.add(loc.source, loc.row, key, "row", "dropped", why)
            continue
        code = codes[str(key)]
        start, end = epoch_day(period.get("start")), epoch_day(period.get("end"))
        disposition = (res.get("hospitalization") or {}).get("dischargeDisposition") or {}
        exit_reason = _first_code([disposition], mapping.phases.exit_reason_codes)
        if exit_reason is None and end is None:
            exit_reason = "ongoing"
        if start is None or exit_reason is None:
            what = (
                "no full period.start"
                if start is None
                else "an end but no dischargeDisposition code in phases.exit_reason_codes"
            )
            problems.append(
                Problem(
                    "Encounter",
                    None,
                    f"{loc.source}: a phase stay with {what}",
                    "complete the Encounter or its mapping",
                    rows=(loc.row,),
                    n_rows=1,
                )
            )
            continue
        enrol = patients.enrol_epoch[code]
        out.append(
            (
                code,
                int(phase),
                start - enrol,
                np.nan if end is None else end - enrol,
                exit_reason,
                loc.row,
            )
        )
        verdicts.add(loc.source, loc.row, key, "row", "imported", "gave: phases")
    if problems:
        raise CohortError(problems)
    return _stays_frame(out)


def _first_code(concepts: list[Any], table: dict[str, Any]) -> Any:
    for concept in concepts:
        for coding in (concept or {}).get("coding") or []:
            for key in (
                f"{coding.get('system', '')}|{coding.get('code', '')}",
                str(coding.get("code", "")),
            ):
                if key in table:
                    return table[key]
    return None


def _stays_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["record_code", "phase", "start_day", "end_day", "exit_reason", "row"]
    )
    frame["end_day"] = pd.array(frame["end_day"].to_numpy(dtype=float), dtype="Float64").astype(
        "Int64"
    )
    frame["start_day"] = frame["start_day"].astype(float)
    return frame
