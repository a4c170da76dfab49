"""`disco-bench list` (the matrix with the done/pending state of its stages) and `disco-bench status`
(per stage of the chosen cells: done, partially trained with its epoch count, or pending; with the
Slurm job state where the Slurm executor submitted it). Both read only; nothing is trained."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from disco.damaged import previous_path
from disco.evals import EVALUATIONS
from harness.cli import cli
from harness.commands.run import plan_stages, run, selection_options, workspace_options
from harness.config import Benchmarks, load_benchmarks
from harness.matrix import CellPlan, Planner
from harness.stages import DAMAGED, DIVERGED_FILE, DONE, Stage, topological
from harness.tables import print_table
from harness.workspace import Workspace, read_json

CHECKPOINT = "checkpoint.pt"  # disco.train.CHECKPOINT_FILE, written after every epoch
PROGRESS_SIDECAR = (
    "checkpoint.json"  # disco.train.PROGRESS_FILE: {"epoch": n, "epochs": total}, read instead of the checkpoint
)
STYLES = {
    "done": "green",
    "partial": "yellow",
    "stale": "magenta",
    "damaged": "magenta",
    "pending": "red",
    "diverged": "bold red",
}


@dataclass(frozen=True)
class StageState:
    state: str  # "done" | "partial" (a per-epoch checkpoint exists) | "stale" (stored for another key) | "damaged" (its checkpoint is) | "pending"
    epochs_done: int | None = None
    epochs_total: int | None = None
    health: str | None = None  # a finished training stage's final health (disco/health.py)
    reason: str = ""  # why it stopped ("diverged": its loss was not finite)

    def describe(self) -> str:
        if self.state == "diverged":
            return f"diverged: {self.reason}"
        if self.state == "partial":
            return "partially trained" + (
                f" ({self.epochs_done}/{self.epochs_total} epochs)" if self.epochs_done is not None else ""
            )
        if self.state == "stale":
            return "pending (stored result is for another config or code version)"
        if self.state == "damaged":
            return "pending (its final checkpoint is damaged: the next run recomputes it)"
        return self.state


def checkpoint_epoch(stage_dir: Path) -> int | None:
    sidecar = read_json(stage_dir / PROGRESS_SIDECAR)
    if isinstance(sidecar, dict) and isinstance(sidecar.get("epoch"), int):
        return sidecar["epoch"]
    import torch

    for path in (stage_dir / CHECKPOINT, previous_path(stage_dir / CHECKPOINT)):  # the newest that reads
        try:  # mmap: the tensors stay on disk; only the small pickled structure is read
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # a torn or foreign file: try the previous one; the epoch may stay unknown
            continue
        epoch = payload.get("epoch") if isinstance(payload, dict) else None
        if isinstance(epoch, int):
            return epoch
    return None


def stage_state(stage: Stage, workspace: Workspace, read_epochs: bool = True) -> StageState:
    stored = stage.stored(workspace)
    if stored.state in (DONE, DAMAGED) and stored.result:
        return StageState(stored.state, health=stored.result.metrics.get("health"))
    stage_dir = workspace.stage_dir(stage.name, stage.key)
    diverged = read_json(stage_dir / DIVERGED_FILE)
    if isinstance(diverged, dict):
        return StageState("diverged", reason=str(diverged.get("reason", "")))
    if (stage_dir / CHECKPOINT).exists() or previous_path(stage_dir / CHECKPOINT).exists():
        total = stage.config.get("recipe", {}).get("epochs")
        return StageState("partial", checkpoint_epoch(stage_dir) if read_epochs else None, total)
    return StageState(stored.state)


def run_defaults() -> dict[str, Any]:
    """`run`'s option defaults, so `plan_stages` sees every option `run` gives it (status plans the same stages)."""
    return {param.name: param.default for param in run.params if param.name and not callable(param.default)}


HEALTH_STYLES = {"healthy": "green", "weak": "yellow", "collapsed": "bold red"}


