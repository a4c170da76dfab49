"""Damaged files in a workspace are recovered, never fatal and never deleted: a torn or foreign
resume checkpoint (resume from the previous epoch, or retrain), a torn final checkpoint of a finished
stage (pending again, recreated), a symbolic link loop, temp files left by a killed write."""

import os
from dataclasses import replace

import pytest
import torch

from harness.commands.listing import stage_state
from harness.config import load_benchmarks
from harness.matrix import Planner
from harness.runner import run_stage_from_spec
from harness.workspace import Workspace

EPOCHS = 3


@pytest.fixture
def workspace(tmp_path):
    return Workspace(tmp_path / "artifacts", tmp_path / "results")


@pytest.fixture
def trained(workspace):
    """A finished 3-epoch smoke stage: its stage, directory and final encoder."""
    stage = Planner(load_benchmarks(), "tiny", smoke=True).baseline("effb0", 0)
    stage = replace(stage, config={**stage.config, "recipe": {**stage.config["recipe"], "epochs": EPOCHS}})
    run(stage, workspace)
    stage_dir = workspace.stage_dir(stage.name, stage.key)
    return stage, stage_dir, encoder(stage_dir)


def run(stage, workspace):
    return run_stage_from_spec(stage.write_spec(workspace), workspace)


def encoder(stage_dir):
    return torch.load(stage_dir / "final.pt", weights_only=True)["encoder"]


def same(first, second):
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def tear(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return len(data) // 2


def unfinish(stage, stage_dir, workspace):
    """As if the run was killed after its last epoch's checkpoint: no final encoder, no result."""
    (stage_dir / "final.pt").unlink()
    workspace.result_path(stage.profile, stage.name).unlink()


def test_a_torn_resume_checkpoint_is_moved_aside_and_training_resumes_from_the_previous_epoch(
    trained, workspace, capsys
):
    stage, stage_dir, original = trained
    unfinish(stage, stage_dir, workspace)
    size = tear(stage_dir / "checkpoint.pt")
    capsys.readouterr()
    result = run(stage, workspace)
    assert result["metrics"]["resumed_from_epoch"] == EPOCHS - 1 and len(result["history"]) == EPOCHS
    assert (stage_dir / "checkpoint.pt.damaged").stat().st_size == size  # kept as it was
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "checkpoint.pt is damaged" in warnings[0] and "checkpoint.pt.damaged" in warnings[0]
    assert same(encoder(stage_dir), original)  # the resumed epoch is the one an uninterrupted run trained


def test_unreadable_resume_checkpoints_are_moved_aside_and_the_stage_retrains(trained, workspace):
    stage, stage_dir, original = trained
    unfinish(stage, stage_dir, workspace)
    torch.save([1, 2, 3], stage_dir / "checkpoint.pt")  # a loadable file holding no checkpoint
    tear(stage_dir / "checkpoint.prev.pt")
    result = run(stage, workspace)
    assert result["metrics"]["resumed_from_epoch"] == 0 and len(result["history"]) == EPOCHS
    assert (stage_dir / "checkpoint.pt.damaged").exists() and (stage_dir / "checkpoint.prev.pt.damaged").exists()
    assert same(encoder(stage_dir), original)


def test_a_torn_final_checkpoint_makes_a_finished_stage_pending_and_is_recreated_without_retraining(trained, workspace):
    stage, stage_dir, original = trained
    assert stage.is_done(workspace) and stage_state(stage, workspace).state == "done"
    tear(stage_dir / "final.pt")
    assert not stage.is_done(workspace) and stage_state(stage, workspace).state == "damaged"
    result = run(stage, workspace)
    assert result["metrics"]["resumed_from_epoch"] == EPOCHS  # rebuilt from the last epoch's checkpoint
    assert (stage_dir / "final.pt.damaged").exists() and same(encoder(stage_dir), original)
    assert stage.is_done(workspace) and stage_state(stage, workspace).state == "done"


def test_a_symbolic_link_loop_for_a_stage_directory_is_moved_aside(workspace, tmp_path, capsys):
    stage = Planner(load_benchmarks(), "tiny", smoke=True).random_init("effb0", 0)
    stage_dir = workspace.stage_dir(stage.name, stage.key)
    stage_dir.parent.mkdir(parents=True)
    os.symlink(stage_dir.name, stage_dir)  # points at itself
    assert stage_state(stage, workspace).state == "pending" and not stage.is_done(workspace)
    run(stage, workspace)
    assert stage.is_done(workspace) and stage_dir.is_dir() and not stage_dir.is_symlink()
    assert os.readlink(stage_dir.with_name(stage_dir.name + ".damaged")) == stage_dir.name  # the link, kept
    assert "a symbolic link loop" in capsys.readouterr().err


def test_temp_files_of_killed_writes_are_gone_after_the_rerun(workspace):
    stage = Planner(load_benchmarks(), "tiny", smoke=True).random_init("effb0", 0)
    stage_dir, result = workspace.stage_dir(stage.name, stage.key), workspace.result_path(stage.profile, stage.name)
    leftovers = [
        stage_dir / ".checkpoint.pt.x1.tmp",
        stage_dir / ".final.pt.x2.tmp",
        result.parent / f".{result.name}.x3.tmp",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    other = result.parent / ".some-other-stage.json.x4.tmp"  # another stage's write in flight: not ours
    other.write_bytes(b"")
    run(stage, workspace)
    assert not any(path.exists() for path in leftovers) and other.exists()


def test_an_unreadable_input_checkpoint_is_a_checkpoint_error_and_is_moved_aside(tmp_path):
    from disco.damaged import SUFFIX
    from disco.errors import CheckpointError
    from disco.tasks.artifacts import load_encoder_artifact

    (tmp_path / "final.pt").write_bytes(b"torn")
    with pytest.raises(CheckpointError, match="moved aside; run again") as caught:
        load_encoder_artifact(tmp_path)
    assert caught.value.exit_code == 5 and not (tmp_path / "final.pt").exists()
    assert (tmp_path / ("final.pt" + SUFFIX)).exists()
