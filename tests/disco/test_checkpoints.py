"""Official checkpoint layouts (docs/protocol.md section 5) built from torchvision / timm the way the
official scripts build them, saved with torch.save, and loaded through disco.checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from disco.checkpoints import (
    CheckpointError,
    CheckpointMismatch,
    detect_format,
    inspect_checkpoint,
    load_encoder,
    queue_from_checkpoint,
)
from disco.models import build_encoder

torch.set_num_threads(2)
QUEUE = 65536


def mlp(in_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 128))


def swav_head(in_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 128)
    )


def official_student(arch: str, hidden: int = 2048) -> nn.Module:
    """As DisCo/main.py builds students: timm Eff/Mob with `classifier`, torchvision ResNet with `fc`, MLP head."""
    if arch.startswith("resnet"):
        model = torchvision.models.__dict__[arch]()
        model.fc = mlp(model.fc.in_features, hidden)
        return model
    model = timm.create_model(arch, num_classes=0)
    model.classifier = mlp(1280, hidden)
    return model


def official_teacher_r50() -> nn.Module:
    model = torchvision.models.resnet50()
    model.fc = mlp(2048, 2048)
    return model


def randomise_bn_stats(model: nn.Module, seed: int) -> nn.Module:
    """Non-default BN buffers, so a buffer that fails to load shows up as a difference."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            module.num_batches_tracked.fill_(5004)
    return model


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in state.items()}


def queue_entries(size: int = QUEUE) -> dict[str, torch.Tensor]:
    return {"module.queue": F.normalize(torch.randn(128, size), dim=0), "module.queue_ptr": torch.tensor([4096])}


def mocov2_checkpoint(encoder_q: nn.Module, arch: str | None, queue: int = QUEUE) -> dict:
    state = prefixed("module.encoder_q.", encoder_q.state_dict())
    # encoder_k differs from encoder_q, so loading the wrong group is caught
    state.update(
        {
            f"module.encoder_k.{key}": value.clone() + (0.5 if value.is_floating_point() else 0)
            for key, value in encoder_q.state_dict().items()
        }
    )
    state.update(queue_entries(queue))
    ckpt = {"epoch": 200, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}
    if arch is not None:
        ckpt["arch"] = arch
    return ckpt


def disco_checkpoint(student: nn.Module, arch: str, teacher: nn.Module) -> dict:
    ckpt = mocov2_checkpoint(student, arch)
    teacher_state = teacher.state_dict()
    # teacher_encoder_k shares storage with _q: torch.save writes it once, the key layout is unchanged
    ckpt["state_dict"].update(prefixed("module.teacher_encoder_q.", teacher_state))
    ckpt["state_dict"].update(prefixed("module.teacher_encoder_k.", teacher_state))
    return ckpt


def swav_release(trunk: nn.Module, hidden: int) -> dict[str, torch.Tensor]:
    """Official SwAV/DC-v2/SeLa-v2 file: a raw state_dict, module.<resnet keys> without fc."""
    state = {key: value for key, value in trunk.state_dict().items() if not key.startswith("fc.")}
    head = randomise_bn_stats(swav_head(trunk.fc.in_features, hidden), seed=3)
    state.update(prefixed("projection_head.", head.state_dict()))
    state["prototypes.weight"] = torch.randn(3000, 128)
    return prefixed("module.", state)


def saved(tmp_path: Path, ckpt: dict, name: str = "checkpoint_0199.pth.tar") -> Path:
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


def assert_lossless(encoder: nn.Module, reference: dict[str, torch.Tensor]) -> None:
    loaded = encoder.backbone.state_dict()
    assert loaded.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(loaded[key], value), key


def assert_same_forward(encoder: nn.Module, reference: nn.Module) -> None:
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    encoder.eval()
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(images), reference(images), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ lossless loads of every format


def test_disco_student_checkpoint_loads_encoder_q_losslessly(tmp_path: Path) -> None:
    student = randomise_bn_stats(official_student("efficientnet_b0"), seed=1)
    teacher = official_teacher_r50()
    path = saved(
        tmp_path, disco_checkpoint(student, "efficientb0", teacher), "ResNet50-EfficientB0-checkpoint_0199.pth.tar"
    )

    encoder, report = load_encoder(path, "effb0", with_head=True)

    assert_lossless(encoder, student.state_dict())
    assert_same_forward(encoder, student)
    assert report.format == "disco" and report.loaded == 362 and report.head_layout == "1280-2048-128"
    assert {group: len(keys) for group, keys in report.dropped.items()} == {
        "encoder_k": 362,
        "queue": 2,
        "teacher_encoder_q": 322,
        "teacher_encoder_k": 322,
    }
    assert report.epoch == 200 and "dropped: encoder_k 362" in report.summary()