def styled_health(health: str | None) -> str:
    return "-" if health is None else f"[{HEALTH_STYLES.get(health, 'white')}]{health}[/]"


def styled(state: StageState, short: bool = False) -> str:
    return f"[{STYLES[state.state]}]{state.state if short else state.describe()}[/]"


def slurm_job_states(workspace: Workspace) -> tuple[dict[str, str], str | None]:
    """stage name -> Slurm state from harness.executors.slurm.job_states, when that module exists."""
    try:
        job_states: Callable[[Workspace], dict[str, str]] | None = getattr(
            importlib.import_module("harness.executors.slurm"), "job_states", None
        )
    except ImportError:
        return {}, None
    if job_states is None:
        return {}, None
    try:
        return job_states(workspace), None
    except Exception as exc:  # a status view must not fail because the cluster does not answer
        return {}, f"Slurm job states unavailable: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- list


def count_done(stages: list[Stage], states: dict[str, StageState]) -> str:
    unique = {stage.key: stage for stage in stages}
    done = sum(states[key].state == "done" for key in unique)
    return f"{done}/{len(unique)} done"


def summary_state(stages: list[Stage], states: dict[str, StageState]) -> str:
    kinds = {states[stage.key].state for stage in stages}
    if kinds == {"done"}:
        return "[green]done[/]"
    return "[yellow]some done[/]" if kinds & {"done", "partial"} else "[red]pending[/]"


@dataclass
class MatrixStages:
    """Every stage of the matrix at seed 0, and its state."""

    cells: dict[str, CellPlan]  # pair -> cell with the pair's own evaluations
    every_eval: dict[str, CellPlan]  # pair -> cell with every evaluation of the matrix
    teachers: dict[str, Stage]
    baselines: dict[str, Stage]
    randoms: dict[str, Stage]
    stages: list[Stage]
    states: dict[str, StageState]  # stage key -> state


def matrix_stages(bench: Benchmarks, planner: Planner, workspace: Workspace) -> MatrixStages:
    every_method = planner.composable_methods()
    every_eval = {pair: planner.cell(pair, 0, planner.runnable_evaluations(), every_method) for pair in bench.pairs}
    teachers = {name: planner.teacher(name) for name in bench.teachers}
    baselines = {name: planner.baseline(name, 0) for name in bench.students}
    randoms = {name: planner.random_init(name, 0) for name in bench.students}
    stages = topological(
        [s for cell in every_eval.values() for s in cell.stages()]
        + [*teachers.values(), *baselines.values(), *randoms.values()]
    )
    states = {stage.key: stage_state(stage, workspace, read_epochs=False) for stage in stages}
    return MatrixStages(
        {pair: planner.cell(pair, 0) for pair in bench.pairs}, every_eval, teachers, baselines, randoms, stages, states
    )


def new_table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    return table


def pairs_table(bench: Benchmarks, label: str, m: MatrixStages) -> Table:
    table = new_table(
        f"pairs · profile {label} · seed 0", ("pair", "teacher", "student", "evaluations", "stages", "status")
    )
    for name, cell in m.cells.items():
        stages, spec = cell.stages(), bench.pairs[name]
        evaluations = ", ".join(dict.fromkeys(ev for _, ev in cell.evals))
        table.add_row(
            name + (" (default)" if name in bench.default_pairs else ""),
            spec.teacher,
            spec.student,
            evaluations,
            count_done(stages, m.states),
            summary_state(stages, m.states),
        )
    return table


def members_tables(bench: Benchmarks, m: MatrixStages) -> list[Table]:
    teachers = new_table("teachers", ("teacher", "arch", "pretrain", "pretraining stage", "description"))
    for name, teacher in bench.teachers.items():
        teachers.add_row(
            name,
            teacher.arch,
            str(m.teachers[name].config["method"]),
            styled(m.states[m.teachers[name].key], short=True),
            teacher.description,
        )
    students = new_table("students", ("student", "arch", "baseline", "random init", "description"))
    for name, student in bench.students.items():
        students.add_row(
            name,
            student.arch,
            styled(m.states[m.baselines[name].key], short=True),
            styled(m.states[m.randoms[name].key], short=True),
            student.description,
        )
    return [teachers, students]


