"""The cluster's commands: sbatch-side checks, squeue / sacct / scancel wrappers that never raise
on a missing binary or a silent controller."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from disco.names import did_you_mean
from harness.errors import UserError
from harness.executors.slurm.states import parse_states, pickle_state


def slurm_command(args: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """A Slurm client command; a missing binary or a controller that does not answer comes back
    as a failed result (rc 127 / 124), not as an exception."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        return subprocess.CompletedProcess(args, 127, "", f"{args[0]}: command not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            args, 124, "", f"{args[0]}: no answer from the Slurm controller in {timeout_s:.0f} s"
        )


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0]


def sbatch_errors(text: str) -> str:
    """sbatch's error lines, joined: "Memory specification can not be satisfied; Batch job ..."."""
    errors = [line.split("error:", 1)[1].strip() for line in text.splitlines() if "error:" in line]
    return "; ".join(errors) or first_line(text)


def require_cluster(partition: str | None) -> None:
    """One clear line when there is no Slurm to submit to, or the partition does not exist."""
    missing = [tool for tool in ("sbatch", "srun", "squeue", "scancel", "sinfo") if shutil.which(tool) is None]
    if missing:
        raise UserError(
            f"--executor slurm needs Slurm's client commands on PATH (missing: {', '.join(missing)}); run it on a cluster login node"
        )
    info = slurm_command(["sinfo", "-h", "-o", "%P"])
    if info.returncode != 0:
        raise UserError(f"cannot reach the Slurm controller (sinfo: {first_line(info.stderr)})")
    partitions = [name.rstrip("*") for name in info.stdout.split()]
    if partition and partition not in partitions:
        hint = did_you_mean(partition, partitions)
        raise UserError(f"unknown Slurm partition '{partition}'{hint}; available: {', '.join(partitions) or 'none'}")


def cancel_jobs(job_ids: list[str]) -> None:
    if job_ids:
        slurm_command(["scancel", *job_ids])


def squeue_states(jobs: dict[str, str]) -> dict[str, str]:
    """Jobs slurmctld still holds (queued, running, or finished less than MinJobAge ago).
    `jobs`: job id -> the job name it was submitted with (the stage name)."""
    return parse_states(slurm_command(["squeue", "-h", "--states=all", "-o", "%i|%T|%j", "-j", ",".join(jobs)]), jobs)


def sacct_states(jobs: dict[str, str]) -> dict[str, str]:
    """Finished jobs from the accounting database, where the cluster has one."""
    return parse_states(
        slurm_command(["sacct", "-n", "-P", "-X", "-o", "JobID,State,JobName", "-j", ",".join(jobs)]), jobs
    )


def query_states(jobs: dict[str, str], logs: Path) -> dict[str, str]:
    """job id -> Slurm state: squeue, then sacct, then the job's result pickle, else UNKNOWN.
    `jobs`: job id -> the job name it was submitted with (the stage name)."""
    states = squeue_states(jobs) if jobs else {}
    missing = {job_id: name for job_id, name in jobs.items() if job_id not in states}
    if missing:
        states.update(sacct_states(missing))
    for job_id in jobs:
        if job_id not in states:
            states[job_id] = pickle_state(logs, job_id)
    return {job_id: states[job_id] for job_id in jobs}
