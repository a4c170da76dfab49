"""The submission record: stage -> job id of its latest submission, in <artifacts>/slurm/jobs.json,
and the states of those jobs (`disco-bench status`)."""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock

from harness.executors.slurm.cluster import query_states
from harness.workspace import Workspace, atomic_write_json, read_json


def slurm_dir(workspace: Workspace) -> Path:
    return workspace.artifacts / "slurm"


def logs_dir(workspace: Workspace) -> Path:
    """submitit's folder: pickled jobs, sbatch scripts, <jobid>_0_log.out/.err (shared with the nodes)."""
    return slurm_dir(workspace) / "logs"


def record_path(workspace: Workspace) -> Path:
    return slurm_dir(workspace) / "jobs.json"


def read_record(workspace: Workspace) -> dict[str, dict[str, str]]:
    """stage name -> {"job_id", "key", "submitted_at"} of its latest submission."""
    record = read_json(record_path(workspace))
    if not isinstance(record, dict):
        return {}
    return {name: entry for name, entry in record.items() if isinstance(entry, dict) and "job_id" in entry}


def update_record(workspace: Workspace, entries: dict[str, dict[str, str]]) -> None:
    path = record_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        atomic_write_json(path, read_record(workspace) | entries)


def submitted_jobs(workspace: Workspace) -> dict[str, str]:
    """stage name -> Slurm job id of its latest submission."""
    return {name: entry["job_id"] for name, entry in read_record(workspace).items()}


def job_states(workspace: Workspace) -> dict[str, str]:
    """stage name -> Slurm state (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ... or UNKNOWN)
    of its latest submission; empty when nothing was submitted from this workspace."""
    jobs = submitted_jobs(workspace)
    states = query_states({job_id: name for name, job_id in jobs.items()}, logs_dir(workspace))
    return {name: states.get(job_id, "UNKNOWN") for name, job_id in jobs.items()}
