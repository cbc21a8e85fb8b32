"""The result of a trajectory model, in the project's one result shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError
from stepanalytics.results import AnalysisResult
from stepanalytics.trajectories.design import Design
from stepanalytics.trajectories.engines import EngineFit, MixedModelEngine
from stepanalytics.trajectories.phase_time import PhasePath
from stepanalytics.trajectories.satterthwaite import SatterthwaiteState, contrast_table, f_test


@dataclass(frozen=True)
class FitOptions:
    """How a model was fitted (kept so that it can be refitted, e.g. by ML)."""

    reml: bool = True
    engine: str | MixedModelEngine = "auto"
    optimizers: tuple[str, ...] | None = None
    level: float = 0.95


@dataclass(frozen=True)
class TrajectoryResult(AnalysisResult):
    """A fitted linear mixed model of scores over time.

    Attributes
    ----------
    table : DataFrame
        Fixed effects: ``term, estimate, std_error, df, t_value, p_value,
        ci_lower, ci_upper`` with Satterthwaite df (t-tests as lmerTest).
    variance_components : DataFrame
        ``group, term, kind ("sd" or "corr"), estimate``: the patient SDs and
        correlations, the clinic SD when a clinic random intercept is fitted,
        the residual SD last.
    fit_statistics : DataFrame
        One row: observations, patients, criterion (REML/ML), loglik,
        deviance, AIC, BIC, engine (``"fast"`` or ``"statsmodels"``),
        convergence.
    attempts : DataFrame
        One row per optimizer run (see :mod:`stepanalytics.trajectories.engines`).
    notes : tuple of str
        Facts worth knowing that are not problems (rows left out, reference
        levels, rescaling, direction of improvement).
    warnings : tuple of str
        Fit problems in plain words (singular fit, flat likelihood, ...).
    model : object
        What the engine returned: the :class:`~stepanalytics.lmm.LmmFit` of
        the fast engine, or the statsmodels MixedLMResults of the chosen run
        (fitted on rescaled data when that engine rescaled; see ``notes``).
    """

    variance_components: pd.DataFrame = field(default_factory=pd.DataFrame)
    fit_statistics: pd.DataFrame = field(default_factory=pd.DataFrame)
    attempts: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: tuple[str, ...] = ()
    fit: EngineFit | None = field(default=None, repr=False, compare=False)
    design: Design | None = field(default=None, repr=False, compare=False)
    satterthwaite: SatterthwaiteState | None = field(default=None, repr=False, compare=False)
    options: FitOptions = field(default_factory=FitOptions, repr=False)
    phase_path: PhasePath | None = field(default=None, repr=False)
    instrument: str | None = None
    higher_is_better: bool | None = None

    # -- numbers people ask for -------------------------------------------------
    @property
    def fixed_effects(self) -> pd.DataFrame:
        """The fixed-effects table (same as ``to_frame()``)."""
        return self.table.copy()

    @property
    def loglik(self) -> float:
        return float(self.fit_statistics["loglik"].iat[0])

    @property
    def aic(self) -> float:
        return float(self.fit_statistics["aic"].iat[0])

    @property
    def bic(self) -> float:
        return float(self.fit_statistics["bic"].iat[0])

    @property
    def reml(self) -> bool:
        return self.options.reml

    @property
    def n_params(self) -> int:
        """Fixed effects + variance parameters (theta) + residual SD, as lme4 counts."""
        return int(self.fit_statistics["n_params"].iat[0])

    def _parts(self) -> tuple[EngineFit, Design, SatterthwaiteState]:
        if self.fit is None or self.design is None or self.satterthwaite is None:
            raise UsageError("This result carries no fitted model (it was built by hand).")
        return self.fit, self.design, self.satterthwaite

    # -- tests --------------------------------------------------------------------
    def contrast(
        self, weights: Mapping[str, float] | Sequence[float], *, name: str = "contrast"
    ) -> pd.DataFrame:
        """Estimate and t-test a linear combination of fixed effects (Satterthwaite df).

        Parameters
        ----------
        weights : mapping of term to weight, or one weight per fixed effect
            E.g. ``{"Intercept": 1, "weeks": 12}``: the mean score at week 12.

        Notes
        -----
        R equivalent: ``lmerTest::contest(fit, L, joint = FALSE)``.
        """
        fit, _, state = self._parts()
        row = self._weights_row(weights)
        return contrast_table(state, fit.beta, row, level=self.options.level, names=[name])

    def f_test(self, terms: Sequence[str] | np.ndarray) -> pd.DataFrame:
        """Joint F-test that several fixed effects are all zero (Satterthwaite ddf).

        Parameters
        ----------
        terms : list of term names, or a contrast matrix (one row per contrast)

        Notes
        -----
        R equivalent: ``lmerTest::contest(fit, L, joint = TRUE)``; for all the
        terms of one factor it is that factor's row in ``anova(fit)``.
        """
        fit, _, state = self._parts()
        names = list(self.table["term"])
        if isinstance(terms, np.ndarray):
            matrix = np.atleast_2d(terms.astype(float))
        else:
            unknown = [t for t in terms if t not in names]
            if unknown:
                raise UsageError(f"Unknown term(s) {unknown}; the model has: {', '.join(names)}.")
            matrix = np.eye(len(names))[[names.index(t) for t in terms]]
        return pd.DataFrame([f_test(state, fit.beta, matrix)])

    def _weights_row(self, weights: Mapping[str, float] | Sequence[float]) -> np.ndarray:
        names = list(self.table["term"])
        if isinstance(weights, Mapping):
            unknown = [t for t in weights if t not in names]
            if unknown:
                raise UsageError(f"Unknown term(s) {unknown}; the model has: {', '.join(names)}.")
            return np.array([float(weights.get(t, 0.0)) for t in names])
        row = np.asarray(weights, dtype=float)
        if row.shape != (len(names),):
            raise UsageError(f"Give one weight per fixed effect ({len(names)}), or a mapping.")
        return row

    # -- for people -------------------------------------------------------------------
    def _counts(self) -> str:
        stats = self.fit_statistics.iloc[0]
        text = f"{int(stats['n_obs'])} measurements of {int(stats['n_patients'])} patients"
        problem = None if self.design is None else self.design.problem
        if problem is not None and problem.clinic_labels is not None and self.design is not None:
            outer = self.design.outer_groups
            unit = "clinics" if outer == "clinic_id" else f"{outer} groups"
            text += f" in {problem.clinic_labels.size} {unit}"
        return text

    def summary(self) -> str:
        stats = self.fit_statistics.iloc[0]
        lines = [
            self.title,
            f"{stats['criterion']} fit by the {stats['engine']} engine: {self._counts()}; "
            f"log-likelihood {stats['loglik']:.3f}, AIC {stats['aic']:.1f}, BIC {stats['bic']:.1f}",
            "",
            "Fixed effects (t-tests with Satterthwaite df):",
            self.table.round(4).to_string(index=False),
            "",
            "Variance components:",
            self.variance_components.round(4).to_string(index=False),
        ]
        if self.notes:
            lines += ["", "Notes:", *(f"  - {n}" for n in self.notes)]
        if self.warnings:
            lines += ["", "Warnings:", *(f"  - {w}" for w in self.warnings)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        stats = self.fit_statistics.iloc[0]
        html = [
            f"<h4>{self.title}</h4>",
            f"<p>{stats['criterion']} fit by the {stats['engine']} engine: {self._counts()}; "
            f"log-likelihood {stats['loglik']:.3f}</p>",
            self.table.round(4).to_html(index=False),
            "<p><b>Variance components</b></p>",
            self.variance_components.round(4).to_html(index=False),
        ]
        for heading, items in (("Notes", self.notes), ("Warnings", self.warnings)):
            if items:
                html.append(f"<p><b>{heading}</b></p><ul>")
                html.extend(f"<li>{i}</li>" for i in items)
                html.append("</ul>")
        return "".join(html)
