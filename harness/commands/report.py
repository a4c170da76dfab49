"""`disco-bench report`: render the comparison with the paper from the stored JSON results (no training)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from harness.cli import cli
from harness.commands.run import PRETRAIN_TEACHERS, reference_option, workspace_options
from harness.config import load_benchmarks
from harness.errors import UserError
from harness.matrix import Planner
from harness.reference import reference_workspace
from harness.report import DEFAULT_TOLERANCE, build_report, document, profile_cells, render_terminal, write_report_files
from harness.workspace import Workspace


@cli.command()
@click.option("--profile", default="tiny", show_default=True, help="paper | tiny (see benchmarks.yaml).")
@click.option(
    "--pair",
    multiple=True,
    help="Only this pair (repeatable). Default: default_pairs plus every pair with stored results.",
)
@click.option("--all", "all_pairs", is_flag=True, help="Every pair in the matrix (pending ones included).")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=DEFAULT_TOLERANCE,
    show_default=True,
    help="|measured - paper| that still counts as reproduced (paper profile; top-1 points).",
)
@click.option("--smoke", is_flag=True, help="Report the results of `run --smoke` (<profile>-smoke).")
@click.option("--no-files", is_flag=True, help="Only print; write no report files.")
@PRETRAIN_TEACHERS
@workspace_options
@reference_option
def report(
    profile: str,
    pair: tuple[str, ...],
    all_pairs: bool,
    tolerance: float,
    smoke: bool,
    no_files: bool,
    pretrain_teachers: bool,
    results_dir: Path,
    artifacts_dir: Path,
    benchmarks_file: Path,
    reference_dir: Path,
) -> None:
    """This run vs the reference run vs the paper per cell and evaluation, gains, seed statistics,
    training health and verdicts; writes <results>/<profile>/report.{md,csv,html}, plots/ and curves/."""
    console = Console()
    planner = Planner(load_benchmarks(benchmarks_file), profile, smoke=smoke, pretrain_teachers=pretrain_teachers)
    workspace = Workspace(artifacts_dir, results_dir)
    stages_dir = workspace.results / planner.label / "stages"
    if not stages_dir.is_dir():
        console.print(f"note: no stored results under {stages_dir}; every stage shows as pending")
    reference, label = reference_workspace(reference_dir or None, planner.label)
    full = build_report(
        planner.bench,
        profile_cells(planner, workspace, list(pair), all_pairs, also=reference),
        workspace,
        tolerance,
        reference,
        label,
    )
    render_terminal(console, document(full, extras=False))
    if no_files:
        return
    try:
        written = write_report_files(full, workspace)
    except OSError as exc:
        raise UserError(
            f"cannot write the report under {workspace.results / full.profile} ({exc.strerror or exc}); choose another --results"
        ) from None
    console.print(f"wrote {len(written)} file(s): " + ", ".join(str(path) for path in written))
