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

from disco import distributed
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
    invocations of the same stage serialise on a lock file: the second waits, then reuses.
    Under torchrun (WORLD_SIZE > 1) every rank calls this: see `_run_ranked`."""
    spec = load_spec(Path(spec_path))
    stage_dir = workspace.artifacts / spec["stage_dir"]
    result_path = workspace.results / spec["result"]
    stage_dir.mkdir(parents=True, exist_ok=True)
    if distributed.env_world_size() > 1:
        return _run_ranked(spec, stage_dir, result_path, workspace, progress, executor, wait_for_lock)
    lock = FileLock(str(stage_dir / ".lock"))
    while not _try_lock(lock, wait_for_lock, spec, stage_dir):
        if progress:
            progress("waiting", 0, 0)
    try:
        return _existing(spec, result_path) or _execute(spec, stage_dir, result_path, workspace, progress, executor)
    finally:
        lock.release()


def _run_ranked(spec: dict[str, Any], stage_dir: Path, result_path: Path, workspace: Workspace, progress, executor: str, wait_for_lock: bool) -> dict[str, Any]:
    """One rank of a torchrun stage. Rank 0 alone holds the stage lock (a second rank waiting on it
    would deadlock the first's collectives), decides skip-or-run for all, and alone writes the
    result; the others train alongside, then return rank 0's result."""
    with distributed.session(resolve_device(spec.get("runtime", {}).get("device", "cpu"))) as device:
        main = distributed.is_main()
        lock = FileLock(str(stage_dir / ".lock")) if main else None
        # Poll in rounds that every rank joins, so a long wait never hits a collective timeout and
        # a busy stage fails on every rank, not on rank 0 alone.
        while (status := distributed.broadcast_object(_lock_status(lock, wait_for_lock) if lock else None)) != "held":
            if status == "busy":
                raise _busy(spec, stage_dir)
            if progress and main:
                progress("waiting", 0, 0)
        try:
            existing = distributed.broadcast_object(_existing(spec, result_path) if main else None)
            if existing:
                return existing
            payload = _execute(spec, stage_dir, result_path, workspace, progress if main else None, executor, device=device, write=main)
            return distributed.broadcast_object(payload if main else None)  # returns once rank 0 has written
        finally:
            if lock:
                lock.release()


def _lock_status(lock: FileLock, wait_for_lock: bool) -> str:
    """After one poll: "held", "wait" (try again) or "busy" (another process has it; don't wait)."""
    try:
        lock.acquire(timeout=LOCK_POLL_S if wait_for_lock else 0)
        return "held"
    except Timeout:
        return "wait" if wait_for_lock else "busy"


def _try_lock(lock: FileLock, wait_for_lock: bool, spec: dict[str, Any], stage_dir: Path) -> bool:
    status = _lock_status(lock, wait_for_lock)
    if status == "busy":
        raise _busy(spec, stage_dir)
    return status == "held"


def _busy(spec: dict[str, Any], stage_dir: Path) -> UserError:
    return UserError(f"stage {spec['name']} is being run by another process (lock {stage_dir / '.lock'})")


def _existing(spec: dict[str, Any], result_path: Path) -> dict[str, Any] | None:
    existing = load_result(result_path)
    return existing.model_dump() if existing and existing.stage.key == spec["key"] else None


def _execute(spec: dict[str, Any], stage_dir: Path, result_path: Path, workspace: Workspace, progress, executor: str, device: torch.device | None = None, write: bool = True) -> dict[str, Any]:
    from harness.stage_tasks import TASKS

    runtime = spec.get("runtime", {})
    device = device or resolve_device(runtime.get("device", "cpu"))
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
            runtime=runtime,
        ),
    )
    payload = result.model_dump()
    if write:
        atomic_write_json(result_path, payload)
    return payload


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
