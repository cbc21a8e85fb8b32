"""``stepanalytics score PATH``: score a cohort's items and write the results.

Registered by :mod:`stepanalytics.cli` as the ``score`` sub-command.
"""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from stepanalytics.errors import StepAnalyticsError
from stepanalytics.instruments.registry import Registry, get_registry
from stepanalytics.instruments.scoring import STATUSES, score_items


@click.command("score")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the output files [default: reports/scoring/<cohort name>].",
)
def score_command(path: Path, out: Path | None) -> None:
    """Score the questionnaire items of the cohort at PATH.

    Writes to --out: scored_assessments.csv (every score, given or computed
    from items, with its severity band), scoring_report.csv (one row per
    questionnaire form and instrument: scored, scored_with_rule or
    not_scorable, with the rule or reason) and red_flags.csv (safety items
    such as PHQ-9 item 9 > 0, for the clinic's own worklist only).  Prints a
    summary with counts only.
    """
    from stepanalytics.cohort import load_cohort

    try:
        registry = get_registry()
        cohort = load_cohort(path)
        report, red_flags = _scoring_of(cohort, registry)
    except StepAnalyticsError as err:
        raise click.ClickException(str(err)) from None
    out = out or Path("reports") / "scoring" / path.stem
    out.mkdir(parents=True, exist_ok=True)
    assessments = _with_bands(cohort.assessments, registry)
    assessments.to_csv(out / "scored_assessments.csv", index=False)
    report.to_csv(out / "scoring_report.csv", index=False)
    red_flags.to_csv(out / "red_flags.csv", index=False)
    click.echo(summarise_scoring(assessments, report, red_flags))
    click.echo(f"wrote scored_assessments.csv, scoring_report.csv and red_flags.csv to {out}")


def _scoring_of(cohort: object, registry: Registry) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cohort's own scoring report, or a fresh one when it does not keep it."""
    report = getattr(cohort, "scoring", None)
    red_flags = getattr(cohort, "red_flags", None)
    items = getattr(cohort, "items", pd.DataFrame())
    if (
        isinstance(report, pd.DataFrame)
        and isinstance(red_flags, pd.DataFrame)
        and (not report.empty or items.empty)
    ):
        return report, red_flags
    result = score_items(items, registry=registry)
    return result.report, result.red_flags


def _with_bands(assessments: pd.DataFrame, registry: Registry) -> pd.DataFrame:
    out = assessments.sort_values(["patient_id", "day", "instrument"], kind="stable").copy()
    out["band"] = pd.Series(pd.NA, index=out.index, dtype="string")
    for code, rows in out.groupby("instrument").groups.items():
        if str(code) in registry:
            spec = registry.get(str(code))
            out.loc[rows, "band"] = spec.band_of(out.loc[rows, "score"]).to_numpy()
    return out.reset_index(drop=True)


def summarise_scoring(
    assessments: pd.DataFrame, report: pd.DataFrame, red_flags: pd.DataFrame
) -> str:
    """Plain-text summary with counts only (no patient ids).

    Examples
    --------
    >>> empty = pd.DataFrame(columns=["instrument", "status", "source"])
    >>> print(summarise_scoring(empty, empty, empty))
    Scores: 0 (0 given, 0 from items).
    No item answers to score.
    Safety: 0 red-flag answers (see red_flags.csv, for the clinic's own worklist).
    """
    source = assessments["source"] if "source" in assessments else pd.Series(dtype=object)
    lines = [
        f"Scores: {len(assessments):,} ({int((source == 'given').sum()):,} given, "
        f"{int((source == 'items').sum()):,} from items)."
    ]
    if report.empty:
        lines.append("No item answers to score.")
    else:
        counts = report.groupby(["instrument", "status"]).size().unstack(fill_value=0)
        counts = counts.reindex(columns=list(STATUSES), fill_value=0)
        counts["forms"] = counts.sum(axis=1)
        lines.append("Scoring of questionnaire forms by instrument:")
        lines.append(counts.rename_axis(index=None, columns=None).to_string())
    lines.append(
        f"Safety: {len(red_flags):,} red-flag answers "
        "(see red_flags.csv, for the clinic's own worklist)."
    )
    return "\n".join(lines)
