"""What a Slurm job runs: one stage, in-process with per-epoch progress lines, or under torchrun."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit

from harness.progress import EpochLines
from harness.workspace import Workspace, read_json


class StageJob(submitit.helpers.Checkpointable):
    """One stage in one Slurm job (one task per node). `checkpoint()` (inherited) resubmits the
    same call on timeout or preemption; the stage then resumes from the last per-epoch checkpoint in
    its stage directory. With several ranks, each node's task runs the stage under torchrun."""

    def __call__(self, spec_path: str, artifacts: str, results: str, ranks_per_node: int = 1) -> dict[str, Any]:
        from harness.runner import run_stage_from_spec

        print(f"stage spec {spec_path} on {socket.gethostname()}", flush=True)
        workspace = Workspace(Path(artifacts), Path(results))
        for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            os.environ.pop(name, None)  # sbatch exports the submitter's environment, a launcher's ranks included
        job = submitit.JobEnvironment()
        if ranks_per_node * job.num_nodes > 1:
            run_under_torchrun(Path(spec_path), workspace, ranks_per_node, job)
            spec = read_json(Path(spec_path)) or {}
            result = read_json(workspace.results / spec.get("result", "missing")) or {}
        else:
            lines = EpochLines(
                (read_json(Path(spec_path)) or {}).get("name", "stage"), lambda line: print(line, flush=True)
            )
            result = run_stage_from_spec(Path(spec_path), workspace, lines, executor="slurm")
        print(f"stage {result.get('stage', {}).get('name')}: {result.get('status')}", flush=True)
        return {"stage": result.get("stage"), "status": result.get("status")}


def run_under_torchrun(
    spec_path: Path, workspace: Workspace, ranks_per_node: int, job: submitit.JobEnvironment
) -> None:
    """`torchrun` on this node for `ranks_per_node` ranks (all nodes rendezvous at the first one).
    Its processes ignore USR2, so that the timeout/preemption signal reaches only this process,
    which checkpoints and requeues the job (Slurm then stops torchrun with the rest of the job)."""
    from disco import distributed

    endpoint = f"{job.hostnames[0]}:{29500 + int(job.job_id) % 20000}" if job.num_nodes > 1 else None
    command = distributed.torchrun_command(
        spec_path, workspace, nproc=ranks_per_node, nnodes=job.num_nodes, rdzv_endpoint=endpoint,
        rdzv_id=str(job.job_id), extra_args=["--executor-name", "slurm"],
    )  # fmt: skip
    print(" ".join(shlex.quote(part) for part in command), flush=True)
    ignoring_usr2 = [
        "/bin/sh",
        "-c",
        'trap "" USR2; exec "$@"',
        "sh",
        *command,
    ]  # an ignored signal stays ignored across exec
    process = subprocess.Popen(ignoring_usr2)
    while process.poll() is None:  # short waits, so submitit's USR2 handler runs promptly
        time.sleep(1)
    if process.returncode != 0:
        raise RuntimeError(f"torchrun exited with status {process.returncode} (its ranks' output is above)")
