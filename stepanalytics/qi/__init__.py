"""Quality-improvement analytics: completeness, indicators, fair clinic
comparison, statistical process control, protocol adherence and safety.

Re-exports only; each idea lives in its own module:

* :mod:`~stepanalytics.qi.intervals` Wilson, exact Poisson and t intervals;
* :mod:`~stepanalytics.qi.completeness` completeness funnel, attrition check;
* :mod:`~stepanalytics.qi.indicators` change, MCID, deterioration, recovery;
* :mod:`~stepanalytics.qi.casemix` observed / expected from a case-mix model;
* :mod:`~stepanalytics.qi.funnel` funnel limits and clinic positions (Spiegelhalter 2005);
* :mod:`~stepanalytics.qi.overdispersion` winsorised phi and additive tau^2;
* :mod:`~stepanalytics.qi.shrinkage` empirical-Bayes clinic estimates;
* :mod:`~stepanalytics.qi.benchmark` all three in one clinic comparison;
* :mod:`~stepanalytics.qi.runs` and :mod:`~stepanalytics.qi.spc` run and control charts;
* :mod:`~stepanalytics.qi.adherence` progression rules of the protocol;
* :mod:`~stepanalytics.qi.safety` safety events per 100 patient-weeks;
* :mod:`~stepanalytics.qi.suppression` the small-cell gate of every report output
  (its parts: :mod:`~stepanalytics.qi.smallcells`, :mod:`~stepanalytics.qi.crosstab`,
  :mod:`~stepanalytics.qi.margins`, :mod:`~stepanalytics.qi.bounds`).
"""

from stepanalytics.qi.adherence import Adherence, protocol_adherence
from stepanalytics.qi.benchmark import ClinicComparison, benchmark_outcome, compare_clinics
from stepanalytics.qi.casemix import RiskAdjustment, risk_adjust
from stepanalytics.qi.completeness import (
    AttritionCheck,
    Completeness,
    attrition_check,
    completeness_funnel,
    measurement_stages,
    standardised_difference,
)
from stepanalytics.qi.funnel import (
    FunnelResult,
    Overdispersion,
    estimate_overdispersion,
    funnel_compare,
    funnel_limits,
)
from stepanalytics.qi.indicators import OutcomeIndicators, outcome_indicators
from stepanalytics.qi.intervals import mean_interval, poisson_rate_interval, wilson_interval
from stepanalytics.qi.runs import RunsTest, anhoej_rules, crossings_limit, longest_run_limit
from stepanalytics.qi.safety import SafetyRates, safety_rates, safety_series
from stepanalytics.qi.shrinkage import ShrinkageResult, shrink_estimates
from stepanalytics.qi.spc import ControlChart, control_chart
from stepanalytics.qi.suppression import (
    DEFAULT_THRESHOLD,
    ProtectedFrame,
    SuppressedTable,
    check_no_identifiers,
    protect_frame,
    suppress_table,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "Adherence",
    "AttritionCheck",
    "ClinicComparison",
    "Completeness",
    "ControlChart",
    "FunnelResult",
    "OutcomeIndicators",
    "Overdispersion",
    "ProtectedFrame",
    "RiskAdjustment",
    "RunsTest",
    "SafetyRates",
    "ShrinkageResult",
    "SuppressedTable",
    "anhoej_rules",
    "attrition_check",
    "benchmark_outcome",
    "check_no_identifiers",
    "compare_clinics",
    "completeness_funnel",
    "control_chart",
    "crossings_limit",
    "estimate_overdispersion",
    "funnel_compare",
    "funnel_limits",
    "longest_run_limit",
    "mean_interval",
    "measurement_stages",
    "outcome_indicators",
    "poisson_rate_interval",
    "protect_frame",
    "protocol_adherence",
    "risk_adjust",
    "safety_rates",
    "safety_series",
    "shrink_estimates",
    "standardised_difference",
    "suppress_table",
    "wilson_interval",
]