def test_headless_load_drops_the_projection_head_and_says_so(tmp_path: Path) -> None:
    path = saved(tmp_path, mocov2_checkpoint(official_student("efficientnet_b0"), "efficientb0", queue=256))

    encoder, report = load_encoder(path, with_head=False)  # arch from the checkpoint's 'arch'

    assert report.arch == "effb0" and report.loaded == 358 and report.head == "none"
    assert sorted(report.dropped["projection head"]) == [
        "classifier.0.bias",
        "classifier.0.weight",
        "classifier.2.bias",
        "classifier.2.weight",
    ]
    features = encoder.features(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, 1280)


@pytest.mark.parametrize(
    ("arch", "official_name", "ours", "with_head", "without_head"),
    [
        ("efficientnet_b0", "efficientb0", "effb0", 362, 358),
        ("efficientnet_b1", "efficientb1", "effb1", 510, 506),
        ("mobilenetv3_large_100", "mobilenetv3", "mbv3", 314, 310),
        ("resnet18", "resnet18", "r18", 124, 120),
        ("resnet34", "resnet34", "r34", 220, 216),
    ],
)
def test_student_tensor_counts_match_section_5_1(
    arch: str, official_name: str, ours: str, with_head: int, without_head: int
) -> None:
    student = official_student(arch)
    assert len(student.state_dict()) == with_head
    ckpt = mocov2_checkpoint(student, official_name, queue=256)
    encoder, report = load_encoder(ckpt, ours, with_head=True)
    assert report.loaded == with_head
    assert_lossless(encoder, student.state_dict())
    assert load_encoder(ckpt, ours, with_head=False)[1].loaded == without_head


def test_mocov2_teacher_and_its_queue(tmp_path: Path) -> None:
    teacher = randomise_bn_stats(official_teacher_r50(), seed=2)
    ckpt = mocov2_checkpoint(teacher, "resnet50")
    path = saved(tmp_path, ckpt, "ResNet50-checkpoint_0199.pth.tar")

    encoder, report = load_encoder(path, "r50", with_head=True)

    assert report.format == "mocov2" and report.loaded == 322 and report.head_layout == "2048-2048-128"
    assert_lossless(encoder, teacher.state_dict())
    assert_same_forward(encoder, teacher)
    state = queue_from_checkpoint(path)
    assert state is not None and state.ptr == 4096
    assert torch.equal(state.queue, ckpt["state_dict"]["module.queue"])


@pytest.mark.parametrize(
    ("arch", "official_name", "ours", "hidden", "layout"),
    [
        ("mobilenetv3_large_100", "mobilenetv3", "mbv3", 512, "1280-512-128"),
        ("resnet18", "resnet18", "r18", 1280, "512-1280-128"),
    ],
)
def test_mocov2_baseline_hidden_width_comes_from_the_checkpoint(
    arch: str, official_name: str, ours: str, hidden: int, layout: str
) -> None:
    baseline = official_student(arch, hidden)
    encoder, report = load_encoder(mocov2_checkpoint(baseline, official_name, queue=256), ours, with_head=True)
    assert report.head_layout == layout
    assert_same_forward(encoder, baseline)


def test_swav_r50_release_with_bn_head_and_ignored_prototypes(tmp_path: Path) -> None:
    trunk = randomise_bn_stats(torchvision.models.resnet50(), seed=4)
    release = swav_release(trunk, hidden=2048)
    assert len([key for key in release if "projection_head" not in key and "prototypes" not in key]) == 318
    path = saved(tmp_path, release, "swav_800ep_pretrain.pth.tar")

    encoder, report = load_encoder(path, with_head=True)  # r50 inferred from the 64-wide stem

    assert report.format == "swav" and report.arch == "r50" and report.loaded == 327
    assert report.dropped == {"prototypes": ["prototypes.weight"]} and report.head_layout == "2048-2048-128 (BN)"
    expected = {
        key[len("module.") :].replace("projection_head.", "fc.", 1): value
        for key, value in release.items()
        if "prototypes" not in key
    }
    assert_lossless(encoder, expected)
    trunk.fc = swav_head(2048, 2048)
    trunk.fc.load_state_dict(
        {key[len("module.projection_head.") :]: value for key, value in release.items() if "projection_head" in key}
    )
    assert_same_forward(encoder, trunk)
    assert queue_from_checkpoint(path) is None


