"""`disco-bench run`: plan a cell (or the whole matrix), skip finished stages, run the rest."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import click
from rich.console import Console

from disco.plugins import BUILTIN, entry_points, register
from harness.cli import cli
from harness.config import DEFAULT_FILE, load_benchmarks
from harness.errors import UserError
from harness.matrix import Planner, pick
from harness.reference import DEFAULT_REFERENCE
from harness.stages import Stage, topological
from harness.workspace import RUNS_DIR, Workspace

# name -> its module: a dotted path (the built-ins, imported when used) or a plug-in's loaded module
EXECUTOR_MODULES: dict[str, Any] = {}
F = TypeVar("F", bound=Callable[..., Any])  # a command function, under its click option decorators


def executor_problem(module: Any) -> str | None:
    """Why a plug-in module is not an executor (harness/executors/__init__.py states the contract)."""
    if isinstance(module, str):
        return None
    if not callable(getattr(module, "make_executor", None)):
        return "has no make_executor(params) -> Executor"
    if not isinstance(getattr(module, "OPTIONS", []), list):
        return "has OPTIONS that is not a list of click options"
    return None


register(
    EXECUTOR_MODULES,
    "executor",
    BUILTIN,
    {name: f"harness.executors.{name}" for name in ("local", "docker", "slurm")},
    executor_problem,
)
for _package, _module in entry_points("executors"):
    register(
        EXECUTOR_MODULES,
        "executor",
        _package,
        {getattr(_module, "NAME", _module.__name__.rsplit(".", 1)[-1]): _module},
        executor_problem,
    )
EXECUTORS = tuple(EXECUTOR_MODULES)


def executor_module(name: str) -> ModuleType:
    module = EXECUTOR_MODULES[name]
    return importlib.import_module(module) if isinstance(module, str) else module


def executor_options(func: F) -> F:
    for name in EXECUTORS:
        try:
            options = executor_module(name).OPTIONS
        except (ImportError, AttributeError):
            continue
        for option in reversed(options):
            func = option(func)
    return func


def workspace_options(func: F) -> F:
    func = click.option(
        "--results",
        "results_dir",
        type=click.Path(path_type=Path),
        default=RUNS_DIR,
        show_default=True,
        help="Where this run's JSON results and reports go (git-ignored).",
    )(func)
    func = click.option(
        "--artifacts",
        "artifacts_dir",
        type=click.Path(path_type=Path),
        default=Path("artifacts"),
        show_default=True,
        help="Where checkpoints go.",
    )(func)
    return click.option(
        "--benchmarks",
        "benchmarks_file",
        type=click.Path(path_type=Path),
        default=DEFAULT_FILE,
        show_default=True,
        help="The matrix file.",
    )(func)


MAX_SEEDS = 100
MAX_PLAN_STAGES = 20_000  # beyond this a plan takes minutes to build and is unreadable; split the run


def reference_option(func: F) -> F:
    return click.option(
        "--reference",
        "reference_dir",
        type=click.Path(path_type=Path),
        default=DEFAULT_REFERENCE,
        show_default=True,
        help="The committed reference run, reported beside this run ('' for none).",
    )(func)


def plan_stages(params: dict) -> tuple[Planner, list, list[Stage]]:
    bench = load_benchmarks(params["benchmarks_file"])
    planner = Planner(
        bench,
        params["profile"],
        smoke=params["smoke"],
        device=params["device"],
        speed=params["speed"],
        threads=params.get("threads"),
        precision=params.get("precision"),
        pretrain_teachers=params.get("pretrain_teachers", False),
    )
    pairs = list(dict.fromkeys(bench.pairs if params["run_all"] else params["pair"] or bench.default_pairs))
    evals = comma_list(params["evals"])
    methods = planner.methods(comma_list(params.get("methods")))  # a misspelled name: "did you mean", exit 2
    if params.get("sweep"):  # its method at each swept value, beside the chosen methods' default rows
        methods = list(dict.fromkeys([*methods, *planner.sweep_roles(params["sweep"])]))
    _check_plan_size(planner, pairs, evals, params["seeds"], len(methods))
    cells = [planner.cell(pair, seed, evals, methods) for pair in pairs for seed in range(params["seeds"])]
    for evaluation in evals or []:  # a requested evaluation that runs on none of the chosen encoders
        if not any(ev == evaluation for cell in cells for _, ev in cell.evals):
            archs = ", ".join(bench.evaluations[evaluation].archs or [])
            raise UserError(
                f"--evals {evaluation}: it runs on {archs} only (evaluations.{evaluation}.archs in {params['benchmarks_file']}), and none of the chosen pairs has such an encoder"
            )
    return planner, cells, topological([stage for cell in cells for stage in cell.stages()])


def comma_list(value: str | None) -> list[str] | None:
    return list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip())) if value else None


def _check_plan_size(planner: Planner, pairs: list[str], evals: list[str] | None, seeds: int, methods: int = 1) -> None:
    """Refuse, before building anything, a plan too large to build or read (at most its cells' stages)."""
    for pair in pairs:
        pick(pair, planner.bench.pairs, "pair")
    encoders = 3 + methods  # teacher, baseline, random init and a student per method
    per_cell = max(
        (encoders * (1 + len(evals or planner.bench.pairs[pair].evals or planner.profile.evals)) for pair in pairs),
        default=0,
    )
    if len(pairs) * seeds * per_cell > MAX_PLAN_STAGES:
        raise UserError(
            f"{len(pairs)} pair(s) x {seeds} seed(s) x {per_cell} stages per cell is up to {len(pairs) * seeds * per_cell:,} stages, over the {MAX_PLAN_STAGES:,} one run plans; run fewer pairs, seeds or evaluations at a time"
        )


PRETRAIN_TEACHERS = click.option(
    "--pretrain-teachers",
    is_flag=True,
    help="Pretrain here each teacher whose released checkpoint (profiles.<profile>.teacher_checkpoints) is missing, instead of stopping at the preflight.",
)


def selection_options(func: F) -> F:
    """Which cells: shared by `run` and `status`."""
    for option in reversed(
        [
            click.option(
                "--pair",
                multiple=True,
                help="A teacher-student pair, e.g. r50-effb0 (repeatable). Default: default_pairs.",
            ),
            click.option("--all", "run_all", is_flag=True, help="Every pair in the matrix."),
            click.option("--profile", default="tiny", show_default=True, help="paper | tiny (see benchmarks.yaml)."),
            click.option("--evals", default=None, help="Comma-separated evaluations (default: the profile's)."),
            click.option(
                "--methods",
                default=None,
                help="Comma-separated distillation methods trained in each cell against the same teacher and baseline, e.g. disco,seed (default: default_methods).",
            ),
            click.option(
                "--sweep",
                default=None,
                help="A named sweep (benchmarks.yaml sweeps:), e.g. bottleneck: its method at each head width beside the default, in every cell.",
            ),
            click.option(
                "--seeds",
                type=click.IntRange(min=1, max=MAX_SEEDS),
                default=1,
                show_default=True,
                help=f"Student seeds 0..N-1 (at most {MAX_SEEDS}).",
            ),
            click.option(
                "--smoke",
                is_flag=True,
                help="Synthetic images at the profile's resolution, a couple of steps per stage.",
            ),
            PRETRAIN_TEACHERS,
        ]
    ):
        func = option(func)
    return func


@cli.command()
@selection_options
@click.option("--dry-run", is_flag=True, help="Print the plan (done / to run) and exit.")
@click.option("--force", multiple=True, help="Rerun this stage (name or name prefix) even if done.")
@click.option("--device", default=None, help="Override the profile's device (cpu, cuda, cuda:1).")
@click.option(
    "--speed",
    type=click.Choice(["optimized", "reference"]),
    default="optimized",
    show_default=True,
    help="reference = the official fp32/NCHW/eager computation (see disco/speed.py).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1, max=1024),
    default=None,
    help="CPU threads per stage (default: torch's, one per core). Results repeat bit for bit only at the same count.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default=None,
    help="Training precision (default: the profile's, fp32). bf16 autocast is a deviation from the official fp32, recorded in the stage key and the report.",
)
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True)
@workspace_options
@reference_option
@executor_options
def run(**params: Any) -> None:
    """Run one or more cells: teacher pretraining, student baseline, DisCo, evaluations; then report."""
    console = Console()
    workspace = Workspace(params["artifacts_dir"], params["results_dir"])
    planner, cells, stages = plan_stages(params)
    forced = _forced(stages, params["force"])
    pending = [stage for stage in stages if stage.key in forced or not stage.is_done(workspace)]
    from harness.plan import print_plan

    print_plan(console, stages, pending, workspace)
    from harness.preflight import preflight

    for note in preflight(planner, pending, params["executor"], fetch=not params["dry_run"]):
        console.print(f"note: {note}")
    if params["dry_run"]:
        return
    workspace.ensure_writable()
    for stage in stages:
        if stage.key in forced:
            _invalidate(stage, workspace)
    if pending:
        executor_params = params | {"profile_slurm": planner.profile.slurm}
        executor_module(params["executor"]).make_executor(executor_params).run(pending, workspace)
    from harness.reference import reference_workspace
    from harness.report import print_cell_reports

    reference, label = reference_workspace(params["reference_dir"] or None, planner.label)
    print_cell_reports(console, planner.bench, cells, workspace, reference=reference, reference_label=label)


