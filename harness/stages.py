"""Stages: the unit of work. A stage's key hashes its resolved config, its inputs' keys and the
code version of its kind, so identical stages are shared between cells and a changed recipe value
invalidates exactly the stages that depend on it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator, model_validator

from disco.damaged import is_damaged, remove_leftover_temps
from disco.eval_recipes import recipe_problems
from disco.evals import EVALUATIONS
from harness.results import StageResult, load_result
from harness.workspace import Workspace, atomic_write_json, ensure_directory

# Bump a kind's version when its computation changes in a way that invalidates stored results.
# pretrain/distill 2: batched on-device augmentation in the optimized mode (a different random stream).
CODE_VERSIONS: dict[str, str] = {"pretrain": "2", "distill": "2", "init": "1", "import": "1", "eval": "1"}


def canonical_hash(payload: Any) -> str:
    """The one hash of the harness: stage keys and every result's config_hash (sha256 of canonical JSON)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


DIVERGED_FILE = "diverged.json"  # in a stage dir: its training stopped on a non-finite loss (why)
DONE, DAMAGED, STALE, PENDING = "done", "damaged", "stale", "pending"


@dataclass(frozen=True)
class StoredResult:
    """What is stored for a stage: DONE (a result for its key, its checkpoints intact), DAMAGED (such a
    result, but a checkpoint it lists is torn or moved aside: the stage must run again), STALE (a
    result for another key: its config or code changed) or PENDING (no readable result)."""

    state: str
    result: StageResult | None = None
    damaged: tuple[Path, ...] = ()

    @property
    def done(self) -> bool:
        return self.state == DONE


def stored_result(result_path: Path, key: str, workspace: Workspace) -> StoredResult:
    """The one decision whether a stage is done, for the runner, `status`, `run`'s plan and the report."""
    result = load_result(result_path)
    if result is None:
        return StoredResult(PENDING)
    if result.stage.key != key:
        return StoredResult(STALE, result)
    damaged = tuple(damaged_artifacts(result.artifacts, workspace))
    return StoredResult(DAMAGED if damaged else DONE, result, damaged)


@dataclass(frozen=True)
class Stage:
    name: str  # states its conditions, e.g. "pretrain-mocov2-r50-tiny-s0"
    kind: str  # "pretrain" | "distill" | "init" | "eval"
    profile: str
    config: dict[str, Any] = field(hash=False)
    inputs: dict[str, Stage] = field(default_factory=dict, hash=False)
    runtime: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # device, data root: not hashed

    @cached_property  # a plan of thousands of stages would rehash every input chain on each access
    def key(self) -> str:
        return canonical_hash(
            {
                "kind": self.kind,
                "code_version": CODE_VERSIONS[self.kind],
                "config": self.config,
                "inputs": {role: stage.key for role, stage in sorted(self.inputs.items())},
            }
        )

    def spec(self, workspace: Workspace) -> dict[str, Any]:
        """Everything `disco-bench run-stage` needs, with paths relative to the workspace roots,
        so the same spec runs on the host, in a container or on a Slurm node."""
        root = workspace.artifacts
        return {
            "name": self.name,
            "kind": self.kind,
            "profile": self.profile,
            "key": self.key,
            "config": self.config,
            "runtime": self.runtime,
            "stage_dir": str(workspace.stage_dir(self.name, self.key).relative_to(root)),
            "result": str(workspace.result_path(self.profile, self.name).relative_to(workspace.results)),
            "inputs": {
                role: {
                    "name": stage.name,
                    "key": stage.key,
                    "stage_dir": str(workspace.stage_dir(stage.name, stage.key).relative_to(root)),
                }
                for role, stage in self.inputs.items()
            },
        }

    def spec_path(self, workspace: Workspace) -> Path:
        return workspace.stage_dir(self.name, self.key) / "spec.json"

    def write_spec(self, workspace: Workspace) -> Path:
        path = self.spec_path(workspace)
        ensure_directory(path.parent)
        remove_leftover_temps(path.parent, [path.name], only_dead_writers=True)  # from a run killed writing it
        atomic_write_json(path, self.spec(workspace))
        return path

    def stored(self, workspace: Workspace) -> StoredResult:
        return stored_result(workspace.result_path(self.profile, self.name), self.key, workspace)

    def is_done(self, workspace: Workspace) -> bool:
        """A valid result for this key whose checkpoints are not damaged (a torn final.pt makes the stage pending)."""
        return self.stored(workspace).done


def damaged_artifacts(artifacts: dict[str, str], workspace: Workspace) -> list[Path]:
    """The result's artifact files that are torn or were moved aside (a missing one is not damaged:
    committed results come without their checkpoints)."""
    return [path for path in (workspace.artifacts / relative for relative in artifacts.values()) if is_damaged(path)]


def _relative(path: str) -> str:
    if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
        raise ValueError(f"'{path}' must be relative to the workspace roots, without '..'")
    return path


InWorkspace = Annotated[str, AfterValidator(_relative)]


class InputRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    key: str
    stage_dir: InWorkspace


class StageSpec(BaseModel):
    """The executor contract: what `disco-bench run-stage SPEC` reads (written by Stage.spec)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    kind: str
    profile: str
    key: str
    config: dict[str, Any]
    runtime: dict[str, Any] = {}
    stage_dir: InWorkspace
    result: InWorkspace
    inputs: dict[str, InputRef] = {}

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in CODE_VERSIONS:
            raise ValueError(f"unknown stage kind '{kind}'; expected one of {', '.join(CODE_VERSIONS)}")
        return kind

    @model_validator(mode="after")
    def _runnable_evaluation(self) -> StageSpec:
        """An eval stage's evaluation, recipe and encoder, checked before anything is loaded."""
        problems = eval_spec_problems(self.config, self.inputs) if self.kind == "eval" else []
        if problems:
            raise ValueError(problems[0])
        return self


def eval_spec_problems(config: dict[str, Any], inputs: dict[str, InputRef]) -> list[str]:
    evaluation = config.get("evaluation")
    if evaluation not in EVALUATIONS:
        return [f"config.evaluation: unknown evaluation '{evaluation}'; implemented: {', '.join(EVALUATIONS)}"]
    problems = [
        f"config.recipe{f'.{field}' if field else ''}: {message}"
        for field, message in recipe_problems(EVALUATIONS[evaluation].recipe, config.get("recipe") or {})
    ]
    return problems + ([] if "encoder" in inputs else ["inputs.encoder: an eval stage needs the encoder it evaluates"])


def topological(stages: list[Stage]) -> list[Stage]:
    """Unique stages, each after its inputs."""
    ordered: dict[str, Stage] = {}

    def visit(stage: Stage) -> None:
        if stage.key in ordered:
            return
        for dep in stage.inputs.values():
            visit(dep)
        ordered[stage.key] = stage

    for stage in stages:
        visit(stage)
    return list(ordered.values())
