"""Run one stage from its spec file: lock, skip if already done, execute, write the result
atomically with full provenance. This is what every executor ends up calling."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from harness.errors import UserError
from harness.provenance import git_state, hardware, package_versions
from harness.results import Provenance, StageRef, StageResult, load_result
from harness.workspace import Workspace, atomic_write_json, read_json

LOCK_POLL_S = 5.0


def resolve_device(requested: str) -> torch.device:
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{requested}' requested but CUDA is not available here; use --device cpu or run on a GPU host")
    return torch.device(requested)


def load_spec(spec_path: Path) -> dict[str, Any]:
    spec = read_json(spec_path)
    if not isinstance(spec, dict) or "kind" not in spec:
        raise UserError(f"{spec_path}: not a stage spec (missing or invalid JSON); rerun `disco-bench run` to regenerate it")
    return spec


def run_stage_from_spec(spec_path: Path, workspace: Workspace, progress=None, executor: str = "local", wait_for_lock: bool = True) -> dict[str, Any]:
    """Run the stage described by `spec_path` unless a result with its key exists. Concurrent
    invocations of the same stage serialise on a lock file: the second waits, then reuses."""
    spec = load_spec(Path(spec_path))
    stage_dir = workspace.artifacts / spec["stage_dir"]
    result_path = workspace.results / spec["result"]
    stage_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(stage_dir / ".lock"))
    acquired = False
    while not acquired:
        try:
            lock.acquire(timeout=LOCK_POLL_S if wait_for_lock else 0)
            acquired = True
        except Timeout:
            if not wait_for_lock:
                raise UserError(f"stage {spec['name']} is being run by another process (lock {stage_dir / '.lock'})") from None
            if progress:
                progress("waiting", 0, 0)
    try:
        existing = load_result(result_path)
        if existing and existing.stage.key == spec["key"]:
            return existing.model_dump()
        return _execute(spec, stage_dir, result_path, workspace, progress, executor)
    finally:
        lock.release()


def _execute(spec: dict[str, Any], stage_dir: Path, result_path: Path, workspace: Workspace, progress, executor: str) -> dict[str, Any]:
    from harness.stage_tasks import TASKS

    runtime = spec.get("runtime", {})
    device = resolve_device(runtime.get("device", "cpu"))
    inputs = {role: workspace.artifacts / ref["stage_dir"] for role, ref in spec["inputs"].items()}
    for role, path in inputs.items():
        if not (path / "final.pt").exists():
            raise UserError(f"stage {spec['name']}: input '{role}' ({spec['inputs'][role]['name']}) has no checkpoint at {path}; run its stage first")
    started_at, started = _now(), time.perf_counter()
    metrics, history, artifacts = TASKS[spec["kind"]](spec["config"], inputs, stage_dir, runtime, device, progress)
    result = StageResult(
        stage=StageRef(name=spec["name"], kind=spec["kind"], key=spec["key"], profile=spec["profile"]),
        config=spec["config"],
        config_hash=hashlib.sha256(json.dumps(spec["config"], sort_keys=True).encode()).hexdigest(),
        inputs={role: {"name": ref["name"], "key": ref["key"]} for role, ref in spec["inputs"].items()},
        metrics=metrics,
        history=history,
        artifacts={name: str(Path(spec["stage_dir"]) / rel) for name, rel in artifacts.items()},
        provenance=Provenance(
            git=git_state(), packages=package_versions(), hardware=hardware(str(device)), seed=spec["config"].get("seed", 0),
            wall_time_s=round(time.perf_counter() - started, 3), started_at=started_at, finished_at=_now(), executor=executor,
        ),
    )
    payload = result.model_dump()
    atomic_write_json(result_path, payload)
    return payload


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
