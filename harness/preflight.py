"""Before anything trains: does every pending stage find its data, and every imported teacher its
released file? One line per evaluation (one for training, one per teacher) naming what is missing
and the environment variable or option that points at it, so a missing CIFAR or VOC shows up now,
not after the teacher has trained for days."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from disco.errors import DataUnavailable
from disco.methods.registry import method_label
from harness.errors import UserError
from harness.matrix import Planner
from harness.stages import Stage

TRAINING = "training"
SEMI_PERCENT = {"semi_linear_1pct": 1, "semi_finetune_1pct": 1, "semi_linear_10pct": 10, "semi_finetune_10pct": 10}
CIFAR = {"transfer_cifar10": "cifar10", "transfer_cifar100": "cifar100"}
DETECTRON2_BENCHMARK = {"detection_voc": "voc", "detection_coco": "coco"}


class PreflightFailed(UserError):
    """Several one-line problems, one per evaluation; each is printed on its own line. Missing data:
    DataUnavailable's exit code."""

    exit_code = DataUnavailable.exit_code

    def __init__(self, lines: list[str]):
        super().__init__(" | ".join(lines))
        self.lines = lines

    def show(self, file: IO[Any] | None = None) -> None:
        import click

        for line in self.lines:
            click.echo(f"error: {line}", err=True, file=file)
        click.echo(
            f"error: {len(self.lines)} stage group(s) cannot find their data or released checkpoints; nothing was run (fix the above, or choose evaluations with --evals)",
            err=True,
            file=file,
        )


@dataclass
class Findings:
    problems: dict[str, list[str]] = field(default_factory=dict)  # label -> what is missing
    notes: list[str] = field(default_factory=list)

    def add(self, label: str, message: str | None) -> None:
        if message and message not in self.problems.setdefault(label, []):
            self.problems[label].append(message)

    def lines(self) -> list[str]:
        return [f"{label}: " + "; ".join(messages) for label, messages in self.problems.items() if messages]


def check(planner: Planner, pending: list[Stage], executor: str = "local", fetch: bool = False) -> Findings:
    """Check the data of every pending stage. fetch: download SimCLR's subset lists into the cache
    now (a real run); without it (dry run) a list that is not cached yet is only a note."""
    findings = Findings()
    for stage in pending:
        if stage.kind == "import":  # a released teacher: is its file where the profile says?
            findings.add(f"teacher {stage.runtime['teacher']}", release_problem(planner, stage))
        elif stage.kind in ("pretrain", "distill"):
            findings.add(TRAINING, imagenet_problem(planner, stage.config["data"]))
        elif stage.kind == "eval":
            check_evaluation(planner, stage.config, executor, fetch, findings)
    return findings


def check_evaluation(planner: Planner, config: dict[str, Any], executor: str, fetch: bool, findings: Findings) -> None:
    name, recipe, data = config["evaluation"], config["recipe"], config["data"]
    if recipe.get("backend") == "detectron2" or name in DETECTRON2_BENCHMARK:
        findings.add(name, detectron2_problem(name, recipe, executor))
        return
    if name in CIFAR:
        findings.add(name, None if data.get("smoke") else cifar_problem(name, CIFAR[name], recipe))
        return
    findings.add(name, imagenet_problem(planner, data))
    if name in SEMI_PERCENT and uses_imagenet(data):
        findings.add(name, subset_list_problem(name, SEMI_PERCENT[name], recipe, fetch, findings.notes))


def uses_imagenet(data: dict[str, Any]) -> bool:
    return data.get("source") == "imagenet" and not data.get("smoke")


def release_problem(planner: Planner, stage: Stage) -> str | None:
    """An import stage's released file, when missing: which file goes where, the variable that moves
    it, and whether --pretrain-teachers can stand in."""
    teacher_name, path = stage.runtime["teacher"], stage.runtime["checkpoint"]
    if os.path.isfile(path):
        return None
    entry = planner.profile.teacher_checkpoints.get(teacher_name) or ""
    variable = re.match(r"\$\{(\w+)", entry)
    where = f"profiles.{planner.profile_name}.teacher_checkpoints.{teacher_name}"
    move = f"set {variable.group(1)} to its path ({where})" if variable else f"point {where} at it"
    teacher = planner.bench.teachers[teacher_name]
    if teacher.release_only:
        fallback = "no method here trains this teacher, so --pretrain-teachers does not apply"
    else:
        method, epochs = teacher.pretrain or planner.base_method, planner.teacher_epochs(teacher_name)
        fallback = f"or pass --pretrain-teachers to pretrain it here ({method_label(method)}, {epochs} epochs)"
    file = os.path.basename(path)
    return f"released checkpoint {file} not found at {path}: download {file} there or {move}; {fallback}"


