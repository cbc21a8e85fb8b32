"""Time to progression: stays, Kaplan-Meier, Cox, competing risks, multi-state model.

The public names are re-exported here; see each module for the method and
the R function it agrees with.
"""

from stepanalytics.progression.competing_risks import cumulative_incidence
from stepanalytics.progression.cox import fit_cox
from stepanalytics.progression.gray import gray_test
from stepanalytics.progression.kaplan_meier import kaplan_meier
from stepanalytics.progression.multistate import fit_multistate, restricted_mean
from stepanalytics.progression.multistate_data import multistate_data
from stepanalytics.progression.phases import (
    add_baselines,
    fit_progression_cox,
    phase_exit_incidence,
    select_stays,
    time_to_progression,
)
from stepanalytics.progression.results import (
    CoxModel,
    CumulativeIncidence,
    GrayTest,
    MultiStateModel,
    SurvivalCurves,
)
from stepanalytics.progression.stays import OUTCOMES, build_stays
from stepanalytics.progression.transitions import fit_transition_cox

__all__ = [
    "OUTCOMES",
    "CoxModel",
    "CumulativeIncidence",
    "GrayTest",
    "MultiStateModel",
    "SurvivalCurves",
    "add_baselines",
    "build_stays",
    "cumulative_incidence",
    "fit_cox",
    "fit_multistate",
    "fit_progression_cox",
    "fit_transition_cox",
    "gray_test",
    "kaplan_meier",
    "multistate_data",
    "phase_exit_incidence",
    "restricted_mean",
    "select_stays",
    "time_to_progression",
]
