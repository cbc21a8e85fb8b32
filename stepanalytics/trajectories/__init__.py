"""Outcome trajectories with linear mixed models, validated against lme4 and lmerTest.

Re-exports only; each idea lives in its own module:

* :mod:`~stepanalytics.trajectories.trajectory` :func:`fit_trajectory` on a cohort;
* :mod:`~stepanalytics.trajectories.mixed` :func:`fit_mixed_model` on a long DataFrame;
* :mod:`~stepanalytics.trajectories.engines` the engine boundary, ``engine="auto"``;
* :mod:`~stepanalytics.trajectories.fast_engine` the fast engine (:mod:`stepanalytics.lmm`);
* :mod:`~stepanalytics.trajectories.statsmodels_engine` statsmodels MixedLM, several optimizers;
* :mod:`~stepanalytics.trajectories.likelihood` the likelihood at given variance parameters;
* :mod:`~stepanalytics.trajectories.satterthwaite` Satterthwaite df (as lmerTest);
* :mod:`~stepanalytics.trajectories.predictions` mean trajectories with bands;
* :mod:`~stepanalytics.trajectories.patients` patient-level curves and BLUPs;
* :mod:`~stepanalytics.trajectories.compare` likelihood-ratio tests of nested models;
* :mod:`~stepanalytics.trajectories.nesting` nesting by column space, boundary (mixture) tests;
* :mod:`~stepanalytics.trajectories.phase_time` time in each phase, typical phase path.
"""

from stepanalytics.trajectories.compare import ModelComparison, compare_models
from stepanalytics.trajectories.engines import (
    EngineFit,
    MixedModelEngine,
    MixedProblem,
    available_engines,
    register_engine,
)
from stepanalytics.trajectories.mixed import fit_mixed_model, refit
from stepanalytics.trajectories.patients import clinic_effects, patient_curves, patient_effects
from stepanalytics.trajectories.phase_time import PhasePath, add_phase_clocks, typical_path
from stepanalytics.trajectories.predictions import TrajectoryPrediction, predict_trajectory
from stepanalytics.trajectories.result import TrajectoryResult
from stepanalytics.trajectories.trajectory import fit_trajectory, trajectory_data

__all__ = [
    "EngineFit",
    "MixedModelEngine",
    "MixedProblem",
    "ModelComparison",
    "PhasePath",
    "TrajectoryPrediction",
    "TrajectoryResult",
    "add_phase_clocks",
    "available_engines",
    "clinic_effects",
    "compare_models",
    "fit_mixed_model",
    "fit_trajectory",
    "patient_curves",
    "patient_effects",
    "predict_trajectory",
    "refit",
    "register_engine",
    "trajectory_data",
    "typical_path",
]
