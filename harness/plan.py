"""`run --dry-run`: which stages are done, which will run, and what they are expected to cost.
A long plan lists its first rows and then counts per kind and status."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from harness.estimates import CALIBRATED_ON, estimate_seconds
from harness.results import load_result
from harness.stages import Stage
from harness.tables import print_table
from harness.workspace import Workspace

LISTED_ROWS = 40


def estimated_seconds(stage: Stage, workspace: Workspace) -> tuple[float | None, bool]:
    """(seconds, measured): the wall time of the last result stored under this stage's name (any
    key; scaled by the epochs when the config changed them), else the calibrated throughput model's
    estimate (harness/estimates.py)."""
    previous = load_result(workspace.result_path(stage.profile, stage.name))
    if previous:
        epochs, before = stage_epochs(stage.config), stage_epochs(previous.config)
        scale = epochs / before if isinstance(epochs, int) and isinstance(before, int) and before > 0 else 1.0
        return previous.provenance.wall_time_s * scale, True
    encoder = stage.inputs.get("encoder")
    arch = encoder.config.get("arch") if encoder is not None else None
    return estimate_seconds(stage.kind, stage.config, str(stage.runtime.get("device", "cpu")), arch), False


def stage_epochs(config: dict) -> int | None:
    """A training stage's epochs (its recipe's); None for the others."""
    recipe = config.get("recipe")
    epochs = recipe.get("epochs") if isinstance(recipe, dict) else None
    return epochs if isinstance(epochs, int) else None


def print_plan(console: Console, stages: list[Stage], pending: list[Stage], workspace: Workspace) -> None:
    pending_keys = {stage.key for stage in pending}
    table = Table(title=f"plan: {len(stages) - len(pending)} done, {len(pending)} to run", show_lines=False)
    for column in ("stage", "kind", "key", "status", "est. cost"):
        table.add_column(column)
    total, unknown, modelled = 0.0, 0, 0
    for position, stage in enumerate(stages):
        todo = stage.key in pending_keys
        estimate, measured = estimated_seconds(stage, workspace) if todo else (None, True)
        unknown += todo and estimate is None
        modelled += todo and estimate is not None and not measured
        total += estimate or 0.0
        if position < LISTED_ROWS:
            cost = (
                "-" if not todo else ("unknown" if estimate is None else f"{'' if measured else '~'}{estimate:.0f} s")
            )
            table.add_row(
                stage.name, stage.kind, stage.key[:10], "[yellow]to run[/]" if todo else "[green]done[/]", cost
            )
    print_table(console, table)
    if len(stages) > LISTED_ROWS:
        console.print(f"... {len(stages) - LISTED_ROWS} more stage(s) not listed")
        print_table(console, counts_table(stages, pending_keys))
    if pending:
        notes = (
            [
                f"~: {modelled} stage(s) never run here, estimated from the throughput model calibrated on {calibrated_on(stages)}"
            ]
            if modelled
            else []
        )
        notes += [f"{unknown} stage(s) with no estimate"] if unknown else []
        console.print(
            f"estimated cost of what will run: {total / 60:.1f} min" + (f" ({'; '.join(notes)})" if notes else "")
        )


def calibrated_on(stages: list[Stage]) -> str:
    devices = {"cuda" if str(stage.runtime.get("device", "cpu")).startswith("cuda") else "cpu" for stage in stages}
    return " and ".join(CALIBRATED_ON[device] for device in sorted(devices))


def counts_table(stages: list[Stage], pending_keys: set[str]) -> Table:
    counts = Counter((stage.kind, stage.key in pending_keys) for stage in stages)
    table = Table(title="all stages by kind")
    for column in ("kind", "done", "to run"):
        table.add_column(column)
    for kind in dict.fromkeys(stage.kind for stage in stages):
        table.add_row(kind, str(counts[(kind, False)]), str(counts[(kind, True)]))
    return table
