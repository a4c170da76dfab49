"""A released MoCo-v2 teacher (official key layout) is imported strictly instead of pretrained,
and DisCo distils from it; the SwAV / DeepCluster-v2 / SeLa-v2 ResNet-50 releases import strictly in
their own layout, and a damaged one is one line."""

import pytest
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
    config = {**cell.teacher.config, "method": "deepclusterv2"}  # a teacher variant's method, not one here
    with pytest.raises(ValueError, match="pretraining method 'deepclusterv2' is not implemented; implemented: "):
        run_task("pretrain", config, {}, tmp_path, cell.teacher.runtime, torch.device("cpu"), None)


# ---------------------------------------------------------------- SwAV-family teachers (paper Table 6)


def swav_family_release(path, prototypes):
    """facebookresearch/swav's released layout (src/resnet50.py, hubconf.py): a raw state dict,
    `module.<torchvision resnet50 keys>` without fc, `module.projection_head.{0,1,3}.*` (2048-2048 BN-128)
    and the prototypes. Each tensor is one distinct value broadcast to its shape: the file stays tiny
    and every key's value can be traced through the import."""
    encoder = build_encoder("r50", "swav", image_size=32)
    release = {}
    for index, (key, value) in enumerate(encoder.backbone.state_dict().items()):
        name = f"projection_head.{key.removeprefix('fc.')}" if key.startswith("fc.") else key
        release[f"module.{name}"] = torch.full((), index, dtype=value.dtype).expand(value.shape)
    release |= {f"module.{key}": torch.zeros(()).expand(3000, 128) for key in prototypes}
    torch.save(release, path)
    return encoder.backbone.state_dict(), release


# SwAV: one prototype layer (nn.Linear(128, 3000)); DeepCluster-v2: MultiPrototypes, 3 x 3000
# (main_deepclusterv2.py); SeLa-v2 was released without its script: its prototypes are dropped either way
PROTOTYPES = {
    "r50swav": ["prototypes.weight"],
    "r50dc2": [f"prototypes.prototypes{i}.weight" for i in range(3)],
    "r50sela2": [f"prototypes.prototypes{i}.weight" for i in range(3)],
}


def paper_smoke_teacher(teacher, release, monkeypatch):
    """The paper profile's own teacher_checkpoints entry, its variable pointed at `release`."""
    monkeypatch.setenv(f"DISCO_{teacher.upper()}_CHECKPOINT", str(release))
    return Planner(load_benchmarks(), "paper", smoke=True, device="cpu").teacher(teacher)


@pytest.mark.parametrize("teacher", list(PROTOTYPES))
def test_a_swav_family_release_imports_strictly(teacher, tmp_path, monkeypatch):
    from tests.harness.test_paper_keys import RELEASES

    release = tmp_path / RELEASES[teacher]
    reference, _ = swav_family_release(release, PROTOTYPES[teacher])
    stage = paper_smoke_teacher(teacher, release, monkeypatch)
    assert stage.kind == "import" and stage.runtime["checkpoint_format"] == "swav"
    assert stage.config["checkpoint"] == {"file": RELEASES[teacher], "bytes": release.stat().st_size}
    workspace = Workspace(tmp_path / "artifacts", tmp_path / "results")
    report = run_stage_from_spec(stage.write_spec(workspace), workspace)["metrics"]["load_report"]
    assert "head: swav 2048-2048-128 (BN)" in report and f"dropped: prototypes {len(PROTOTYPES[teacher])}" in report
    imported = torch.load(workspace.stage_dir(stage.name, stage.key) / "final.pt", weights_only=False)["encoder"]
    assert imported.keys() == {f"backbone.{key}" for key in reference}
    for index, key in enumerate(reference):  # projection_head.* lands in the head slot (fc.*), value for value
        assert torch.equal(
            imported[f"backbone.{key}"], torch.full(reference[key].shape, index).to(reference[key].dtype)
        ), key


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("drop", "1 missing (fc.1.running_var)"),
        (
            "rename",
            "(with_head=True, its projection_head.* as fc.*): 1 missing (fc.1.running_var); 1 unexpected (fc.1.running_variance)",
        ),
        ("reshape", "1 shape mismatches (layer1.0.conv1.weight checkpoint [32,64,1,1] vs model [64,64,1,1])"),
    ],
)
def test_a_damaged_swav_family_release_is_one_line(damage, expected, tmp_path, monkeypatch):
    from disco.checkpoints import CheckpointMismatch
    from tests.harness.test_paper_keys import RELEASES

    release = tmp_path / RELEASES["r50dc2"]
    _, state = swav_family_release(release, PROTOTYPES["r50dc2"])
    if damage == "drop":
        del state["module.projection_head.1.running_var"]
    elif damage == "rename":
        state["module.projection_head.1.running_variance"] = state.pop("module.projection_head.1.running_var")
    else:
        state["module.layer1.0.conv1.weight"] = torch.zeros(()).expand(32, 64, 1, 1)
    torch.save(state, release)
    stage = paper_smoke_teacher("r50dc2", release, monkeypatch)
    workspace = Workspace(tmp_path / "artifacts", tmp_path / "results")
    with pytest.raises(CheckpointMismatch) as raised:
        run_stage_from_spec(stage.write_spec(workspace), workspace)
    assert expected in str(raised.value) and "\n" not in str(raised.value)
