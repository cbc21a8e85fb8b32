"""stepanalytics: outcome analytics for stepped chronic-pain rehabilitation.

The public API, re-exported names only.  The analysis functions are loaded
on first use, so ``import stepanalytics`` stays quick.

Examples
--------
>>> import stepanalytics as sa
>>> cohort = sa.synthesize_cohort(n_patients=40, n_clinics=2, seed=1)
>>> cohort.n_patients
40
"""

from __future__ import annotations

import importlib
from typing import Any

from stepanalytics.cohort import Cohort, load_cohort
from stepanalytics.errors import AnalysisError, CohortError, Problem, StepAnalyticsError, UsageError
from stepanalytics.synth import synthesize_cohort, write_synthetic_cohort

__version__ = "0.1.0"

# name -> module that defines it; imported when first asked for.
_LAZY = {
    "get_registry": "stepanalytics.instruments",
    "score_items": "stepanalytics.instruments",
    "measure_change": "stepanalytics.instruments",
    "fit_trajectory": "stepanalytics.trajectories",
    "fit_mixed_model": "stepanalytics.trajectories",
    "predict_trajectory": "stepanalytics.trajectories",
    "compare_models": "stepanalytics.trajectories",
    "fit_lmm": "stepanalytics.lmm",
    "fit_lmm_formula": "stepanalytics.lmm",
    "build_stays": "stepanalytics.progression",
    "time_to_progression": "stepanalytics.progression",
    "phase_exit_incidence": "stepanalytics.progression",
    "fit_progression_cox": "stepanalytics.progression",
    "fit_multistate": "stepanalytics.progression",
    "completeness_funnel": "stepanalytics.qi",
    "outcome_indicators": "stepanalytics.qi",
    "benchmark_outcome": "stepanalytics.qi",
    "control_chart": "stepanalytics.qi",
    "protocol_adherence": "stepanalytics.qi",
    "safety_rates": "stepanalytics.qi",
    "protect_frame": "stepanalytics.qi",
    "render_report": "stepanalytics.reports",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stepanalytics' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AnalysisError",
    "Cohort",
    "CohortError",
    "Problem",
    "StepAnalyticsError",
    "UsageError",
    "__version__",
    "load_cohort",
    "synthesize_cohort",
    "write_synthetic_cohort",
    *_LAZY,
]
