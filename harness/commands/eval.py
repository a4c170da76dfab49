"""`disco-bench eval`: evaluate a checkpoint (official MoCo-v2 / DisCo / SwAV-family releases or
ours) without retraining. Loading is strict: a silently random backbone is impossible."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import yaml
from rich.console import Console
from rich.table import Table

from disco.damaged import remove_leftover_temps
from disco.eval_recipes import recipe_problems
from disco.evals import recipe_class
from harness.cli import cli
from harness.config import DEFAULT_FILE, load_benchmarks
from harness.errors import UserError
from harness.matrix import Planner
from harness.provenance import git_state, hardware, package_versions
from harness.results import Provenance, StageRef, StageResult
from harness.stages import canonical_hash
from harness.tables import print_table
from harness.workspace import RUNS_DIR, Workspace, atomic_write_json


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cli.command("eval")
@click.option(
    "--checkpoint",
    "checkpoint_path",
    required=True,
    type=click.Path(path_type=Path),
    help="A checkpoint file (official layouts or ours).",
)
@click.option(
    "--arch", default=None, help="Architecture (effb0, r18, r50, r50w2, ...); default: what the checkpoint records."
)
@click.option("--evals", default="linear", show_default=True, help="Comma-separated evaluations.")
@click.option("--profile", default="tiny", show_default=True, help="Which profile's data and recipes to use.")
@click.option(
    "--recipe",
    "recipe_items",
    multiple=True,
    metavar="EVAL.FIELD=VALUE",
    help="Override one field of an evaluation's recipe, e.g. knn.k=20 (repeatable; checked like benchmarks.yaml).",
)
@click.option("--smoke", is_flag=True, help="Synthetic data, a couple of steps.")
@click.option("--device", default=None, help="Override the profile's device.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--results", "results_dir", type=click.Path(path_type=Path), default=RUNS_DIR, show_default=True)
@click.option(
    "--benchmarks", "benchmarks_file", type=click.Path(path_type=Path), default=DEFAULT_FILE, show_default=True
)
def evaluate(
    checkpoint_path: Path,
    arch: str | None,
    evals: str,
    profile: str,
    recipe_items: tuple[str, ...],
    smoke: bool,
    device: str | None,
    seed: int,
    results_dir: Path,
    benchmarks_file: Path,
) -> None:
    """Load a checkpoint strictly and run evaluations on it; one result JSON per evaluation."""
    from disco.checkpoints import load_encoder
    from disco.tasks.evaluation import evaluate_encoder
    from disco.tasks.inputs import eval_input, runtime_of
    from harness.runner import resolve_device, threads

    if not checkpoint_path.is_file():
        raise UserError(f"checkpoint '{checkpoint_path}' not found; pass the path of a .pth/.pth.tar/.pt file")
    planner = Planner(load_benchmarks(benchmarks_file), profile, smoke=smoke, device=device)
    configs = [planner.eval_config(name.strip(), seed) for name in evals.split(",")]  # validates names first
    override_recipes(configs, recipe_items)
    workspace = Workspace(Path("artifacts"), results_dir)
    encoder, report = load_encoder(checkpoint_path, arch, with_head=False, image_size=planner.profile.data.image_size)
    console = Console()
    console.print(report.summary())
    torch_device = resolve_device(planner.runtime["device"])
    checksum = file_sha256(checkpoint_path)
    table = Table(title=f"{checkpoint_path.name} · {report.arch} · profile {planner.label}")
    for column in ("evaluation", "metric", "value", "beside it", "result file"):
        table.add_column(column)
    for config in configs:
        started_at, started = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()
        with threads(planner.runtime.get("threads")):
            metrics = evaluate_encoder(encoder, eval_input(config), runtime_of(planner.runtime), torch_device)
        name = f"eval-{config['evaluation']}-{checkpoint_path.name.split('.')[0]}-{planner.label}-s{seed}"
        result = StageResult(
            stage=StageRef(name=name, kind="eval", key=checksum, profile=planner.label),
            config=config,
            config_hash=canonical_hash(config),
            inputs={"checkpoint": {"name": str(checkpoint_path), "key": checksum}},
            metrics=metrics | {"load_report": report.summary()},
            provenance=Provenance(
                git=git_state(),
                packages=package_versions(),
                hardware=hardware(str(torch_device)),
                seed=seed,
                wall_time_s=round(time.perf_counter() - started, 3),
                started_at=started_at,
                finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                executor="eval",
            ),
        )
        path = workspace.results / planner.label / "checkpoints" / f"{name}.json"
        if path.parent.is_dir():
            remove_leftover_temps(path.parent, [path.name], only_dead_writers=True)  # of a killed `eval`
        atomic_write_json(path, result.model_dump())
        table.add_row(config["evaluation"], *headline_cells(config["evaluation"], metrics), str(path))
    print_table(console, table)


def override_recipes(configs: list[dict], items: tuple[str, ...]) -> None:
    """Apply --recipe EVAL.FIELD=VALUE (VALUE read as YAML: 20, 0.1, true, [1, 2]) to the evaluations'
    recipes, then check each recipe against its dataclass before any checkpoint is loaded."""
    by_name = {config["evaluation"]: config for config in configs}
    for item in items:
        target, sep, value = item.partition("=")
        evaluation, dot, name = target.strip().partition(".")
        if not (sep and dot and name):
            raise UserError(f"--recipe '{item}': expected EVAL.FIELD=VALUE, e.g. knn.k=20")
        if evaluation not in by_name:
            raise UserError(f"--recipe '{item}': '{evaluation}' is not among --evals ({', '.join(by_name)})")
        try:
            by_name[evaluation]["recipe"][name] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(
                f"--recipe '{item}': the value is not valid YAML; quote strings, e.g. {target}=text"
            ) from None
    for evaluation, config in by_name.items():
        problems = recipe_problems(recipe_class(evaluation), config["recipe"])
        if problems:
            field, message = problems[0]
            raise UserError(f"--recipe {evaluation}{f'.{field}' if field else ''}: {message}")


def headline_cells(evaluation: str, metrics: dict) -> tuple[str, str, str]:
    """The report's headline (the registry's: the official best epoch for probes) and what the report shows beside it."""
    from harness.report import beside_metric, headline_metric

    metric = headline_metric(evaluation, [metrics])
    value = metrics.get(metric)
    beside_name, beside_label = beside_metric(evaluation, metric, [metrics]) or (None, "")
    beside = metrics.get(beside_name) if beside_name else None
    label = f"{metric} (best epoch)" if metric == "top1_best" else metric
    return (
        label,
        "n/a" if not isinstance(value, (int, float)) else f"{value:.2f}",
        "" if not isinstance(beside, (int, float)) else f"{beside_label} {beside:.2f}",
    )
