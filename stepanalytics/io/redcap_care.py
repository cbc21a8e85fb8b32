"""REDCap forms to the phases and events tables.

Phase stays come from a form with one instance per stay (usually a
repeating instrument): the phase, the start and end dates and the exit
reason.  Stated rules:

* a stay without a phase or a start date, or with an end date but no exit
  reason, or an exit reason other than ``ongoing`` but no end date, stops
  the import with the rows listed (a stay cannot be guessed);
* an empty exit reason with an empty end date means ``ongoing``;
* a start dated up to ``rules.early_days`` before enrolment counts as day 0.

Without a phase form, ``phases: {single_phase: 1}`` states that every
patient has one ongoing stay in that phase from day 0 (reported).

Clinical events come from a coded field (one event per instance: adverse
event forms) or a checkbox (one event per ticked choice: "since the last
visit: flare-up / red flag / ..."), dated by a date field.  Ticked choices
that the mapping does not name are reported, not imported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stepanalytics.contract import EXIT_REASONS, SEVERITIES
from stepanalytics.errors import Problem
from stepanalytics.io.redcap_dictionary import checkbox_column
from stepanalytics.io.redcap_export import ticked
from stepanalytics.io.redcap_forms import FormContext
from stepanalytics.io.redcap_mapping import EventSource
from stepanalytics.io.values import add_found, recode

PHASE_COLUMNS = ["record_code", "phase", "start_day", "end_day", "exit_reason", "position"]
EVENT_COLUMNS = ["record_code", "day", "event", "severity", "position"]


def _slug(label: str) -> str:
    return "_".join(label.strip().lower().replace("-", " ").split())


def _codes_or_labels(ctx: FormContext, field: str, codes: dict[str, str] | None) -> dict[str, str]:
    if codes is not None:
        return codes
    return {code: _slug(label) for code, label in ctx.dictionary.choices(field).items()}


def _problem(
    ctx: FormContext, column: str | None, positions: np.ndarray, message: str, fix: str
) -> None:
    if len(positions):
        mask = np.zeros(ctx.rows.n, dtype=bool)
        mask[positions] = True
        found = Problem.from_mask("export", column, ctx.rows.frame, mask, message, fix)
        add_found(ctx.problems, found)


def read_phases(ctx: FormContext, record_codes: np.ndarray) -> pd.DataFrame:
    """Phase stays, one per accepted form instance (or one per patient with single_phase)."""
    src = ctx.mapping.phases
    if src.single_phase is not None:
        n = len(record_codes)
        ctx.notes.append(
            f"phases: every patient was given one ongoing stay in phase {src.single_phase} "
            "from day 0 (mapping: single_phase)"
        )
        return pd.DataFrame(
            {
                "record_code": record_codes,
                "phase": np.full(n, src.single_phase, dtype=np.int64),
                "start_day": np.zeros(n, dtype=np.int64),
                "end_day": pd.array([None] * n, dtype="Int64"),
                "exit_reason": "ongoing",
                "position": np.full(n, -1, dtype=np.int64),
            }
        )
    form = src.form or ""
    phase_field, start_field = src.phase_field or "", src.start_date_field or ""
    exit_field = src.exit_reason_field or ""
    fields = [phase_field, start_field, exit_field] + (
        [src.end_date_field] if src.end_date_field else []
    )
    present = ctx.filled(fields)
    positions, accepted = ctx.instances(form, present, "phases")
    positions = positions[accepted]
    phase = ctx.numbers(phase_field).values[positions]
    bad_phase = np.isnan(phase) | (phase < 1) | (phase != np.round(phase))
    _problem(
        ctx,
        phase_field,
        positions[bad_phase],
        "stays without a phase number (1, 2, ...)",
        "fill in the phase of every stay; phases are numbered from 1",
    )
    start_days = ctx.dates(start_field).values[positions] - ctx.enrol_epoch[positions]
    _problem(
        ctx,
        start_field,
        positions[np.isnan(start_days)],
        "stays without a start date",
        "fill in the start date of every stay",
    )
    early = start_days < 0
    allowed = early & (start_days >= -ctx.mapping.rules.early_days)
    ctx.lines.add(positions[allowed], "phases", "recoded", "stay started before enrolment: day 0")
    start_days[allowed] = 0
    _problem(
        ctx,
        start_field,
        positions[early & ~allowed],
        "stays starting before enrolment",
        "correct the start date or the enrolment date (or allow rules.early_days)",
    )
    end_days = np.full(len(positions), np.nan)
    if src.end_date_field:
        end_days = ctx.dates(src.end_date_field).values[positions] - ctx.enrol_epoch[positions]
    exits = recode(
        ctx.column(exit_field),
        _codes_or_labels(ctx, exit_field, src.exit_reason_codes),
        missing_codes=ctx.mapping.missing_codes,
    )
    exit_reason = exits.values[positions]
    unknown = exits.unknown[positions] | (
        pd.Series(exit_reason, dtype=object).notna().to_numpy()
        & ~np.isin(exit_reason.astype(str), EXIT_REASONS)
    )
    _problem(
        ctx,
        exit_field,
        positions[unknown],
        f"exit reasons the mapping does not turn into one of {', '.join(EXIT_REASONS)}",
        "add phases.exit_reason_codes to the mapping",
    )
    no_exit = pd.Series(exit_reason, dtype=object).isna().to_numpy() & ~unknown
    no_end = np.isnan(end_days)
    exit_reason[no_exit & no_end] = "ongoing"
    _problem(
        ctx,
        exit_field,
        positions[no_exit & ~no_end],
        "stays with an end date but no exit reason",
        "fill in why the stay ended",
    )
    ended = ~no_exit & ~unknown & (exit_reason != "ongoing") & no_end
    _problem(
        ctx,
        src.end_date_field or exit_field,
        positions[ended],
        "stays with an exit reason but no end date",
        "fill in the end date of the stay",
    )
    ok = ~(bad_phase | np.isnan(start_days))
    positions = positions[ok]
    ctx.lines.add(positions, "phases", "imported", "phase stay")
    end = pd.array(np.where(np.isnan(end_days[ok]), np.nan, end_days[ok]), dtype="Float64")
    return pd.DataFrame(
        {
            "record_code": ctx.rows.record_code[positions],
            "phase": phase[ok].astype(np.int64),
            "start_day": start_days[ok].astype(np.int64),
            "end_day": end.astype("Int64"),
            "exit_reason": exit_reason[ok],
            "position": positions,
        }
    )


def read_events(ctx: FormContext, src: EventSource, index: int) -> pd.DataFrame:
    """Clinical events of one mapped source."""
    part = f"events {src.form}"
    if src.event_field is not None:
        present = ctx.filled([src.event_field])
    else:
        choices = ctx.dictionary.choices(src.checkbox or "")
        boxes = [checkbox_column(src.checkbox or "", code) for code in choices]
        present = ctx.filled([], [c for c in boxes if c in ctx.rows.frame.columns])
    positions, accepted = ctx.instances(src.form, present & ctx.usable, part)
    positions = positions[accepted & present[positions]]
    day, has_day = ctx.days(positions, src.date_field, part)
    positions, day = positions[has_day], day[has_day]
    severity = np.full(len(positions), None, dtype=object)
    if src.severity_field is not None:
        codes = _codes_or_labels(ctx, src.severity_field, src.severity_codes)
        sev = recode(ctx.column(src.severity_field), codes, missing_codes=ctx.mapping.missing_codes)
        severity = sev.values[positions]
        bad = sev.unknown[positions] | (
            pd.Series(severity, dtype=object).notna().to_numpy()
            & ~np.isin(severity.astype(str), SEVERITIES)
        )
        _problem(
            ctx,
            src.severity_field,
            positions[bad],
            "severities the mapping does not turn into mild, moderate or severe",
            f"add clinical_events[{index}].severity_codes",
        )
        ctx.missing_code_lines(
            positions, src.severity_field, sev.missing_code[positions], "severity left empty"
        )
    frames = []
    if src.event_field is not None:
        ev = recode(
            ctx.column(src.event_field), src.event_codes, missing_codes=ctx.mapping.missing_codes
        )
        event = ev.values[positions]
        _problem(
            ctx,
            src.event_field,
            positions[ev.unknown[positions]],
            "event codes not in the mapping",
            f"add them to clinical_events[{index}].event_codes",
        )
        ctx.missing_code_lines(positions, src.event_field, ev.missing_code[positions], "no event")
        has = pd.Series(event, dtype=object).notna().to_numpy()
        frames.append(_events(ctx, positions[has], day[has], event[has], severity[has]))
    else:
        checkbox = src.checkbox or ""
        for code, name in src.event_codes.items():
            column = checkbox_column(checkbox, code)
            if column not in ctx.rows.frame.columns:
                continue
            hit = ticked(ctx.column(column))[positions]
            frames.append(
                _events(
                    ctx,
                    positions[hit],
                    day[hit],
                    np.full(hit.sum(), name, dtype=object),
                    severity[hit],
                )
            )
        _unmapped_choices(ctx, src, positions, part)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EVENT_COLUMNS)
    ctx.lines.add(np.unique(out["position"].to_numpy(dtype=np.int64)), part, "imported", "events")
    return out


def _events(
    ctx: FormContext,
    positions: np.ndarray,
    day: np.ndarray,
    event: np.ndarray,
    severity: np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_code": ctx.rows.record_code[positions],
            "day": day.astype(np.int64),
            "event": event,
            "severity": severity,
            "position": positions,
        }
    )


def _unmapped_choices(ctx: FormContext, src: EventSource, positions: np.ndarray, part: str) -> None:
    checkbox = src.checkbox or ""
    choices = ctx.dictionary.choices(checkbox)
    for code, label in choices.items():
        if code in src.event_codes:
            continue
        hit = ticked(ctx.column(checkbox_column(checkbox, code)))[positions]
        ctx.lines.add(
            positions[hit],
            part,
            "note",
            f"ticked choice {code} ({label}) is not mapped to an event: not imported",
        )
