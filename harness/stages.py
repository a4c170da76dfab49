"""Stages: the unit of work. A stage's key hashes its resolved config, its inputs' keys and the
code version of its kind, so identical stages are shared between cells and a changed recipe value
invalidates exactly the stages that depend on it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.workspace import Workspace, atomic_write_json, read_json

# Bump a kind's version when its computation changes in a way that invalidates stored results.
# pretrain/distill 2: batched on-device augmentation in the optimized mode (a different random stream).
CODE_VERSIONS: dict[str, str] = {"pretrain": "2", "distill": "2", "init": "1", "import": "1", "eval": "1"}


def canonical_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Stage:
    name: str  # states its conditions, e.g. "pretrain-mocov2-r50-tiny-s0"
    kind: str  # "pretrain" | "distill" | "init" | "eval"
    profile: str
    config: dict[str, Any] = field(hash=False)
    inputs: dict[str, "Stage"] = field(default_factory=dict, hash=False)
    runtime: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # device, data root: not hashed

    @property
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
        atomic_write_json(path, self.spec(workspace))
        return path

    def is_done(self, workspace: Workspace) -> bool:
        result = read_json(workspace.result_path(self.profile, self.name))
        return bool(result) and result.get("stage", {}).get("key") == self.key and result.get("status") == "done"


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
