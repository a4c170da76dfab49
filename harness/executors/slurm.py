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
"""

from __future__ import annotations

import contextlib
import difflib
import io
import math
import os
import pickle
import re
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import submitit
from filelock import FileLock
from rich.console import Console

import harness
from harness.errors import StageFailed, UserError
from harness.progress import EpochLines
from harness.stages import Stage, topological
from harness.workspace import Workspace, atomic_write_json, read_json

DEFAULT_TIME_MIN = 4 * 60  # when neither the profile nor --slurm-time sets one (submitit's own is 5)
MAX_TIMEOUT_REQUEUES = 20  # a stage longer than 20 time limits fails instead of requeueing forever
POLL_INTERVAL_S = 5.0
UNKNOWN_POLLS_BEFORE_LOST = 5  # a job neither squeue, sacct nor its result pickle knows about
STDERR_TAIL_LINES = 20
PACKAGE_ROOT = Path(harness.__file__).resolve().parent.parent  # the checkout the jobs import from

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
PROFILE_KEYS = (
    "partition",
    "account",
    "nodes",
    "gpus_per_node",
    "ranks_per_node",
    "cpus_per_task",
    "mem",
    "time",
    "extra",
)

OPTIONS: list = [
    click.option(
        "--slurm-partition", default=None, help="Slurm partition (default: the profile's, else the cluster's default)."
    ),
    click.option("--slurm-account", default=None, help="Slurm account to charge."),
    click.option("--slurm-nodes", type=click.IntRange(min=1), default=None, help="Nodes per stage job."),
    click.option("--slurm-gpus-per-node", type=click.IntRange(min=0), default=None, help="GPUs per node."),
    click.option(
        "--slurm-ranks-per-node",
        type=click.IntRange(min=1),
        default=None,
        help="DDP processes per node, started by torchrun (default: one per GPU, else 1).",
    ),
    click.option(
        "--slurm-cpus-per-task", type=click.IntRange(min=1), default=None, help="CPUs per task (one task per node)."
    ),
    click.option("--slurm-mem", default=None, help="Memory per node, Slurm syntax (16G, 500M)."),
    click.option(
        "--slurm-time",
        default=None,
        help="Time limit per job (MM, HH:MM:SS, D-HH:MM); longer stages requeue and resume.",
    ),
    click.option(
        "--slurm-extra", multiple=True, metavar="KEY=VALUE", help="Any other sbatch option, e.g. qos=high (repeatable)."
    ),
    click.option(
        "--slurm-python",
        default=None,
        help="Command that runs Python on the nodes (default: this interpreter), e.g. inside a container.",
    ),
    click.option(
        "--slurm-srun-arg",
        multiple=True,
        help="Extra srun argument, e.g. --container-image=... with pyxis (repeatable).",
    ),
    click.option("--slurm-no-wait", is_flag=True, help="Submit, print the job ids and return without waiting."),
]


# ---------------------------------------------------------------- resources


@dataclass(frozen=True)
class SlurmResources:
    partition: str | None = None
    account: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    ranks_per_node: int | None = None  # DDP processes per node; None: one per GPU, else 1
    cpus_per_task: int | None = None
    mem: str | None = None
    time_min: int = DEFAULT_TIME_MIN
    extra: dict[str, str | bool] = field(default_factory=dict)  # True: a bare flag (--exclusive)

    def submitit_parameters(self, job_name: str, dependency: str | None) -> dict[str, Any]:
        """Parameters for `submitit.SlurmExecutor.update_parameters`."""
        extra = {"kill-on-invalid-dep": "yes", **self.extra}
        params: dict[str, Any] = {
            "job_name": job_name,
            "time": self.time_min,
            "nodes": self.nodes,
            "ntasks_per_node": 1,  # one task per node; it starts torchrun when there are several ranks
            "partition": self.partition,
            "account": self.account,
            "cpus_per_task": self.cpus_per_task,
            "mem": self.mem,
            "gpus_per_node": self.gpus_per_node or None,
            "dependency": dependency,
            "additional_parameters": extra,
        }
        return {name: value for name, value in params.items() if value is not None}

    @property
    def ranks(self) -> int:
        """DDP processes per node."""
        return self.ranks_per_node or max(1, self.gpus_per_node)


def parse_time_minutes(value: str | int) -> int:
    """Slurm time syntax (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) as whole minutes."""
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", text)
    if not match:
        raise UserError(f"Slurm time '{value}' is not MM, HH:MM:SS or D-HH:MM:SS")
    days, parts = int(match.group(1) or 0), [int(part) for part in match.group(2).split(":")]
    if match.group(1) is None:  # MM | MM:SS | HH:MM:SS
        hours, minutes, seconds = {1: [0, parts[0], 0], 2: [0, *parts], 3: parts}[len(parts)]
    else:  # D-HH | D-HH:MM | D-HH:MM:SS
        hours, minutes, seconds = (parts + [0, 0])[:3]
    total = days * 1440 + hours * 60 + minutes + math.ceil(seconds / 60)
    if total < 1:
        raise UserError(f"Slurm time '{value}' is under a minute")
    return total


def check_mem(value: str | int) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"\d+(\.\d+)?[KMGTkmgt]?[Bb]?", text):
        raise UserError(f"Slurm memory '{value}' is not a size like 16G or 500M")
    return text


def parse_extra(items: tuple[str, ...] | list[str]) -> dict[str, str | bool]:
    """--slurm-extra KEY=VALUE pairs (a bare KEY is a flag, e.g. exclusive)."""
    extra: dict[str, str | bool] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not key or not re.fullmatch(r"[A-Za-z][\w-]*", key):
            raise UserError(f"--slurm-extra '{item}': expected KEY=VALUE with an sbatch option name, e.g. qos=high")
        extra[key] = value if sep else True  # submitit writes True as a bare flag
    return extra


def count_value(merged: dict[str, Any], key: str, minimum: int) -> int | None:
    """An integer resource from the profile or the command line, or None when unset."""
    value = merged[key]
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = minimum - 1
    if number < minimum or str(value).strip() != str(number):
        raise UserError(f"Slurm {key} '{value}' is not a whole number >= {minimum}")
    return number


def resources_from_params(params: dict[str, Any]) -> SlurmResources:
    """The profile's `slurm:` block, overridden by the --slurm-* options that were given."""
    profile = dict(params.get("profile_slurm") or {})
    unknown = sorted(set(profile) - set(PROFILE_KEYS))
    if unknown:
        raise UserError(f"profile slurm: unknown key(s) {', '.join(unknown)}; valid: {', '.join(PROFILE_KEYS)}")
    merged = {key: profile.get(key) for key in PROFILE_KEYS if key != "extra"}
    for key in merged:
        if params.get(f"slurm_{key}") is not None:
            merged[key] = params[f"slurm_{key}"]
    profile_extra = [key if value is True else f"{key}={value}" for key, value in (profile.get("extra") or {}).items()]
    return SlurmResources(
        partition=merged["partition"] or None,
        account=merged["account"] or None,
        nodes=count_value(merged, "nodes", 1) or 1,
        gpus_per_node=count_value(merged, "gpus_per_node", 0) or 0,
        ranks_per_node=count_value(merged, "ranks_per_node", 1),
        cpus_per_task=count_value(merged, "cpus_per_task", 1),
        mem=check_mem(merged["mem"]) if merged["mem"] else None,
        time_min=parse_time_minutes(merged["time"]) if merged["time"] else DEFAULT_TIME_MIN,
        extra=parse_extra(profile_extra + list(params.get("slurm_extra") or ())),
    )