def official_swav_resnet50w2() -> nn.Module:
    """SwAV's RN50w2 as section 3.7 builds it exactly: timm ResNet with four 128-channel modules patched in."""
    from timm.models.resnet import Bottleneck, ResNet

    model = ResNet(Bottleneck, [3, 4, 6, 3], channels=(128, 256, 512, 1024))
    model.conv1 = nn.Conv2d(3, 128, 7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(128)
    model.layer1[0].conv1 = nn.Conv2d(128, 128, 1, bias=False)
    model.layer1[0].downsample[0] = nn.Conv2d(128, 512, 1, bias=False)
    return model


def test_swav_r50w2_release_key_layout() -> None:
    trunk = official_swav_resnet50w2()
    release = swav_release(trunk, hidden=8192)
    assert release["module.projection_head.0.weight"].shape == (8192, 4096)

    encoder, report = load_encoder(release, with_head=True)

    assert report.arch == "r50w2" and report.head_layout == "4096-8192-128 (BN)" and report.loaded == 327
    expected = {
        key[len("module.") :].replace("projection_head.", "fc.", 1): value
        for key, value in release.items()
        if "prototypes" not in key
    }
    assert_lossless(encoder, expected)


def test_lincls_checkpoint_with_and_without_its_classifier() -> None:
    model = randomise_bn_stats(torchvision.models.resnet18(), seed=5)  # fc: Linear(512, 1000)
    ckpt = {
        "epoch": 100,
        "arch": "resnet18",
        "state_dict": prefixed("module.", model.state_dict()),
        "best_acc1": torch.tensor(52.5),
        "optimizer": {},
    }
    assert detect_format(ckpt) == "lincls"

    classifier, report = load_encoder(ckpt, "r18", with_head=True)
    assert report.head == "linear" and report.head_layout == "512-1000"
    assert_same_forward(classifier, model)

    backbone, report = load_encoder(ckpt, "r18", with_head=False)
    assert report.dropped == {"linear classifier": ["fc.weight", "fc.bias"]} and report.loaded == 120


def test_our_encoder_checkpoint_round_trip(tmp_path: Path) -> None:
    original = build_encoder("mbv3", "disco")
    randomise_bn_stats(original, seed=6)
    path = saved(tmp_path, {"encoder": original.state_dict(), "arch": "mbv3", "head": "disco"}, "encoder.pt")

    encoder, report = load_encoder(path, with_head=True)

    assert report.format == "disco-bench" and report.head == "disco" and report.dropped == {}
    assert_lossless(encoder, original.backbone.state_dict())
    assert_same_forward(encoder, original)


def test_our_training_checkpoint_gives_the_student_and_its_queue(tmp_path: Path) -> None:
    from disco.methods import MoCoV2, MoCoV2Config

    method = MoCoV2(build_encoder("r18", "mocov2"), MoCoV2Config(queue_size=256))
    path = saved(tmp_path, {"epoch": 3, "history": [], "method": method.state_dict(), "optimizer": {}}, "checkpoint.pt")

    encoder, report = load_encoder(path, "r18", with_head=True)

    assert report.format == "disco-bench-train" and set(report.dropped) == {"encoder_k", "queue"}
    assert_lossless(encoder, method.student.backbone.state_dict())
    state = queue_from_checkpoint(path)
    assert state is not None and torch.equal(state.queue, method.contrast.queue)


def test_inspect_reports_format_arch_and_head() -> None:
    info = inspect_checkpoint(mocov2_checkpoint(official_student("resnet18"), "resnet18", queue=256))
    assert (info.format, info.arch, info.has_head, info.epoch) == ("mocov2", "r18", True, 200)
    assert info.groups == {"encoder_k": 124, "queue": 2}


# ------------------------------------------------------------------ failure modes: one clear line


def one_line_error(excinfo: pytest.ExceptionInfo[CheckpointError]) -> str:
    message = excinfo.value.args[0]
    assert isinstance(excinfo.value, CheckpointError) and excinfo.value.exit_code == 5 and "\n" not in message
    return message


def test_recorded_arch_disagreeing_with_the_request_fails(tmp_path: Path) -> None:
    path = saved(tmp_path, mocov2_checkpoint(official_student("resnet34"), "resnet34", queue=256))
    with pytest.raises(CheckpointMismatch) as excinfo:
        load_encoder(path, "r18", with_head=False)
    message = one_line_error(excinfo)
    assert str(path) in message and "'resnet34'" in message and "pass arch 'r34'" in message


@pytest.mark.parametrize(
    ("source", "requested", "expected_words"),
    [
        ("resnet18", "r34", ["96 missing", "layer1.2.conv1.weight"]),
        ("resnet34", "r18", ["96 unexpected", "layer1.2.conv1.weight"]),
        ("efficientnet_b0", "effb1", ["148 missing (blocks.0.1.conv_dw.weight"]),
        ("efficientnet_b0", "r18", ["unexpected (conv_stem.weight", "missing (conv1.weight"]),
    ],
)
def test_another_archs_checkpoint_never_loads_silently(source: str, requested: str, expected_words: list[str]) -> None:
    ckpt = mocov2_checkpoint(official_student(source), None, queue=256)  # no 'arch' recorded: only the keys can tell
    with pytest.raises(CheckpointMismatch) as excinfo:
        load_encoder(ckpt, requested, with_head=False)
    message = one_line_error(excinfo)
    assert all(word in message for word in expected_words), message


def test_same_keys_with_other_shapes_fail_as_shape_mismatches() -> None:
    cifar_stem = official_student("resnet18")
    cifar_stem.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)  # the common CIFAR ResNet variant: same keys
    with pytest.raises(CheckpointMismatch) as excinfo:
        load_encoder(mocov2_checkpoint(cifar_stem, None, queue=256), "r18", with_head=True)
    message = one_line_error(excinfo)
    assert "1 shape mismatches (conv1.weight checkpoint [64,3,3,3] vs model [64,3,7,7])" in message
    assert "missing" not in message and "unexpected" not in message


