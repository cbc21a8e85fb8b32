"""The Cohort: validated tables, the protocol, and views derived once.

Everything downstream reads a :class:`Cohort`.  It is built only by
:func:`load_cohort` (or :meth:`Cohort.from_tables`), which validates first,
so holding a Cohort means holding data that met the contract.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pandas as pd

from stepanalytics.cohort_scores import empty_table, merge_scores
from stepanalytics.contract import TABLE_ORDER
from stepanalytics.derive import BASELINE_WINDOW_DAYS, add_baseline, assign_phase
from stepanalytics.errors import CohortError, Problem, UsageError
from stepanalytics.io.scored_store import ScoredItems, read_cohort_with_scores
from stepanalytics.io.tables import RawCohort
from stepanalytics.protocol import Protocol
from stepanalytics.validate import validate_tables

if TYPE_CHECKING:
    from stepanalytics.instruments import Registry


@dataclass(frozen=True)
class Cohort:
    """A validated de-identified cohort of a stepped-care programme.

    Attributes
    ----------
    patients, phases, assessments, items, events : DataFrame
        The contract tables, typed.  ``phases`` is sorted by patient and
        start_day and carries ``stay_number`` (1, 2, ... per patient).
        ``assessments`` holds given scores and scores computed from items,
        told apart by ``source`` (``given`` or ``items``).
    protocols : dict of str to Protocol
        The programmes the patients follow, by name.
    scoring : DataFrame
        One row per questionnaire scored from items, with its status.
    red_flags : DataFrame
        Safety signals found while scoring (e.g. PHQ-9 item 9 > 0), with
        patient and day: for the clinic's own worklist only.
    source, fingerprint : str
        Where the data came from and a SHA-256 of the files read.
    notes : tuple of str
        Documented changes made while loading (defaults filled in, ...).
    tables_read : tuple of str
        The tables read (``load_cohort(..., tables=...)``); the others are
        empty because they were not read, not because the registry has none.

    Examples
    --------
    >>> from stepanalytics.synth import synthesize_cohort
    >>> cohort = synthesize_cohort(n_patients=60, n_clinics=3, seed=1)
    >>> cohort.n_patients
    60
    >>> {"weeks", "phase", "days_in_phase", "baseline_score"} <= set(cohort.measurements.columns)
    True
    """

    patients: pd.DataFrame
    phases: pd.DataFrame
    assessments: pd.DataFrame
    items: pd.DataFrame
    events: pd.DataFrame
    protocols: dict[str, Protocol]
    scoring: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    red_flags: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    source: str = "<memory>"
    fingerprint: str = ""
    notes: tuple[str, ...] = ()
    baseline_window_days: int = BASELINE_WINDOW_DAYS
    tables_read: tuple[str, ...] = TABLE_ORDER

    # -- construction -------------------------------------------------------
    @classmethod
    def from_tables(
        cls,
        tables: dict[str, pd.DataFrame],
        *,
        protocol_text: str | None = None,
        source: str = "<memory>",
        fingerprint: str = "",
        registry: Registry | None = None,
    ) -> Cohort:
        """Validate in-memory tables (as they would be read from files) into a Cohort."""
        raw = RawCohort(
            {k: v.reset_index(drop=True) for k, v in tables.items()},
            protocol_text,
            source,
            fingerprint,
        )
        return _build(raw, registry)

    # -- sizes ----------------------------------------------------------------
    @property
    def n_patients(self) -> int:
        """Number of patients."""
        return len(self.patients)

    @property
    def clinics(self) -> list[str]:
        """Clinic ids, sorted."""
        return sorted(self.patients["clinic_id"].unique().tolist())

    @property
    def instruments(self) -> list[str]:
        """Instrument codes with at least one score, sorted."""
        return sorted(self.assessments["instrument"].unique().tolist())

    @property
    def n_phases(self) -> int:
        """Largest number of phases among the protocols in use."""
        used = self.patients["protocol"].unique()
        return max(self.protocols[p].n_phases for p in used) if len(used) else 0

    def phase_names(self, protocol: str | None = None) -> dict[int, str]:
        """Phase names of a protocol (the default one when not given)."""
        name = protocol or str(self.patients["protocol"].mode().iat[0])
        return self.protocols[name].phase_names

    # -- derived views ----------------------------------------------------------
    @cached_property
    def measurements(self) -> pd.DataFrame:
        """Assessments with time, phase and baseline derived, one row per score.

        Columns: patient_id, clinic_id, protocol, day, weeks (day / 7),
        instrument, score, source, phase, stay_number, phase_start_day,
        days_in_phase, weeks_in_phase, baseline_day, baseline_score.  A
        measurement belongs to the latest stay that started on or before its
        day; the baseline is the first score of the patient and instrument
        within days 0..``baseline_window_days``.
        """
        frame = self.assessments.merge(
            self.patients[["patient_id", "clinic_id", "protocol"]], on="patient_id", how="left"
        )
        frame["weeks"] = frame["day"] / 7.0
        frame = assign_phase(frame, self.phases)
        frame = add_baseline(frame, window_days=self.baseline_window_days)
        ordered = [
            "patient_id", "clinic_id", "protocol", "day", "weeks", "instrument", "score",
            "source", "phase", "stay_number", "phase_start_day", "days_in_phase",
            "weeks_in_phase", "baseline_day", "baseline_score",
        ]  # fmt: skip
        return frame[ordered].reset_index(drop=True)

    @cached_property
    def baselines(self) -> pd.DataFrame:
        """Baseline score per patient and instrument (patients without one are absent)."""
        m = self.measurements
        base = m.loc[m["day"] == m["baseline_day"], ["patient_id", "instrument", "day", "score"]]
        return base.rename(columns={"day": "baseline_day", "score": "baseline_score"}).reset_index(
            drop=True
        )

    def wide_baselines(self) -> pd.DataFrame:
        """Baseline scores, one row per patient and a ``baseline_<code>`` column per instrument."""
        wide = self.baselines.pivot(
            index="patient_id", columns="instrument", values="baseline_score"
        )
        wide.columns = [f"baseline_{c}" for c in wide.columns]
        return wide.reset_index()

    # -- subsets ----------------------------------------------------------------
    def subset(
        self, *, clinics: list[str] | None = None, patients: list[str] | None = None
    ) -> Cohort:
        """A cohort restricted to some clinics and/or patients (already valid, not re-checked)."""
        keep = pd.Series(True, index=self.patients.index)
        if clinics is not None:
            unknown = sorted(set(clinics) - set(self.clinics))
            if unknown:
                raise CohortError(
                    [
                        Problem(
                            "patients",
                            "clinic_id",
                            f"no such clinic: {', '.join(unknown)}",
                            f"use one of: {', '.join(self.clinics)}",
                        )
                    ]
                )
            keep &= self.patients["clinic_id"].isin(clinics)
        if patients is not None:
            keep &= self.patients["patient_id"].isin(patients)
        ids = set(self.patients.loc[keep, "patient_id"])

        def cut(frame: pd.DataFrame) -> pd.DataFrame:
            if frame.empty or "patient_id" not in frame.columns:
                return frame
            return frame[frame["patient_id"].isin(ids)].reset_index(drop=True)

        fields: dict[str, Any] = {
            name: cut(getattr(self, name)) for name in (*TABLE_ORDER, "scoring", "red_flags")
        }
        return replace(self, **fields)

    # -- people -------------------------------------------------------------------
    def summary(self) -> str:
        """A plain-text overview of the cohort (counts only, no patient ids)."""
        p, ph = self.patients, self.phases
        lines = [
            f"Cohort {self.source}",
            f"  patients: {len(p):,} in {p['clinic_id'].nunique()} clinics "
            f"(enrolled {p['enrolled_month'].min()} to {p['enrolled_month'].max()})",
            f"  median follow-up: {p['last_contact_day'].median():.0f} days",
            f"  phase stays: {len(ph):,}",
        ]
        by_exit = pd.crosstab(ph["phase"], ph["exit_reason"])
        lines.append("  stays by phase and how they ended:")
        lines.extend("    " + row for row in by_exit.to_string().splitlines())
        if "assessments" not in self.tables_read:
            lines.append("  scores: not read (load_cohort was asked for other tables)")
        elif self.assessments.empty:
            lines.append("  scores: none")
        else:
            counts = self.assessments.groupby("instrument").agg(
                scores=("score", "size"), patients=("patient_id", "nunique")
            )
            lines.append("  scores by instrument:")
            lines.extend("    " + row for row in counts.to_string().splitlines())
        if not self.events.empty:
            lines.append(
                "  events: "
                + ", ".join(f"{k} {v:,}" for k, v in self.events["event"].value_counts().items())
            )
        if not self.scoring.empty and "status" in self.scoring.columns:
            lines.append(
                "  questionnaires scored from items: "
                + ", ".join(f"{k} {v:,}" for k, v in self.scoring["status"].value_counts().items())
            )
        if self.notes:
            lines.append("  notes:")
            lines.extend(f"    - {n}" for n in self.notes)
        return "\n".join(lines)

    def to_tables(self) -> dict[str, pd.DataFrame]:
        """The tables in contract form (given assessments only; items kept as items).

        Raises
        ------
        UsageError
            The cohort holds scores computed from items it did not read (the
            stored scores of an ingested DuckDB file): written out, those
            scores would be lost.
        """
        if "items" not in self.tables_read and (self.assessments["source"] == "items").any():
            raise UsageError(
                "This cohort's scores from item answers came from the DuckDB file's stored "
                "scoring; its item answers were not read, so they cannot be written out. "
                'Load it with load_cohort(path, tables=["assessments", "items", "events"]).'
            )
        tables = {
            "patients": self.patients,
            "phases": self.phases.drop(columns=["stay_number"]),
            "assessments": self.assessments[self.assessments["source"] == "given"].drop(
                columns=["source"]
            ),
            "items": self.items,
            "events": self.events,
        }
        # A table that was not read is not empty: leave it out rather than write it so.
        return {k: v.reset_index(drop=True) for k, v in tables.items() if k in self.tables_read}


def load_cohort(
    path: str | os.PathLike[str],
    *,
    clinics: Sequence[str] | None = None,
    tables: Collection[str] | None = None,
    registry: Registry | None = None,
) -> Cohort:
    """Read and validate a cohort folder (CSV or Parquet tables) or DuckDB file.

    Parameters
    ----------
    path : path
        A folder holding ``patients``, ``phases``, ``assessments`` and/or
        ``items``, optionally ``events`` (``.csv`` or ``.parquet``) and
        ``protocol.yaml``; or a DuckDB file written by ``stepanalytics ingest``
        (its stored scores from items are used while provably current: then
        ``items`` is not read; see :mod:`stepanalytics.io.scored_store`).
    clinics : sequence of str, optional
        Load only these clinics' patients and their rows.  DuckDB files and
        Parquet tables (single files or folders partitioned by clinic) filter
        while reading; validation covers the rows loaded, plus the rules no
        clinic's rows show (repeated patient_id, empty clinic_id, rows of
        unknown patients) checked in the whole registry.
    tables : collection of str, optional
        Read only the tables an analysis needs: some of ``"assessments"``,
        ``"items"``, ``"events"`` (None: all).  patients and phases are
        always read; assessments and items are read together (scores come
        from both).  Tables not read are empty (``Cohort.tables_read``).
    registry : Registry, optional
        Instrument registry (default: built-in), e.g. ``get_registry(extra=...)``.

    Returns
    -------
    Cohort

    Raises
    ------
    CohortError
        Listing every problem found (table, column, rows, examples, fix).
    UsageError
        When ``tables`` names a table that is not in the contract.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from stepanalytics.synth import write_synthetic_cohort
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "demo"
    >>> _ = write_synthetic_cohort(folder, n_patients=50, n_clinics=2, seed=3)
    >>> load_cohort(folder).n_patients
    50
    >>> load_cohort(folder, tables=["events"]).tables_read
    ('patients', 'phases', 'events')
    """
    raw, stored = read_cohort_with_scores(path, clinics=clinics, tables=tables, registry=registry)
    return _build(raw, registry, stored)


def _build(raw: RawCohort, registry: Registry | None, stored: ScoredItems | None = None) -> Cohort:
    valid = validate_tables(raw, registry=registry)
    tables = valid.tables
    notes = list(valid.notes)
    patients = tables["patients"].reset_index(drop=True)
    phases = tables["phases"].sort_values(["patient_id", "start_day"], kind="stable")
    phases = phases.reset_index(drop=True)
    phases["stay_number"] = phases.groupby("patient_id").cumcount().astype("int64") + 1
    items = tables.get("items", empty_table("items"))
    events = tables.get("events", empty_table("events"))
    given = tables.get("assessments", empty_table("assessments")).copy()
    given["source"] = "given"
    scoring, red_flags, assessments = pd.DataFrame(), pd.DataFrame(), given
    scored = stored  # from a store's validated ingest, or scored now
    if scored is None and not items.empty:
        from stepanalytics.instruments import score_items

        result = score_items(items, registry=registry, checked=True)
        scored = ScoredItems(result.report, result.red_flags)
    if scored is not None:
        scoring, red_flags = scored.scoring, scored.red_flags
        assessments, merge_notes = merge_scores(given, scored.item_scores(), raw.source)
        notes.extend(merge_notes)
    return Cohort(
        patients=patients,
        phases=phases,
        assessments=assessments.reset_index(drop=True),
        items=items.reset_index(drop=True),
        events=events.reset_index(drop=True),
        protocols=valid.protocols,
        scoring=scoring,
        red_flags=red_flags,
        source=raw.source,
        fingerprint=raw.fingerprint,
        notes=tuple(notes),
        tables_read=raw.tables_read,
    )
