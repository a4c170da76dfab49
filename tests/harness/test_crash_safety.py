"""Crash safety for real: SIGKILL a training process mid-stage and rerun; concurrent runs of one
stage; torn files are never taken as done."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from harness.config import load_benchmarks
from harness.matrix import Planner
from harness.workspace import Workspace, atomic_write_json
from tests.conftest import REPO

EPOCHS = 4


def multi_epoch_stage(workspace: Workspace):
    stage = Planner(load_benchmarks(), "tiny", smoke=True).baseline("r18", 0)
    config = {**stage.config, "recipe": {**stage.config["recipe"], "epochs": EPOCHS}}
    return replace(stage, config=config)


def start_stage(spec: Path, workspace: Workspace, sleep_s: float) -> subprocess.Popen:
    command = [sys.executable, "-m", "harness", "run-stage", str(spec), "--artifacts", str(workspace.artifacts), "--results", str(workspace.results)]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, "DISCO_EPOCH_SLEEP": str(sleep_s)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except Exception:  # not there yet
        return 0


def wait_for_epoch(path: Path, epoch: int, timeout_s: float = 300) -> None:
    deadline = time.time() + timeout_s
    while checkpoint_epoch(path) < epoch:
        assert time.time() < deadline, f"no checkpoint at epoch {epoch} after {timeout_s} s"
        time.sleep(0.5)


@pytest.fixture
def workspace(tmp_path):
    return Workspace(tmp_path / "artifacts", tmp_path / "results")


def test_sigkill_mid_stage_then_rerun_continues_from_the_last_completed_epoch(workspace):
    stage = multi_epoch_stage(workspace)
    spec = stage.write_spec(workspace)
    checkpoint = workspace.stage_dir(stage.name, stage.key) / "checkpoint.pt"
    victim = start_stage(spec, workspace, sleep_s=4.0)
    wait_for_epoch(checkpoint, 2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = checkpoint_epoch(checkpoint)
    history_before = torch.load(checkpoint, map_location="cpu", weights_only=False)["history"]
    assert 2 <= killed_at < EPOCHS and not stage.is_done(workspace)

    rerun = start_stage(spec, workspace, sleep_s=0.0)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()
    result = json.loads(workspace.result_path(stage.profile, stage.name).read_text())
    assert result["metrics"]["resumed_from_epoch"] == killed_at  # lost at most the epoch in flight
    assert result["metrics"]["epochs"] == EPOCHS
    assert result["history"][:killed_at] == history_before  # finished epochs were not recomputed
    assert not list(workspace.stage_dir(stage.name, stage.key).glob(".*.tmp"))


def test_resumed_training_equals_an_uninterrupted_one(workspace, tmp_path):
    stage = multi_epoch_stage(workspace)
    interrupted = start_stage(stage.write_spec(workspace), workspace, sleep_s=4.0)
    wait_for_epoch(workspace.stage_dir(stage.name, stage.key) / "checkpoint.pt", 1)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert start_stage(stage.spec_path(workspace), workspace, 0.0).wait(timeout=600) == 0
    clean = Workspace(tmp_path / "clean-artifacts", tmp_path / "clean-results")
    assert start_stage(stage.write_spec(clean), clean, 0.0).wait(timeout=600) == 0
    resumed = torch.load(workspace.stage_dir(stage.name, stage.key) / "final.pt", weights_only=False)["encoder"]
    straight = torch.load(clean.stage_dir(stage.name, stage.key) / "final.pt", weights_only=False)["encoder"]
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)


def test_two_concurrent_runs_never_train_the_same_stage_twice(workspace):
    stage = multi_epoch_stage(workspace)
    spec = stage.write_spec(workspace)
    first = start_stage(spec, workspace, sleep_s=1.0)
    time.sleep(0.5)
    second = start_stage(spec, workspace, sleep_s=1.0)
    assert first.wait(timeout=600) == 0 and second.wait(timeout=600) == 0
    result = json.loads(workspace.result_path(stage.profile, stage.name).read_text())
    assert result["metrics"]["epochs"] == EPOCHS and len(result["history"]) == EPOCHS
    assert result["metrics"]["resumed_from_epoch"] == 0  # one uninterrupted training, not two


def test_a_torn_result_file_is_not_taken_as_done_and_is_replaced(workspace):
    stage = multi_epoch_stage(workspace)
    result_path = workspace.result_path(stage.profile, stage.name)
    result_path.parent.mkdir(parents=True)
    result_path.write_text('{"status": "done", "stage": {"key": "' + stage.key + '"')  # cut mid-write
    assert not stage.is_done(workspace)
    assert start_stage(stage.write_spec(workspace), workspace, 0.0).wait(timeout=600) == 0
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