def _forced(stages: list[Stage], names: tuple[str, ...]) -> set[str]:
    keys: set[str] = set()
    for name in names:
        matches = [stage for stage in stages if stage.name == name or stage.name.startswith(name)]
        if not matches:
            from disco.names import did_you_mean

            raise UserError(f"--force {name}: no such stage in this plan{did_you_mean(name, [s.name for s in stages])}")
        keys |= {stage.key for stage in matches}
    return keys


def _invalidate(stage: Stage, workspace: Workspace) -> None:
    """--force: the old result is moved aside (never deleted) and training restarts from scratch."""
    result = workspace.result_path(stage.profile, stage.name)
    if result.exists():
        result.rename(result.with_suffix(".json.forced"))
    stage_dir = workspace.stage_dir(stage.name, stage.key)
    for name in ("checkpoint.pt", "checkpoint.json"):  # the checkpoint and its progress file
        path = stage_dir / name
        if path.exists():
            path.rename(path.with_name(name + ".forced"))


@cli.command("run-stage")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--artifacts", "artifacts_dir", type=click.Path(path_type=Path), default=Path("artifacts"))
@click.option("--results", "results_dir", type=click.Path(path_type=Path), default=RUNS_DIR)
@click.option("--executor-name", default="local", hidden=True)
def run_stage(spec: Path, artifacts_dir: Path, results_dir: Path, executor_name: str) -> None:
    """Run one stage from its spec file (what every executor runs)."""
    from harness.progress import EpochLines
    from harness.runner import load_spec, run_stage_from_spec

    workspace = Workspace(artifacts_dir, results_dir)
    workspace.ensure_writable()
    lines = EpochLines(load_spec(spec)["name"], lambda line: click.echo(line, err=True))  # container and job logs
    result = run_stage_from_spec(spec, workspace, lines, executor=executor_name)
    click.echo(f"{result['stage']['name']}: done ({result['provenance']['wall_time_s']:.1f} s)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun rank, its group destroyed and the result written: leave without interpreter
        # finalization, where gloo's worker threads can still release tensors and abort the process
        # ("terminate called without an active exception", SIGABRT; pytorch/pytorch#179291).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