def imagenet_problem(planner: Planner, data: dict[str, Any]) -> str | None:
    if not uses_imagenet(data):
        return None
    from disco.data.real import DatasetError, imagenet_split_dir

    root = planner.runtime["data_root"] or ""
    fix = f"set profiles.{planner.profile_name}.data.root ({planner.profile.data.root}) to the folder holding train/ and val/"
    missing = [split for split in ("train", "val") if not (Path(root) / split).is_dir()]
    if missing:
        return f"ImageNet not found: {' and '.join(str(Path(root) / split) for split in missing)} missing; {fix}"
    try:
        for split in ("train", "val"):
            imagenet_split_dir(root, split)
    except DatasetError as exc:
        return f"{exc}; {fix}"
    return None


def cifar_problem(name: str, dataset: str, recipe: dict[str, Any]) -> str | None:
    from disco.data.real import CIFAR_FOLDERS

    root = recipe.get("root") or os.environ.get("DISCO_CIFAR")
    folder = CIFAR_FOLDERS[dataset]
    if not root:
        return f"{dataset} needs its folder: set DISCO_CIFAR (or eval_recipes.{name}.root) to the directory holding {folder}/"
    if not (Path(root) / folder).is_dir():
        return f"{dataset} not found: {Path(root) / folder} does not exist; point DISCO_CIFAR (or eval_recipes.{name}.root) at the directory holding {folder}/"
    return None


def detectron2_problem(name: str, recipe: dict[str, Any], executor: str) -> str | None:
    benchmark = recipe.get("benchmark", DETECTRON2_BENCHMARK.get(name, "voc"))
    expected = {"voc": "VOC2007/ and VOC2012/", "coco": "coco/"}.get(benchmark, f"the {benchmark} folders")
    root = recipe.get("datasets_root") or os.environ.get("DETECTRON2_DATASETS")
    problems: list[str | None] = []
    if not root:
        problems.append(
            f"set DETECTRON2_DATASETS (or eval_recipes.{name}.datasets_root) to the folder holding {expected}"
        )
    else:
        problems.append(detection_layout_problem(benchmark, root))
    if executor == "local" and importlib.util.find_spec("detectron2") is None:
        problems.append(
            "detectron2 is not installed here: run in the CUDA image (`disco-bench build`, then --executor docker or slurm)"
        )
    return "; ".join(problem for problem in problems if problem) or None


def detection_layout_problem(benchmark: str, root: str) -> str | None:
    from disco.data.real import DatasetError, coco_layout, voc_layout

    layouts: dict[str, Callable[[str], Any]] = {"voc": voc_layout, "coco": coco_layout}
    try:
        layouts.get(benchmark, lambda _: None)(root)
    except DatasetError as exc:
        return f"{exc} (DETECTRON2_DATASETS={root})"
    return None


def subset_list_problem(name: str, percent: int, recipe: dict[str, Any], fetch: bool, notes: list[str]) -> str | None:
    from disco.data.real import DatasetError, default_cache_dir, fetch_subset_list

    given = recipe.get("subset_list")
    if given:
        return (
            None
            if Path(given).is_file()
            else f"subset list not found: {given} (eval_recipes.{name}.subset_list); download SimCLR's {percent}percent.txt there"
        )
    cached = default_cache_dir() / f"{percent}percent.txt"
    if cached.is_file():
        return None
    if not fetch:
        notes.append(
            f"{name}: SimCLR's {percent}percent.txt is not cached yet; `run` fetches it into {cached.parent} before training"
        )
        return None
    try:
        fetch_subset_list(percent)
    except DatasetError as exc:
        return f"{exc}; or set eval_recipes.{name}.subset_list"
    return None


def preflight(planner: Planner, pending: list[Stage], executor: str, fetch: bool) -> list[str]:
    """Raise PreflightFailed with one line per evaluation whose data is missing; return the notes."""
    findings = check(planner, pending, executor, fetch)
    lines = findings.lines()
    if lines:
        raise PreflightFailed(lines)
    return findings.notes
