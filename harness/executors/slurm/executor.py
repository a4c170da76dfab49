"""The executor: submit every stage at once with afterok dependencies, wait, cancel the dependents
of a failed stage, and report failures with their job ids and stderr tails."""

from __future__ import annotations

import contextlib
import io
import shlex
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import submitit
from rich.console import Console

import harness
from harness.errors import StageFailed, UserError
from harness.executors.slurm.cluster import cancel_jobs, query_states, require_cluster, sbatch_errors, squeue_states
from harness.executors.slurm.job import StageJob
from harness.executors.slurm.record import logs_dir, read_record, update_record
from harness.executors.slurm.resources import SlurmResources, resources_from_params
from harness.executors.slurm.states import DONE, FAILED_STATES, is_terminal
from harness.stages import Stage, topological
from harness.workspace import Workspace

MAX_TIMEOUT_REQUEUES = 20  # a stage longer than 20 time limits fails instead of requeueing forever
POLL_INTERVAL_S = 5.0
UNKNOWN_POLLS_BEFORE_LOST = 5  # a job neither squeue, sacct nor its result pickle knows about
STDERR_TAIL_LINES = 20
PACKAGE_ROOT = Path(harness.__file__).resolve().parent.parent  # the checkout the jobs import from

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
