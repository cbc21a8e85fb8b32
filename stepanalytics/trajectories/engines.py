"""The boundary between trajectory models and the code that fits them.

An *engine* is any callable that takes a :class:`MixedProblem` (numbers only:
y, X, Z, patient codes and names, optionally clinic codes) and returns an
:class:`EngineFit` on the original scale of the data.  Everything above this
boundary - formulas, cohorts, Satterthwaite tests, predictions, plots - works
the same whichever engine ran.

Two engines are foreseen: ``"statsmodels"`` (MixedLM with several
optimizers, :mod:`stepanalytics.trajectories.statsmodels_engine`) and a fast
sufficient-statistics engine for registry scale, registered under
``"fast"`` with :func:`register_engine`.

What an engine must return (all on the data's own scale):

* ``theta``: lme4's parameters of the relative covariance factor, the lower
  triangle of Lambda column by column (then a clinic factor, if any);
* ``sigma``: residual SD; ``beta`` and ``cov_beta``;
* ``loglik``: REML or ML log-likelihood as fitted (``reml`` says which);
* ``patient_effects``: BLUPs, one row per patient in ``problem.patient_labels``
  order, one column per random effect;
* ``deviance_function`` and ``cov_beta_function``: -2 log-likelihood and
  cov(beta) as functions of ``varpar = (theta..., sigma)`` with sigma *not*
  profiled out (lmerTest's ``devfun_vp`` and ``get_covbeta``); the
  Satterthwaite step differentiates them numerically;
* ``converged``, ``attempts`` (one row per optimizer run: ``optimizer``,
  ``start``, ``converged``, ``loglik``, ``seconds``, ``note``, ``chosen``; a
  run that only refines another's result has ``start`` :data:`POLISH_START`)
  and ``notes``;
* optionally ``derivatives``: the Hessian of the deviance and the Jacobian of
  cov(beta) in ``varpar``, when the engine has them more cheaply than by
  differencing the two functions (the fast engine differentiates its exact
  gradient; at registry scale every evaluation counts).

``engine="auto"`` (:func:`select_engine`) picks the fast engine for the
models in its class - one grouping factor (patients) with up to
:data:`~stepanalytics.lmm.fit.MAX_RANDOM_TERMS` correlated random effects,
optionally a random intercept of an outer factor (clinics) in which the
patients are nested - and statsmodels otherwise, and says so in the notes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from stepanalytics.errors import UsageError

#: Optimizers tried independently by default. Nelder-Mead is never used: it
#: stops far from the optimum on these likelihoods.
DEFAULT_OPTIMIZERS: tuple[str, ...] = ("lbfgs", "bfgs", "cg", "powell")
ALLOWED_OPTIMIZERS: frozenset[str] = frozenset(DEFAULT_OPTIMIZERS)
#: The ``start`` of an attempt that refines another run's result rather than
#: searching on its own (the statsmodels engine's polish).  Every other attempt
#: is an independent search, and independent searches that stop apart are
#: reported as a disagreement.
POLISH_START = "best (polish)"


@dataclass(frozen=True)
class MixedProblem:
    """A linear mixed model problem as plain arrays, rows sorted by patient.

    Parameters
    ----------
    y : ndarray (n,)
    x : ndarray (n, p)
        Fixed-effect design.
    z : ndarray (n, q)
        Random-effect design (per patient).
    patient_codes : ndarray of int (n,)
        0..G-1, non-decreasing (rows sorted by patient), every code present.
    patient_labels : ndarray (G,)
        Patient id of each code.
    fixed_names, random_names : tuple of str
    clinic_codes : ndarray of int (n,), optional
        For a random clinic intercept with patients nested in clinics.
    clinic_labels : ndarray, optional
    covariance : {"unstructured", "diagonal"}
        Of the patient random effects: correlated (lme4's ``(weeks | g)``) or
        uncorrelated (``(weeks || g)``); theta has the free elements only.
    """

    y: np.ndarray
    x: np.ndarray
    z: np.ndarray
    patient_codes: np.ndarray
    patient_labels: np.ndarray
    fixed_names: tuple[str, ...]
    random_names: tuple[str, ...]
    clinic_codes: np.ndarray | None = None
    clinic_labels: np.ndarray | None = None
    covariance: str = "unstructured"

    @property
    def n_patient_theta(self) -> int:
        """Elements of theta that belong to the patient random effects."""
        q = self.n_random
        return q if self.covariance == "diagonal" else q * (q + 1) // 2

    @property
    def n_obs(self) -> int:
        return int(self.y.size)

    @property
    def n_fixed(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_random(self) -> int:
        return int(self.z.shape[1])

    @property
    def n_patients(self) -> int:
        return int(self.patient_labels.size)


@dataclass(frozen=True)
class VarparDerivatives:
    """Derivatives at the optimum in ``varpar = (theta..., sigma)``, from the engine.

    Parameters
    ----------
    hessian : ndarray (k, k)
        Hessian of the deviance (-2 log-likelihood, REML or ML as fitted).
    cov_beta_jacobian : ndarray (k, p, p)
        d cov(beta) / d varpar[k] in slice k.
    """

    hessian: np.ndarray
    cov_beta_jacobian: np.ndarray


@dataclass(frozen=True)
class EngineFit:
    """What an engine returns; see the module docstring for the contract."""

    theta: np.ndarray
    sigma: float
    beta: np.ndarray
    cov_beta: np.ndarray
    loglik: float
    reml: bool
    patient_effects: np.ndarray
    deviance_function: Callable[[np.ndarray], float]
    cov_beta_function: Callable[[np.ndarray], np.ndarray]
    converged: bool
    engine: str
    attempts: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: tuple[str, ...] = ()
    clinic_effects: np.ndarray | None = None
    raw: Any = field(default=None, repr=False, compare=False)
    derivatives: VarparDerivatives | None = field(default=None, repr=False, compare=False)

    @property
    def varpar(self) -> np.ndarray:
        """(theta..., sigma): the variance parameters lmerTest differentiates over."""
        return np.r_[np.asarray(self.theta, dtype=float), float(self.sigma)]


class MixedModelEngine(Protocol):
    """The call every engine answers."""

    def __call__(
        self, problem: MixedProblem, *, reml: bool, optimizers: Sequence[str] | None = None
    ) -> EngineFit: ...


_ENGINES: dict[str, MixedModelEngine] = {}


def register_engine(name: str, engine: MixedModelEngine) -> None:
    """Make ``engine`` available as ``fit_trajectory(..., engine=name)``.

    Examples
    --------
    >>> from stepanalytics.trajectories.statsmodels_engine import fit_with_statsmodels
    >>> register_engine("statsmodels", fit_with_statsmodels)
    >>> "statsmodels" in available_engines()
    True
    """
    _ENGINES[name] = engine


def available_engines() -> list[str]:
    """Names of the registered engines."""
    _ensure_builtin()
    return sorted(_ENGINES)


#: How each built-in engine is described in summaries and notes.
ENGINE_DESCRIPTIONS: dict[str, str] = {
    "fast": (
        "the fast engine (stepanalytics.lmm: REML/ML from per-patient sufficient statistics, "
        "bounded L-BFGS-B with exact gradients from two starts, Newton polish)"
    ),
    "statsmodels": (
        "statsmodels MixedLM (each optimizer from the default start, the best optimum kept "
        "and polished within lme4's bounds)"
    ),
}


@dataclass(frozen=True)
class EngineChoice:
    """The engine that will fit a problem, and why (for the result's notes)."""

    name: str
    engine: MixedModelEngine
    notes: tuple[str, ...] = ()


def select_engine(
    engine: str | MixedModelEngine,
    problem: MixedProblem,
    *,
    optimizers: Sequence[str] | None = None,
) -> EngineChoice:
    """Choose the engine for ``problem``: a name, ``"auto"``, or a callable.

    ``"auto"`` takes the fast engine when the model is in its class and
    statsmodels otherwise (or when statsmodels ``optimizers`` are asked for);
    a named engine that cannot fit the model is refused with the reason.

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.repeat(np.arange(3), 2)
    >>> problem = MixedProblem(np.zeros(6), np.ones((6, 1)), np.ones((6, 1)), codes,
    ...                        np.array(["a", "b", "c"]), ("Intercept",), ("Intercept",))
    >>> select_engine("auto", problem).name
    'fast'
    >>> select_engine("auto", problem, optimizers=["lbfgs"]).name
    'statsmodels'
    """
    _ensure_builtin()
    if callable(engine) and not isinstance(engine, str):
        return EngineChoice(getattr(engine, "__name__", "custom"), engine)
    from stepanalytics.trajectories.fast_engine import fast_engine_refusal

    nested = problem.clinic_codes is not None
    refusal = fast_engine_refusal(problem)
    if engine == "auto":
        if optimizers is None and refusal is None:
            return EngineChoice("fast", _ENGINES["fast"], ())
        if nested:
            why = (
                f"the fast engine {refusal}"
                if refusal
                else "optimizers= apply to the statsmodels engine only"
            )
            raise UsageError(
                "Only the fast engine fits a random intercept per clinic with patients nested "
                f"in clinics, and here {why}. "
                + ("Leave out optimizers=." if refusal is None else "Simplify the model.")
            )
        if refusal is None:
            note = (
                "optimizers= were given, and only the statsmodels engine uses them, so "
                "engine='auto' fitted with statsmodels (leave optimizers out for the fast engine)."
            )
        else:
            note = (
                f"engine='auto' fitted with statsmodels: the fast engine {refusal}. Expect "
                "it to be slow on large cohorts."
            )
        return EngineChoice("statsmodels", _ENGINES["statsmodels"], (note,))
    if engine == "fast":
        if refusal is not None:
            raise UsageError(
                f"The fast engine {refusal}. Use engine='statsmodels' (or 'auto') for this model."
            )
        if optimizers is not None:
            raise UsageError(
                "optimizers= choose statsmodels' optimizers; the fast engine has its own "
                "(bounded L-BFGS-B with exact gradients). Leave optimizers out, or use "
                "engine='statsmodels'."
            )
    if engine == "statsmodels" and nested:
        raise UsageError(
            "The statsmodels engine cannot fit a random intercept per clinic with patients "
            "nested in clinics (lme4's (1 | clinic_id) + (weeks | patient_id)). Use "
            "engine='fast' or 'auto', or make clinic a fixed effect (compare='clinic')."
        )
    if engine not in _ENGINES:
        raise UsageError(
            f"No mixed-model engine called {engine!r}. "
            f"Use one of: {', '.join(sorted(_ENGINES))} (or 'auto')."
        )
    return EngineChoice(str(engine), _ENGINES[str(engine)])


def engine_description(name: str) -> str:
    """Plain words for an engine name (the name itself for custom engines)."""
    return ENGINE_DESCRIPTIONS.get(name, f"the engine {name!r}")


def check_optimizers(optimizers: Sequence[str]) -> tuple[str, ...]:
    """Validate an optimizer list: known names only, never Nelder-Mead."""
    chosen = tuple(str(o).lower() for o in optimizers)
    if not chosen:
        raise UsageError("Give at least one optimizer, e.g. optimizers=('lbfgs', 'bfgs').")
    if "nm" in chosen or "nelder-mead" in chosen:
        raise UsageError(
            "Nelder-Mead ('nm') is not offered: on mixed-model likelihoods it often stops "
            f"far from the optimum. Use some of: {', '.join(DEFAULT_OPTIMIZERS)}."
        )
    unknown = [o for o in chosen if o not in ALLOWED_OPTIMIZERS]
    if unknown:
        raise UsageError(
            f"Unknown optimizer(s): {', '.join(unknown)}. "
            f"Use some of: {', '.join(DEFAULT_OPTIMIZERS)}."
        )
    return chosen


def _statsmodels_engine(
    problem: MixedProblem, *, reml: bool, optimizers: Sequence[str] | None = None
) -> EngineFit:
    """statsmodels' engine, imported on first use (statsmodels takes a while to import)."""
    from stepanalytics.trajectories.statsmodels_engine import fit_with_statsmodels

    return fit_with_statsmodels(problem, reml=reml, optimizers=optimizers)


def _ensure_builtin() -> None:
    if "statsmodels" not in _ENGINES:
        _ENGINES["statsmodels"] = _statsmodels_engine
    if "fast" not in _ENGINES:
        from stepanalytics.trajectories.fast_engine import fit_with_fast_engine

        _ENGINES["fast"] = fit_with_fast_engine


def attempts_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The attempts table from one dict per run, with the shared columns and dtypes.

    ``hessian_ok`` is a nullable boolean: <NA> where the curvature was not
    checked for that run.
    """
    empty = empty_attempts()
    frame = pd.DataFrame(list(rows), columns=empty.columns)
    return frame.astype(empty.dtypes.to_dict())


def empty_attempts() -> pd.DataFrame:
    """The attempts table with its columns and no rows."""
    return pd.DataFrame(
        {
            "optimizer": pd.Series(dtype=object),
            "start": pd.Series(dtype=object),
            "converged": pd.Series(dtype=bool),
            "loglik": pd.Series(dtype=float),
            "seconds": pd.Series(dtype=float),
            "boundary": pd.Series(dtype=bool),
            "hessian_ok": pd.Series(dtype="boolean"),
            "note": pd.Series(dtype=object),
            "chosen": pd.Series(dtype=bool),
        }
    )


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit OpenBLAS to one thread inside the block, when threadpoolctl is installed.

    The likelihood work is many small matrix products; with threaded OpenBLAS
    scipy's L-BFGS-B (used by statsmodels and by the polish) runs several times
    slower on these machines, and its results pick up thread-order noise.
    (The same switch as the fast engine's, :mod:`stepanalytics.lmm.optimise`.)
    """
    from stepanalytics.lmm.optimise import single_threaded_blas as limit

    with limit():
        yield
