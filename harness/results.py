"""The one typed schema of a stage result file (results/<profile>/stages/<stage>.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from harness.workspace import read_json

RESULT_SCHEMA_VERSION = 1


class StageRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    kind: str
    key: str
    profile: str


class Provenance(BaseModel):
    model_config = ConfigDict(extra="allow")
    git: dict[str, Any]
    packages: dict[str, str | None]
    hardware: dict[str, Any]
    seed: int
    wall_time_s: float
    started_at: str
    finished_at: str
    executor: str | None = None
    runtime: dict[str, Any] = {}  # device, speed mode, threads: how it ran, not what it computed


class StageResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int = RESULT_SCHEMA_VERSION
    status: Literal["done"] = "done"
    stage: StageRef
    config: dict[str, Any]
    config_hash: str
    inputs: dict[str, dict[str, str]]
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = []
    artifacts: dict[str, str] = {}
    provenance: Provenance


def load_result(path: Path) -> StageResult | None:
    raw = read_json(path)
    if raw is None:
        return None
    try:
        return StageResult.model_validate(raw)
    except ValueError:
        return None
