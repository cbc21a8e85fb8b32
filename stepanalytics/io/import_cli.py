"""``stepanalytics import``: REDCap exports and FHIR responses to a cohort folder.

Registered in the main command as ``main.add_command(import_group, "import")``.
Exit codes: 0 success, 1 a data problem (the export, resources or mapping
cannot be imported as they are: every problem is listed, no traceback),
2 bad usage (missing options, no secret where one is needed, a target that
exists without ``--force``).

The secret for pseudonyms is read from an environment variable
(``--secret-env``) or a file (``--secret-file``), never from the command
line, where it would end up in the shell history and the process list.
"""

from __future__ import annotations

from pathlib import Path

import click

from stepanalytics.errors import StepAnalyticsError, UsageError
from stepanalytics.io.import_report import ImportResult
from stepanalytics.io.import_writer import REPORT_FILE, check_target, write_import
from stepanalytics.io.pseudonym import check_secret, secret_from_env

DATA_PROBLEM = 1

_secret_env = click.option(
    "--secret-env",
    metavar="VARIABLE",
    help="Environment variable holding the pseudonymisation secret (HMAC-SHA256 key).",
)
_secret_file = click.option(
    "--secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the pseudonymisation secret (first line).",
)
_out = click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Cohort folder to write (tables and import_report.csv).",
)
_force = click.option("--force", is_flag=True, help="Replace an existing cohort folder.")
_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet"]),
    default="csv",
    show_default=True,
    help="Format of the cohort tables.",
)
_existing = click.Path(exists=True, dir_okay=False, path_type=Path)


class _ImportGroup(click.Group):
    """Project errors become a message and exit 1; usage errors exit 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UsageError as err:
            raise click.UsageError(str(err), ctx) from None
        except StepAnalyticsError as err:
            click.echo(str(err), err=True)
            ctx.exit(DATA_PROBLEM)


@click.group("import", cls=_ImportGroup)
def import_group() -> None:
    """Import a REDCap export or FHIR questionnaire responses into a cohort.

    Each import writes the cohort tables and import_report.csv (what
    happened to every input row), and prints a summary.  See
    docs/importing.md and examples/mappings/.
    """


def _secret(secret_env: str | None, secret_file: Path | None) -> str | None:
    if secret_env and secret_file:
        raise UsageError("give the secret once: --secret-env or --secret-file, not both")
    if secret_env:
        return secret_from_env(secret_env)
    if secret_file:
        lines = secret_file.read_text(encoding="utf-8").splitlines()
        secret = lines[0].strip() if lines else ""
        check_secret(secret)
        return secret
    return None


def _finish(result: ImportResult, out: Path, force: bool, fmt: str) -> None:
    folder = write_import(result, out, force=force, fmt=fmt)
    click.echo(result.summary())
    click.echo(f"Cohort written to {folder}; the import report is {folder / REPORT_FILE}.")


@import_group.command("redcap")
@click.argument("export", type=_existing)
@click.option(
    "--dictionary", required=True, type=_existing, help="The project's data dictionary CSV."
)
@click.option(
    "--mapping", required=True, type=_existing, help="Mapping YAML (see examples/mappings/)."
)
@_out
@_secret_env
@_secret_file
@_force
@_format
def redcap_command(
    export: Path,
    dictionary: Path,
    mapping: Path,
    out: Path,
    secret_env: str | None,
    secret_file: Path | None,
    force: bool,
    fmt: str,
) -> None:
    """Import a REDCap raw records EXPORT (CSV) into the cohort folder --out."""
    from stepanalytics.io.redcap import import_redcap

    check_target(out, force=force)
    result = import_redcap(export, dictionary, mapping, secret=_secret(secret_env, secret_file))
    _finish(result, out, force, fmt)


@import_group.command("fhir")
@click.argument("resources", nargs=-1, required=True, type=_existing)
@click.option(
    "--mapping", required=True, type=_existing, help="Mapping YAML (see examples/mappings/)."
)
@_out
@click.option(
    "--patients", type=_existing, help="Patients CSV (subject, clinic_id, enrolment_date, ...)."
)
@click.option(
    "--phases", type=_existing, help="Phases CSV, when the mapping takes phases from a CSV."
)
@_secret_env
@_secret_file
@_force
@_format
def fhir_command(
    resources: tuple[Path, ...],
    mapping: Path,
    out: Path,
    patients: Path | None,
    phases: Path | None,
    secret_env: str | None,
    secret_file: Path | None,
    force: bool,
    fmt: str,
) -> None:
    """Import QuestionnaireResponse RESOURCES (NDJSON or Bundle JSON) into the folder --out."""
    from stepanalytics.io.fhir import import_fhir

    check_target(out, force=force)
    result = import_fhir(
        list(resources),
        mapping,
        patients=patients,
        phases=phases,
        secret=_secret(secret_env, secret_file),
    )
    _finish(result, out, force, fmt)
