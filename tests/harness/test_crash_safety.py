"""Crash safety for real: SIGKILL a run at exact points (disco/pause_points.py: mid-epoch-sequence,
mid-checkpoint-write, mid-evaluation, mid-result-write) and rerun; concurrent runs of one stage; torn
files are never taken as done. No test here depends on how fast the machine is."""

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from disco.atomic import atomic_write_bytes
from disco.errors import DiskFull
from harness.config import load_benchmarks
from harness.matrix import Planner
from harness.results import load_result
from harness.workspace import Workspace, atomic_write_json
from tests.conftest import REPO, SMOKE_CELL, SmokeCell, cell_results, cell_tensors, paused_env, wait_until_paused

EPOCHS = 4


def multi_epoch_stage(workspace: Workspace):
    stage = Planner(load_benchmarks(), "tiny", smoke=True).baseline("r18", 0)
    config = {**stage.config, "recipe": {**stage.config["recipe"], "epochs": EPOCHS}}
    return replace(stage, config=config)


def start_stage(spec: Path, workspace: Workspace, sleep_s: float = 0.0, env: dict | None = None) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "harness",
        "run-stage",
        str(spec),
        "--artifacts",
        str(workspace.artifacts),
        "--results",
        str(workspace.results),
    ]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "DISCO_EPOCH_SLEEP": str(sleep_s), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def checkpoint_epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def kill_at(spec: Path, workspace: Workspace, point: str, tmp_path: Path) -> None:
    marker = tmp_path / "paused"
    wait_until_paused(start_stage(spec, workspace, env=paused_env(point, marker)), marker)


@pytest.fixture
def workspace(tmp_path):
    return Workspace(tmp_path / "artifacts", tmp_path / "results")


def test_sigkill_mid_stage_then_rerun_continues_from_the_last_completed_epoch(workspace, tmp_path):
    stage = multi_epoch_stage(workspace)
    spec = stage.write_spec(workspace)
    checkpoint = workspace.stage_dir(stage.name, stage.key) / "checkpoint.pt"
    kill_at(spec, workspace, "pretrain:epoch:2", tmp_path)  # right after epoch 2's checkpoint
    history_before = torch.load(checkpoint, map_location="cpu", weights_only=True)["history"]
    assert checkpoint_epoch(checkpoint) == 2 and not stage.is_done(workspace)

    rerun = start_stage(spec, workspace)
    assert rerun.wait() == 0, rerun.stderr.read()
    result = json.loads(workspace.result_path(stage.profile, stage.name).read_text())
    assert result["metrics"]["resumed_from_epoch"] == 2 and result["metrics"]["epochs"] == EPOCHS
    assert result["history"][:2] == history_before  # finished epochs were not recomputed
    assert not list(workspace.stage_dir(stage.name, stage.key).glob(".*.tmp"))


def test_sigkill_mid_checkpoint_write_resumes_from_the_previous_epoch_exactly(workspace, tmp_path):
    stage = multi_epoch_stage(workspace)
    spec = stage.write_spec(workspace)
    stage_dir = workspace.stage_dir(stage.name, stage.key)
    kill_at(spec, workspace, "write:checkpoint.pt#3", tmp_path)  # epoch 3's checkpoint half written
    assert [path.name.startswith(".checkpoint.pt.") for path in stage_dir.glob(".*.tmp")] == [True]
    assert not (stage_dir / "checkpoint.pt").exists() and checkpoint_epoch(stage_dir / "checkpoint.prev.pt") == 2

    assert start_stage(spec, workspace).wait() == 0
    assert load_result(workspace.result_path(stage.profile, stage.name)).metrics["resumed_from_epoch"] == 2
    assert not list(stage_dir.glob(".*.tmp"))
    clean = Workspace(tmp_path / "clean-artifacts", tmp_path / "clean-results")
    assert start_stage(stage.write_spec(clean), clean).wait() == 0
    resumed = torch.load(stage_dir / "final.pt", weights_only=True)["encoder"]
    straight = torch.load(clean.stage_dir(stage.name, stage.key) / "final.pt", weights_only=True)["encoder"]
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)


def test_two_concurrent_runs_never_train_the_same_stage_twice(workspace):
    stage = multi_epoch_stage(workspace)
    spec = stage.write_spec(workspace)
    first = start_stage(spec, workspace, sleep_s=1.0)
    second = start_stage(spec, workspace, sleep_s=1.0)
    assert first.wait() == 0 and second.wait() == 0
    result = json.loads(workspace.result_path(stage.profile, stage.name).read_text())
    assert result["metrics"]["epochs"] == EPOCHS and len(result["history"]) == EPOCHS
    assert result["metrics"]["resumed_from_epoch"] == 0  # one uninterrupted training, not two