def test_a_missing_tensor_fails(tmp_path: Path) -> None:
    ckpt = mocov2_checkpoint(official_student("resnet18"), "resnet18", queue=256)
    del ckpt["state_dict"]["module.encoder_q.layer3.1.bn2.running_var"]
    with pytest.raises(CheckpointMismatch) as excinfo:
        load_encoder(saved(tmp_path, ckpt), "r18", with_head=True)
    assert "1 missing (layer3.1.bn2.running_var)" in one_line_error(excinfo)


@pytest.mark.parametrize("extra_key", ["module.encoder_q.layer5.0.conv1.weight", "module.predictor.0.weight"])
def test_an_extra_tensor_fails(extra_key: str) -> None:
    ckpt = mocov2_checkpoint(official_student("resnet18"), "resnet18", queue=256)
    ckpt["state_dict"][extra_key] = torch.zeros(3)
    with pytest.raises(CheckpointMismatch) as excinfo:
        load_encoder(ckpt, "r18", with_head=False)
    assert "1 unexpected" in one_line_error(excinfo) and extra_key.split(".", 2)[-1] in excinfo.value.args[0]


def test_asking_for_a_head_the_checkpoint_lacks_fails() -> None:
    ckpt = {"encoder": build_encoder("r18", "none").state_dict(), "arch": "r18", "head": "none"}
    with pytest.raises(CheckpointMismatch) as excinfo:
        load_encoder(ckpt, with_head=True)
    assert "with_head=False" in one_line_error(excinfo)
    assert load_encoder(ckpt, with_head=False)[1].loaded == 120


def test_unreadable_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_encoder(tmp_path / "absent.pth.tar", "r18", with_head=False)
    truncated = tmp_path / "truncated.pth.tar"
    torch.save({"state_dict": {"module.conv1.weight": torch.zeros(64, 3, 7, 7)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_encoder(truncated, "r18", with_head=False)
    pickled_args = saved(tmp_path, {"state_dict": {}, "args": argparse.Namespace(lr=0.03)}, "with_args.pth.tar")
    with pytest.raises(CheckpointError, match="re-save only its state_dict"):
        load_encoder(pickled_args, "r18", with_head=False)
    with pytest.raises(CheckpointError, match="unknown checkpoint format") as excinfo:
        detect_format({"step": torch.tensor(3)})
    one_line_error(excinfo)


def test_unrecorded_or_unknown_arch_must_be_given() -> None:
    ckpt = {"state_dict": prefixed("module.", torchvision.models.resnet18().state_dict())}
    with pytest.raises(CheckpointError, match="does not record its architecture"):
        load_encoder(ckpt, with_head=False)
    with pytest.raises(CheckpointError, match="records arch 'resnext50', which disco-bench does not know"):
        load_encoder({**ckpt, "arch": "resnext50"}, with_head=False)
    assert load_encoder({**ckpt, "arch": "resnext50"}, "r18", with_head=False)[1].loaded == 120
