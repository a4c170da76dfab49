"""Collecting stored stage results for a report: the headline metric per evaluation, the results of
every role and seed, and which pairs, seeds, evaluations and methods have any."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disco.evals import EVALUATIONS
from harness.config import Benchmarks
from harness.matrix import CellPlan, Planner, split_role
from harness.report.roles import cell_roles
from harness.report.stats import Stat
from harness.report.verdicts import (
    NOT_AVAILABLE,
    PENDING,
)
from harness.stages import DONE, STALE, Stage
from harness.workspace import Workspace, read_json

# The headline of an evaluation the registry does not know (a result from another version)
FALLBACK_METRICS = ("top1", "AP", "map", "ap", "accuracy")


BOOKKEEPING_METRICS = {"num_train", "num_test", "epochs"}


@dataclass(frozen=True)
class Stored:
    status: str  # "done" | "stale" (stored under another key: config or code changed) | "pending" | "n/a"
    metrics: dict[str, Any] = field(default_factory=dict)


def stored(workspace: Workspace | None, stage: Stage) -> Stored:
    """A stage's metrics where its result has its key: a damaged checkpoint does not change the
    numbers measured on it (committed results come without their checkpoints)."""
    found = stage.stored(workspace) if workspace else None
    if found is None or found.result is None:
        return Stored(PENDING)
    if found.state == STALE:
        return Stored(STALE)
    return Stored(DONE, found.result.metrics)


def headline_metric(evaluation: str, metrics: list[dict[str, Any]]) -> str:
    """The registry's headline metric of `evaluation` (disco/evals/__init__.py), the first of its
    names these results hold; for an evaluation the registry does not know, a common one."""
    preferred = EVALUATIONS[evaluation].headline if evaluation in EVALUATIONS else ()
    candidates = [*preferred, *FALLBACK_METRICS]
    for name in candidates:
        if any(is_value(m.get(name)) for m in metrics):
            return name
    for m in metrics:
        for name, value in m.items():
            if is_value(value) and name not in BOOKKEEPING_METRICS:
                return name
    return candidates[0]


def beside_metric(evaluation: str, metric: str, metrics: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(metric, column header) the registry shows beside the headline, when it is the registry's first
    choice and these results hold the beside metric."""
    known = EVALUATIONS.get(evaluation)
    beside = known.beside if known and metric == known.metric else None
    return beside if beside and any(is_value(m.get(beside[0])) for m in metrics) else None