def test_a_torn_result_file_is_not_taken_as_done_and_is_replaced(workspace):
    stage = multi_epoch_stage(workspace)
    result_path = workspace.result_path(stage.profile, stage.name)
    result_path.parent.mkdir(parents=True)
    result_path.write_text('{"status": "done", "stage": {"key": "' + stage.key + '"')  # cut mid-write
    assert not stage.is_done(workspace)
    assert start_stage(stage.write_spec(workspace), workspace).wait() == 0
    assert stage.is_done(workspace)


def test_atomic_write_leaves_the_previous_file_intact_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    atomic_write_json(target, {"value": 1})

    def fail(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_json(target, {"value": 2})
    assert json.loads(target.read_text()) == {"value": 1}
    assert [path.name for path in tmp_path.iterdir()] == ["result.json"]  # no temp file left


# A whole smoke cell killed at one point after another, each run resuming the last; the run that
# finishes must leave every result as an uninterrupted run leaves it (test_repeatability.py shows that
# a cell repeats bit for bit), and no temp file.
KILL_POINTS = [
    "write:checkpoint.pt#1",  # the teacher's first checkpoint, half written
    "write:final.pt#2",  # the second training stage's final checkpoint, half written
    "eval:epoch:1",  # inside the first evaluation (its probe trained, its result not yet written)
    "write:eval-knn-*.json",  # a result file, half written
    "write:report.md",  # the report, every stage done
]


def test_a_cell_killed_at_every_kind_of_point_finishes_with_every_result_valid(clean_smoke_cell, tmp_path):
    cell = SmokeCell(tmp_path, "")
    marker, log = tmp_path / "paused", (tmp_path / "stderr.log").open("w")
    for point in KILL_POINTS:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", *cell.args()],
            cwd=REPO,
            env={**os.environ, **paused_env(point, marker)},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        assert wait_until_paused(proc, marker)
    assert temp_files(tmp_path)  # the killed writes left theirs
    last = subprocess.run([sys.executable, "-m", "harness", *cell.args()], cwd=REPO, capture_output=True, text=True)
    assert last.returncode == 0, last.stderr[-2000:]
    assert not temp_files(tmp_path)
    resumed = [
        load_result(path).metrics.get("resumed_from_epoch")
        for path in (tmp_path / "r" / "tiny-smoke" / "stages").glob("*.json")
    ]
    assert max(filter(None, resumed), default=0) == 1  # the stage killed writing its final checkpoint did not retrain
    assert cell_results(tmp_path) == cell_results(clean_smoke_cell.root)
    assert cell_tensors(tmp_path) == cell_tensors(clean_smoke_cell.root)


def temp_files(root: Path) -> list[Path]:
    return [path for top in ("a", "r") for path in (root / top).rglob("*.tmp")]


def test_a_write_that_finds_no_space_is_disk_full_and_leaves_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"
    atomic_write_bytes(target, b"epoch 1")

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(
        DiskFull, match=rf"no space left on the device writing {target}, needing 7\.0 KiB; .* free there"
    ):
        atomic_write_bytes(target, b"x" * 7168)
    assert target.read_bytes() == b"epoch 1"
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


@pytest.fixture
def small_filesystem(tmp_path) -> Iterator[Path]:
    """A tmpfs mounted for the test, resized by `mount -o remount,size=...` (root: CI runs as root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but not root: the disk-full test mounts a tmpfs")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "disco-bench-test", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def resize(mount: Path, size_bytes: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size_bytes}", str(mount)], check=True)


def test_a_full_disk_stops_the_stage_in_one_line_and_the_rerun_resumes_after_space_is_freed(small_filesystem, tmp_path):
    clean = Workspace(tmp_path / "clean-artifacts", tmp_path / "clean-results")
    stage = multi_epoch_stage(clean)
    assert start_stage(stage.write_spec(clean), clean).wait() == 0
    checkpoint_bytes = (clean.stage_dir(stage.name, stage.key) / "checkpoint.pt").stat().st_size
    # room for epoch 1's checkpoint, not for epoch 2's beside it (the previous one is kept): full at epoch 2
    resize(small_filesystem, int(checkpoint_bytes * 1.5))
    full = Workspace(small_filesystem / "artifacts", small_filesystem / "results")
    spec = stage.write_spec(full)
    stage_dir = full.stage_dir(stage.name, stage.key)

    proc = start_stage(spec, full)
    _, stderr = proc.communicate()
    assert proc.returncode == DiskFull.exit_code, stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(
        f"error: stage {stage.name}: no space left on the device writing {stage_dir / 'checkpoint.pt'}, needing "
    ), line
    assert "free there" in line and "Traceback" not in stderr
    assert checkpoint_epoch(stage_dir / "checkpoint.prev.pt") == 1  # the last good checkpoint, intact
    assert not list(stage_dir.glob(".*.tmp")) and not stage.is_done(full)

    resize(small_filesystem, checkpoint_bytes * 4)  # space freed
    rerun = start_stage(spec, full)
    _, stderr = rerun.communicate()
    assert rerun.returncode == 0, stderr
    assert load_result(full.result_path(stage.profile, stage.name)).metrics["resumed_from_epoch"] == 1
    resumed = torch.load(stage_dir / "final.pt", weights_only=True)["encoder"]
    straight = torch.load(clean.stage_dir(stage.name, stage.key) / "final.pt", weights_only=True)["encoder"]
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)


def every_file(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for top in ("a", "r") for path in (root / top).rglob("*") if path.is_file()}


@pytest.mark.slow
def test_a_cell_killed_at_twenty_random_moments_finishes_as_a_clean_run(clean_smoke_cell, tmp_path):
    """SIGKILL (the whole process group) at 20 moments drawn from a seeded generator over the clean
    run's length, a rerun after each resuming where the last left off. Whatever the moments hit (a
    checkpoint write, an evaluation, the report, start-up), the final run leaves every result and
    every final encoder as the uninterrupted run did, bit for bit, and no temp, torn or orphan file.
    Where the moments land depends on the machine's speed; what must hold does not."""
    cell = SmokeCell(tmp_path, "")
    moments = random.Random(20).sample(range(1, 1000), 20)
    log = (tmp_path / "stderr.log").open("w")
    for moment in moments:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", *cell.args()],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=moment / 1000 * 0.5 * clean_smoke_cell.seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    last = subprocess.run([sys.executable, "-m", "harness", *cell.args()], cwd=REPO, capture_output=True, text=True)
    assert last.returncode == 0, last.stderr[-2000:]
    assert cell_results(tmp_path) == cell_results(clean_smoke_cell.root)
    assert cell_tensors(tmp_path) == cell_tensors(clean_smoke_cell.root)
    left = every_file(tmp_path) - every_file(clean_smoke_cell.root)
    assert not left, f"files a clean run does not leave: {sorted(left)}"