# ---------------------------------------------------------------- the cluster


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
        close = difflib.get_close_matches(partition, partitions, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UserError(f"unknown Slurm partition '{partition}'{hint}; available: {', '.join(partitions) or 'none'}")


def cancel_jobs(job_ids: list[str]) -> None:
    if job_ids:
        slurm_command(["scancel", *job_ids])


# ---------------------------------------------------------------- job states


def parse_states(out: subprocess.CompletedProcess[str], jobs: dict[str, str]) -> dict[str, str]:
    """`ID|STATE|NAME` lines -> job id -> state, for the ids in `jobs` whose name matches (a job id
    reused by a reinstalled cluster is not ours)."""
    states: dict[str, str] = {}
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        job_id, state, name = (line.split("|", 2) + ["", ""])[:3]
        if jobs.get(job_id.strip()) == name.strip() and state.strip():
            states[job_id.strip()] = state.split()[0]  # sacct's "CANCELLED by 0" -> CANCELLED
    return states


def squeue_states(jobs: dict[str, str]) -> dict[str, str]:
    """Jobs slurmctld still holds (queued, running, or finished less than MinJobAge ago).
    `jobs`: job id -> the job name it was submitted with (the stage name)."""
    return parse_states(slurm_command(["squeue", "-h", "--states=all", "-o", "%i|%T|%j", "-j", ",".join(jobs)]), jobs)


def sacct_states(jobs: dict[str, str]) -> dict[str, str]:
    """Finished jobs from the accounting database, where the cluster has one."""
    return parse_states(
        slurm_command(["sacct", "-n", "-P", "-X", "-o", "JobID,State,JobName", "-j", ",".join(jobs)]), jobs
    )


def pickle_state(logs: Path, job_id: str) -> str:
    """Whether submitit's result pickle says the job's function returned or raised."""
    path = logs / f"{job_id}_0_result.pkl"
    try:
        with path.open("rb") as handle:
            outcome = pickle.load(handle)[0]
    except (OSError, pickle.UnpicklingError, EOFError, IndexError, TypeError, AttributeError, ModuleNotFoundError):
        return "UNKNOWN"
    return DONE if outcome == "success" else "FAILED"


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


def is_terminal(state: str) -> bool:
    return state == DONE or state in FAILED_STATES


# ---------------------------------------------------------------- submission record


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


# ---------------------------------------------------------------- what a job runs


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


# ---------------------------------------------------------------- the executor


@dataclass
class SubmittedStage:
    stage: Stage
    job_id: str
    upstream: list[str]  # job ids this job waits for (afterok)
    reused: bool = False  # an earlier submission's job, still queued or running: not submitted again


class SlurmExecutor:
    name = "slurm"

    def __init__(
        self,
        resources: SlurmResources,
        wait: bool = True,
        python: str | None = None,
        srun_args: tuple[str, ...] = (),
        poll_interval_s: float = POLL_INTERVAL_S,
        console: Console | None = None,
    ):
        self.resources = resources
        self.wait = wait
        self.python = python
        self.srun_args = srun_args
        self.poll_interval_s = poll_interval_s
        self.console = console or Console(stderr=True, soft_wrap=True)  # one line per event, greppable

    def _event(self, message: str) -> None:
        """One timestamped line per event (submission, state change), never wrapped: greppable."""
        self.console.print(f"[{datetime.now():%H:%M:%S}] {message}", markup=False, highlight=False)

    def run(self, stages: list[Stage], workspace: Workspace) -> None:
        require_cluster(self.resources.partition)
        if not stages:
            return
        jobs = self.submit(stages, workspace)
        if self.wait:
            self.wait_for(jobs, workspace)
        else:
            self._print_submitted(jobs, workspace)

    # -- submission

    def submit(self, stages: list[Stage], workspace: Workspace) -> list[SubmittedStage]:
        """Submit every stage at once, each depending on the jobs of its inputs; a stage whose
        earlier job is still queued or running is not submitted twice."""
        logs_dir(workspace).mkdir(parents=True, exist_ok=True)
        wanted = {stage.key for stage in stages}
        active = self._active_jobs(workspace)
        job_of: dict[str, str] = {}  # stage key -> job id
        jobs: list[SubmittedStage] = []
        try:
            for stage in [stage for stage in topological(stages) if stage.key in wanted]:
                upstream = [job_of[dep.key] for dep in stage.inputs.values() if dep.key in job_of]
                reused = stage.key in active
                job_of[stage.key] = active[stage.key] if reused else self._submit_stage(stage, workspace, upstream)
                jobs.append(SubmittedStage(stage, job_of[stage.key], upstream, reused))
        except BaseException:
            cancel_jobs([job.job_id for job in jobs if not job.reused])
            raise
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        update_record(
            workspace,
            {job.stage.name: {"job_id": job.job_id, "key": job.stage.key, "submitted_at": now} for job in jobs},
        )
        return jobs

    def _active_jobs(self, workspace: Workspace) -> dict[str, str]:
        """stage key -> job id of recorded jobs that are still queued or running."""
        record = read_record(workspace)
        states = squeue_states({entry["job_id"]: name for name, entry in record.items()}) if record else {}
        return {
            entry.get("key", ""): entry["job_id"]
            for entry in record.values()
            if not is_terminal(states.get(entry["job_id"], DONE))
        }

    def _submit_stage(self, stage: Stage, workspace: Workspace, upstream: list[str]) -> str:
        spec_path = stage.write_spec(workspace).resolve()
        executor = submitit.SlurmExecutor(
            folder=logs_dir(workspace).resolve(), max_num_timeout=MAX_TIMEOUT_REQUEUES, python=self.python
        )
        dependency = "afterok:" + ":".join(upstream) if upstream else None
        executor.update_parameters(
            **self.resources.submitit_parameters(stage.name, dependency), **self._launch_parameters()
        )
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's stderr: said once below
                job = executor.submit(
                    StageJob(),
                    str(spec_path),
                    str(workspace.artifacts.resolve()),
                    str(workspace.results.resolve()),
                    self.resources.ranks,
                )
        except (
            submitit.core.utils.FailedJobError,
            submitit.core.utils.FailedSubmissionError,
            subprocess.SubprocessError,
            OSError,
        ) as exc:
            raise UserError(f"sbatch refused stage {stage.name}: {sbatch_errors(str(exc))}") from None
        self._event(
            f"submitted {stage.name} as job {job.job_id}" + (f" (after {', '.join(upstream)})" if upstream else "")
        )
        return str(job.job_id)

    def _launch_parameters(self) -> dict[str, Any]:
        """How the job starts Python: this interpreter with this checkout importable, unless
        --slurm-python names another command (a container's Python brings its own code)."""
        params: dict[str, Any] = {}
        if self.python is None:
            params["setup"] = [f"export PYTHONPATH={shlex.quote(str(PACKAGE_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}"]
        if self.srun_args:
            params["srun_args"] = list(self.srun_args)
        return params

    def _print_submitted(self, jobs: list[SubmittedStage], workspace: Workspace) -> None:
        for job in jobs:
            note = " (already queued)" if job.reused else ""
            click.echo(f"{job.job_id}\t{job.stage.name}{note}")
        ids = " ".join(job.job_id for job in jobs)
        reused = sum(job.reused for job in jobs)
        self.console.print(
            f"{len(jobs) - reused} job(s) submitted, {reused} already queued; logs in {logs_dir(workspace)}; "
            f"`disco-bench status` shows them, `scancel {ids}` stops them"
        )

    # -- waiting

    def wait_for(self, jobs: list[SubmittedStage], workspace: Workspace) -> None:
        """Poll until every job has finished; cancel the dependents of a failed stage as soon as it
        fails; raise StageFailed naming the failed stage(s), their job ids and stderr tails."""
        states: dict[str, str] = {}
        unknown_polls: dict[str, int] = {}
        handled: set[str] = set()
        started = time.monotonic()
        try:
            with self.console.status("submitted") as status:
                while True:
                    fresh = self._poll(jobs, workspace, unknown_polls)
                    self._log_transitions(jobs, states, fresh)
                    states = fresh
                    for root in failure_roots(jobs, states):
                        if root.job_id not in handled:
                            handled.add(root.job_id)
                            self._cancel_dependents(root, jobs, states)
                    if all(is_terminal(state) for state in states.values()):
                        break
                    status.update(status_line(jobs, states, time.monotonic() - started))
                    time.sleep(self.poll_interval_s)
        except KeyboardInterrupt:
            ids = " ".join(job.job_id for job in jobs if not is_terminal(states.get(job.job_id, "")))
            self.console.print(
                f"stopped waiting; the jobs keep running on Slurm (`disco-bench status`; `scancel {ids}` stops them)"
            )
            raise
        raise_for_failures(jobs, states, workspace)

    def _poll(self, jobs: list[SubmittedStage], workspace: Workspace, unknown_polls: dict[str, int]) -> dict[str, str]:
        """Current states; a job Slurm has forgotten is COMPLETED if its stage wrote its result,
        LOST after a few polls otherwise."""
        states = query_states({job.job_id: job.stage.name for job in jobs}, logs_dir(workspace))
        for job in jobs:
            if states[job.job_id] != "UNKNOWN":
                continue
            if job.stage.is_done(workspace):
                states[job.job_id] = DONE
                continue
            unknown_polls[job.job_id] = unknown_polls.get(job.job_id, 0) + 1
            if unknown_polls[job.job_id] >= UNKNOWN_POLLS_BEFORE_LOST:
                states[job.job_id] = "LOST"
        return states

    def _log_transitions(self, jobs: list[SubmittedStage], before: dict[str, str], after: dict[str, str]) -> None:
        for job in jobs:
            if before.get(job.job_id) != after[job.job_id]:
                self._event(f"job {job.job_id} {job.stage.name}: {after[job.job_id]}")

    def _cancel_dependents(self, root: SubmittedStage, jobs: list[SubmittedStage], states: dict[str, str]) -> None:
        dependents = [job for job in downstream_of(root, jobs) if not is_terminal(states[job.job_id])]
        what = f"cancelling {len(dependents)} dependent job(s)" if dependents else "no dependent job left to cancel"
        self._event(f"stage {root.stage.name} (job {root.job_id}) {states[root.job_id]}: {what}")
        cancel_jobs([job.job_id for job in dependents])


def downstream_of(root: SubmittedStage, jobs: list[SubmittedStage]) -> list[SubmittedStage]:
    """Every job that (transitively) waits for `root`."""
    blocked = {root.job_id}
    found: list[SubmittedStage] = []
    for job in jobs:  # topological order: a dependent comes after its inputs
        if blocked.intersection(job.upstream) and job.job_id not in blocked:
            blocked.add(job.job_id)
            found.append(job)
    return found


def failure_roots(jobs: list[SubmittedStage], states: dict[str, str]) -> list[SubmittedStage]:
    """Failed jobs whose own inputs all completed: the cause, not the cancelled dependents."""
    return [
        job
        for job in jobs
        if states.get(job.job_id) in FAILED_STATES and all(states.get(up) == DONE for up in job.upstream)
    ]


def status_line(jobs: list[SubmittedStage], states: dict[str, str], elapsed_s: float) -> str:
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    running = [job.stage.name for job in jobs if states.get(job.job_id) == "RUNNING"]
    summary = ", ".join(f"{count} {state.lower()}" for state, count in sorted(counts.items()))
    return f"slurm: {summary} [{elapsed_s:.0f} s]" + (f" — running {', '.join(running)}" if running else "")


def stderr_tail(logs: Path, job_id: str, lines: int = STDERR_TAIL_LINES) -> str:
    path = logs / f"{job_id}_0_log.err"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"    (no stderr log at {path})"
    tail = text.rstrip().splitlines()[-lines:]
    return f"    last lines of {path}:\n" + "\n".join(f"    | {line}" for line in tail)


def raise_for_failures(jobs: list[SubmittedStage], states: dict[str, str], workspace: Workspace) -> None:
    for job in jobs:  # a job that exited 0 without a result is a failure too
        if states[job.job_id] == DONE and not job.stage.is_done(workspace):
            states[job.job_id] = "FAILED"
    roots = failure_roots(jobs, states)
    if not roots:
        return
    reports = []
    for root in roots:
        cancelled = [job.stage.name for job in downstream_of(root, jobs) if states[job.job_id] != DONE]
        note = (
            f"; {len(cancelled)} dependent stage(s) cancelled, never run: {', '.join(cancelled)}" if cancelled else ""
        )
        reports.append(
            f"stage {root.stage.name} failed as Slurm job {root.job_id} ({states[root.job_id]}){note}\n{stderr_tail(logs_dir(workspace), root.job_id)}"
        )
    raise StageFailed("\n".join(reports))


def make_executor(params: dict[str, Any]) -> SlurmExecutor:
    return SlurmExecutor(
        resources_from_params(params),
        wait=not params.get("slurm_no_wait"),
        python=params.get("slurm_python"),
        srun_args=tuple(params.get("slurm_srun_arg") or ()),
    )
