"""The Slurm executor against a real cluster (`bash .ci/setup-slurm.sh` starts a single-node one).

Tests marked `slurm` skip with the reason when no cluster answers `sinfo`, and fail instead under
CI=true. The unmarked tests at the top check option parsing and need no cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from submitit.slurm.slurm import _make_sbatch_string

from harness.config import load_benchmarks
from harness.errors import StageFailed, UserError
from harness.executors import slurm
from harness.executors.slurm import (
    SlurmExecutor,
    SlurmResources,
    job_states,
    logs_dir,
    submitted_jobs,
)
from harness.matrix import Planner
from harness.results import load_result
from harness.stages import Stage, topological
from harness.workspace import Workspace
from tests.conftest import disco_bench

REPO = Path(__file__).resolve().parents[2]
PAIR = "r50-effb0"


# ---------------------------------------------------------------- no cluster needed


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("90", 90), ("5:30", 6), ("01:00:00", 60), ("72:00:00", 4320), ("1-2", 1560), ("2-00:30", 2910), ("0-0:0:59", 1)],
)
def test_slurm_time_syntax_becomes_minutes(text: str, minutes: int) -> None:
    assert slurm.parse_time_minutes(text) == minutes


@pytest.mark.parametrize("text", ["1h", "", "1:2:3:4", "0", "-5"])
def test_bad_slurm_time_is_one_clear_error(text: str) -> None:
    with pytest.raises(UserError, match="Slurm time"):
        slurm.parse_time_minutes(text)


def test_command_line_overrides_the_profile(tmp_path: Path) -> None:
    params = {
        "profile_slurm": {"nodes": 1, "gpus_per_node": 8, "cpus_per_task": 32, "mem": "256G", "time": "72:00:00", "extra": {"qos": "low", "exclusive": True}},
        "slurm_partition": "gpu", "slurm_nodes": None, "slurm_gpus_per_node": 4, "slurm_cpus_per_task": None,
        "slurm_mem": None, "slurm_time": "1-00:00:00", "slurm_account": "disco", "slurm_extra": ("qos=high",),
    }  # fmt: skip
    resources = slurm.resources_from_params(params)
    assert resources == SlurmResources(
        partition="gpu", account="disco", nodes=1, gpus_per_node=4, cpus_per_task=32, mem="256G", time_min=1440,
        extra={"qos": "high", "exclusive": True},
    )  # fmt: skip
    assert resources.ranks == 4  # one DDP rank per GPU unless ranks_per_node says otherwise
    script = _make_sbatch_string(
        command="true", folder=tmp_path, **resources.submitit_parameters("stage-a", "afterok:1:2")
    )
    for line in [
        "--dependency=afterok:1:2", "--kill-on-invalid-dep=yes", "--partition=gpu", "--account=disco", "--gpus-per-node=4",
        "--cpus-per-task=32", "--mem=256G", "--time=1440", "--qos=high", "--ntasks-per-node=1", "--job-name=stage-a",
    ]:  # fmt: skip
        assert f"#SBATCH {line}\n" in script, line
    assert "#SBATCH --exclusive\n" in script


def test_profile_without_slurm_block_uses_defaults() -> None:
    assert slurm.resources_from_params({}) == SlurmResources()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"profile_slurm": {"gpus": 8}}, "unknown key"),
        ({"slurm_mem": "lots"}, "Slurm memory 'lots'"),
        ({"slurm_extra": ("=x",)}, "--slurm-extra '=x'"),
        ({"profile_slurm": {"nodes": "two"}}, "Slurm nodes 'two' is not a whole number >= 1"),
        ({"profile_slurm": {"gpus_per_node": -1}}, "Slurm gpus_per_node '-1'"),
    ],
)
def test_bad_resources_are_one_clear_error(params: dict, message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        slurm.resources_from_params(params)


def test_no_slurm_on_path_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="needs Slurm's client commands on PATH"):
        slurm.require_cluster(None)


def test_job_states_of_an_empty_workspace(tmp_path: Path) -> None:
    assert job_states(Workspace(tmp_path / "a", tmp_path / "r")) == {}


# ---------------------------------------------------------------- helpers


def cluster_unreachable() -> str | None:
    """Why no cluster can take jobs, or None when sinfo shows a node up."""
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH"
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30, check=False)
    if out.returncode != 0:
        return f"sinfo failed: {slurm.first_line(out.stderr)}"
    states = out.stdout.split()
    if not any(state.rstrip("*") in ("idle", "mix", "alloc", "comp") for state in states):
        return f"no node is up (sinfo node states: {', '.join(states) or 'none'})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    reason = cluster_unreachable()
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but no Slurm cluster is reachable: {reason}; .ci/setup-slurm.sh should have started one")
    if reason:
        pytest.skip(f"no Slurm cluster reachable: {reason} (start one with `bash .ci/setup-slurm.sh`)")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on this host's filesystem (the single node shares it); jobs left queued by a
    failing test are cancelled."""
    ws = Workspace(tmp_path / "artifacts", tmp_path / "results")
    yield ws
    slurm.cancel_jobs(sorted(set(submitted_jobs(ws).values())))


