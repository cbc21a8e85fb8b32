"""Result types of the progression analyses (frozen, in the project's one result shape)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from stepanalytics.results import AnalysisResult


def _section(title: str, frame: pd.DataFrame | None) -> list[str]:
    if frame is None or frame.empty:
        return []
    return ["", *([title] if title else []), frame.round(4).to_string(index=False)]


def _html_section(title: str, frame: pd.DataFrame | None) -> str:
    if frame is None or frame.empty:
        return ""
    heading = f"<p><b>{title}</b></p>" if title else ""
    return heading + frame.round(4).to_html(index=False)


class _Sections(AnalysisResult):
    """Results whose summary shows a few small tables rather than the long one."""

    def _sections(self) -> list[tuple[str, pd.DataFrame | None]]:
        return [("", self.table)]

    def summary(self) -> str:
        lines = [self.title]
        for name, frame in self._sections():
            lines.extend(_section(name, frame))
        if self.warnings:
            lines.extend(["", "Warnings:", *(f"  - {w}" for w in self.warnings)])
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        html = f"<h4>{self.title}</h4>"
        html += "".join(_html_section(name, frame) for name, frame in self._sections())
        if self.warnings:
            items = "".join(f"<li>{w}</li>" for w in self.warnings)
            html += f"<p><b>Warnings</b></p><ul>{items}</ul>"
        return html


@dataclass(frozen=True)
class SurvivalCurves(_Sections):
    """Kaplan-Meier curves, one per group.

    ``table`` (``to_frame()``): group, time, n_risk, n_event, n_censor,
    estimate (survival), std_error (of the survival), ci_lower, ci_upper.
    ``medians``: group, n, events, median, ci_lower, ci_upper.
    ``at_times``: survival at the requested days, with n_risk.
    ``logrank``: the log-rank test across groups (empty for one group).
    """

    medians: pd.DataFrame = field(default_factory=pd.DataFrame)
    at_times: pd.DataFrame = field(default_factory=pd.DataFrame)
    logrank: pd.DataFrame = field(default_factory=pd.DataFrame)
    conf_type: str = "log"
    conf_level: float = 0.95

    def _sections(self) -> list[tuple[str, pd.DataFrame | None]]:
        return [
            ("Median time (days) with confidence interval", self.medians),
            ("Probability of no event yet at chosen days", self.at_times),
            ("Log-rank test", self.logrank),
        ]


@dataclass(frozen=True)
class CumulativeIncidence(_Sections):
    """Aalen-Johansen cumulative incidence of competing outcomes, per group.

    ``table``: group, outcome, time, n_risk, n_event, estimate, std_error,
    ci_lower, ci_upper.  The outcome ``in_phase`` is the probability of
    still being in the phase, so the outcomes add up to 1 at every time.
    ``at_times``: the same at the requested days.  ``events``: counts of
    each outcome per group.  ``tests``: with groups, Gray's test of equal
    incidence per outcome (outcome, statistic, df, p_value, rho, n_strata).
    """

    at_times: pd.DataFrame = field(default_factory=pd.DataFrame)
    events: pd.DataFrame = field(default_factory=pd.DataFrame)
    tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    variance: str = "ij"
    conf_type: str = "log"
    conf_level: float = 0.95

    def _sections(self) -> list[tuple[str, pd.DataFrame | None]]:
        return [
            ("Outcomes counted", self.events),
            ("Cumulative incidence at chosen days", self.at_times),
            ("Gray's test of equal incidence across groups", self.tests),
        ]


@dataclass(frozen=True)
class GrayTest(AnalysisResult):
    """Gray's test of equal cumulative incidence across groups, one row per outcome.

    ``table``: outcome, statistic (chi-square), df, p_value, rho, n_strata.
    """


@dataclass(frozen=True)
class CoxModel(_Sections):
    """A Cox proportional-hazards model.

    ``table``: term, estimate (log hazard ratio), std_error, hazard_ratio,
    ci_lower, ci_upper (hazard-ratio scale), z, p_value, and naive_std_error
    when the standard errors are robust.  ``ph_test``: the
    proportional-hazards score test per term and globally (as R
    ``cox.zph``), with a plain-words verdict.
    """

    ph_test: pd.DataFrame = field(default_factory=pd.DataFrame)
    n: int = 0
    n_events: int = 0
    log_likelihood: float = float("nan")
    concordance: float = float("nan")
    variance: str = "model"

    def _sections(self) -> list[tuple[str, pd.DataFrame | None]]:
        facts = pd.DataFrame(
            {
                "n": [self.n],
                "events": [self.n_events],
                "log_likelihood": [self.log_likelihood],
                "concordance": [self.concordance],
                "standard_errors": [self.variance],
            }
        )
        return [("", facts), ("Hazard ratios", self.table), ("Proportional hazards", self.ph_test)]


@dataclass(frozen=True)
class MultiStateModel(_Sections):
    """A Markov multi-state model of the programme, for the whole cohort or per group.

    ``table``: state occupation over time since enrolment: time, state,
    estimate, std_error (infinitesimal jackknife), ci_lower, ci_upper and,
    with a bootstrap, boot_lower and boot_upper.  ``hazards``: Nelson-Aalen
    cumulative hazard per transition over time.  ``time_in_state``:
    expected days in each state up to ``horizon`` (restricted mean) with its
    IJ std_error and normal limits (and bootstrap limits).  ``transitions``:
    how many of each transition were observed.  ``at_times``: the occupation
    at the requested days (``fit_multistate(at=)``).

    With ``by`` (the patient column the groups come from), every table starts
    with a ``group`` column and ``model`` maps each group to its fit.
    """

    hazards: pd.DataFrame = field(default_factory=pd.DataFrame)
    time_in_state: pd.DataFrame = field(default_factory=pd.DataFrame)
    transitions: pd.DataFrame = field(default_factory=pd.DataFrame)
    states: tuple[str, ...] = ()
    horizon: float = float("nan")
    n_boot: int = 0
    by: str | None = None
    at_times: pd.DataFrame = field(default_factory=pd.DataFrame)

    def _sections(self) -> list[tuple[str, pd.DataFrame | None]]:
        return [
            ("Transitions observed", self.transitions),
            ("Probability of being in each state at chosen days", self.at_times),
            (f"Expected days in each state within {self.horizon:g} days", self.time_in_state),
        ]

    @property
    def groups(self) -> list[object]:
        """The groups compared (``[None]`` without ``by``)."""
        if self.by is None or self.table.empty:
            return [None]
        return list(dict.fromkeys(self.table["group"]))

    def occupation_at(self, days: Sequence[float]) -> pd.DataFrame:
        """State occupation probabilities at given days (rows: [group,] day and state).

        Before a group's first event the occupation is the starting mix (standard error
        0); after its last follow-up the last estimate is carried forward.
        """
        pieces = []
        for group in self.groups:
            table = self.table if group is None else self.table[self.table["group"] == group]
            table = table.sort_values("time", kind="stable")
            times = table["time"].to_numpy()
            for day in days:
                upto = times[times <= day]
                if upto.size:
                    latest = table[table["time"] == upto.max()].drop(columns="time")
                else:
                    latest = self._start(group, table)
                    if latest is None:
                        continue
                latest.insert(0 if group is None else 1, "day", day)
                pieces.append(latest)
        return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()

    def _start(self, group: object, table: pd.DataFrame) -> pd.DataFrame | None:
        fit = self.model if group is None else (self.model or {}).get(group)
        if fit is None or table.empty:
            return None
        first = table[table["time"] == table["time"].min()].drop(columns="time").copy()
        start = fit.p0[0]
        for column in ("estimate", "ci_lower", "ci_upper", "boot_lower", "boot_upper"):
            if column in first.columns:
                first[column] = start
        first["std_error"] = 0.0
        return first

    def with_days(self, days: Sequence[float]) -> MultiStateModel:
        """The same model with ``at_times`` filled for ``days`` (and a note past follow-up)."""
        at_times = self.occupation_at(days)
        notes = list(self.warnings)
        for group in self.groups:
            table = self.table if group is None else self.table[self.table["group"] == group]
            last = float(table["time"].max())
            beyond = [d for d in days if d > last]
            if beyond:
                label = "" if group is None else f"{self.by} = {group}: "
                notes.append(
                    f"{label}follow-up ends at day {last:g}; the occupation on day(s) "
                    f"{', '.join(f'{d:g}' for d in beyond)} is the last estimate carried forward"
                )
        return replace(self, at_times=at_times, warnings=tuple(notes))
