"""DDP inside one stage (docs/ddp.md): join the process group that torchrun describes, rank
helpers that are no-ops on one process, and the torchrun command line executors launch.

One process (no torchrun, or WORLD_SIZE=1) never creates a process group, so a single-process
stage runs exactly the code path it always did.

The loss under DDP. DDP averages gradients over the W ranks, so with a global batch B and
N_local = B / W images per rank the optimised objective is, per view,

    L_eff = CE_mean(global batch) + w * mean_i ||t_i - s_i||^2

with w = `mse_per_sample_weight` (default 32, the paper's 256 / 8 GPUs) on any layout. Setting it
to null reproduces the official `MSELoss(reduction='sum')` literally: w = N_local = B / W, so the
same global batch on a different number of processes changes the CE:MSE ratio.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import distributed as dist

T = TypeVar("T")


def env_world_size() -> int:
    """The world size torchrun announced (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def init_from_env(requested: torch.device) -> torch.device:
    """Join torchrun's process group (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT): nccl with
    one GPU per rank (cuda:LOCAL_RANK, whatever index was requested), gloo on CPU. Returns the
    device this rank trains on; outside torchrun it returns `requested` and does nothing."""
    if env_world_size() <= 1 or active():
        return requested
    if requested.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", init_method="env://", device_id=device)
        return device
    dist.init_process_group("gloo", init_method="env://")
    return requested


def shutdown(synchronize: bool = True) -> None:
    """Leave the group. synchronize: a barrier first, so no rank tears gloo down while another's
    last collective is still in flight (that aborts the process: "terminate called without an
    active exception"). Skipped on error paths, where a failed rank would never reach it."""
    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def session(requested: torch.device) -> Iterator[torch.device]:
    """init_from_env for the duration of one stage, then leave the group (only if we joined it)."""
    joined = env_world_size() > 1 and not active()
    device = init_from_env(requested)
    try:
        yield device
    except BaseException:
        if joined:
            shutdown(synchronize=False)
        raise
    if joined:
        shutdown()


def broadcast_object(value: T) -> T:
    """Rank 0's `value` on every rank (a picklable object; identity on one process)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_equal(value: Any) -> bool:
    """Whether every rank holds the same picklable `value`."""
    if not active():
        return True
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return all(item == values[0] for item in values)


def mean_over_ranks(metrics: dict[str, float], device: torch.device) -> dict[str, float]:
    """Per-rank epoch averages -> averages over every rank (same keys, same order, on all ranks)."""
    if not active() or not metrics:
        return metrics
    values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return {name: float(value) / dist.get_world_size() for name, value in zip(metrics, values.tolist())}


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BN running stats, queue) to every rank, as DDP does before a forward."""
    if active():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def torchrun_command(
    spec_path: Path | str,
    workspace: Any,
    nproc: int,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
    python: str = sys.executable,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """`torchrun ... -m harness run-stage SPEC --artifacts A --results R` as an argv list.

    One node without an endpoint uses `--standalone` (a free local port per stage, so concurrent
    stages never collide); several nodes need `rdzv_endpoint` HOST:PORT reachable from all of them
    and the same `rdzv_id` on every node (e.g. the Slurm job id). `python -m torch.distributed.run`
    is torchrun itself, run by this interpreter so the venv's torch is the one launched.
    """
    if nproc < 1 or nnodes < 1:
        raise ValueError(f"nproc ({nproc}) and nnodes ({nnodes}) must be >= 1")
    launcher = [python, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--nnodes={nnodes}"]
    if rdzv_endpoint is None:
        if nnodes > 1:
            raise ValueError("a multi-node torchrun needs rdzv_endpoint HOST:PORT")
        launcher.append("--standalone")
    else:
        launcher += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
        if rdzv_id:
            launcher.append(f"--rdzv-id={rdzv_id}")
    stage = [
        "-m",
        "harness",
        "run-stage",
        str(spec_path),
        "--artifacts",
        str(workspace.artifacts),
        "--results",
        str(workspace.results),
    ]
    return launcher + stage + list(extra_args)