def test_two_runs_on_overlapping_cells_train_every_stage_once_and_the_second_says_it_reused(tmp_path):
    """Two `disco-bench run` processes on one artifacts/results folder (two terminals, two Slurm
    arrays on a shared filesystem): the second starts while the first trains the shared teacher."""
    where = ["--artifacts", str(tmp_path / "a"), "--results", str(tmp_path / "r"), "--reference", ""]
    cell = [*SMOKE_CELL[1:], "--evals", "linear"]  # SMOKE_CELL without its leading "run"
    env = {**os.environ, "DISCO_EPOCH_SLEEP": "3"}  # each epoch outlasts the second run's start-up
    command = [sys.executable, "-m", "harness", "run", *cell, *where]

    def start(extra: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            command + extra, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    first = start([])
    while not list((tmp_path / "a" / "stages").glob("pretrain-*/.lock")):  # the first run holds a stage
        assert first.poll() is None, first.communicate()[1][-2000:]
        time.sleep(0.1)
    second = start(["--methods", "disco,disco_only_mse"])  # overlaps: the same teacher, baseline and DisCo
    outputs = [proc.communicate() for proc in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, [err[-2000:] for _, err in outputs]
    log = "\n".join(out + err for out, err in outputs)
    assert "waiting: another run holds this stage's lock" in log and "reused the result the other run stored" in log

    results = [load_result(path) for path in (tmp_path / "r" / "tiny-smoke" / "stages").glob("*.json")]
    trained = [result for result in results if result.stage.kind in ("pretrain", "distill")]
    assert {result.stage.name.split("-")[1] for result in trained} >= {"simclr", "disco", "disco_only_mse"}
    for result in trained:  # each epoch of each training stage ran once, in one of the two runs
        epochs = len(result.history)
        lines = re.findall(rf"^\[{re.escape(result.stage.name)}\] epoch \d+/{epochs} ", log, flags=re.MULTILINE)
        assert len(lines) == epochs and result.metrics["resumed_from_epoch"] == 0, (result.stage.name, lines)
    assert not [path for path in tmp_path.rglob("*.tmp")]
