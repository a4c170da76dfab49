"""Run one stage from its spec file: lock, skip if already done, execute, write the result
atomically with full provenance. This is what every executor ends up calling."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
import torch
from filelock import FileLock, Timeout
from pydantic import ValidationError

from disco import distributed
from disco.damaged import move_aside, remove_leftover_temps
from disco.errors import DiscoError, TrainingDiverged
from disco.health import COLLAPSED, WEAK
from disco.pause_points import with_pause_points
from disco.speed import strict_fp32, tf32_flags
from harness.errors import UserError
from harness.provenance import git_state, hardware, package_versions
from harness.results import Provenance, StageRef, StageResult
from harness.stages import DIVERGED_FILE, StageSpec, canonical_hash, stored_result
from harness.workspace import Workspace, atomic_write_json, ensure_directory, read_json

if TYPE_CHECKING:
    from collections.abc import Iterator

    from disco.tasks.context import TaskOutput
    from harness.progress import Reporter

LOCK_POLL_S = 5.0
WRITTEN_UNDER_LOCK = [
    "checkpoint.pt",
    "checkpoint.prev.pt",
    "final.pt",
]  # a killed write's temp files are ours to remove


def resolve_device(requested: str) -> torch.device:
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"device '{requested}' is not a device; use cpu, cuda or cuda:N (N: the GPU's index)") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device '{requested}': disco-bench runs on cpu or cuda, not {device.type}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"device '{requested}' requested but CUDA is not available here; use --device cpu or run on a GPU host"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(
            f"device '{requested}': this host has {torch.cuda.device_count()} GPU(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    return device


def load_spec(spec_path: Path) -> dict[str, Any]:
    spec = read_json(spec_path)
    if not isinstance(spec, dict):
        raise UserError(
            f"{spec_path}: not a stage spec (missing or invalid JSON); rerun `disco-bench run` to regenerate it"
        )
    try:
        return StageSpec.model_validate(spec).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        where = f"{loc}: " if loc else ""  # a whole-spec check names its own field
        message = str(first["msg"]).removeprefix("Value error, ")
        raise UserError(
            f"{spec_path}: not a valid stage spec: {where}{message} ({len(exc.errors())} problem(s)); rerun `disco-bench run` to regenerate it"
        ) from None


def run_stage_from_spec(
    spec_path: Path,
    workspace: Workspace,
    progress: Reporter | None = None,
    executor: str = "local",
    wait_for_lock: bool = True,
) -> dict[str, Any]:
    """Run the stage described by `spec_path` unless a result with its key exists. Concurrent
    invocations of the same stage serialise on a lock file: the second waits, then reuses.
    Under torchrun (WORLD_SIZE > 1) every rank calls this: see `_run_ranked`."""
    spec = load_spec(Path(spec_path))
    stage_dir = workspace.artifacts / spec["stage_dir"]
    result_path = workspace.results / spec["result"]
    ensure_directory(stage_dir)
    if distributed.env_world_size() > 1:
        return _run_ranked(spec, stage_dir, result_path, workspace, progress, executor, wait_for_lock)
    lock = FileLock(str(stage_dir / ".lock"))
    waited = False
    while not _try_lock(lock, wait_for_lock, spec, stage_dir):
        if progress and not waited:
            progress("waiting", 0, 0)
        waited = True
    try:
        existing = _existing(spec, result_path, workspace)
        if existing and waited and progress:
            progress("reused", 0, 0)  # the run that held the lock stored it meanwhile
        return existing or _execute(spec, stage_dir, result_path, workspace, progress, executor)
    finally:
        lock.release()


def _run_ranked(
    spec: dict[str, Any],
    stage_dir: Path,
    result_path: Path,
    workspace: Workspace,
    progress: Reporter | None,
    executor: str,
    wait_for_lock: bool,
) -> dict[str, Any]:
    """One rank of a torchrun stage. Rank 0 alone holds the stage lock (a second rank waiting on it
    would deadlock the first's collectives), decides skip-or-run for all, and alone writes the
    result; the others train alongside, then return rank 0's result."""
    with distributed.session(resolve_device(spec.get("runtime", {}).get("device", "cpu"))) as device:
        main = distributed.is_main()
        lock = FileLock(str(stage_dir / ".lock")) if main else None
        # Poll in rounds that every rank joins, so a long wait never hits a collective timeout and
        # a busy stage fails on every rank, not on rank 0 alone.
        waited = False
        while (status := distributed.broadcast_object(_lock_status(lock, wait_for_lock) if lock else None)) != "held":
            if status == "busy":
                raise _busy(spec, stage_dir)
            if progress and main and not waited:
                progress("waiting", 0, 0)
            waited = True
        try:
            existing = distributed.broadcast_object(_existing(spec, result_path, workspace) if main else None)
            if existing:
                if waited and progress and main:
                    progress("reused", 0, 0)
                return existing
            payload = _execute(
                spec, stage_dir, result_path, workspace, progress if main else None, executor, device=device, write=main
            )
            # every rank gets rank 0's payload; returns once rank 0 has written it
            return cast(dict[str, Any], distributed.broadcast_object(payload if main else None))
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


def _existing(spec: dict[str, Any], result_path: Path, workspace: Workspace) -> dict[str, Any] | None:
    """The stored result for this key, unless a checkpoint it lists is damaged: that one is moved
    aside and the stage runs again (a training stage resumes from its last epoch's checkpoint)."""
    stored = stored_result(result_path, spec["key"], workspace)
    for path in stored.damaged:
        if path.exists() or path.is_symlink():
            move_aside(path, "torn or unreadable")
    return stored.result.model_dump() if stored.done and stored.result else None


def _clean_leftovers(stage_dir: Path, result_path: Path) -> None:
    """Temp files of atomic writes killed mid-way: only this stage's lock holder writes these names."""
    remove_leftover_temps(stage_dir, WRITTEN_UNDER_LOCK)
    remove_leftover_temps(result_path.parent, [result_path.name])  # any writer's: they too hold this lock
    (stage_dir / DIVERGED_FILE).unlink(missing_ok=True)  # an earlier attempt's: this one decides anew


def _input_dirs(spec: dict[str, Any], workspace: Workspace) -> dict[str, Path]:
    inputs = {role: workspace.artifacts / ref["stage_dir"] for role, ref in spec["inputs"].items()}
    for role, path in inputs.items():
        if not (path / "final.pt").exists():
            raise UserError(
                f"stage {spec['name']}: input '{role}' ({spec['inputs'][role]['name']}) has no checkpoint at {path}; run its stage first"
            )
    return inputs


def _execute(
    spec: dict[str, Any],
    stage_dir: Path,
    result_path: Path,
    workspace: Workspace,
    progress: Reporter | None,
    executor: str,
    device: torch.device | None = None,
    write: bool = True,
) -> dict[str, Any]:
    from disco.tasks import run_task  # torch, timm, the evaluations: only when a stage runs

    runtime = spec.get("runtime", {})
    device = device or resolve_device(runtime.get("device", "cpu"))
    if write:
        _clean_leftovers(stage_dir, result_path)
    inputs = _input_dirs(spec, workspace)
    started_at, started = _now(), time.perf_counter()
    try:
        with threads(runtime.get("threads")), strict_fp32():
            metrics, history, artifacts = run_task(
                spec["kind"],
                spec["config"],
                inputs,
                stage_dir,
                runtime,
                device,
                with_pause_points(spec["kind"], progress),
            )
            machine = hardware(str(device)) | {"tf32": tf32_flags()}  # with the stage's threads and numerics
    except DiscoError as exc:  # a value, dataset or checkpoint disco was given: the user's to fix
        if write and isinstance(exc, TrainingDiverged):  # `status` shows why the stage stopped
            atomic_write_json(stage_dir / DIVERGED_FILE, {"reason": str(exc), "at": _now()})
        raise exc.within(f"stage {spec['name']}") from None
    timing = Timing(started_at, _now(), round(time.perf_counter() - started, 3))
    result = stage_result(spec, (metrics, history, artifacts), machine, timing, executor)
    payload = result.model_dump()
    if write:
        atomic_write_json(result_path, payload)
        warn_if_unhealthy(spec["name"], metrics)
    return payload


@dataclass(frozen=True)
class Timing:
    started_at: str
    finished_at: str
    wall_time_s: float


def stage_result(
    spec: dict[str, Any], output: TaskOutput, machine: dict[str, Any], timing: Timing, executor: str
) -> StageResult:
    """A finished stage as the typed result stored for its key: the resolved config and its hash,
    its inputs' keys, what the task returned, and the provenance (git, packages, hardware, seed, wall
    time, executor, runtime): the one place a result is built."""
    metrics, history, artifacts = output
    return StageResult(
        stage=StageRef(name=spec["name"], kind=spec["kind"], key=spec["key"], profile=spec["profile"]),
        config=spec["config"],
        config_hash=canonical_hash(spec["config"]),
        inputs={role: {"name": ref["name"], "key": ref["key"]} for role, ref in spec["inputs"].items()},
        metrics=metrics,
        history=history,
        artifacts={name: str(Path(spec["stage_dir"]) / rel) for name, rel in artifacts.items()},
        provenance=Provenance(
            git=git_state(),
            packages=package_versions(),
            hardware=machine,
            seed=spec["config"].get("seed", 0),
            wall_time_s=timing.wall_time_s,
            started_at=timing.started_at,
            finished_at=timing.finished_at,
            executor=executor,
            runtime=spec.get("runtime", {}),
        ),
    )


@contextmanager
def threads(count: int | None) -> Iterator[None]:
    """Intra-op CPU threads for one stage: their number sets the summation order of CPU kernels, so a
    pinned count makes a run repeat bit for bit (README, "Repeatability"); restored afterwards."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def warn_if_unhealthy(name: str, metrics: dict[str, Any]) -> None:
    """A collapsed or weak training stage is flagged loudly: every number built on it is suspect."""
    status = metrics.get("health")
    if status in (COLLAPSED, WEAK):
        reasons = "; ".join(metrics.get("health_reasons") or [])
        click.echo(
            f"WARNING: stage {name} ended {status.upper()} ({reasons}): results built on this encoder are not evidence; see docs/health.md",
            err=True,
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
