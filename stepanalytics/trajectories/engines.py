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
  ``converged``, ``loglik``, ``seconds``, ``note``, ``chosen``) and ``notes``.
"""

from __future__ import annotations

import contextlib
import importlib
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


def resolve_engine(engine: str | MixedModelEngine) -> tuple[str, MixedModelEngine]:
    """Look an engine up by name (or accept a callable); raise UsageError if unknown."""
    _ensure_builtin()
    if callable(engine) and not isinstance(engine, str):
        return getattr(engine, "__name__", "custom"), engine
    if engine == "auto":
        engine = "fast" if "fast" in _ENGINES else "statsmodels"
    if engine not in _ENGINES:
        raise UsageError(
            f"No mixed-model engine called {engine!r}. "
            f"Use one of: {', '.join(sorted(_ENGINES))} (or 'auto')."
        )
    return str(engine), _ENGINES[str(engine)]


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


def _ensure_builtin() -> None:
    if "statsmodels" not in _ENGINES:
        from stepanalytics.trajectories.statsmodels_engine import fit_with_statsmodels

        _ENGINES["statsmodels"] = fit_with_statsmodels


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
            "hessian_ok": pd.Series(dtype=bool),
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
    """
    try:
        limits = importlib.import_module("threadpoolctl").threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up
        yield
        return
    with limits(limits=1, user_api="blas"):
        yield
