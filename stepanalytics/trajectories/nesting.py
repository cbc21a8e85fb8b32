"""Is one mixed model nested in another, and does their likelihood-ratio test meet a boundary?

Nesting is a property of the models' column spaces, not of their term names:
``score ~ weeks`` is nested in the piecewise model ``score ~ weeks_phase1 +
... + weeks_outside_phases`` because ``weeks`` is the sum of the phase clocks.
So the smaller model's fixed-effects design must lie in the column space of
the larger one's (least-squares residuals of zero on the same rows), and the
same holds for the patient random-effects design.

A test of a variance component sits on the boundary of the parameter space
(a variance cannot be negative), so the likelihood-ratio statistic does not
follow the chi-square distribution with the difference in parameters as df.
When the larger model adds exactly one random-effect variance, and otherwise
only covariances of it (which are free to take either sign), the null
distribution is a 50:50 mixture of chi-square distributions with ``k - 1`` and
``k`` df, where ``k`` is the number of added parameters (Self & Liang 1987,
case 5; Stram & Lee 1994):

* one more variance (a clinic random intercept, or a random slope uncorrelated
  with the rest): ``0.5 chi2(0) + 0.5 chi2(1)``, i.e. half the chi2(1) p-value;
* one more random term with its covariances with the ``q`` terms already there
  (a correlated random slope): ``0.5 chi2(q) + 0.5 chi2(q + 1)``.

Other pairs (several variances added at once, fixed effects changing as well,
a smaller model that is already singular) have no such simple null
distribution; they get a caution in plain words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from stepanalytics.errors import UsageError
from stepanalytics.trajectories import diagnostics
from stepanalytics.trajectories.design import Design
from stepanalytics.trajectories.result import TrajectoryResult

#: Relative least-squares residual below which a column counts as inside a column space.
SPAN_TOL = 1e-7


def columns_outside(small: np.ndarray, large: np.ndarray) -> list[int]:
    """Columns of ``small`` that are not linear combinations of the columns of ``large``.

    Both matrices hold the same rows.  A column is inside the column space
    when its least-squares residual on ``large`` is below :data:`SPAN_TOL`
    of its own length.

    Examples
    --------
    >>> weeks = np.array([0.0, 1, 2, 3])
    >>> phase1, phase2 = np.minimum(weeks, 2), np.maximum(weeks - 2, 0)
    >>> ones = np.ones(4)
    >>> columns_outside(np.column_stack([ones, weeks]), np.column_stack([ones, phase1, phase2]))
    []
    >>> columns_outside(np.column_stack([ones, phase1]), np.column_stack([ones, weeks]))
    [1]
    """
    if small.shape[1] == 0:
        return []
    if large.shape[1] == 0:
        return list(range(small.shape[1]))
    scale = np.maximum(np.abs(large).max(axis=0), 1e-300)
    coef, *_ = np.linalg.lstsq(large / scale, small, rcond=None)
    residual = small - (large / scale) @ coef
    length = np.maximum(np.linalg.norm(small, axis=0), 1e-300)
    outside = np.linalg.norm(residual, axis=0) > SPAN_TOL * length
    return [int(i) for i in np.flatnonzero(outside)]


def check_nested(small: Design, large: Design) -> None:
    """Refuse, in words, a pair of models fitted to the same rows that do not nest.

    The fixed effects and the patient random effects of ``small`` must lie in
    the column spaces of ``large``'s; uncorrelated random effects in ``large``
    must include each of ``small``'s (up to scale); a clinic random intercept
    in ``small`` must be in ``large`` too.
    """
    problems = []
    fixed_out = columns_outside(small.problem.x, large.problem.x)
    if fixed_out:
        names = [small.problem.fixed_names[i] for i in fixed_out]
        problems.append(
            f"the fixed effects {names} of the smaller model are not combinations of the "
            f"larger model's {list(large.problem.fixed_names)}"
        )
    random_out = columns_outside(small.problem.z, large.problem.z)
    if random_out:
        names = [small.problem.random_names[i] for i in random_out]
        problems.append(
            f"the random effects {names} of the smaller model are not combinations of the "
            f"larger model's {list(large.problem.random_names)}"
        )
    elif not _covariance_nested(small, large):
        problems.append(
            "the smaller model's random effects are correlated (or not among the larger "
            "model's own terms) while the larger model's are uncorrelated (re_covariance="
            "'diagonal')"
        )
    small_clinics, large_clinics = small.problem.clinic_codes, large.problem.clinic_codes
    if small_clinics is not None and (
        large_clinics is None
        or large.outer_groups != small.outer_groups
        or not np.array_equal(small_clinics, large_clinics)
    ):
        problems.append(
            f"the smaller model has a random intercept per {small.outer_groups} and the "
            "larger one does not"
        )
    if problems:
        raise UsageError(
            "The models are not nested: " + "; ".join(problems) + ". A likelihood-ratio test "
            "needs the smaller model to be a special case of the larger one (nesting is "
            "checked on the models' columns, so e.g. weeks is nested in the phase clocks "
            "that add up to it)."
        )


def _covariance_nested(small: Design, large: Design) -> bool:
    if large.problem.covariance != "diagonal" or large.problem.n_random == 1:
        return True
    if small.problem.covariance != "diagonal" and small.problem.n_random > 1:
        return False
    # Uncorrelated effects nest only along the larger model's own axes.
    z_small, z_large = small.problem.z, large.problem.z
    return all(
        any(not columns_outside(z_small[:, [i]], z_large[:, [j]]) for j in range(z_large.shape[1]))
        for i in range(z_small.shape[1])
    )


@dataclass(frozen=True)
class BoundaryTest:
    """How the likelihood-ratio test of ``large`` against ``small`` meets the boundary.

    ``kind`` is ``"none"`` (no variance added: chi-square as printed),
    ``"mixture"`` (a 50:50 mixture of chi2(``df_low``) and chi2(``df_high``))
    or ``"caution"`` (variances added, no simple null distribution);
    ``message`` says so in words.
    """

    kind: str
    df_low: int = 0
    df_high: int = 0
    message: str = ""

    @property
    def null_distribution(self) -> str:
        if self.kind == "mixture":
            return f"50:50 chi2({self.df_low}), chi2({self.df_high})"
        return "chi2" if self.kind == "none" else "chi2 (conservative)"


def mixture_p_value(chi2: float, df_low: int, df_high: int) -> float:
    """P(X >= chi2) for X ~ 0.5 chi2(df_low) + 0.5 chi2(df_high); chi2(0) is a point mass at 0.

    Examples
    --------
    >>> round(mixture_p_value(2.705543, 0, 1), 4)   # half of chi2(1)'s 0.10
    0.05
    >>> round(mixture_p_value(5.138, 1, 2), 4)      # Stram & Lee's 5% point for q = 1
    0.05
    """
    if chi2 <= 0.0:
        return 1.0

    def tail(df: int) -> float:
        return 0.0 if df == 0 else float(stats.chi2.sf(chi2, df))

    return 0.5 * tail(df_low) + 0.5 * tail(df_high)


def boundary_test(
    small: TrajectoryResult, large: TrajectoryResult, *, labels: tuple[str, str]
) -> BoundaryTest:
    """Classify the pair (``small`` nested in ``large``, both fitted) for the boundary."""
    if small.design is None or large.design is None or small.fit is None:
        return BoundaryTest("none")
    s, l_ = small.design.problem, large.design.problem
    added_variances = (l_.n_random - s.n_random) + int(
        l_.clinic_codes is not None and s.clinic_codes is None
    )
    if added_variances <= 0:
        return BoundaryTest("none")
    name_small, name_large = labels
    added = _added_words(small.design, large.design)
    df = large.n_params - small.n_params
    fixed_same = list(small.table["term"]) == list(large.table["term"])
    caution = (
        f"{name_large} adds {added} to {name_small}, so the test asks whether a variance is "
        "zero, the lower edge of its range: the plain chi-square p-value (p_value, as "
        "R's anova() prints it) is conservative, too large"
    )
    if added_variances > 1:
        return BoundaryTest(
            "caution",
            message=f"{caution}. With {added_variances} variances added at once no simple "
            "correction applies (Stram & Lee 1994); add random terms one at a time to test "
            "each.",
        )
    if not fixed_same:
        return BoundaryTest(
            "caution",
            message=f"{caution}. The fixed effects differ as well, so no simple correction "
            "applies; compare random effects with the same fixed effects.",
        )
    if diagnostics.singular_warning(small.fit, s) is not None:
        return BoundaryTest(
            "caution",
            message=f"{caution}. {name_small} is itself a singular fit (a variance at zero or "
            "a correlation of +-1), so the usual 50:50 correction does not apply either.",
        )
    low, high = df - 1, df
    what = "one variance" if low == 0 else f"one variance and {low} covariance(s) with it"
    return BoundaryTest(
        "mixture",
        df_low=low,
        df_high=high,
        message=(
            f"{caution}. With {what} added, under the null hypothesis the statistic follows "
            f"a 50:50 mixture of chi2({low}) and chi2({high}) (Self & Liang 1987; Stram & Lee "
            "1994); its p-value is in p_value_boundary."
        ),
    )


def _added_words(small: Design, large: Design) -> str:
    parts = []
    if large.outer_groups is not None and small.outer_groups is None:
        parts.append(f"a random intercept per {large.outer_groups}")
    extra = large.problem.n_random - small.problem.n_random
    if extra > 0:
        new = [n for n in large.problem.random_names if n not in small.problem.random_names]
        what = ", ".join(new) if len(new) == extra else f"{extra} more term(s)"
        parts.append(f"a random effect of {what} per {large.groups}")
    return " and ".join(parts)