def is_value(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def seed_status(states: list[str]) -> str:
    if states and all(state == NOT_AVAILABLE for state in states):
        return NOT_AVAILABLE
    done = states.count("done")
    if done == len(states):
        return "done"
    if done:
        return f"{done}/{len(states)} seeds"
    return "stale" if "stale" in states else PENDING


def metric_stat(stored_runs: list[Stored], metric: str | None) -> Stat | None:
    values = tuple(
        float(run.metrics[metric])
        for run in stored_runs
        if metric and run.status == "done" and is_value(run.metrics.get(metric))
    )
    return Stat(values) if values else None


def gain_stat(disco: list[Stored], baseline: list[Stored], metric: str) -> Stat | None:
    """Paired by seed: DisCo and the baseline of the same seed."""
    values = tuple(
        float(d.metrics[metric]) - float(b.metrics[metric])
        for d, b in zip(disco, baseline)
        if d.status == b.status == "done" and is_value(d.metrics.get(metric)) and is_value(b.metrics.get(metric))
    )
    return Stat(values) if values else None


def gain_status(disco: list[Stored], baseline: list[Stored]) -> str:
    both = [
        "done" if d.status == b.status == "done" else ("stale" if "stale" in (d.status, b.status) else PENDING)
        for d, b in zip(disco, baseline)
    ]
    return seed_status(both)


@dataclass(frozen=True)
class Runs:
    """An evaluation's stored results per role (one per seed), in this run and in the reference run."""

    current: dict[str, list[Stored]]
    reference: dict[str, list[Stored]]


def collect(cells: list[CellPlan], evaluation: str, workspace: Workspace, reference: Workspace | None) -> Runs:
    # an evaluation that does not run on a role's encoder (evaluations.<name>.archs) has no stage: n/a
    roles = cell_roles(cells)

    def runs(where: Workspace | None) -> dict[str, list[Stored]]:
        return {
            role: [
                stored(where, cell.evals[(role, evaluation)])
                if (role, evaluation) in cell.evals
                else Stored(NOT_AVAILABLE)
                for cell in cells
            ]
            for role in roles
        }

    return Runs(runs(workspace), runs(reference))


def stored_index(workspace: Workspace, profile: str) -> dict[str, int]:
    """Stage name -> seed of every stored result of a profile, as the results record them."""
    folder = workspace.result_path(profile, "-").parent
    if not folder.is_dir():
        return {}
    return _index(folder, folder.stat().st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _index(folder: Path, _mtime_ns: int) -> dict[str, int]:  # re-read when a result is added or replaced
    index = {}
    for path in folder.iterdir():
        raw = read_json(path) if path.suffix == ".json" else None
        stage, provenance = (raw.get("stage"), raw.get("provenance")) if isinstance(raw, dict) else (None, None)
        if isinstance(stage, dict) and isinstance(provenance, dict) and isinstance(provenance.get("seed"), int):
            index[str(stage.get("name"))] = provenance["seed"]
    return index


def stored_seeds(workspace: Workspace, plan_at: Callable[[int], Stage]) -> set[int]:
    """The seeds at which the stage graph's stage (`plan_at(seed)`) has a stored result: each seed a
    stored result records, kept where the stage planned at that seed is the one stored."""
    index = stored_index(workspace, plan_at(0).profile)
    return {seed for seed in set(index.values()) if plan_at(seed).name in index}


@dataclass(frozen=True)
class Evidence:
    """What has stored results for a pair's method students (the stages unique to the pair)."""

    seeds: set[int] = field(default_factory=set)
    evaluations: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    def merged(self, other: Evidence) -> Evidence:
        return Evidence(
            self.seeds | other.seeds,
            list(dict.fromkeys([*self.evaluations, *other.evaluations])),
            list(dict.fromkeys([*self.methods, *other.methods])),
        )


def pair_evidence(planner: Planner, pair: str, workspace: Workspace) -> Evidence:
    spec = planner.bench.pairs[pair]
    seeds: set[int] = set()
    evaluations: list[str] = []
    methods: list[str] = []
    composable = planner.composable_methods()
    swept = [role for sweep in planner.bench.sweeps for role in planner.sweep_roles(sweep)]
    for method in [*composable, *(role for role in swept if split_role(role)[0] in composable)]:

        def student(seed: int, method: str = method) -> Stage:
            return planner.distill(method, spec.teacher, spec.student, seed)

        found = stored_seeds(workspace, student)
        for evaluation in planner.runnable_evaluations():

            def evaluated_at(seed: int, evaluation: str = evaluation) -> Stage:
                return planner.evaluation(evaluation, student(seed), seed)

            evaluated = stored_seeds(workspace, evaluated_at)
            if evaluated:
                found |= evaluated
                evaluations.append(evaluation)
        if found:
            seeds |= found
            methods.append(method)
    return Evidence(seeds, list(dict.fromkeys(evaluations)), methods)


def profile_cells(
    planner: Planner,
    workspace: Workspace,
    pairs: list[str] | None = None,
    all_pairs: bool = False,
    also: Workspace | None = None,
    methods: list[str] | None = None,
) -> list[CellPlan]:
    """The cells a profile report covers: the named pairs, or every pair, or the default pairs plus
    every pair with stored results (in `workspace` or `also`, the reference run); each at every
    stored seed, with its evaluations and methods (`methods`, or the default ones) plus any stored one."""
    bench = planner.bench
    evidence = {
        pair: pair_evidence(planner, pair, workspace).merged(pair_evidence(planner, pair, also) if also else Evidence())
        for pair in bench.pairs
    }
    if pairs:
        chosen = list(dict.fromkeys(pairs))
    elif all_pairs:
        chosen = list(bench.pairs)
    else:
        chosen = [p for p in bench.pairs if p in bench.default_pairs or evidence[p].seeds]
    cells = []
    for pair in chosen:
        planner.cell(pair)  # a misspelled --pair: one error line with "did you mean"
        found = evidence[pair]
        evaluations = list(dict.fromkeys([*(bench.pairs[pair].evals or planner.profile.evals), *found.evaluations]))
        chosen_methods = list(dict.fromkeys([*planner.methods(methods), *found.methods]))
        cells += [planner.cell(pair, seed, evaluations, chosen_methods) for seed in sorted(found.seeds | {0})]
    return cells


def planner_for_label(bench: Benchmarks, label: str) -> Planner:
    smoke = label.endswith("-smoke") and label.removesuffix("-smoke") in bench.profiles
    return Planner(bench, label.removesuffix("-smoke") if smoke else label, smoke=smoke)
