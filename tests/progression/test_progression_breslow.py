"""Cox models with Breslow ties against R coxph(..., ties = "breslow") and cox.zph.

R (reference/gray_breslow_reference.R): the Rossi models of test_progression_cox.py with
ties = "breslow"; the same data with follow-up in quarters (heavy ties: 4 distinct times,
114 events), with cluster, strata and delayed entry, and with Efron ties; and phase 1 of
the synthetic stays with clinic as cluster and as strata.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepanalytics.errors import UsageError
from stepanalytics.progression import fit_cox, fit_progression_cox

RTOL = 1e-6
BASE = ["fin", "age", "prio"]

MODELS: dict[str, dict[str, Any]] = {
    "plain": {"covariates": BASE},
    "full": {"covariates": ["fin", "age", "race", "wexp", "mar", "paro", "prio"]},
    "robust": {"covariates": BASE, "robust": True},
    "cluster": {"covariates": BASE, "cluster": "grp"},
    "strata_cluster": {"covariates": BASE, "strata": "wexp", "cluster": "grp"},
    "factor": {"covariates": ["fin", "age", "prio_band"]},
    "entry_cluster": {"covariates": BASE, "entry": "entry", "cluster": "grp"},
    "quarter_plain": {"covariates": BASE, "duration": "quarter"},
    "quarter_cluster": {
        "covariates": ["fin", "age", "prio_band"],
        "duration": "quarter",
        "cluster": "grp",
    },
    "quarter_strata": {"covariates": BASE, "duration": "quarter", "strata": "wexp"},
    "quarter_entry": {
        "covariates": BASE,
        "duration": "quarter",
        "entry": "q_entry",
        "cluster": "grp",
    },
    "quarter_efron": {"covariates": BASE, "duration": "quarter", "cluster": "grp", "ties": "efron"},
}


def _r_name(term: str) -> str:
    """prio_band[many] -> prio_bandmany; a logical covariate gets TRUE appended in R."""
    name = term.replace("[", "").replace("]", "")
    return name + "TRUE" if name == "compensation_claim" else name


def _check(fit: Any, expected: dict[str, Any]) -> None:
    table = fit.table
    assert [_r_name(t) for t in table["term"]] == expected["terms"]
    np.testing.assert_allclose(table["estimate"], expected["coef"], rtol=RTOL)
    if expected["robust_se"]:
        np.testing.assert_allclose(table["std_error"], expected["robust_se"], rtol=RTOL)
        np.testing.assert_allclose(table["naive_std_error"], expected["se"], rtol=RTOL)
    else:
        np.testing.assert_allclose(table["std_error"], expected["se"], rtol=RTOL)
    assert fit.log_likelihood == pytest.approx(expected["loglik"], rel=1e-9)
    assert fit.n_events == expected["n_events"]
    ph = fit.ph_test
    assert ph["term"].tolist() == expected["zph_terms"]
    np.testing.assert_allclose(ph["chisq"], expected["zph_chisq"], rtol=RTOL)
    np.testing.assert_array_equal(ph["df"], expected["zph_df"])
    np.testing.assert_allclose(ph["p_value"], expected["zph_p"], rtol=RTOL)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_rossi_matches_coxph_breslow(model: str, rossi: pd.DataFrame, ref: Any) -> None:
    data = rossi.assign(entry=np.floor(rossi["week"] / 3), quarter=np.ceil(rossi["week"] / 13))
    data["q_entry"] = np.floor((data["quarter"] - 1) / 2)
    options = {"duration": "week", "ties": "breslow", **MODELS[model]}
    fit = fit_cox(data, event="arrest", **options)
    _check(fit, ref.json("reference_breslow.json")[model])
    assert options["ties"].capitalize() in fit.title


@pytest.mark.parametrize(("model", "clinic"), [("synthetic_cluster", "cluster"),
                                                ("synthetic_strata", "strata")])  # fmt: skip
def test_synthetic_progression_matches_coxph_breslow(model: str, clinic: str, ref: Any) -> None:
    stays = ref.csv("synthetic_stays.csv")
    covariates = ["compensation_claim", "pain_duration_months"]
    if clinic == "cluster":
        covariates.append("protocol")
    fit = fit_progression_cox(stays, phase=1, covariates=covariates, clinic=clinic,  # type: ignore[arg-type]
                              outcomes=("progressed",), ties="breslow")  # fmt: skip
    _check(fit, ref.json("reference_breslow.json")[model])


def test_without_ties_breslow_equals_efron(rossi: pd.DataFrame) -> None:
    untied = rossi.assign(t=rossi["week"] + np.arange(len(rossi)) * 1e-4)
    efron = fit_cox(untied, duration="t", event="arrest", covariates=BASE, cluster="grp")
    breslow = fit_cox(untied, duration="t", event="arrest", covariates=BASE, cluster="grp",
                      ties="breslow")  # fmt: skip
    for column in ("estimate", "std_error", "naive_std_error"):
        np.testing.assert_allclose(breslow.table[column], efron.table[column], rtol=1e-5)
    assert breslow.log_likelihood == pytest.approx(efron.log_likelihood, rel=1e-8)
    assert breslow.concordance == pytest.approx(efron.concordance, rel=1e-12)


def test_unknown_ties_is_refused(rossi: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match="ties must be"):
        fit_cox(rossi, duration="week", event="arrest", covariates=BASE, ties="exact")
