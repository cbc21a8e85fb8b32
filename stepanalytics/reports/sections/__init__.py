"""Report sections: each notebook cell calls one of these functions.

A section takes the :class:`~stepanalytics.reports.context.ReportContext`
and returns a :class:`~stepanalytics.reports.display.Section` (headings,
text, protected tables, figures with captions) that the notebook displays.
Notebooks hold no logic; everything a report shows is decided here.
"""

from stepanalytics.reports.context import ReportContext, prepare_report
from stepanalytics.reports.sections.appendix import section_data_quality
from stepanalytics.reports.sections.care import section_adherence, section_safety
from stepanalytics.reports.sections.completeness import section_completeness
from stepanalytics.reports.sections.outcomes import section_outcomes
from stepanalytics.reports.sections.overtime import section_control_charts
from stepanalytics.reports.sections.overview import (
    section_cohort_overview,
    section_phase_flow,
    section_title,
)
from stepanalytics.reports.sections.peers import (
    section_benchmark_outcomes,
    section_peer_comparison,
)
from stepanalytics.reports.sections.progression import (
    section_progression_models,
    section_time_to_events,
)
from stepanalytics.reports.sections.trajectories import section_trajectories

__all__ = [
    "ReportContext",
    "prepare_report",
    "section_adherence",
    "section_benchmark_outcomes",
    "section_cohort_overview",
    "section_completeness",
    "section_control_charts",
    "section_data_quality",
    "section_outcomes",
    "section_peer_comparison",
    "section_phase_flow",
    "section_progression_models",
    "section_safety",
    "section_time_to_events",
    "section_title",
    "section_trajectories",
]
