"""Predicted mean trajectories with confidence bands, and patient-level fitted curves.

The mean trajectory is *standardised to the cohort's case mix*: at each week
the model's prediction is averaged over the patients in the fit, each with
their own covariates (one row per patient: their first measurement).  For a
trajectory "by clinic" (or by any covariate) every patient is given that
clinic in turn, so the curves differ only by the clinic's own effect, not by
whom it treats - the comparison a QI committee needs.  With no covariates
this is simply X beta.

Because the prediction is a linear combination l'beta, its standard error
is sqrt(l' C l) and its band uses the t quantile with Satterthwaite df for
that l (as ``emmeans`` does for lmerTest fits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from stepanalytics.errors import UsageError
from stepanalytics.results import AnalysisResult
from stepanalytics.trajectories.design import Design
from stepanalytics.trajectories.phase_time import PhasePath
from stepanalytics.trajectories.result import TrajectoryResult
from stepanalytics.trajectories.satterthwaite import SatterthwaiteState, contrast_df

DEFAULT_POINTS = 61
MAX_ROWS_PER_BLOCK = 200_000
MAX_LEVELS = 30


@dataclass(frozen=True)
class TrajectoryPrediction(AnalysisResult):
    """Predicted mean score over time, one row per (level, week).

    ``table`` columns: ``by`` level column (when ``by`` is given), ``weeks``
    (the time column), ``phase`` and ``phase_label`` (when a phase path is
    known), ``estimate``, ``std_error``, ``df``, ``ci_lower``, ``ci_upper``.
    """

    time: str = "weeks"
    by: str | None = None
    response: str = "score"
    level: float = 0.95
    phase_path: PhasePath | None = field(default=None, repr=False)


def predict_trajectory(
    result: TrajectoryResult,
    *,
    weeks: Sequence[float] | np.ndarray | None = None,
    by: str | None = None,
    levels: Sequence[object] | None = None,
    level: float | None = None,
) -> TrajectoryPrediction:
    """Mean trajectory with a pointwise confidence band.

    Parameters
    ----------
    result : TrajectoryResult
    weeks : array-like, optional
        Time points (default: 61 points from 0 to the 95th percentile of the
        observed times).
    by : str, optional
        ``"phase"`` to label the curve by phase along the typical phase path
        (and set phase clocks in piecewise models), or a covariate column in
        the model (``"clinic_id"``, ``"sex"``, ...) for one standardised curve
        per level.
    levels : sequence, optional
        Which levels of ``by`` (default: all in the data).
    level : float, optional
        Confidence level (default: the fit's).

    Returns
    -------
    TrajectoryPrediction

    Notes
    -----
    R equivalent: ``emmeans::emmeans(fit, ~ weeks | clinic_id, at = list(weeks =
    ...), lmer.df = "satterthwaite", weights = "proportional")`` for a
    covariate-free time axis.
    """
    design = result.design
    fit = result.fit
    state = result.satterthwaite
    if design is None or fit is None or state is None:
        raise UsageError("This result carries no fitted model to predict from.")
    time = design.time
    if time is None:
        raise UsageError(
            "The model was fitted without a time column; pass time='weeks' (or the name of "
            "your time column) to fit_mixed_model to predict trajectories."
        )
    conf = result.options.level if level is None else float(level)
    grid = _grid(design.frame[time].to_numpy(dtype=float), weeks)
    path = result.phase_path
    if by == "phase" and path is None:
        raise UsageError(
            "A trajectory by phase needs a typical phase path: fit with fit_trajectory on a "
            "cohort, or pass phase_path=PhasePath({...}) to fit_mixed_model."
        )
    reference = _reference_rows(design)
    variables = design.variables()
    if by is not None and by == design.outer_groups:
        raise UsageError(
            f"{by!r} has a random intercept in this model, so the mean trajectory is the same "
            f"for every {by}: see clinic_effects(result) for each one's shift, or fit "
            "compare='clinic' for clinic-specific curves."
        )
    if by is not None and by != "phase" and by not in variables:
        raise UsageError(
            f"{by!r} is not in the model ({design.formula}); add it to the model "
            "(e.g. fit_trajectory(..., compare='clinic')) to predict by it."
        )
    by_levels: list[object] = [None]
    if by is not None and by != "phase":
        by_levels = list(levels) if levels is not None else _levels(design.frame[by])
        if levels is None and len(by_levels) > MAX_LEVELS:
            raise UsageError(
                f"{by!r} has {len(by_levels)} distinct values; give the ones to show, "
                f"e.g. levels=[...] (at most {MAX_LEVELS} curves by default)."
            )
    frames = []
    for value in by_levels:
        rows = reference
        if value is not None and by is not None:
            rows = reference.copy()
            rows[by] = _like(reference[by], value).set_axis(rows.index)
        weights = _averaged_rows(design, rows, grid, time, path)
        frame = _band(weights, fit.beta, state, conf)
        frame.insert(0, time, grid)
        if path is not None:
            phase = path.phase_at(grid)
            frame.insert(1, "phase", phase)
            frame.insert(2, "phase_label", [path.label(p) for p in phase])
        if value is not None and by is not None:
            frame.insert(0, by, value)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    title = f"Predicted mean {design.response}" + (f" by {by}" if by else "")
    return TrajectoryPrediction(
        table=table,
        title=title,
        time=time,
        by=by,
        response=design.response,
        level=conf,
        phase_path=path,
    )


def _grid(observed: np.ndarray, weeks: Sequence[float] | np.ndarray | None) -> np.ndarray:
    if weeks is not None:
        grid = np.asarray(weeks, dtype=float)
        if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
            raise UsageError("weeks must be a non-empty list of finite numbers.")
        return grid
    start = min(0.0, float(np.min(observed)))
    stop = float(np.quantile(observed, 0.95))
    return np.linspace(start, stop if stop > start else start + 1.0, DEFAULT_POINTS)


def _reference_rows(design: Design) -> pd.DataFrame:
    """One row per patient (their first measurement): the case mix to average over."""
    return design.frame.drop_duplicates(design.groups, keep="first").reset_index(drop=True)


def _levels(column: pd.Series) -> list[object]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.dropna().unique())
        return [c for c in column.cat.categories if c in present]
    return sorted(column.dropna().unique().tolist())


def _like(column: pd.Series, value: object) -> pd.Series:
    """A column of one value, keeping a categorical column's categories (and so its coding)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical([value] * len(column), dtype=column.dtype))
    return pd.Series([value] * len(column))


def _averaged_rows(
    design: Design,
    rows: pd.DataFrame,
    grid: np.ndarray,
    time: str,
    path: PhasePath | None,
) -> np.ndarray:
    """For each grid point, the fixed-effect design row averaged over the reference patients."""
    model_variables = design.variables()
    clocks = path.clocks(grid) if path is not None else pd.DataFrame(index=range(grid.size))
    clocks[time] = grid
    set_here = [c for c in clocks.columns if c in model_variables or c == time]
    # Patients who share every other model variable give the same row: average over patterns.
    variables = [v for v in model_variables if v not in set_here]
    if variables:
        patterns = rows.groupby(variables, dropna=False, observed=True, sort=False).size()
        base = patterns.index.to_frame(index=False)
        weight = patterns.to_numpy(dtype=float)
        for v in variables:  # keep categorical codings as fitted
            if isinstance(rows[v].dtype, pd.CategoricalDtype):
                base[v] = pd.Categorical(base[v], dtype=rows[v].dtype)
    else:
        base = pd.DataFrame(index=[0])
        weight = np.ones(1)
    weight = weight / weight.sum()
    p = design.problem.n_fixed
    out = np.empty((grid.size, p))
    per_block = max(1, MAX_ROWS_PER_BLOCK // max(len(base), 1))
    for lo in range(0, grid.size, per_block):
        hi = min(grid.size, lo + per_block)
        block = base.loc[base.index.repeat(hi - lo)].reset_index(drop=True)
        picks = np.tile(np.arange(lo, hi), len(base))
        for c in set_here:
            block[c] = _cast_like(rows.get(c), clocks[c].to_numpy()[picks])
        x = design.fixed_matrix_for(block).reshape(len(base), hi - lo, p)
        out[lo:hi] = np.einsum("b,bgp->gp", weight, x)
    return out


def _cast_like(column: pd.Series | None, values: np.ndarray) -> pd.Series | np.ndarray:
    """Values in the dtype the model saw (a phase clock of 2.0 must match category 2)."""
    if column is None:
        return values
    if isinstance(column.dtype, pd.CategoricalDtype):
        kind = type(column.cat.categories[0]) if len(column.cat.categories) else float
        return pd.Series(pd.Categorical([kind(v) for v in values], dtype=column.dtype))
    if pd.api.types.is_integer_dtype(column.dtype):
        return pd.Series(np.round(values).astype("int64"), dtype=column.dtype)
    return values


def _band(
    rows: np.ndarray, beta: np.ndarray, state: SatterthwaiteState, level: float
) -> pd.DataFrame:
    estimate = rows @ beta
    std_error = np.sqrt(np.einsum("gp,pq,gq->g", rows, state.cov_beta, rows))
    df = contrast_df(state, rows)
    half = stats.t.ppf(0.5 + level / 2.0, df) * std_error
    return pd.DataFrame(
        {
            "estimate": estimate,
            "std_error": std_error,
            "df": df,
            "ci_lower": estimate - half,
            "ci_upper": estimate + half,
        }
    )
