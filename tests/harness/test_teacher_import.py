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
    bundle = {f"module.encoder_q.{k}": v for k, v in state.items()} | {f"module.encoder_k.{k}": v.clone() for k, v in state.items()}
    bundle |= {"module.queue": torch.nn.functional.normalize(torch.randn(128, 64), dim=0), "module.queue_ptr": torch.tensor([8])}
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
    distilled = run_stage_from_spec(cell.disco.write_spec(workspace), workspace)
    assert distilled["inputs"]["teacher"]["key"] == cell.teacher.key and distilled["metrics"]["final_loss"] > 0
