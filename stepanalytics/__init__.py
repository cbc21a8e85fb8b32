"""stepanalytics: outcome analytics for stepped chronic-pain rehabilitation.

The public API, re-exported names only.

Examples
--------
>>> import stepanalytics as sa
>>> cohort = sa.synthesize_cohort(n_patients=40, n_clinics=2, seed=1)
>>> cohort.n_patients
40
"""

from stepanalytics.cohort import Cohort, load_cohort
from stepanalytics.errors import AnalysisError, CohortError, Problem, StepAnalyticsError, UsageError
from stepanalytics.synth import synthesize_cohort, write_synthetic_cohort

__version__ = "0.1.0"

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
]
