"""Funnel plots for comparing clinics, with overdispersion handled.

A funnel plot shows each clinic's indicator against its precision (number
of patients, or expected count) with control limits around the target that
narrow as precision grows.  Clinics are never ranked: a clinic is either
inside the limits (its difference from the target is compatible with
chance) or outside them.

Three indicator kinds are supported, following Spiegelhalter (2005):

``proportion``
    share of patients with an outcome; precision = n; exact binomial limits.
``ratio``
    indirectly standardised ratio observed / expected (O/E); precision = E;
    exact Poisson limits.
``mean``
    mean of a continuous score (e.g. risk-adjusted change); precision = n;
    normal limits ``target ± z * sd / sqrt(n)``.

When clinics differ more than chance allows (overdispersion), limits drawn
from sampling error alone flag too many clinics.  Spiegelhalter's remedy is
used: z-scores, a 10%/90% winsorised estimate of the dispersion factor phi,
and an additive random-effects variance tau^2 that widens every limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from stepanalytics.errors import AnalysisError, UsageError
from stepanalytics.qi.funnel_limits import (
    DEFAULT_LEVELS,
    FunnelKind,
    check_kind,
    exact_quantile,
    funnel_limits,
    level_tag,
    null_standard_error,
)
from stepanalytics.qi.overdispersion import (
    Overdispersion,
    dispersion_note,
    estimate_overdispersion,
    winsorise,
)
from stepanalytics.results import AnalysisResult

__all__ = [
    "DEFAULT_LEVELS",
    "DispersionMethod",
    "FunnelKind",
    "FunnelResult",
    "Overdispersion",
    "dispersion_note",
    "estimate_overdispersion",
    "exact_quantile",
    "funnel_compare",
    "funnel_limits",
    "level_tag",
    "null_standard_error",
    "winsorise",
]

DispersionMethod = Literal["additive", "multiplicative", "none"]
FloatArray = npt.NDArray[np.float64]

_METHODS = ("additive", "multiplicative", "none")


@dataclass(frozen=True)
class FunnelResult(AnalysisResult):
    """Clinics placed on a funnel plot; one row per clinic, never ranked.

    ``table`` columns: unit column, ``precision``, ``estimate``, ``target``,
    ``std_error`` (on target), ``z``, ``z_adjusted`` (with overdispersion),
    ``lower_<tag>`` / ``upper_<tag>`` per level and ``position`` (``within``,
    ``above 95%``, ``above 99.8%``, ``below 95%``, ``below 99.8%``).
    """

    kind: str = "proportion"
    target: float = float("nan")
    sd: float | None = None
    levels: tuple[float, ...] = DEFAULT_LEVELS
    overdispersion: Overdispersion | None = None
    method: str = "additive"
    unit: str = "clinic_id"
    exact: bool = True
    extra: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def limits(self, precision: npt.ArrayLike) -> pd.DataFrame:
        """Limits of this funnel (same target and adjustment) at other precisions."""
        tau2, phi = self._adjustment()
        return funnel_limits(
            precision,
            kind=self.kind,  # type: ignore[arg-type]
            target=self.target,
            sd=self.sd,
            levels=self.levels,
            tau2=tau2,
            phi=phi,
            exact=self.exact,
        )

    def outside(self, level: float = 0.998) -> list[str]:
        """Units outside the limits at ``level`` (either side), in table order."""
        tag = level_tag(level)
        t = self.table
        mask = (t["estimate"] > t[f"upper_{tag}"]) | (t["estimate"] < t[f"lower_{tag}"])
        return [str(u) for u in t.loc[mask, self.unit]]

    def _adjustment(self) -> tuple[float, float]:
        od = self.overdispersion
        if od is None or self.method == "none":
            return 0.0, 1.0
        if self.method == "additive":
            return od.tau2, 1.0
        return 0.0, max(1.0, od.phi)


def funnel_compare(
    data: pd.DataFrame,
    *,
    estimate: str,
    precision: str,
    kind: FunnelKind,
    unit: str = "clinic_id",
    target: float | None = None,
    sd: float | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    overdispersion: DispersionMethod = "additive",
    winsor: float = 0.10,
    exact: bool = True,
    title: str | None = None,
) -> FunnelResult:
    """Place clinics on a funnel plot and say which lie outside the limits.

    Parameters
    ----------
    data : DataFrame
        One row per clinic.
    estimate, precision : str, keyword-only
        Columns holding the indicator and its precision (n or E).
    kind : {"proportion", "ratio", "mean"}, keyword-only
    unit : str, keyword-only
        Column naming the clinic (default ``clinic_id``).
    target : float, optional
        theta0; default the pooled value (precision-weighted mean; 1 for ratios).
    sd : float, optional
        Patient-level SD, required for ``kind="mean"``.
    levels : sequence of float
        Default (0.95, 0.998).
    overdispersion : {"additive", "multiplicative", "none"}
        How to widen limits when clinics vary beyond chance (default additive
        random effects).  ``multiplicative`` widens by sqrt(phi) when phi > 1.
    winsor : float
        Share of z-scores winsorised at each end when estimating dispersion.
    exact : bool
        Exact binomial / Poisson limits when no widening applies.

    Returns
    -------
    FunnelResult

    Notes
    -----
    Spiegelhalter DJ (2005) Funnel plots for comparing institutional
    performance. Stat Med 24:1185-1202; Spiegelhalter DJ (2005) Handling
    over-dispersion of performance indicators. Qual Saf Health Care 14:347.
    R: no single function; ``FunnelPlotR::funnel_plot`` implements the same
    ideas for ratios.

    Examples
    --------
    >>> df = pd.DataFrame({"clinic_id": list("ABCD"), "n": [50, 80, 120, 60],
    ...                    "share": [0.40, 0.45, 0.42, 0.10]})
    >>> res = funnel_compare(df, estimate="share", precision="n", kind="proportion",
    ...                      overdispersion="none")
    >>> res.outside(0.998)
    ['D']
    """
    check_kind(kind)
    if overdispersion not in _METHODS:
        raise UsageError(f"overdispersion must be one of {_METHODS}; got {overdispersion!r}.")
    missing = [c for c in (unit, estimate, precision) if c not in data.columns]
    if missing:
        raise UsageError(f"funnel_compare: column(s) {missing} not found in the data.")
    frame = data[[unit, estimate, precision]].copy()
    frame = frame.rename(columns={estimate: "estimate", precision: "precision"})
    usable = frame["precision"].astype(float) > 0
    frame = frame.loc[usable & frame["estimate"].notna()].reset_index(drop=True)
    if frame.empty:
        raise AnalysisError("No clinic has data for this indicator; nothing to compare.")
    y = frame["estimate"].to_numpy(dtype=float)
    rho = frame["precision"].to_numpy(dtype=float)
    theta0 = _default_target(kind, y, rho) if target is None else float(target)
    if kind == "proportion" and not 0.0 < theta0 < 1.0:
        raise AnalysisError(
            f"The target proportion is {theta0:.3g}; funnel limits need 0 < target < 1."
        )
    sd_used = sd
    se = null_standard_error(rho, kind=kind, target=theta0, sd=sd_used)
    warnings: list[str] = []
    od: Overdispersion | None = None
    if overdispersion != "none":
        if len(frame) >= 3:
            od = estimate_overdispersion(y, se, target=theta0, winsor=winsor)
            note = dispersion_note(od, overdispersion)
            if note:
                warnings.append(note)
        else:
            warnings.append("Fewer than 3 clinics: overdispersion not estimated.")
    result = FunnelResult(
        table=pd.DataFrame(),
        kind=kind,
        target=theta0,
        sd=sd_used,
        levels=tuple(levels),
        overdispersion=od,
        method=overdispersion,
        unit=unit,
        exact=exact,
    )
    tau2, phi = result._adjustment()
    limits = result.limits(rho)
    frame["target"] = theta0
    frame["std_error"] = se
    frame["z"] = (y - theta0) / se
    frame["z_adjusted"] = (y - theta0) / np.sqrt(phi * se**2 + tau2)
    for column in limits.columns[1:]:
        frame[column] = limits[column].to_numpy()
    frame["position"] = _positions(frame, levels)
    frame = frame.sort_values(unit, kind="stable").reset_index(drop=True)
    return FunnelResult(
        table=frame,
        warnings=tuple(warnings),
        title=title or f"Funnel comparison ({kind})",
        kind=kind,
        target=theta0,
        sd=sd_used,
        levels=tuple(levels),
        overdispersion=od,
        method=overdispersion,
        unit=unit,
        exact=exact,
    )


def _positions(frame: pd.DataFrame, levels: Sequence[float]) -> list[str]:
    ordered = sorted(levels)
    out = []
    for _, row in frame.iterrows():
        label = "within"
        for level in ordered:
            tag = level_tag(level)
            shown = f"{100 * level:.10g}%"
            if row["estimate"] > row[f"upper_{tag}"]:
                label = f"above {shown}"
            elif row["estimate"] < row[f"lower_{tag}"]:
                label = f"below {shown}"
        out.append(label)
    return out


def _default_target(kind: str, y: FloatArray, rho: FloatArray) -> float:
    if kind == "ratio":
        return 1.0
    return float(np.sum(y * rho) / np.sum(rho))
