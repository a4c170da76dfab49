"""Backbones by short name (timm underneath) and the projection heads of MoCo-v2 and DisCo.

The head is attached under the backbone's own classifier attribute (`fc`, `classifier`, `head`),
so state_dict keys match the official checkpoints (DISCO_PROTOCOL.md section 5.2).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import timm
import torch
from torch import nn
from torch.nn import functional as F

EMBED_DIM = 128
DISCO_STUDENT_HIDDEN = 2048


@dataclass(frozen=True)
class ArchSpec:
    name: str  # our short name, e.g. "effb0"
    timm_name: str  # timm registry name, or "resnet50w2" for the patched SwAV ResNet
    mocov2_hidden: int  # MoCo-v2 projection hidden width used by the official scripts (-1: = feature dim)
    family: str  # "resnet" | "efficientnet" | "mobilenet" | "vit" | "xcit"


ARCHS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in [
        ArchSpec("r50", "resnet50", 2048, "resnet"),
        ArchSpec("r101", "resnet101", 2048, "resnet"),
        ArchSpec("r152", "resnet152", 2048, "resnet"),
        ArchSpec("r50w2", "resnet50w2", 8192, "resnet"),
        ArchSpec("r18", "resnet18", 1280, "resnet"),
        ArchSpec("r34", "resnet34", 1280, "resnet"),
        ArchSpec("effb0", "efficientnet_b0", 1280, "efficientnet"),
        ArchSpec("effb1", "efficientnet_b1", 1280, "efficientnet"),
        ArchSpec("mbv3", "mobilenetv3_large_100", 512, "mobilenet"),
        ArchSpec("vits", "vit_small_patch16_224", -1, "vit"),
        ArchSpec("vitt", "vit_tiny_patch16_224", -1, "vit"),
        ArchSpec("xcits", "xcit_small_12_p16_224", -1, "xcit"),
        ArchSpec("xcitt", "xcit_tiny_12_p16_224", -1, "xcit"),
    ]
}


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def arch_spec(name: str) -> ArchSpec:
    if name in ARCHS:
        return ARCHS[name]
    by_timm = {spec.timm_name: spec for spec in ARCHS.values()}
    if name in by_timm:
        return by_timm[name]
    raise KeyError(f"unknown architecture '{name}'{did_you_mean(name, list(ARCHS))}; valid: {', '.join(ARCHS)}")


def _resnet50w2() -> nn.Module:
    """SwAV's ResNet-50x2 (stem 128, widths 128..1024, 4096-d output) as a timm ResNet: timm's
    stem is always 64 wide, so the four modules that touch it are replaced (section 3.7)."""
    from timm.models.resnet import Bottleneck, ResNet

    model = ResNet(Bottleneck, [3, 4, 6, 3], channels=(128, 256, 512, 1024), num_classes=0)
    model.conv1 = nn.Conv2d(3, 128, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(128)
    model.layer1[0].conv1 = nn.Conv2d(128, 128, kernel_size=1, bias=False)
    model.layer1[0].downsample[0] = nn.Conv2d(128, 512, kernel_size=1, bias=False)
    for module in (model.conv1, model.layer1[0].conv1, model.layer1[0].downsample[0]):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def create_backbone(arch: str, image_size: int | None = None) -> nn.Module:
    """A randomly initialised timm backbone with no classifier (pooled features out)."""
    spec = arch_spec(arch)
    if spec.timm_name == "resnet50w2":
        return _resnet50w2()
    kwargs: dict = {"pretrained": False, "num_classes": 0}
    if spec.family in ("vit", "xcit") and image_size is not None:
        kwargs["img_size"] = image_size
    return timm.create_model(spec.timm_name, **kwargs)


def head_attr(backbone: nn.Module) -> str:
    """The attribute that holds the classifier: `fc`, `classifier` or `head`."""
    for name in ("fc", "classifier", "head"):
        if hasattr(backbone, name) and isinstance(getattr(backbone, name), (nn.Identity, nn.Linear, nn.Sequential)):
            return name
    raise ValueError(f"cannot find the classifier attribute of {type(backbone).__name__}")


def feature_dim(backbone: nn.Module) -> int:
    # MobileNetV3: the head input is head_hidden_size (1280, after conv_head), not num_features (960).
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


def projection_head(in_dim: int, hidden: int, out_dim: int = EMBED_DIM) -> nn.Module:
    """MoCo-v2 `--hidden` semantics: -1 -> Linear(d,d)-ReLU-Linear(d,out); 0 -> Linear(d,out)."""
    if hidden == 0:
        return nn.Linear(in_dim, out_dim)
    width = in_dim if hidden < 0 else hidden
    return nn.Sequential(nn.Linear(in_dim, width), nn.ReLU(inplace=True), nn.Linear(width, out_dim))


def swav_projection_head(in_dim: int, hidden: int, out_dim: int = EMBED_DIM) -> nn.Module:
    """SwAV-family teacher head: Linear-BN1d-ReLU-Linear (keys projection_head.{0,1,3})."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


class Encoder(nn.Module):
    """A backbone whose classifier slot holds a projection head; forward returns the head output."""

    def __init__(self, backbone: nn.Module, head: nn.Module | None):
        super().__init__()
        self.backbone = backbone
        self.head_name = head_attr(backbone)
        setattr(self.backbone, self.head_name, head if head is not None else nn.Identity())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (what linear evaluation sees)."""
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """Backbone weights without the head, keys as in timm/torchvision."""
        prefix = f"{self.head_name}."
        return {k: v for k, v in self.backbone.state_dict().items() if not k.startswith(prefix)}


def build_encoder(arch: str, head: str = "mocov2", image_size: int | None = None, hidden: int | None = None) -> Encoder:
    """`head`: "mocov2" (per-backbone hidden width), "disco" (F-2048-128), "swav" (F-h(BN)-128), "none"."""
    backbone = create_backbone(arch, image_size)
    dim = feature_dim(backbone)
    spec = arch_spec(arch)
    if head == "none":
        return Encoder(backbone, None)
    if head == "mocov2":
        return Encoder(backbone, projection_head(dim, spec.mocov2_hidden if hidden is None else hidden))
    if head == "disco":
        return Encoder(backbone, projection_head(dim, DISCO_STUDENT_HIDDEN if hidden is None else hidden))
    if head == "swav":
        return Encoder(backbone, swav_projection_head(dim, hidden or (8192 if spec.name == "r50w2" else 2048)))
    raise ValueError(f"unknown head '{head}'{did_you_mean(head, ['mocov2', 'disco', 'swav', 'none'])}")


def embed(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(encoder(x), dim=1)
