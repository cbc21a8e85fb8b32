"""The ``stepanalytics`` command.

Exit codes: 0 success, 1 a data problem (a message, never a traceback),
2 bad usage (click's own convention).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stepanalytics import __version__
from stepanalytics.errors import StepAnalyticsError

DATA_PROBLEM = 1


class _Group(click.Group):
    """Turns project errors raised by any command into a message and exit code 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except StepAnalyticsError as err:
            click.echo(str(err), err=True)
            ctx.exit(DATA_PROBLEM)
        except (FileExistsError, FileNotFoundError, PermissionError) as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(DATA_PROBLEM)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stepanalytics")
def main() -> None:
    """Outcome analytics for stepped chronic-pain rehabilitation.

    Start with `stepanalytics synth data/demo` to make a synthetic cohort,
    then `stepanalytics validate data/demo`.
    """


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
def validate(path: Path) -> None:
    """Check the cohort at PATH (folder or DuckDB file) against the data contract.

    Prints every problem found (table, column, rows, examples, fix) and exits
    1, or a short summary and exits 0.
    """
    from stepanalytics.cohort import load_cohort

    cohort = load_cohort(path)
    click.echo(
        f"OK: {path} meets the data contract: {cohort.n_patients:,} patients, "
        f"{len(cohort.phases):,} phase stays, {len(cohort.assessments):,} scores, "
        f"{len(cohort.items):,} item answers, {len(cohort.events):,} events."
    )
    for note in cohort.notes:
        click.echo(f"note: {note}")


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
def summary(path: Path) -> None:
    """Validate the cohort at PATH and print an overview (counts only)."""
    from stepanalytics.cohort import load_cohort

    click.echo(load_cohort(path).summary())


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--db", "db", required=True, type=click.Path(path_type=Path), help="DuckDB file to write."
)
@click.option("--force", is_flag=True, help="Replace an existing DuckDB file.")
def ingest(path: Path, db: Path, force: bool) -> None:
    """Validate the cohort at PATH and store it in a DuckDB file.

    The file is written to a temporary name and renamed when complete.  The
    scores computed from items are stored too: while the items, given scores,
    patients' days and instrument registry are unchanged, `load_cohort` uses
    them and leaves the items unread (ask for tables=[..., "items"] to read
    them); otherwise it reads every table back identically.
    """
    from stepanalytics.cohort import load_cohort
    from stepanalytics.io.tables import read_raw_cohort, write_duckdb

    # Every table, items included: a DuckDB file written by ingest would otherwise
    # be read with its stored scores and without its item answers.
    cohort = load_cohort(path, tables=("assessments", "items", "events"))
    raw = read_raw_cohort(path)
    write_duckdb(
        cohort.to_tables(), db, protocol_text=raw.protocol_text, overwrite=force, scored=cohort
    )
    click.echo(f"wrote {db}: {cohort.n_patients:,} patients")


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--patients", "n_patients", default=300, show_default=True, type=click.IntRange(1))
@click.option("--clinics", "n_clinics", default=6, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--format", "fmt", default="csv", show_default=True, type=click.Choice(["csv", "parquet"])
)
@click.option("--worse-clinics", default=1, show_default=True, type=click.IntRange(0))
@click.option("--no-items", is_flag=True, help="Write scores only, no item answers.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def synth(
    out: Path,
    n_patients: int,
    n_clinics: int,
    seed: int,
    fmt: str,
    worse_clinics: int,
    no_items: bool,
    force: bool,
) -> None:
    """Write a synthetic cohort with known truth (truth.json) into OUT."""
    from stepanalytics.synth import write_synthetic_cohort

    if worse_clinics > n_clinics:
        raise click.UsageError("--worse-clinics cannot exceed --clinics")
    write_synthetic_cohort(
        out,
        n_patients=n_patients,
        n_clinics=n_clinics,
        seed=seed,
        fmt=fmt,
        overwrite=force,
        n_worse_clinics=worse_clinics,
        items=not no_items,
    )
    click.echo(
        f"wrote a synthetic cohort of {n_patients:,} patients in {n_clinics} clinics to {out}"
    )


def _register_optional_commands() -> None:
    """Commands that live with their feature packages."""
    import importlib

    for module, attr, name in (
        ("stepanalytics.instruments.cli", "score_command", "score"),
        ("stepanalytics.io.import_cli", "import_group", "import"),
        ("stepanalytics.reports.cli", "report_group", "report"),
        ("stepanalytics.trajectories.cli", "fit_command", "fit"),
    ):
        try:
            command = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
        main.add_command(command, name)


_register_optional_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
