"""Overdispersion of clinic indicators (Spiegelhalter 2005).

Clinics usually differ more than sampling error alone explains: case mix
left unmeasured, coding, local practice.  Funnel limits that ignore this
flag too many clinics.  Spiegelhalter's remedy: standardise each clinic's
indicator to a z-score under the target, winsorise the z-scores at their
10th and 90th percentiles so that real outliers do not inflate the
estimate, take phi as their mean square, and turn the excess of phi over 1
into an additive between-clinic variance tau^2 (a DerSimonian-Laird
moment estimate around the target).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from stepanalytics.errors import AnalysisError, UsageError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Overdispersion:
    """How much more clinics vary than sampling error explains.

    Attributes
    ----------
    phi : float
        Winsorised dispersion factor, mean of squared z-scores (1 = none).
    tau2 : float
        Additive between-clinic variance (0 when ``n_units * phi <= n_units - 1``).
    n_units : int
        Number of clinics used.
    p_value : float
        P(chi-square with ``n_units - 1`` df > ``n_units * phi``).
    winsor : float
        Share winsorised at each end.
    """

    phi: float
    tau2: float
    n_units: int
    p_value: float
    winsor: float = 0.10

    @property
    def present(self) -> bool:
        """True when the dispersion test rejects at the 5% level."""
        return bool(self.p_value < 0.05)


def winsorise(values: npt.ArrayLike, *, share: float = 0.10) -> FloatArray:
    """Set the lowest and highest ``share`` of values to the 10th/90th percentile.

    Percentiles use linear interpolation (R ``quantile(type = 7)``).

    Examples
    --------
    >>> winsorise(np.arange(11.0)).tolist()[:3]
    [1.0, 1.0, 2.0]
    """
    x = np.asarray(values, dtype=float)
    if not 0.0 <= share < 0.5:
        raise UsageError("share must lie in [0, 0.5).")
    low, high = np.quantile(x, [share, 1.0 - share])
    return np.clip(x, low, high)


def estimate_overdispersion(
    estimates: npt.ArrayLike,
    std_errors: npt.ArrayLike,
    *,
    target: float,
    winsor: float = 0.10,
) -> Overdispersion:
    """Winsorised phi and additive tau^2 from clinic z-scores.

    Parameters
    ----------
    estimates : array_like
        Clinic indicators y_i.
    std_errors : array_like
        Their standard errors on target, s_i (see :func:`null_standard_error`).
    target : float
        theta0.
    winsor : float, keyword-only
        Share of z-scores winsorised at each end (default 0.10; 0 disables).

    Returns
    -------
    Overdispersion

    Notes
    -----
    Spiegelhalter (2005) Qual Saf Health Care 14:347 and Stat Med 24:1185:
    ``z_i = (y_i - theta0) / s_i``; ``phi = mean(winsorised z^2)``;
    ``tau^2 = (I phi - (I - 1)) / (sum w - sum w^2 / sum w)`` with
    ``w = 1 / s^2``, truncated at 0.  Without winsorising and with theta0
    equal to the inverse-variance mean this is the DerSimonian-Laird
    estimate (R ``metafor::rma(yi, vi, method = "DL")$tau2``).

    Examples
    --------
    >>> od = estimate_overdispersion([0.1, 0.3, 0.2, 0.5], [0.05] * 4, target=0.25, winsor=0)
    >>> round(od.phi, 3), round(od.tau2, 5)
    (9.0, 0.0275)
    """
    y = np.asarray(estimates, dtype=float)
    s = np.asarray(std_errors, dtype=float)
    keep = np.isfinite(y) & np.isfinite(s) & (s > 0)
    y, s = y[keep], s[keep]
    k = int(y.size)
    if k < 3:
        raise AnalysisError(
            f"Overdispersion needs at least 3 clinics with data; found {k}. "
            "Use overdispersion='none' for fewer clinics."
        )
    z = (y - target) / s
    if winsor > 0:
        z = winsorise(z, share=winsor)
    phi = float(np.mean(z**2))
    w = 1.0 / s**2
    excess = k * phi - (k - 1)
    tau2 = max(0.0, excess / (w.sum() - (w**2).sum() / w.sum()))
    p_value = float(stats.chi2.sf(k * phi, k - 1))
    return Overdispersion(phi=phi, tau2=float(tau2), n_units=k, p_value=p_value, winsor=winsor)


def dispersion_note(od: Overdispersion, method: str) -> str | None:
    """Say whether limits were widened, by which rule, and what the test showed.

    The rule applied is the estimate, not the test: the additive model
    widens whenever its (DerSimonian-Laird type) tau^2 is above 0, i.e.
    ``I phi > I - 1``; the multiplicative model whenever ``phi > 1``
    (Spiegelhalter 2005, Qual Saf Health Care 14:347; as R ``FunnelPlotR``).
    Only when the test ``I phi ~ chi^2(I - 1)`` rejects at 5% does the note
    say that clinics vary more than chance explains.

    Examples
    --------
    >>> od = Overdispersion(phi=1.02, tau2=0.0004, n_units=6, p_value=0.414)
    >>> print(dispersion_note(od, "additive"))  # doctest: +NORMALIZE_WHITESPACE
    Limits widened a little (additive model: the between-clinic variance tau^2 is
    estimated above 0 whenever I phi > I - 1, here I = 6, phi = 1.02), although
    the variation between clinics is compatible with chance (overdispersion test
    p = 0.414).
    """
    if method == "additive" and od.tau2 > 0:
        rule = (
            "additive model: the between-clinic variance tau^2 is estimated above 0 "
            f"whenever I phi > I - 1, here I = {od.n_units}, phi = {od.phi:.2f}"
        )
    elif method == "multiplicative" and od.phi > 1:
        rule = (
            f"multiplicative model: limits times sqrt(phi) = {np.sqrt(od.phi):.2f} whenever "
            f"phi > 1, here phi = {od.phi:.2f}"
        )
    else:
        return None
    if od.present:
        return (
            f"Clinics vary more than chance explains (phi = {od.phi:.2f}, overdispersion test "
            f"p = {od.p_value:.3g}); limits widened ({rule})."
        )
    return (
        f"Limits widened a little ({rule}), although the variation between clinics is "
        f"compatible with chance (overdispersion test p = {od.p_value:.3g})."
    )
