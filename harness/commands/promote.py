"""`disco-bench promote`: make a finished run the committed reference run (results/reference/<profile>/)
and render its report as results/README.md."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from harness.cli import cli
from harness.commands.run import workspace_options
from harness.config import load_benchmarks
from harness.matrix import Planner
from harness.reference import DEFAULT_REFERENCE, promote, reference_workspace
from harness.workspace import Workspace, atomic_write_bytes

README_INTRO = """# disco-bench results

`reference/<profile>/` holds a committed **reference run**: one typed JSON per finished stage
(metrics, per-epoch history with training health, config, provenance) and a `MANIFEST.json` saying
which commit, machine and seeds produced it. Your own runs go to the git-ignored `runs/` directory;
`disco-bench report` (and every `run`) shows *this run*, *the reference run* and *the paper* side by
side. Make a run the reference with `disco-bench promote --profile {profile}`, which rewrites this file.
`perf/` holds the speed measurements (`disco-bench perf`).

Below: the reference run's report (the "this run" column is the reference run itself).

"""


@cli.command("promote")
@click.option("--profile", default="tiny", show_default=True, help="Whose results to promote.")
@click.option(
    "--to",
    "reference_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_REFERENCE,
    show_default=True,
    help="The reference folder.",
)
@click.option(
    "--readme",
    type=click.Path(path_type=Path),
    default=Path("results/README.md"),
    show_default=True,
    help="Where the reference's report goes ('' for nowhere).",
)
@click.option(
    "--rerender",
    is_flag=True,
    help="Copy nothing: render the reference run's report again (after a change to the report).",
)
@workspace_options
def promote_command(
    profile: str,
    reference_dir: Path,
    readme: Path,
    rerender: bool,
    results_dir: Path,
    artifacts_dir: Path,
    benchmarks_file: Path,
) -> None:
    """Copy this run's stage results of PROFILE to the reference folder with a manifest, and render its report."""
    from harness.report import build_report, profile_cells
    from harness.report.document import document
    from harness.report.files import write_report_files
    from harness.report.render import render_markdown

    console = Console()
    planner = Planner(load_benchmarks(benchmarks_file), profile)
    if not rerender:
        target, manifest = promote(Workspace(artifacts_dir, results_dir), reference_dir, planner.label)
    reference = Workspace(reference_dir / "artifacts", reference_dir)
    label = reference_workspace(reference_dir, planner.label)[1]
    report = build_report(planner.bench, profile_cells(planner, reference), reference, reference_label=None)
    written = write_report_files(report, reference)
    if rerender:
        console.print(f"rendered the reference run's report ({label}): {len(written)} file(s) under {reference_dir}")
    else:
        console.print(
            f"promoted {manifest['stages']} stage result(s) to {target} ({label}); report: {len(written)} file(s) under {target}"
        )
    if str(readme) not in ("", "."):
        blocks = document(report, curves=None)
        prefix = Path(profile).as_posix() + "/"
        text = (
            README_INTRO.format(profile=profile)
            + f"Reference run: {label}.\n\n"
            + render_markdown(blocks, image_prefix=f"reference/{prefix}", heading_offset=1)
        )
        atomic_write_bytes(readme, text.encode())
        console.print(f"wrote {readme}")
