"""`disco-bench list` and `disco-bench status` from synthetic stored results and checkpoints."""

import importlib
import json
from pathlib import Path

import pytest
import torch

from harness.commands.listing import StageState, stage_state
from harness.config import load_benchmarks
from harness.matrix import Planner
from harness.workspace import Workspace
from tests.harness.test_report import run_cli, store_cell, write_result

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def planner() -> Planner:
    bench = load_benchmarks(REPO / "benchmarks.yaml")
    linear_only = {name: profile.model_copy(update={"evals": ["linear"]}) for name, profile in bench.profiles.items()}
    return Planner(bench.model_copy(update={"profiles": linear_only}), "tiny")


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path / "artifacts", tmp_path / "results")


def save_checkpoint(workspace: Workspace, stage, epoch: int) -> Path:
    stage_dir = workspace.stage_dir(stage.name, stage.key)
    stage_dir.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"epoch": epoch, "history": [{"loss": 1.0}] * epoch, "method": {"w": torch.zeros(4)}, "optimizer": {}},
        stage_dir / "checkpoint.pt",
    )
    return stage_dir


def test_stage_states(planner, workspace):
    cell = planner.cell("r50-effb0")
    write_result(workspace, cell.teacher, {})
    save_checkpoint(workspace, cell.baseline, epoch=2)
    write_result(workspace, cell.methods["disco"], {}, key="0" * 64)
    assert stage_state(cell.teacher, workspace) == StageState("done")
    assert stage_state(cell.baseline, workspace) == StageState("partial", 2, planner.profile.pretrain.epochs)
    assert stage_state(cell.methods["disco"], workspace).describe().startswith("pending (stored result is for another")
    assert stage_state(cell.random_init, workspace) == StageState("pending")


def test_the_epoch_sidecar_is_preferred_and_a_torn_checkpoint_is_still_partial(planner, workspace):
    cell = planner.cell("r50-effb0")
    stage_dir = save_checkpoint(workspace, cell.baseline, epoch=2)
    (stage_dir / "checkpoint.json").write_text(json.dumps({"epoch": 4}))
    assert stage_state(cell.baseline, workspace).epochs_done == 4
    (stage_dir / "checkpoint.json").unlink()
    (stage_dir / "checkpoint.pt").write_bytes(b"torn")
    assert stage_state(cell.baseline, workspace).describe() == "partially trained"


def test_list_shows_the_matrix_with_stage_counts(planner, workspace, monkeypatch, capsys):
    cell = planner.cell("r50-effb0")
    store_cell(workspace, cell, {"random_init": 10.0, "baseline": 50.0, "disco": 60.0, "teacher": 70.0})
    write_result(workspace, cell.teacher, {})
    code, out, err = run_cli(
        monkeypatch, capsys, "list", "--results", str(workspace.results), "--artifacts", str(workspace.artifacts)
    )
    assert code == 0, err
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.count("|") > 3}
    real_stages = len(
        Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny").cell("r50-effb0").stages()
    )  # the CLI reads the real file
    assert f"5/{real_stages} done" in rows["r50-effb0 (default)"] and "some done" in rows["r50-effb0 (default)"]
    assert f"0/{real_stages} done" in rows["xcits-xcitt"] and "pending" in rows["xcits-xcitt"]
    assert "done" in rows["r50"]  # the teacher's pretraining stage
    for section in ("teachers", "students", "evaluations", "methods"):
        assert section in out
    assert "top1_best ↑ (top1 beside)" in rows["linear"] and "top1 ↑" in rows["knn"]  # the evaluation registry's
    assert "AP ↑ (AP50 beside)" in rows["detection"]


def test_status_shows_done_partial_pending_and_slurm_states(planner, workspace, monkeypatch, capsys):
    cell = planner.cell("r50-effb0")
    write_result(workspace, cell.teacher, {})
    save_checkpoint(workspace, cell.baseline, epoch=3)
    try:
        slurm = importlib.import_module("harness.executors.slurm")
        monkeypatch.setattr(slurm, "job_states", lambda ws: {cell.methods["disco"].name: "RUNNING"})
    except ImportError:
        slurm = None
    code, out, err = run_cli(
        monkeypatch, capsys, "status", "--results", str(workspace.results), "--artifacts", str(workspace.artifacts)
    )
    assert code == 0, err
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.count("|") > 3}
    assert "done" in rows[cell.teacher.name]
    assert f"partially trained (3/{planner.profile.pretrain.epochs} epochs)" in rows[cell.baseline.name]
    assert "pending" in rows[cell.random_init.name]
    if slurm is not None:
        assert "RUNNING" in rows[cell.methods["disco"].name]
    real_stages = len(
        Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny").cell("r50-effb0").stages()
    )  # the CLI reads the real file
    assert f"1 done, 1 partially trained, {real_stages - 2} pending" in out


def test_training_writes_the_progress_file_that_status_reads(tmp_path):
    from harness.commands.listing import checkpoint_epoch
    from harness.runner import run_stage_from_spec

    workspace = Workspace(tmp_path / "artifacts", tmp_path / "results")
    stage = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny", smoke=True).cell("r50-effb0").baseline
    run_stage_from_spec(stage.write_spec(workspace), workspace)
    stage_dir = workspace.stage_dir(stage.name, stage.key)
    assert json.loads((stage_dir / "checkpoint.json").read_text()) == {"epoch": 1, "epochs": 1}
    (stage_dir / "checkpoint.pt").write_bytes(b"torn")  # the sidecar alone answers
    assert checkpoint_epoch(stage_dir) == 1
