import pytest
import torch

from disco.models import ARCHS, arch_spec, build_encoder, feature_dim

FEATURES = {
    "r50": 2048,
    "r101": 2048,
    "r152": 2048,
    "r50w2": 4096,
    "r18": 512,
    "r34": 512,
    "effb0": 1280,
    "effb1": 1280,
    "mbv3": 1280,
    "vits": 384,
    "vitt": 192,
    "xcits": 384,
    "xcitt": 192,
}
MOCO_HIDDEN = {
    "r50": 2048,
    "r101": 2048,
    "r152": 2048,
    "mbv3": 512,
    "effb0": 1280,
    "effb1": 1280,
    "r18": 1280,
    "r34": 1280,
}
HEAD_ATTR = {
    "r18": "fc",
    "r34": "fc",
    "r50": "fc",
    "effb0": "classifier",
    "effb1": "classifier",
    "mbv3": "classifier",
    "vitt": "head",
}


@pytest.mark.parametrize("arch", sorted(FEATURES))
def test_feature_dims(arch):
    encoder = build_encoder(arch, "none", image_size=32)
    assert feature_dim(encoder.backbone) == FEATURES[arch]


@pytest.mark.parametrize("arch", sorted(MOCO_HIDDEN))
def test_mocov2_head_widths_follow_the_official_hidden_flag(arch):
    encoder = build_encoder(arch, "mocov2", image_size=32)
    head = getattr(encoder.backbone, encoder.head_name)
    assert tuple(head[0].weight.shape) == (MOCO_HIDDEN[arch], FEATURES[arch])
    assert tuple(head[2].weight.shape) == (128, MOCO_HIDDEN[arch])


@pytest.mark.parametrize("arch", ["effb0", "effb1", "mbv3", "r18", "r34", "vitt", "xcitt"])
def test_disco_student_head_is_F_2048_128_under_the_official_name(arch):
    encoder = build_encoder(arch, "disco", image_size=32)
    if arch in HEAD_ATTR:
        assert encoder.head_name == HEAD_ATTR[arch]
    keys = encoder.backbone.state_dict()
    assert tuple(keys[f"{encoder.head_name}.0.weight"].shape) == (2048, FEATURES[arch])
    assert tuple(keys[f"{encoder.head_name}.2.weight"].shape) == (128, 2048)
    out = encoder.eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 128)


@pytest.mark.parametrize(("arch", "width"), [("r18", 512), ("r34", 512), ("effb0", 1280), ("mbv3", 1280)])
def test_seed_student_head_is_its_codes_F_F_128(arch, width):
    """jacobswan1/SEED @81ff933: Linear(d, d)-ReLU-Linear(d, 128), d the student's feature width."""
    encoder = build_encoder(arch, "seed", image_size=32)
    keys = encoder.backbone.state_dict()
    assert tuple(keys[f"{encoder.head_name}.0.weight"].shape) == (width, width)
    assert tuple(keys[f"{encoder.head_name}.2.weight"].shape) == (128, width)


def test_mobilenetv3_head_input_is_head_hidden_size_not_num_features():
    encoder = build_encoder("mbv3", "disco")
    assert encoder.backbone.num_features == 960
    assert encoder.backbone.classifier[0].in_features == 1280


def test_resnet50w2_matches_swav_layout():
    encoder = build_encoder("r50w2", "swav")
    keys = encoder.backbone.state_dict()
    assert tuple(keys["conv1.weight"].shape) == (128, 3, 7, 7)
    assert tuple(keys["layer1.0.conv1.weight"].shape) == (128, 128, 1, 1)
    assert tuple(keys["layer1.0.downsample.0.weight"].shape) == (512, 128, 1, 1)
    assert tuple(keys["fc.0.weight"].shape) == (8192, 4096)
    assert "fc.1.running_mean" in keys  # the BN1d of the SwAV head
    backbone_params = sum(
        v.numel() for k, v in encoder.backbone_state_dict().items() if "running" not in k and "num_batches" not in k
    )
    assert abs(backbone_params - 93.9e6) < 0.1e6


def test_unknown_arch_suggests_the_closest_name():
    with pytest.raises(KeyError, match="did you mean 'effb0'"):
        arch_spec("effb00")
    assert "effb0" in ARCHS


def residual_blocks(encoder):
    return [
        block
        for stage in (
            encoder.backbone.layer1,
            encoder.backbone.layer2,
            encoder.backbone.layer3,
            encoder.backbone.layer4,
        )
        for block in stage
    ]


@pytest.mark.parametrize(("arch", "torchvision_name"), [("r18", "resnet18"), ("r34", "resnet34")])
def test_disco_resnet_students_are_torchvisions_resnets(arch, torchvision_name):
    """DisCo/main.py builds ResNet students with torchvision (`models.__dict__[arch](num_classes=128)`):
    same seed, same weights; the last BN weight of every block is 1, not timm's zero."""
    import torchvision

    torch.manual_seed(0)
    ours = build_encoder(arch, "disco", init="torchvision")
    torch.manual_seed(0)
    reference = torchvision.models.get_model(torchvision_name, weights=None, num_classes=128).state_dict()
    got = ours.backbone_state_dict()
    assert list(got) == [key for key in reference if not key.startswith("fc.")]
    assert all(torch.equal(got[key], reference[key]) for key in got)
    assert all(torch.all(block.bn2.weight == 1) for block in residual_blocks(ours))


@pytest.mark.parametrize(("arch", "last_bn"), [("r18", "bn2"), ("r34", "bn2"), ("r50", "bn3")])
def test_mocov2_resnets_keep_timms_zero_initialised_last_bn(arch, last_bn):
    """moco/main_moco.py builds teachers and baselines with its vendored timm (zero_init_last_bn=True)."""
    encoder = build_encoder(arch, "mocov2", image_size=32)
    assert all(torch.all(getattr(block, last_bn).weight == 0) for block in residual_blocks(encoder))


def test_torchvision_init_is_for_torchvision_resnets_only():
    with pytest.raises(ValueError, match="torchvision's ResNets"):
        build_encoder("effb0", "disco", init="torchvision")
    with pytest.raises(ValueError, match="unknown init"):
        build_encoder("r18", "disco", init="torchvsion")
