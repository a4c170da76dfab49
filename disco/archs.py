"""Architecture names and their official settings, without importing torch (`disco-bench validate`,
`list` and `--help` read them)."""

from __future__ import annotations

from dataclasses import dataclass

from disco.names import did_you_mean

# DisCo's student head: Linear(F, 2048)-ReLU-Linear(2048, 128) (DisCo/main.py's builder)
DISCO_STUDENT_HIDDEN = 2048
# the projection heads whose default hidden width is one number (mocov2's and seed's follow the backbone)
HEAD_WIDTHS = {"disco": DISCO_STUDENT_HIDDEN}


@dataclass(frozen=True)
class ArchSpec:
    name: str  # our short name, e.g. "effb0"
    timm_name: str  # timm registry name, or "resnet50w2" for the patched SwAV ResNet
    mocov2_hidden: int  # MoCo-v2 projection hidden width used by the official scripts (-1: = feature dim)
    family: str  # "resnet" | "efficientnet" | "mobilenet" | "vit" | "xcit"
    official_name: str | None = None  # `args.arch` in the official scripts, when it differs from timm_name


ARCHS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in [
        ArchSpec("r50", "resnet50", 2048, "resnet"),
        ArchSpec("r101", "resnet101", 2048, "resnet"),
        ArchSpec("r152", "resnet152", 2048, "resnet"),
        ArchSpec("r50w2", "resnet50w2", 8192, "resnet"),
        ArchSpec("r18", "resnet18", 1280, "resnet"),
        ArchSpec("r34", "resnet34", 1280, "resnet"),
        ArchSpec("effb0", "efficientnet_b0", 1280, "efficientnet", "efficientb0"),
        ArchSpec("effb1", "efficientnet_b1", 1280, "efficientnet", "efficientb1"),
        ArchSpec("mbv3", "mobilenetv3_large_100", 512, "mobilenet", "mobilenetv3"),
        ArchSpec("vits", "vit_small_patch16_224", -1, "vit"),
        ArchSpec("vitt", "vit_tiny_patch16_224", -1, "vit"),
        ArchSpec("xcits", "xcit_small_12_p16_224", -1, "xcit"),
        ArchSpec("xcitt", "xcit_tiny_12_p16_224", -1, "xcit"),
    ]
}

# How the official code initialises each kind of encoder (docs/protocol.md sections 1.1 and 2):
# DisCo/main.py takes ResNet students from torchvision (the last BN weight of each block is 1), while
# moco/main_moco.py builds every ResNet (teachers, baselines) with the vendored timm (zeroed).
TORCHVISION_INIT = "torchvision"
TIMM_INIT = "timm"
INITS = (TIMM_INIT, TORCHVISION_INIT)
TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")  # SwAV's ResNet-50x2 is not one


def arch_spec(name: str) -> ArchSpec:
    if name in ARCHS:
        return ARCHS[name]
    by_timm = {spec.timm_name: spec for spec in ARCHS.values()}
    if name in by_timm:
        return by_timm[name]
    raise KeyError(f"unknown architecture '{name}'{did_you_mean(name, list(ARCHS))}; valid: {', '.join(ARCHS)}")


def official_arch_name(name: str) -> str:
    """The `arch` string the official scripts write into their checkpoints (efficientb0, resnet18, ...)."""
    spec = arch_spec(name)
    return spec.official_name or spec.timm_name


def disco_student_init(arch: str) -> str | None:
    """The official init of a DisCo student where it differs from timm's (ResNets: torchvision's), else None."""
    return TORCHVISION_INIT if arch_spec(arch).timm_name in TORCHVISION_RESNETS else None
