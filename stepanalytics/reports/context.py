"""What every report notebook opens first: the cohort, the selection, the settings.

The notebook's first call after its parameters cell is
:func:`prepare_report`; the returned :class:`ReportContext` is handed to
each section function.  It holds the patients the report is about (a clinic
and/or an enrolment period), validated; the small-cell threshold; and the
peer results: every clinic's clinic-level tables and the risk-adjusted
comparison (:mod:`stepanalytics.reports.shared`), read from the artefact a
batch or the ``report`` command computed once, or computed here.  A report
about one clinic loads only that clinic's patients: the other clinics enter
through their clinic-level tables, so one clinic of a large registry is
reported without loading the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from stepanalytics.errors import UsageError
from stepanalytics.reports.parameters import (
    DEFAULT_SUPPRESSION_THRESHOLD,
    check_parameters,
    check_suppression_threshold,
)
from stepanalytics.reports.period import ReportPeriod, parse_period

if TYPE_CHECKING:
    from stepanalytics.cohort import Cohort
    from stepanalytics.reports.shared import PeerResults

#: Outcomes reported when the notebook's ``instruments`` parameter is empty, in this
#: order: disability, self-efficacy, mood, sleep, pain (function comes first).
OUTCOME_INSTRUMENTS = ("odi", "rmdq", "pseq", "phq9", "isi", "bpi_interference", "nrs_pain")


@dataclass
class ReportContext:
    """The data and settings a report's sections share.

    Attributes
    ----------
    cohort : Cohort
        The patients loaded, restricted to the period: every clinic for a
        report about all clinics, the clinic only for a report about one.
    history : Cohort
        The same patients enrolled up to the end of the period, for charts
        over time that show the period against its past.
    selection : Cohort
        The patients the report is about: the clinic (when given) in the period.
    clinic : str or None
        The clinic, or None for all clinics.
    period : ReportPeriod or None
        The enrolment period, or None for all.
    suppression_threshold : int
        Counts from 1 to ``suppression_threshold`` are suppressed in committee output
        (the rule of :mod:`stepanalytics.qi.suppression`).
    instruments : tuple of str
        Instruments to report; empty means every instrument in the data.
    shared : Path or None
        Precomputed peer results of a batch.
    highlight : str or None
        A clinic to pick out in comparisons of all clinics (the benchmark).
    audience : {"committee", "research"}
        Committee reports hide small cells everywhere; the research explorer
        shows counts and curves in full (never patient ids).
    """

    cohort: Cohort
    history: Cohort
    selection: Cohort
    clinic: str | None
    period: ReportPeriod | None
    suppression_threshold: int = DEFAULT_SUPPRESSION_THRESHOLD
    instruments: tuple[str, ...] = ()
    shared: Path | None = None
    highlight: str | None = None
    audience: str = "committee"
    source: str = ""
    _peers: PeerResults | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """``clinic C01, 2025Q4`` for titles and captions."""
        who = f"clinic {self.clinic}" if self.clinic else "all clinics"
        when = self.period.label if self.period else "all enrolment periods"
        return f"{who}, {when}"

    @property
    def threshold(self) -> int | None:
        """The small-cell threshold for this audience (None: research, nothing hidden)."""
        return self.suppression_threshold if self.audience == "committee" else None

    @property
    def compare_with_all(self) -> bool:
        """Whether a clinic's numbers may be shown beside all clinics' (always True without one).

        All clinics minus this clinic is the other clinics' count: when the
        other clinics together have 1 to ``threshold`` patients, every
        all-clinics figure beside the clinic's would describe those few, so
        committee reports leave the all-clinics columns out.
        """
        threshold = self.threshold
        if self.clinic is None or threshold is None:
            return True
        others = self.peers.n_patients - len(self.selection.patients)
        return not 1 <= others <= threshold

    @property
    def reported_instruments(self) -> list[str]:
        """Outcomes to report that the selection has scores for.

        The notebook's ``instruments`` when given, else :data:`OUTCOME_INSTRUMENTS`.
        """
        present = set(self.selection.instruments)
        wanted = self.instruments or OUTCOME_INSTRUMENTS
        return [code for code in wanted if code in present]

    @property
    def peers(self) -> PeerResults:
        """Peer results for the period: read from ``shared`` or computed once."""
        if self._peers is None:
            from stepanalytics.reports.shared import compute_peer_results, read_shared

            if self.shared is not None:
                self._peers = read_shared(self.shared, cohort=self.cohort, period=self.period)
            else:
                # A clinic's report holds only the clinic: the peers come from the data.
                whole = self.clinic is None and bool(self.cohort.n_patients)
                self._peers = compute_peer_results(
                    self.cohort if whole or not self.source else self.source,
                    period=self.period,
                    instruments=self.instruments,
                )
        return self._peers


def restrict_to_period(cohort: Cohort, period: ReportPeriod | None) -> Cohort:
    """Patients enrolled in the period (the whole cohort when period is None)."""
    if period is None:
        return cohort
    months = cohort.patients["enrolled_month"].astype(str)
    keep = cohort.patients.loc[months.map(period.contains), "patient_id"]
    return cohort.subset(patients=keep.tolist())


def restrict_to_history(cohort: Cohort, period: ReportPeriod | None) -> Cohort:
    """Patients enrolled up to the last month of the period (all when period is None)."""
    if period is None:
        return cohort
    months = cohort.patients["enrolled_month"].astype(str)
    keep = cohort.patients.loc[months <= period.last_month, "patient_id"]
    return cohort.subset(patients=keep.tolist())


def prepare_report(
    data: str,
    *,
    clinic: str = "",
    period: str = "",
    shared: str = "",
    suppression_threshold: int = DEFAULT_SUPPRESSION_THRESHOLD,
    instruments: Sequence[str] = (),
    highlight: str = "",
    audience: str = "committee",
) -> ReportContext:
    """Load the cohort and set up a report; the first call of every report notebook.

    Parameters
    ----------
    data : str
        Cohort folder or DuckDB file.
    clinic : str
        Clinic the report is about; empty for all clinics.
    period : str
        ``2025Q4``, ``2025-11`` or ``2025``; empty for all.
    shared : str
        Path of a batch's precomputed peer results; empty to compute here.
    suppression_threshold : int
        Counts from 1 to this value are suppressed (default 10, at least 2:
        :mod:`stepanalytics.reports.parameters`).  A committee report about a
        clinic with 1 to this many patients is refused.
    instruments : sequence of str
        Instruments to report; empty for all.
    highlight : str
        Clinic to pick out in all-clinic comparisons; empty for none.
    audience : {"committee", "research"}
        ``research`` (the explorer) shows small counts; ``committee`` hides them.

    Returns
    -------
    ReportContext

    Examples
    --------
    >>> context = prepare_report("data/demo", clinic="C01")  # doctest: +SKIP
    >>> context.label  # doctest: +SKIP
    'clinic C01, all enrolment periods'
    """
    from stepanalytics.cohort import load_cohort

    if not data:
        raise UsageError("The notebook's `data` parameter is empty; give the cohort folder.")
    if audience not in ("committee", "research"):
        raise UsageError(f"audience must be 'committee' or 'research', not {audience!r}.")
    threshold = check_suppression_threshold(suppression_threshold)
    instruments = check_parameters({"instruments": list(instruments)})["instruments"]
    chosen = parse_period(period)
    # A report about one clinic reads only that clinic (the others reach it as
    # clinic-level tables through the peer results).
    loaded = load_cohort(data, clinics=[clinic] if clinic else None)
    if highlight and highlight not in loaded.clinics:
        raise UsageError(f"Clinic {highlight!r} (to highlight) is not in the data.")
    whole = restrict_to_period(loaded, chosen)
    selection = whole
    if audience == "committee" and clinic and 1 <= len(selection.patients) <= threshold:
        # The command refuses this before a kernel starts; a notebook run by hand does too.
        raise UsageError(
            f"Clinic {clinic} has too few patients in this selection for a committee report "
            f"of its own (it needs more than {threshold}); report it among all clinics."
        )
    return ReportContext(
        cohort=whole,
        history=restrict_to_history(loaded, chosen),
        selection=selection,
        clinic=clinic or None,
        period=chosen,
        suppression_threshold=threshold,
        instruments=tuple(instruments),
        shared=Path(shared) if shared else None,
        highlight=highlight or clinic or None,
        audience=audience,
        source=str(data),
    )
