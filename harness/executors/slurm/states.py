"""Job states: Slurm's state names, what counts as finished or failed, and parsing them from
squeue/sacct output or submitit's result pickle."""

from __future__ import annotations

import pickle
import subprocess
from pathlib import Path

DONE = "COMPLETED"
FAILED_STATES = frozenset(
    {
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "SPECIAL_EXIT",
        "REVOKED",
        "LOST",
    }
)


def parse_states(out: subprocess.CompletedProcess[str], jobs: dict[str, str]) -> dict[str, str]:
    """`ID|STATE|NAME` lines -> job id -> state, for the ids in `jobs` whose name matches (a job id
    reused by a reinstalled cluster is not ours)."""
    states: dict[str, str] = {}
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        job_id, state, name = (line.split("|", 2) + ["", ""])[:3]
        if jobs.get(job_id.strip()) == name.strip() and state.strip():
            states[job_id.strip()] = state.split()[0]  # sacct's "CANCELLED by 0" -> CANCELLED
    return states


def pickle_state(logs: Path, job_id: str) -> str:
    """Whether submitit's result pickle says the job's function returned or raised."""
    path = logs / f"{job_id}_0_result.pkl"
    try:
        with path.open("rb") as handle:
            outcome = pickle.load(handle)[0]
    except (OSError, pickle.UnpicklingError, EOFError, IndexError, TypeError, AttributeError, ModuleNotFoundError):
        return "UNKNOWN"
    return DONE if outcome == "success" else "FAILED"


def is_terminal(state: str) -> bool:
    return state == DONE or state in FAILED_STATES
