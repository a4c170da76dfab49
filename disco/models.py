"""Backbones by short name (timm underneath) and the projection heads of MoCo-v2 and DisCo.

The head is attached under the backbone's own classifier attribute (`fc`, `classifier`, `head`),
so state_dict keys match the official checkpoints (docs/protocol.md section 5.2).
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn
from torch.nn import functional as F

from disco.archs import (
    ARCHS,
    DISCO_STUDENT_HIDDEN,
    INITS,
    TIMM_INIT,
    TORCHVISION_INIT,
    TORCHVISION_RESNETS,
    ArchSpec,
    arch_spec,
    did_you_mean,
)

__all__ = ["ARCHS", "ArchSpec", "arch_spec", "did_you_mean", "build_encoder", "create_backbone", "Encoder"]

EMBED_DIM = 128


def _resnet50w2() -> nn.Module:
    """SwAV's ResNet-50x2 (stem 128, widths 128..1024, 4096-d output) as a timm ResNet: timm's
    stem is always 64 wide, so the four modules that touch it are replaced (section 3.7)."""
    from timm.models.resnet import Bottleneck, ResNet

    # timm annotates `block` as an instance; it takes the class
    model: Any = ResNet(Bottleneck, (3, 4, 6, 3), channels=(128, 256, 512, 1024), num_classes=0)  # type: ignore[arg-type]
    model.conv1 = nn.Conv2d(3, 128, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(128)
    model.layer1[0].conv1 = nn.Conv2d(128, 128, kernel_size=1, bias=False)
    model.layer1[0].downsample[0] = nn.Conv2d(128, 512, kernel_size=1, bias=False)
    for module in (model.conv1, model.layer1[0].conv1, model.layer1[0].downsample[0]):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def _torchvision_initialised_resnet(spec: ArchSpec) -> nn.Module:
    """timm's ResNet holding exactly the weights torchvision's constructor draws, as DisCo/main.py
    builds its ResNet students (`models.__dict__[arch](num_classes=128)`); the keys are the same."""
    import torchvision

    reference = torchvision.models.get_model(spec.timm_name, weights=None, num_classes=EMBED_DIM)
    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0)
    model.load_state_dict({k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}, strict=True)
    return model


def create_backbone(arch: str, image_size: int | None = None, init: str = TIMM_INIT) -> nn.Module:
    """A randomly initialised timm backbone with no classifier (pooled features out).
    init "timm": timm's own (ResNets: last BN weight of each block zeroed, as the vendored timm of
    moco/main_moco.py); "torchvision": torchvision's constructor (ResNets only, DisCo students)."""
    spec = arch_spec(arch)
    if init not in INITS:
        raise ValueError(f"unknown init '{init}'{did_you_mean(init, INITS)}; valid: {', '.join(INITS)}")
    if init == TORCHVISION_INIT:
        if spec.timm_name not in TORCHVISION_RESNETS:
            raise ValueError(
                f"init 'torchvision' is for torchvision's ResNets ({', '.join(TORCHVISION_RESNETS)}), not {arch}"
            )
        return _torchvision_initialised_resnet(spec)
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
    return int(getattr(backbone, "head_hidden_size", None) or getattr(backbone, "num_features"))  # noqa: B009


def projection_head(in_dim: int, hidden: int, out_dim: int = EMBED_DIM) -> nn.Module:
    """MoCo-v2 `--hidden` semantics: -1 -> Linear(d,d)-ReLU-Linear(d,out); 0 -> Linear(d,out)."""
    if hidden == 0:
        return nn.Linear(in_dim, out_dim)
    width = in_dim if hidden < 0 else hidden
    return nn.Sequential(nn.Linear(in_dim, width), nn.ReLU(inplace=True), nn.Linear(width, out_dim))


def swav_projection_head(in_dim: int, hidden: int, out_dim: int = EMBED_DIM) -> nn.Module:
    """SwAV-family teacher head: Linear-BN1d-ReLU-Linear (keys projection_head.{0,1,3})."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
    )


class Encoder(nn.Module):
    """A backbone whose classifier slot holds a projection head; forward returns the head output."""

    def __init__(self, backbone: nn.Module, head: nn.Module | None):
        super().__init__()
        self.backbone: Any = backbone  # a timm model: forward_features / forward_head
        self.head_name = head_attr(backbone)
        setattr(self.backbone, self.head_name, head if head is not None else nn.Identity())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (what linear evaluation sees)."""
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The head on pooled features: `project(features(x))` is `forward(x)`, for callers that pool
        several batches before one head call (SwAV's multi-resolution forward)."""
        return getattr(self.backbone, self.head_name)(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """Backbone weights without the head, keys as in timm/torchvision."""
        prefix = f"{self.head_name}."
        return {k: v for k, v in self.backbone.state_dict().items() if not k.startswith(prefix)}


def build_encoder(
    arch: str, head: str = "mocov2", image_size: int | None = None, hidden: int | None = None, init: str = TIMM_INIT
) -> Encoder:
    """`head`: "mocov2" (per-backbone hidden width), "disco" (F-2048-128), "seed" (F-F-128), "swav"
    (F-h(BN)-128), "none".
    `init`: see create_backbone; the head is always fresh nn.Linear layers, as in the official builders."""
    backbone = create_backbone(arch, image_size, init)
    dim = feature_dim(backbone)
    spec = arch_spec(arch)
    if head == "none":
        return Encoder(backbone, None)
    if head == "mocov2":
        return Encoder(backbone, projection_head(dim, spec.mocov2_hidden if hidden is None else hidden))
    if head == "disco":
        return Encoder(backbone, projection_head(dim, DISCO_STUDENT_HIDDEN if hidden is None else hidden))
    if head == "seed":  # SEED's student head (jacobswan1/SEED @81ff933): Linear(d, d)-ReLU-Linear(d, 128)
        return Encoder(backbone, projection_head(dim, -1 if hidden is None else hidden))
    if head == "swav":
        return Encoder(backbone, swav_projection_head(dim, hidden or (8192 if spec.name == "r50w2" else 2048)))
    raise ValueError(f"unknown head '{head}'{did_you_mean(head, ['mocov2', 'disco', 'seed', 'swav', 'none'])}")


def embed(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(encoder(x), dim=1)
