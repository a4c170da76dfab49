"""`disco-bench validate`: check benchmarks.yaml (schema, references, reference numbers), every error at once."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from disco.errors import InputError
from harness.cli import cli
from harness.config import DEFAULT_FILE
from harness.validate import validate_file


@cli.command()
@click.argument("file", type=click.Path(path_type=Path), default=DEFAULT_FILE, required=False)
def validate(file: Path) -> None:
    """Check FILE (default: benchmarks.yaml) against the typed schema; no GPU, no training.

    Prints one `FILE:LINE: KEY.PATH: what was expected` line per error, then a summary;
    exits 0 when the file is valid, 2 otherwise."""
    outcome = validate_file(file)
    for problem in outcome.problems:
        click.echo(problem.render(file), err=True)
    if outcome.bench is None:
        click.echo(outcome.summary(file), err=True)
        sys.exit(InputError.exit_code)
    click.echo(outcome.summary(file))