def headline_label(evaluation: str) -> str:
    """The registry's headline metric and its direction, e.g. `top1_best ↑`; what an unregistered name lacks."""
    known = EVALUATIONS.get(evaluation)
    if known is None:
        return "not implemented"
    return f"{known.metric} {'↑' if known.higher_is_better else '↓'}" + (
        f" ({known.beside[0]} beside)" if known.beside else ""
    )


def protocol_tables(bench: Benchmarks, m: MatrixStages) -> list[Table]:
    evaluations = new_table("evaluations", ("evaluation", "headline", "stages", "description"))
    for name, evaluation in bench.evaluations.items():
        stages = [stage for cell in m.every_eval.values() for (_, ev), stage in cell.evals.items() if ev == name]
        evaluations.add_row(name, headline_label(name), count_done(stages, m.states), evaluation.description)
    methods = new_table("methods", ("method", "kind", "head", "stages", "description"))
    for name, method in bench.methods.items():
        stages = [
            stage for stage in m.stages if stage.kind in ("pretrain", "distill") and stage.config.get("method") == name
        ]
        methods.add_row(name, method.kind, method.head, count_done(stages, m.states), method.description)
    return [evaluations, methods]


@cli.command("list")
@click.option("--profile", default="tiny", show_default=True, help="Whose stored results give the done/pending states.")
@click.option("--smoke", is_flag=True, help="States of the `run --smoke` results (<profile>-smoke).")
@workspace_options
def list_matrix(profile: str, smoke: bool, results_dir: Path, artifacts_dir: Path, benchmarks_file: Path) -> None:
    """Pairs, teachers, students, evaluations and methods, with the done/pending state of their stages."""
    bench = load_benchmarks(benchmarks_file)
    planner = Planner(bench, profile, smoke=smoke)
    console = Console()
    stages = matrix_stages(bench, planner, Workspace(artifacts_dir, results_dir))
    for table in [
        pairs_table(bench, planner.label, stages),
        *members_tables(bench, stages),
        *protocol_tables(bench, stages),
    ]:
        print_table(console, table)


# ---------------------------------------------------------------- status


@cli.command("status")
@selection_options
@workspace_options
def status(**params: Any) -> None:
    """Per stage of the chosen cells: done, partially trained (epochs from its checkpoint), or pending;
    plus the Slurm job state of its latest submission, if any."""
    _, _, stages = plan_stages(run_defaults() | params)
    workspace = Workspace(params["artifacts_dir"], params["results_dir"])
    jobs, slurm_note = slurm_job_states(workspace)
    table = Table(title=f"status · {len(stages)} stage(s)")
    table.add_column("stage", overflow="fold")  # the name says kind, method, pair, profile and seed
    for column in ("key", "state", "health", *(["slurm job"] if jobs else [])):
        table.add_column(column)
    counts: dict[str, int] = {}
    collapsed = []
    for stage in stages:
        state = stage_state(stage, workspace)
        counts[state.state] = counts.get(state.state, 0) + 1
        collapsed += [stage.name] if state.health == "collapsed" else []
        table.add_row(
            stage.name,
            stage.key[:10],
            styled(state),
            styled_health(state.health),
            *([jobs.get(stage.name, "-")] if jobs else []),
        )
    console = Console()
    print_table(console, table)
    partial, pending = (
        counts.get("partial", 0),
        counts.get("pending", 0) + counts.get("stale", 0) + counts.get("damaged", 0),
    )
    console.print(f"{counts.get('done', 0)} done, {partial} partially trained, {pending} pending")
    if collapsed:
        console.print(
            f"[bold red]{len(collapsed)} collapsed training stage(s)[/]: numbers built on them are not evidence (docs/health.md): {', '.join(collapsed)}"
        )
    if slurm_note:
        console.print(slurm_note)
