"""`run --dry-run`: which stages are done, which will run, and what they are expected to cost."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.results import load_result
from harness.stages import Stage
from harness.workspace import Workspace


def estimated_seconds(stage: Stage, workspace: Workspace) -> float | None:
    """The wall time of the last result stored under this stage's name (any key), if any."""
    previous = load_result(workspace.result_path(stage.profile, stage.name))
    return previous.provenance.wall_time_s if previous else None


def print_plan(console: Console, stages: list[Stage], pending: list[Stage], workspace: Workspace) -> None:
    pending_keys = {stage.key for stage in pending}
    table = Table(title=f"plan: {len(stages) - len(pending)} done, {len(pending)} to run", show_lines=False)
    for column in ("stage", "kind", "key", "status", "est. cost"):
        table.add_column(column)
    total, unknown = 0.0, 0
    for stage in stages:
        todo = stage.key in pending_keys
        estimate = estimated_seconds(stage, workspace) if todo else None
        if todo and estimate is None:
            unknown += 1
        total += estimate or 0.0
        cost = "-" if not todo else (f"{estimate:.0f} s" if estimate is not None else "unknown")
        table.add_row(stage.name, stage.kind, stage.key[:10], "[yellow]to run[/]" if todo else "[green]done[/]", cost)
    console.print(table)
    if pending:
        console.print(f"estimated cost of what will run: {total / 60:.1f} min" + (f" + {unknown} stage(s) never run before" if unknown else ""))
