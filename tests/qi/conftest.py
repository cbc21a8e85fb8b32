"""Fixtures of the QI tests: reference files, cohorts with known clinic differences."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

REFERENCE = Path(__file__).parent / "reference"


@pytest.fixture(scope="session")
def reference() -> Path:
    """Folder with the R script and the numbers it wrote."""
    return REFERENCE


def truly_worse_patients(seed: int = 7) -> pd.DataFrame:
    """Patient-level MCID outcomes: 14 clinics, C14 truly worse, TINY small and extreme.

    Every clinic except C14 and TINY has a true responder probability that
    depends only on case mix (compensation claim and baseline severity).
    C14 (about 200 patients) has its odds of responding cut by 70%.  TINY has
    6 patients and the usual process, but by construction 6 of 6 respond,
    an extreme rate that chance alone produces now and then.
    """
    rng = np.random.default_rng(seed)
    rows = []
    sizes = [420, 380, 330, 300, 260, 240, 220, 200, 180, 160, 140, 120, 100, 200]
    for k, size in enumerate(sizes, start=1):
        clinic = f"C{k:02d}"
        claim = rng.random(size) < (0.1 + 0.03 * k)
        baseline = rng.normal(45 + k * 0.5, 12, size)
        logit = 0.4 - 1.0 * claim - 0.04 * (baseline - 45)
        if clinic == "C14":
            logit = logit + np.log(0.3)
        responder = rng.random(size) < 1 / (1 + np.exp(-logit))
        rows.append(
            pd.DataFrame(
                {
                    "clinic_id": clinic,
                    "claim": claim,
                    "baseline_score": baseline.round(),
                    "responder": responder,
                }
            )
        )
    rows.append(
        pd.DataFrame(
            {
                "clinic_id": "TINY",
                "claim": [False, False, True, False, False, False],
                "baseline_score": [40.0, 52.0, 47.0, 38.0, 44.0, 50.0],
                "responder": [True] * 6,
            }
        )
    )
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="session")
def worse_clinic_patients() -> pd.DataFrame:
    """See :func:`truly_worse_patients`."""
    return truly_worse_patients()


def handmade_tables() -> dict[str, pd.DataFrame]:
    """Five patients in two clinics whose adherence, completeness and safety were worked by hand.

    Default protocol: phase 1 needs 28 days, PSEQ >= 30 and no flare-up in the
    last 14 days; phase 2 needs 42 days and PSEQ >= 35.

    * P1 (A): PSEQ 32 on day 28, moves up on day 35 -> rule met on day 28, not
      premature, not delayed (7 days).
    * P2 (A): moves up on day 20 -> premature (under 28 days).  Phase 2 from
      day 20: PSEQ 34 (day 30), 40 (day 70), 41 (day 95); rule met on day 70,
      drops out on day 100 -> delayed (30 days); over the last 8 weeks PSEQ
      rose 34 -> 41 (< 11 points) -> stalled.
    * P3 (A): flare-up on day 20 blocks the rule until day 35; moves up on
      day 50 -> delayed (15 days), not premature.
    * P4 (B): PSEQ 10, 12, 14 over 90 days in phase 1 -> never met, stalled.
    * P5 (B): phase 1 paused on day 30 (flare-up day 25, safety pause day 30),
      resumed, moves up on day 80 without a PSEQ score -> premature.
    """
    patients = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P3", "P4", "P5"],
            "clinic_id": ["A", "A", "A", "B", "B"],
            "enrolled_month": ["2025-01", "2025-01", "2025-02", "2025-02", "2025-03"],
            "last_contact_day": [120, 100, 60, 90, 100],
        }
    )
    phases = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2", "P2", "P3", "P3", "P4", "P5", "P5", "P5"],
            "phase": [1, 2, 1, 2, 1, 2, 1, 1, 1, 2],
            "start_day": [0, 35, 0, 20, 0, 50, 0, 0, 30, 80],
            "end_day": [35, None, 20, 100, 50, None, None, 30, 80, None],
            "exit_reason": [
                "progressed", "ongoing", "progressed", "dropped_out", "progressed", "ongoing",
                "ongoing", "paused", "progressed", "ongoing",
            ],
        }
    )  # fmt: skip
    phases["end_day"] = phases["end_day"].astype("Int64")
    scores = [
        ("P1", 0, "pseq", 20), ("P1", 28, "pseq", 32), ("P1", 35, "pseq", 33),
        ("P1", 0, "odi", 50), ("P1", 35, "odi", 40), ("P1", 120, "odi", 30),
        ("P2", 0, "pseq", 35), ("P2", 14, "pseq", 36), ("P2", 30, "pseq", 34),
        ("P2", 70, "pseq", 40), ("P2", 95, "pseq", 41),
        ("P2", 3, "odi", 60), ("P2", 100, "odi", 45),
        ("P3", 0, "pseq", 25), ("P3", 28, "pseq", 31),
        ("P4", 0, "pseq", 10), ("P4", 28, "pseq", 12), ("P4", 90, "pseq", 14),
        ("P4", 0, "odi", 40), ("P4", 90, "odi", 38),
        ("P5", 2, "pseq", 22),
    ]  # fmt: skip
    assessments = pd.DataFrame(scores, columns=["patient_id", "day", "instrument", "score"])
    assessments["score"] = assessments["score"].astype(float)
    events = pd.DataFrame(
        {
            "patient_id": ["P3", "P5", "P5"],
            "day": [20, 25, 30],
            "event": ["flare_up", "flare_up", "safety_pause"],
            "severity": ["mild", "moderate", None],
        }
    )
    return {"patients": patients, "phases": phases, "assessments": assessments, "events": events}


@pytest.fixture(scope="session")
def handmade_cohort():
    """The cohort of :func:`handmade_tables` with the default protocol."""
    from stepanalytics.cohort import Cohort

    return Cohort.from_tables(handmade_tables())


@pytest.fixture(scope="session")
def synthetic_cohort():
    """A 400-patient synthetic cohort (6 clinics) for end-to-end checks."""
    from stepanalytics.synth import synthesize_cohort

    return synthesize_cohort(n_patients=400, n_clinics=6, seed=2026)


def disclosures(
    truth: pd.DataFrame,
    protected,
    *,
    counts: list[str],
    margins: list[tuple[str, ...]],
    parts: list[tuple[str, str]] = (),
    threshold: int = 10,
) -> list[str]:
    """What a reader can work out from a protected table and its published totals.

    An attacker independent of the suppression code: it sees the shown cells
    and the totals that :meth:`ProtectedFrame.totals` publishes, knows that
    counts are >= 0 and that a part is at most its whole, and finds by linear
    programming (HiGHS) the smallest and largest value of every unknown.
    Reported, using the true table: a small count (1..threshold) that is
    pinned down (only one whole number between its least and greatest
    value), a small complement ``whole - part`` pinned down, a small
    withheld total pinned down, and a published group whose hidden
    cells add up to a small count (total minus shown cells gives it).
    """
    from scipy.optimize import linprog

    hidden = protected.hidden.reset_index(drop=True)
    truth = truth.reset_index(drop=True)
    unknown = [(c, r) for c in counts for r in np.flatnonzero(hidden[c].to_numpy())]
    index = {key: k for k, key in enumerate(unknown)}
    n_var = len(unknown)

    def term(column: str, row: int) -> tuple[np.ndarray, float]:
        """A cell as (coefficients on the unknowns, constant)."""
        coef = np.zeros(n_var)
        if (column, row) in index:
            coef[index[(column, row)]] = 1.0
            return coef, 0.0
        return coef, float(truth.loc[row, column])

    a_eq, b_eq, found = [], [], []
    groups: list[tuple[str, tuple, np.ndarray, bool]] = []
    for margin in margins:
        published = protected.totals(margin)
        members = truth.groupby(list(margin), dropna=False).indices if margin else {(): None}
        for key, rows in members.items():
            rows = np.arange(len(truth)) if rows is None else np.asarray(rows)
            key = key if isinstance(key, tuple) else (key,)
            match = np.ones(len(published), dtype=bool)
            for column, value in zip(margin, key, strict=True):
                match &= (published[column] == value).to_numpy()
            for c in counts:
                total = published.loc[match, c].iloc[0]
                shown_total = not pd.isna(total)
                groups.append((c, key, rows, shown_total))
                if not shown_total:
                    continue
                coef = np.zeros(n_var)
                const = 0.0
                for r in rows:
                    v, k0 = term(c, int(r))
                    coef += v
                    const += k0
                a_eq.append(coef)
                b_eq.append(float(total) - const)
                hidden_sum = float(total) - const
                if 1 <= hidden_sum <= threshold:
                    found.append(f"{c} {margin}={key}: hidden cells add up to {hidden_sum:g}")
    a_ub, b_ub = [], []
    for part, whole in parts:
        for r in range(len(truth)):
            vp, kp = term(part, r)
            vw, kw = term(whole, r)
            if vp.any() or vw.any():
                a_ub.append(vp - vw)
                b_ub.append(kw - kp)
    if n_var == 0:
        return found

    def bounds(objective: np.ndarray) -> tuple[float, float]:
        kwargs = dict(
            A_eq=np.array(a_eq) if a_eq else None,
            b_eq=np.array(b_eq) if b_eq else None,
            A_ub=np.array(a_ub) if a_ub else None,
            b_ub=np.array(b_ub) if b_ub else None,
            bounds=(0, None),
            method="highs",
        )
        low = linprog(objective, **kwargs)
        high = linprog(-objective, **kwargs)
        assert low.status == 0, low.message  # the true table is feasible
        top = -high.fun if high.status == 0 else np.inf
        return float(low.fun), float(top)

    def pinned(objective: np.ndarray) -> bool:
        """Only one whole number lies between the least and the greatest value."""
        low, high = bounds(objective)
        return bool(np.floor(high + 1e-7) <= np.ceil(low - 1e-7))

    for (c, r), k in index.items():
        if small_value(truth.loc[r, c], threshold) and pinned(np.eye(n_var)[k]):
            found.append(f"{c} row {r} = {truth.loc[r, c]} pinned down")
    for part, whole in parts:
        for r in range(len(truth)):
            rest = float(truth.loc[r, whole] - truth.loc[r, part])
            vp, _ = term(part, r)
            vw, _ = term(whole, r)
            if small_value(rest, threshold):
                if not (vp.any() or vw.any()):
                    found.append(f"{whole} - {part} row {r} = {rest:g} shown")
                elif pinned(vw - vp):
                    found.append(f"{whole} - {part} row {r} = {rest:g} pinned down")
    for c, key, rows, shown_total in groups:
        true_total = float(truth.loc[rows, c].sum())
        if shown_total or not small_value(true_total, threshold):
            continue
        coef = sum((term(c, int(r))[0] for r in rows), np.zeros(n_var))
        if not coef.any() or pinned(coef):
            found.append(f"{c} withheld total {key} = {true_total:g} pinned down")
    return found


def small_value(value: float, threshold: int) -> bool:
    return 1 <= float(value) <= threshold


@pytest.fixture(scope="session")
def attack():
    """:func:`disclosures`: what a reader can work out from a protected table."""
    return disclosures


def _day_zero_dropouts(with_baseline: bool):
    """The patients of :func:`handmade_tables`, every one dropping out on day 0.

    With ``with_baseline`` each has the scores taken on day 0 (a baseline and
    nothing after it, like the audit's cohort ``e1``); without, the
    assessments table is empty (``e4``).
    """
    from stepanalytics.cohort import Cohort

    tables = handmade_tables()
    patients = tables["patients"].assign(last_contact_day=0)
    phases = pd.DataFrame(
        {
            "patient_id": patients["patient_id"],
            "phase": 1,
            "start_day": 0,
            "end_day": pd.array([0] * len(patients), dtype="Int64"),
            "exit_reason": "dropped_out",
        }
    )
    assessments = tables["assessments"]
    assessments = assessments[assessments["day"] == 0] if with_baseline else assessments.iloc[:0]
    events = tables["events"].iloc[:0]
    return Cohort.from_tables(
        {"patients": patients, "phases": phases, "assessments": assessments, "events": events}
    )


@pytest.fixture(scope="session")
def baseline_only_cohort():
    """Everybody drops out on day 0 after a baseline score: no change can be measured."""
    return _day_zero_dropouts(with_baseline=True)


@pytest.fixture(scope="session")
def scoreless_cohort():
    """Everybody drops out on day 0 and nobody has a single score."""
    return _day_zero_dropouts(with_baseline=False)
