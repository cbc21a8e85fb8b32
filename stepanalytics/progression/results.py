"""Result types of the progression analyses (frozen, in the project's one result shape)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """A Markov multi-state model of the programme.

    ``table``: state occupation over time since enrolment: time, state,
    estimate, std_error (infinitesimal jackknife), ci_lower, ci_upper and,
    with a bootstrap, boot_lower and boot_upper.  ``hazards``: Nelson-Aalen
    cumulative hazard per transition over time.  ``time_in_state``:
    expected days in each state up to ``horizon`` (restricted mean).
    ``transitions``: how many of each transition were observed.
    """

    hazards: pd.DataFrame = field(default_factory=pd.DataFrame)
    time_in_state: pd.DataFrame = field(default_factory=pd.DataFrame)
    transitions: pd.DataFrame = field(default_factory=pd.DataFrame)
    states: tuple[str, ...] = ()
    horizon: float = float("nan")
    n_boot: int = 0

    def _sections(self) -> list[tuple[str, pd.DataFrame | None]]:
        return [
            ("Transitions observed", self.transitions),
            (f"Expected days in each state within {self.horizon:g} days", self.time_in_state),
        ]

    def occupation_at(self, days: list[float] | tuple[float, ...]) -> pd.DataFrame:
        """State occupation probabilities at given days (rows: day and state)."""
        table = self.table.sort_values("time")
        rows = []
        for day in days:
            upto = table[table["time"] <= day]
            if upto.empty:
                continue
            latest = upto[upto["time"] == upto["time"].max()].copy()
            latest.insert(0, "day", day)
            rows.append(latest.drop(columns="time"))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
