"""A released MoCo-v2 teacher (official key layout) is imported strictly instead of pretrained,
and DisCo distils from it."""

import torch

from disco.models import build_encoder
from harness.config import load_benchmarks
from harness.matrix import Planner
from harness.runner import run_stage_from_spec
from harness.workspace import Workspace


def official_mocov2_release(path, arch="r50"):
    encoder = build_encoder(arch, "mocov2", image_size=32)
    state = encoder.backbone.state_dict()
    bundle = {f"module.encoder_q.{k}": v for k, v in state.items()} | {
        f"module.encoder_k.{k}": v.clone() for k, v in state.items()
    }
    bundle |= {
        "module.queue": torch.nn.functional.normalize(torch.randn(128, 64), dim=0),
        "module.queue_ptr": torch.tensor([8]),
    }
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": bundle, "optimizer": {}}, path)
    return encoder, bundle


def test_released_teacher_is_imported_and_distilled_from(tmp_path):
    release = tmp_path / "ResNet50-checkpoint_0199.pth.tar"
    encoder, bundle = official_mocov2_release(release)
    bench = load_benchmarks()
    tiny = bench.profiles["tiny"].model_copy(update={"teacher_checkpoints": {"r50": str(release)}})
    bench = bench.model_copy(update={"profiles": {**bench.profiles, "tiny": tiny}})
    cell = Planner(bench, "tiny", smoke=True).cell("r50-effb0")
    assert cell.teacher.kind == "import" and cell.teacher.config["checkpoint"]["file"] == release.name
    workspace = Workspace(tmp_path / "artifacts", tmp_path / "results")
    result = run_stage_from_spec(cell.teacher.write_spec(workspace), workspace)
    assert "loaded" in result["metrics"]["load_report"]
    saved = torch.load(workspace.stage_dir(cell.teacher.name, cell.teacher.key) / "final.pt", weights_only=False)
    for key, value in encoder.backbone.state_dict().items():
        assert torch.equal(saved["encoder"][f"backbone.{key}"], value), key
    assert torch.equal(saved["queue"], bundle["module.queue"]) and int(saved["queue_ptr"]) == 8
    distilled = run_stage_from_spec(cell.methods["disco"].write_spec(workspace), workspace)
    assert distilled["inputs"]["teacher"]["key"] == cell.teacher.key and distilled["metrics"]["final_loss"] > 0


def test_a_release_of_another_layout_than_the_teachers_checkpoint_format_is_refused(tmp_path):
    import pytest

    from disco.checkpoints import CheckpointMismatch

    release = tmp_path / "r50-lincls.pth.tar"
    encoder = build_encoder("r50", "mocov2", image_size=32)
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in encoder.backbone.state_dict().items()}}, release
    )  # no encoder_q: not MoCo-v2
    bench = load_benchmarks()
    tiny = bench.profiles["tiny"].model_copy(update={"teacher_checkpoints": {"r50": str(release)}})
    cell = Planner(bench.model_copy(update={"profiles": {**bench.profiles, "tiny": tiny}}), "tiny", smoke=True).cell(
        "r50-effb0"
    )
    assert cell.teacher.runtime["checkpoint_format"] == "mocov2"  # teachers.r50.checkpoint_format
    workspace = Workspace(tmp_path / "artifacts", tmp_path / "results")
    with pytest.raises(CheckpointMismatch, match="is a lincls checkpoint .* but a mocov2 one is expected"):
        run_stage_from_spec(cell.teacher.write_spec(workspace), workspace)


def test_the_teachers_pretraining_method_is_the_one_that_runs(tmp_path):
    import pytest

    from disco.tasks import run_task

    cell = Planner(load_benchmarks(), "tiny", smoke=True).cell("r50-effb0")
    bench = load_benchmarks()
    assert bench.teachers["r50"].pretrain is None  # the profile's base method pretrains it
    assert cell.teacher.config["method"] == bench.profiles["tiny"].base_method == "simclr"
    config = {**cell.teacher.config, "method": "swav"}
    with pytest.raises(ValueError, match="pretraining method 'swav' is not implemented; implemented: mocov2, simclr"):
        run_task("pretrain", config, {}, tmp_path, cell.teacher.runtime, torch.device("cpu"), None)
