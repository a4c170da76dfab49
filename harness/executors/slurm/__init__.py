"""Run stages as Slurm jobs through submitit: one job per stage, the stage graph as `afterok`
dependencies, so a whole cell or matrix is submitted at once and Slurm runs it.

Each job (one task per node) calls `harness.runner.run_stage_from_spec` with the same Python as
the submitter (or the `--slurm-python` command, e.g. inside a container); a stage with several DDP
ranks runs under torchrun on each node instead. Jobs are `submitit.helpers.Checkpointable`:
on a timeout or preemption signal submitit requeues the job, and the stage resumes from the last
per-epoch checkpoint in its stage directory. A failed stage's dependents are cancelled by Slurm
(`--kill-on-invalid-dep=yes`) and, while the executor waits, by an explicit `scancel`.

The workspace roots must be on a filesystem shared with the compute nodes; submitit's pickles and
the job logs go to `<artifacts>/slurm/logs`, the stage -> job id record to `<artifacts>/slurm/jobs.json`.

resources.py  the profile's `slurm:` block and --slurm-* options -> sbatch/submitit parameters
cluster.py    Slurm's client commands: sinfo checks, squeue / sacct / scancel wrappers
states.py     job states: Slurm's names, finished or failed, parsed from squeue/sacct or submitit's pickle
record.py     the stage -> job id record and `disco-bench status`'s job states
job.py        what a job runs: one stage with per-epoch lines, or torchrun on each node
executor.py   submission with afterok dependencies, waiting, cancelling, failure reports
"""

from __future__ import annotations

from harness.executors.slurm.cluster import (
    cancel_jobs,
    first_line,
    query_states,
    require_cluster,
    sacct_states,
    sbatch_errors,
    slurm_command,
    squeue_states,
)
from harness.executors.slurm.executor import (
    MAX_TIMEOUT_REQUEUES,
    OPTIONS,
    POLL_INTERVAL_S,
    SlurmExecutor,
    SubmittedStage,
    downstream_of,
    failure_roots,
    make_executor,
    raise_for_failures,
    status_line,
    stderr_tail,
)
from harness.executors.slurm.job import StageJob, run_under_torchrun
from harness.executors.slurm.record import (
    job_states,
    logs_dir,
    read_record,
    record_path,
    slurm_dir,
    submitted_jobs,
    update_record,
)
from harness.executors.slurm.resources import (
    DEFAULT_TIME_MIN,
    PROFILE_KEYS,
    SlurmResources,
    check_mem,
    parse_extra,
    parse_time_minutes,
    resources_from_params,
)
from harness.executors.slurm.states import DONE, FAILED_STATES, is_terminal, parse_states, pickle_state

__all__ = [
    "DEFAULT_TIME_MIN",
    "DONE",
    "FAILED_STATES",
    "MAX_TIMEOUT_REQUEUES",
    "OPTIONS",
    "POLL_INTERVAL_S",
    "PROFILE_KEYS",
    "SlurmExecutor",
    "SlurmResources",
    "StageJob",
    "SubmittedStage",
    "cancel_jobs",
    "check_mem",
    "downstream_of",
    "failure_roots",
    "first_line",
    "is_terminal",
    "job_states",
    "logs_dir",
    "make_executor",
    "parse_extra",
    "parse_states",
    "parse_time_minutes",
    "pickle_state",
    "query_states",
    "raise_for_failures",
    "read_record",
    "record_path",
    "require_cluster",
    "resources_from_params",
    "run_under_torchrun",
    "sacct_states",
    "sbatch_errors",
    "slurm_command",
    "slurm_dir",
    "squeue_states",
    "status_line",
    "stderr_tail",
    "submitted_jobs",
    "update_record",
]