@contextlib.contextmanager
def deadline(seconds: int, what: str) -> Iterator[None]:
    """Fail instead of hanging when the cluster never finishes the jobs."""

    def expire(signum, frame):
        raise TimeoutError(f"{what} did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def smoke_planner() -> Planner:
    return Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny", smoke=True)


def with_epochs(stage: Stage, epochs: int) -> Stage:
    """The stage with more (one-step) epochs, so a job can be interrupted between epochs."""
    recipe = {**stage.config["recipe"], "epochs": epochs, "limit_batches": 1}
    return dataclasses.replace(stage, config={**stage.config, "recipe": recipe})


def epochs_in(text: str) -> list[int]:
    """Epochs in a job's stdout, from the EpochLines StageJob prints: `[stage] epoch 3/6 · ... | ...`."""
    return [int(match) for match in re.findall(r"^\[[^\]]+\] epoch (\d+)/\d+ ", text, flags=re.MULTILINE)]


def epochs_logged(workspace: Workspace, job_id: str) -> list[int]:
    """Epochs the job's stage finished, in order, from the job's stdout."""
    try:
        return epochs_in((logs_dir(workspace) / f"{job_id}_0_log.out").read_text())
    except OSError:
        return []


def wait_until(predicate, timeout_s: float, what: str) -> None:
    stop = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > stop:
            raise TimeoutError(f"{what} within {timeout_s:.0f} s")
        time.sleep(0.5)


def squeue_state(job_id: str, name: str) -> str:
    return slurm.squeue_states({job_id: name}).get(job_id, "UNKNOWN")


class OneNodeJob:
    """What StageJob reads of submitit's JobEnvironment in a one-node, one-rank job."""

    num_nodes = 1


def test_a_job_prints_one_line_per_epoch_that_the_log_parser_reads(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """StageJob's own code path without a cluster: the stage runs in-process and its stdout (the
    job's _0_log.out on Slurm) carries the EpochLines progress, one line per epoch."""
    stage = with_epochs(smoke_planner().baseline("effb0", 0), 2)
    spec = stage.write_spec(workspace)
    monkeypatch.setattr(slurm.job.submitit, "JobEnvironment", OneNodeJob)
    outcome = slurm.StageJob()(str(spec), str(workspace.artifacts), str(workspace.results))
    out = capsys.readouterr().out
    assert outcome["status"] == "done" and stage.is_done(workspace)
    assert epochs_in(out) == [1, 2], out
    assert f"[{stage.name}] epoch 2/2 · " in out and f"stage {stage.name}: done" in out


# ---------------------------------------------------------------- on the cluster


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_cell_completes_with_results_on_disk(cluster, workspace: Workspace) -> None:
    """`disco-bench run --executor slurm` as a user types it: 8 jobs (4 encoders, their linear
    probes) chained by afterok."""
    command = [
        sys.executable, "-c", "from harness.cli import main; main()", "run", "--pair", PAIR, "--profile", "tiny", "--smoke", "--evals", "linear",
        "--executor", "slurm", "--artifacts", str(workspace.artifacts), "--results", str(workspace.results),
    ]  # fmt: skip
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]

    stages = smoke_planner().cell(PAIR, evals=["linear"]).stages()
    jobs = submitted_jobs(workspace)
    assert sorted(jobs) == sorted(stage.name for stage in stages)
    assert set(job_states(workspace).values()) == {"COMPLETED"}
    for stage in stages:
        result = load_result(workspace.result_path(stage.profile, stage.name))
        assert result is not None and result.status == "done" and result.stage.key == stage.key, stage.name
        assert result.provenance.executor == "slurm"
        script = (logs_dir(workspace) / f"{jobs[stage.name]}_submission.sh").read_text()
        for dep in stage.inputs.values():  # the stage graph became Slurm dependencies
            assert f"#SBATCH --dependency=afterok:{jobs[dep.name]}" in script
    assert len(re.findall(r"^\[[\d:]+\] job \d+ \S+: COMPLETED$", out.stderr, flags=re.MULTILINE)) == len(stages), (
        out.stderr
    )


@pytest.mark.slurm
@pytest.mark.slow
def test_cancelled_stage_resumes_from_its_checkpoint_when_resubmitted(
    cluster, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = with_epochs(smoke_planner().baseline("effb0", 0), 6)
    monkeypatch.setenv("DISCO_EPOCH_SLEEP", "2")  # sbatch exports the submitter's environment to the job
    SlurmExecutor(SlurmResources(time_min=15), wait=False).run([stage], workspace)
    first_job = submitted_jobs(workspace)[stage.name]
    wait_until(lambda: len(epochs_logged(workspace, first_job)) >= 2, 240, f"job {first_job} never logged 2 epochs")

    subprocess.run(["scancel", first_job], check=True)
    wait_until(lambda: squeue_state(first_job, stage.name) == "CANCELLED", 60, f"job {first_job} was not cancelled")
    done_before_cancel = epochs_logged(workspace, first_job)
    assert done_before_cancel[-1] < 6 and not stage.is_done(workspace)

    monkeypatch.setenv("DISCO_EPOCH_SLEEP", "0")
    with deadline(600, "the resubmitted stage"):
        SlurmExecutor(SlurmResources(time_min=15), poll_interval_s=1).run([stage], workspace)
    second_job = submitted_jobs(workspace)[stage.name]
    resumed = epochs_logged(workspace, second_job)
    assert second_job != first_job
    assert resumed[0] > 1 and resumed[0] >= done_before_cancel[-1] + 1, (done_before_cancel, resumed)
    assert resumed[-1] == 6
    result = load_result(workspace.result_path(stage.profile, stage.name))
    assert result is not None and [entry["epoch"] for entry in result.history] == [1, 2, 3, 4, 5, 6]


def checkpoint_history(workspace: Workspace, stage: Stage) -> list[dict]:
    """The per-epoch history in the stage's last checkpoint (empty before the first epoch)."""
    path = workspace.stage_dir(stage.name, stage.key) / "checkpoint.pt"
    try:
        return torch.load(path, map_location="cpu", weights_only=False)["history"]
    except (OSError, EOFError, RuntimeError, KeyError):
        return []


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2], ids=["1-rank", "2-ranks-torchrun"])
def test_preempted_job_requeues_itself_and_resumes(
    cluster, workspace: Workspace, monkeypatch: pytest.MonkeyPatch, ranks: int
) -> None:
    """USR2 is what Slurm sends before a timeout (and submitit's preemption signal): the job
    checkpoints, requeues under the same id and the stage carries on from its last epoch. With two
    ranks the job's task runs the stage under torchrun (DDP over gloo on this CPU node)."""
    stage = with_epochs(smoke_planner().baseline("effb0", 0), 5)
    monkeypatch.setenv("DISCO_EPOCH_SLEEP", "2")
    executor = SlurmExecutor(SlurmResources(time_min=15, ranks_per_node=ranks, cpus_per_task=ranks), poll_interval_s=1)
    slurm.require_cluster(None)
    [job] = executor.submit([stage], workspace)
    wait_until(
        lambda: len(checkpoint_history(workspace, stage)) >= 2, 300, f"job {job.job_id} never checkpointed 2 epochs"
    )

    [again] = executor.submit([stage], workspace)  # a second `run` while it runs: no duplicate job
    assert again.reused and again.job_id == job.job_id

    before_signal = checkpoint_history(workspace, stage)
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True)
    with deadline(600, "the requeued stage"):
        executor.wait_for([job], workspace)
    err = (logs_dir(workspace) / f"{job.job_id}_0_log.err").read_text()
    out = (logs_dir(workspace) / f"{job.job_id}_0_log.out").read_text()  # both runs append to the same logs
    assert "Caught signal SIGUSR2" in err and "DUE TO JOB REQUEUE" in err, err[-2000:]
    assert out.count("stage spec ") == 2  # started twice under one job id
    result = load_result(workspace.result_path(stage.profile, stage.name))
    assert result is not None and [entry["epoch"] for entry in result.history] == [1, 2, 3, 4, 5]
    assert result.history[: len(before_signal)] == before_signal  # epochs done before the signal were not retrained
    if ranks == 1:
        assert epochs_logged(workspace, job.job_id) == [1, 2, 3, 4, 5]  # every epoch trained exactly once
        # and the requeued stage ends as an uninterrupted one, bit for bit (the same spec, run here)
        clean = Workspace(
            workspace.artifacts.parent / "uninterrupted-a", workspace.artifacts.parent / "uninterrupted-r"
        )
        straight_run = disco_bench(
            "run-stage", str(stage.write_spec(clean)), "--artifacts", str(clean.artifacts), "--results", str(clean.results),
            env={"DISCO_EPOCH_SLEEP": "0"},
        )  # fmt: skip
        assert straight_run.returncode == 0, straight_run.stderr[-2000:]
        final = "final.pt"
        requeued = torch.load(workspace.stage_dir(stage.name, stage.key) / final, weights_only=True)["encoder"]
        straight = torch.load(clean.stage_dir(stage.name, stage.key) / final, weights_only=True)["encoder"]
        assert requeued.keys() == straight.keys() and all(torch.equal(requeued[k], straight[k]) for k in straight)
    else:
        assert out.count("--nproc-per-node=2") == 2  # torchrun started on each run
        assert len(re.findall(rf"^{re.escape(stage.name)}: done \(", out, flags=re.MULTILINE)) == 2  # by both ranks


