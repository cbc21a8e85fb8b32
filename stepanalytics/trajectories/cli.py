"""``stepanalytics fit PATH --instrument odi``: a trajectory model from the command line.

Registered by :mod:`stepanalytics.cli` as the ``fit`` sub-command.  It loads
and validates the cohort, fits :func:`~stepanalytics.trajectories.fit_trajectory`
and prints the result's summary (model terms, variance components, fit
statistics, notes and warnings: no patient ids).

Exit codes follow the main command: 0 success, 1 a data problem (the
cohort fails validation, the instrument has no scores, the model cannot be
estimated from these data), 2 bad usage (unknown options or covariates, a
model the chosen engine cannot fit).
"""

from __future__ import annotations

from pathlib import Path

import click

from stepanalytics.errors import AnalysisError, UsageError

ENGINES = ("auto", "fast", "statsmodels")


@click.command("fit")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--instrument", required=True, help="Instrument code, e.g. odi.")
@click.option("--piecewise", is_flag=True, help="One slope per phase (time in each phase).")
@click.option(
    "--by",
    "compare",
    type=click.Choice(["clinic", "protocol"]),
    default=None,
    help="Fixed effects for clinic (or protocol) on level and slope(s).",
)
@click.option(
    "--covariates",
    multiple=True,
    metavar="NAMES",
    help=(
        "Case-mix covariates, comma-separated or repeated: patient columns or "
        "baseline_score; 'case-mix' for baseline, age band, sex, condition and claim."
    ),
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help="auto: the fast engine where it applies, statsmodels otherwise.",
)
@click.option(
    "--clinic-random",
    is_flag=True,
    help="A random intercept per clinic, patients nested in clinics (fast engine only).",
)
@click.option("--ml", is_flag=True, help="Maximum likelihood instead of REML.")
@click.option(
    "--drop-missing",
    is_flag=True,
    help="Leave out rows with missing covariate values (the summary says how many).",
)
def fit_command(
    path: Path,
    instrument: str,
    piecewise: bool,
    compare: str | None,
    covariates: tuple[str, ...],
    engine: str,
    clinic_random: bool,
    ml: bool,
    drop_missing: bool,
) -> None:
    """Fit how the --instrument scores change over time in the cohort at PATH.

    The model is score ~ weeks + (weeks | patient_id) by REML, changed by the
    options below; the summary shows the fixed effects with Satterthwaite
    t-tests, the variance components, the fit statistics and which engine
    ran.  R equivalent: lmerTest::lmer.

    \b
    Example:
      stepanalytics fit data/demo --instrument odi --piecewise --clinic-random
    """
    from stepanalytics.cohort import load_cohort
    from stepanalytics.trajectories.trajectory import fit_trajectory

    chosen = _covariates(covariates)
    cohort = load_cohort(path)  # a CohortError becomes exit 1 in the main command
    try:
        result = fit_trajectory(
            cohort,
            instrument,
            piecewise=piecewise,
            covariates=chosen,
            compare=compare,
            clinic_effect="random" if clinic_random else None,
            engine=engine,
            reml=not ml,
            missing="drop" if drop_missing else "raise",
        )
    except UsageError as err:
        raise click.UsageError(_cli_words(str(err))) from None
    except AnalysisError as err:  # exit 1 through the main command, in this command's words
        raise AnalysisError(_cli_words(str(err))) from None
    click.echo(result.summary())


def _covariates(values: tuple[str, ...]) -> list[str] | bool:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if "case-mix" in names:
        if len(names) > 1:
            raise click.UsageError("Give either --covariates case-mix or a list of columns.")
        return True
    return names


def _cli_words(message: str) -> str:
    """The library's option names in the spelling of this command's options."""
    return (
        message.replace("missing='drop'", "--drop-missing")
        .replace("compare='clinic'", "--by clinic")
        .replace("clinic_effect='random'", "--clinic-random")
    )