def break_stage(stages: list[Stage], broken: Stage) -> list[Stage]:
    """The same graph with `broken` given an architecture that does not exist (it fails in its job)."""
    rebuilt: dict[str, Stage] = {}
    for stage in topological(stages):
        config = {**stage.config, "arch": "no-such-arch"} if stage.key == broken.key else stage.config
        inputs = {role: rebuilt[dep.key] for role, dep in stage.inputs.items()}
        rebuilt[stage.key] = dataclasses.replace(stage, config=config, inputs=inputs)
    return list(rebuilt.values())


@pytest.mark.slurm
@pytest.mark.slow
def test_failed_stage_cancels_its_dependents_and_is_named(cluster, workspace: Workspace) -> None:
    cell = smoke_planner().cell(PAIR)
    chosen = [
        cell.teacher,
        cell.methods["disco"],
        cell.evals[("teacher", "linear")],
        cell.evals[("disco", "linear")],
        cell.random_init,
    ]
    stages = break_stage(chosen, cell.teacher)
    teacher, dependents, independent = stages[0], stages[1:4], stages[4]
    assert teacher.config["arch"] == "no-such-arch" and all(
        teacher.key in {d.key for d in topological([s])} for s in dependents
    )

    with deadline(600, "the failing cell"), pytest.raises(StageFailed) as failure:
        SlurmExecutor(SlurmResources(time_min=15), poll_interval_s=1).run(stages, workspace)

    jobs, states = submitted_jobs(workspace), job_states(workspace)
    message = str(failure.value)
    assert f"stage {teacher.name} failed as Slurm job {jobs[teacher.name]}" in message
    assert "no-such-arch" in message  # the tail of the failed job's stderr
    assert all(stage.name in message for stage in dependents)
    assert states[teacher.name] == "FAILED"
    for stage in dependents:
        assert states[stage.name] == "CANCELLED", (stage.name, states)
        assert not (logs_dir(workspace) / f"{jobs[stage.name]}_0_log.out").exists(), f"{stage.name} started"
        assert not workspace.result_path(stage.profile, stage.name).exists()
    assert states[independent.name] == "COMPLETED" and independent.is_done(workspace)


@pytest.mark.slurm
def test_unknown_partition_is_one_clear_error(cluster) -> None:
    with pytest.raises(UserError, match=r"unknown Slurm partition 'no-such-partition'.*available: "):
        slurm.require_cluster("no-such-partition")
