"""The methods by name, torch-free: each one's kind, config dataclass, the profile sections that fill
it and the dotted path of its nn.Module (imported only when a stage trains), so that listing and
validating benchmarks.yaml never import torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Lt  # pydantic's own dependency: bounds it reads, no runtime check

from disco.names import did_you_mean
from disco.plugins import BUILTIN, register

TEACHER_BN_MODES = ("train", "eval")
KINDS = ("pretrain", "distill")
TeacherBN = Literal["train", "eval"]

# The config dataclasses below double as the schema of benchmarks.yaml's profile sections (SECTIONS):
# pydantic validates their field types and the annotated_types bounds; `validate(batch_size)` adds
# the checks across fields, for code that builds a config without benchmarks.yaml.
Positive = Annotated[int, Gt(0)]
PositiveFloat = Annotated[float, Gt(0)]
Weight = Annotated[float, Ge(0)]


@dataclass(frozen=True)
class MoCoV2Config:
    """The profile's `mocov2:` section: MoCo-v2's queue, key momentum, temperature and BN groups."""

    queue_size: Positive = 65536
    momentum: Annotated[float, Ge(0), Lt(1)] = 0.999
    temperature: PositiveFloat = 0.2
    bn_group_size: Positive = 32  # the paper's per-GPU batch: BN statistics are per 32 images

    def validate(self, batch_size: int) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"key momentum must be in [0, 1), got {self.momentum}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        check_queue_and_groups(self.queue_size, self.bn_group_size, batch_size)


def check_queue_and_groups(queue_size: int, bn_group_size: int, batch_size: int) -> None:
    if queue_size <= 0 or bn_group_size <= 0:
        raise ValueError(f"queue_size and bn_group_size must be positive, got {queue_size} and {bn_group_size}")
    if queue_size % batch_size:
        raise ValueError(f"queue_size {queue_size} must be a multiple of batch_size {batch_size}")
    if batch_size % bn_group_size and batch_size > bn_group_size:
        raise ValueError(f"batch_size {batch_size} must be a multiple of bn_group_size {bn_group_size}")


def check_teacher_bn(teacher_bn: str) -> None:
    if teacher_bn not in TEACHER_BN_MODES:
        raise ValueError(f"teacher_bn must be one of {TEACHER_BN_MODES}, got '{teacher_bn}'")


@dataclass(frozen=True)
class DisCoTerms:
    """The profile's `disco:` section: what DisCo adds to MoCo-v2."""

    # None: the official literal MSELoss(reduction='sum') over the local batch; a number w:
    # w * per-sample mean. The paper's effective weight is 32 on any GPU layout.
    mse_per_sample_weight: Weight | None = 32.0
    ce_weight: Weight = 1.0
    # "train": faithful, the frozen teacher normalises with per-GPU batch statistics and its
    # running stats drift, as in the official code; "eval": the clean variant.
    teacher_bn: TeacherBN = "train"
    # the official teacher load puts the teacher's MoCo queue into the student's (docs/protocol.md 1.6)
    init_queue_from_teacher: bool = True

    def validate(self, batch_size: int) -> None:
        check_teacher_bn(self.teacher_bn)
        if self.mse_per_sample_weight is not None and self.mse_per_sample_weight < 0:
            raise ValueError("mse_per_sample_weight must be >= 0 or null (literal sum)")
        if self.ce_weight < 0:
            raise ValueError(f"ce_weight must be >= 0, got {self.ce_weight}")


@dataclass(frozen=True)
class DisCoConfig(MoCoV2Config, DisCoTerms):
    def validate(self, batch_size: int) -> None:
        MoCoV2Config.validate(self, batch_size)
        DisCoTerms.validate(self, batch_size)


@dataclass(frozen=True)
class RKDTerms:
    """The profile's `rkd:` section. DisCo/main_moco_distill_rkd.py L471-474: weights 1 and 1 (not
    the RKD paper's 25 and 50)."""

    distance_weight: Weight = 1.0
    angle_weight: Weight = 1.0
    use_mse: bool = False  # --use-mse: "RKD+DisCo" adds DisCo's two MSE terms (fixed per method)

    def validate(self, batch_size: int) -> None:
        if self.distance_weight < 0 or self.angle_weight < 0:
            raise ValueError(f"RKD weights must be >= 0, got {self.distance_weight} and {self.angle_weight}")


@dataclass(frozen=True)
class RKDConfig(DisCoConfig, RKDTerms):
    def validate(self, batch_size: int) -> None:
        DisCoConfig.validate(self, batch_size)
        RKDTerms.validate(self, batch_size)


@dataclass(frozen=True)
class SEEDConfig:
    """The profile's `seed_distill:` section. SEED (ICLR 2021): a queue of teacher embeddings (65536 on
    ImageNet), student temperature 0.2, teacher temperature 1e-4: the default of its code's
    `--distill-t` (jacobswan1/SEED @81ff933 main_small.py), which its README command keeps; the
    paper's text gives 0.01 (the `seed_disco_head` variant)."""

    queue_size: Positive = 65536
    student_temperature: PositiveFloat = 0.2
    teacher_temperature: PositiveFloat = 1e-4
    bn_group_size: Positive = 32
    teacher_bn: TeacherBN = "eval"  # the official SEED trainer calls teacher.eval()

    def validate(self, batch_size: int) -> None:
        if self.student_temperature <= 0 or self.teacher_temperature <= 0:
            raise ValueError(
                f"temperatures must be positive, got {self.student_temperature} and {self.teacher_temperature}"
            )
        check_teacher_bn(self.teacher_bn)
        check_queue_and_groups(self.queue_size, self.bn_group_size, batch_size)


@dataclass(frozen=True)
class SimCLRConfig:
    """The profile's `simclr:` section: NT-Xent's temperature (SimCLR's CIFAR/ImageNet range 0.1-0.5)."""

    temperature: PositiveFloat = 0.2

    def validate(self, batch_size: int) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if batch_size < 2:
            raise ValueError(f"SimCLR needs in-batch negatives: batch_size must be >= 2, got {batch_size}")


@dataclass(frozen=True)
class DisCoSimCLRConfig(SimCLRConfig, DisCoTerms):
    def validate(self, batch_size: int) -> None:
        SimCLRConfig.validate(self, batch_size)
        DisCoTerms.validate(self, batch_size)


@dataclass(frozen=True)
class CropSpec:
    """One view a multi-crop method trains on: a RandomResizedCrop of `size` px whose area is a
    fraction in [min_scale, max_scale] of the image."""

    size: int
    min_scale: float
    max_scale: float


def _tuple(values: Any) -> tuple[Any, ...]:
    return tuple(values) if isinstance(values, (list, tuple)) else (values,)


@dataclass(frozen=True)
class SwAVConfig:
    """The profile's `swav:` section: SwAV (Caron et al., NeurIPS 2020) as facebookresearch/swav
    main_swav.py runs it. Defaults: the DisCo SwAV testbed's command (DisCo-pytorch Reproduction.md
    "Tab5"): 3000 prototypes, T 0.1, epsilon 0.05, 3 Sinkhorn iterations, codes of crops 0 and 1, 2x224
    (area 0.14-1) + 6x96 (0.05-0.14) crops, prototypes frozen for 5005 iterations, a queue from epoch
    15. Its 3840-long queue is cut to whole global batches of 512 by main_swav.py L213: 3584."""

    nmb_prototypes: Positive = 3000
    temperature: PositiveFloat = 0.1
    epsilon: PositiveFloat = 0.05
    sinkhorn_iterations: Positive = 3
    crops_for_assign: tuple[Annotated[int, Ge(0)], ...] = (0, 1)
    nmb_crops: tuple[Positive, ...] = (2, 6)
    size_crops: tuple[Positive, ...] = (224, 96)
    min_scale_crops: tuple[Annotated[float, Gt(0)], ...] = (0.14, 0.05)
    max_scale_crops: tuple[Annotated[float, Gt(0)], ...] = (1.0, 0.14)
    queue_length: Annotated[int, Ge(0)] = 3584  # 0: no queue
    epoch_queue_starts: Annotated[int, Ge(0)] = 15
    freeze_prototypes_niters: Annotated[int, Ge(0)] = 5005

    def __post_init__(self) -> None:  # YAML and stage configs give lists: held as tuples
        for name in ("crops_for_assign", "nmb_crops", "size_crops", "min_scale_crops", "max_scale_crops"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))

    def crops(self) -> tuple[CropSpec, ...]:
        """The views a training step takes, in order: nmb_crops[i] crops of each kind i."""
        kinds = zip(self.nmb_crops, self.size_crops, self.min_scale_crops, self.max_scale_crops, strict=True)
        return tuple(CropSpec(size, low, high) for count, size, low, high in kinds for _ in range(count))

    def validate(self, batch_size: int) -> None:
        if self.temperature <= 0 or self.epsilon <= 0:
            raise ValueError(f"temperature and epsilon must be positive, got {self.temperature} and {self.epsilon}")
        if min(self.nmb_prototypes, self.sinkhorn_iterations) < 1:
            raise ValueError("nmb_prototypes and sinkhorn_iterations must be >= 1")
        check_crops(self)
        if self.queue_length < 0 or self.queue_length % batch_size:
            raise ValueError(
                f"queue_length {self.queue_length} must be 0 (no queue) or a multiple of batch_size {batch_size} "
                "(main_swav.py L213 cuts it to whole batches)"
            )


def check_crops(config: SwAVConfig) -> None:
    kinds = (config.nmb_crops, config.size_crops, config.min_scale_crops, config.max_scale_crops)
    if len({len(values) for values in kinds}) != 1:
        raise ValueError(
            "nmb_crops, size_crops, min_scale_crops and max_scale_crops need one entry per kind of crop, "
            f"got {' / '.join(str(len(values)) for values in kinds)}"
        )
    if min(config.nmb_crops) < 1 or min(config.size_crops) < 1:
        raise ValueError("nmb_crops and size_crops must be positive")
    for low, high in zip(config.min_scale_crops, config.max_scale_crops, strict=True):
        if not 0 < low <= high <= 1:
            raise ValueError(f"a crop's scales must satisfy 0 < min_scale <= max_scale <= 1, got {low} and {high}")
    crops = sum(config.nmb_crops)
    assigned = config.crops_for_assign
    if crops < 2 or not assigned or len(set(assigned)) != len(assigned) or not all(0 <= c < crops for c in assigned):
        raise ValueError(
            f"crops_for_assign {list(assigned)} must name distinct crops among the {crops} (0-{crops - 1}), "
            "and a step needs at least 2 crops"
        )


@dataclass(frozen=True)
class DisCoSwAVTerms:
    """The profile's `disco_swav:` section: what DisCo's SwAV testbed (swav-master/main_swav_distill.py)
    adds to SwAV: F.mse_loss (a mean over every element) between the student's L2-normalised embedding
    and the eval-mode teacher's raw one on every crop (L404-406), added to the sum of the swapped-
    prediction losses before that is divided by the number of assigned crops (L436-437)."""

    mse_weight: Weight = 1.0  # 1: the script
    teacher_bn: TeacherBN = "eval"  # teacher_model.eval() (L378)

    def validate(self, batch_size: int) -> None:
        check_teacher_bn(self.teacher_bn)
        if self.mse_weight < 0:
            raise ValueError(f"mse_weight must be >= 0, got {self.mse_weight}")


@dataclass(frozen=True)
class DisCoSwAVConfig(SwAVConfig, DisCoSwAVTerms):
    def validate(self, batch_size: int) -> None:
        SwAVConfig.validate(self, batch_size)
        DisCoSwAVTerms.validate(self, batch_size)


# profile section name -> the dataclass that types it (harness/config.py Profile)
# (SEED's section is not `seed:`: stage configs hold the sections beside their random `seed`)
BUILTIN_SECTIONS: dict[str, type] = {
    "mocov2": MoCoV2Config,
    "simclr": SimCLRConfig,
    "disco": DisCoTerms,
    "rkd": RKDTerms,
    "seed_distill": SEEDConfig,
    "swav": SwAVConfig,
    "disco_swav": DisCoSwAVTerms,
}


def queue_negatives(config: Any, batch_size: int) -> int:
    """MoCo's InfoNCE: the positive against the K queued keys."""
    return int(config.queue_size)


def in_batch_negatives(config: Any, batch_size: int) -> int:
    """SimCLR's NT-Xent: the positive against the other 2N-2 views of the batch."""
    return 2 * batch_size - 2


def other_prototypes(config: Any, batch_size: int) -> int:
    """SwAV's swapped prediction: a softmax over the K prototypes against codes that sum to 1, so at
    chance (uniform predictions) it is ln K = ln((K-1)+1): the code's prototype against the K-1 others."""
    return int(config.nmb_prototypes) - 1


@dataclass(frozen=True)
class MethodSpec:
    kind: str  # "pretrain": trains an encoder alone; "distill": trains a student against a teacher stage
    config: type
    module: (
        str  # "package.module:Class", built as Class(encoder, config, speed) or Class(student, teacher, config, speed)
    )
    sections: tuple[str, ...]  # the profile sections whose values, merged in order, fill `config`
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # section -> fixed values
    description: str = ""
    label: str = ""  # its name in reports and verdicts
    # (config, batch_size) -> K, the negatives of its contrastive term `ce`: that term at chance is
    # ln(K+1) (the health monitor's chance level, disco/health.py); None: it has no such term
    negatives: Callable[[Any, int], int] | None = None
    # distill: the pretraining method whose loss it extends (its baseline's); None: it uses none (SEED)
    base: str | None = None
    # other base -> the method composed with that base (`disco` over `simclr`, ...)
    variants: Mapping[str, MethodSpec] = field(default_factory=dict)
    # profile sections this method brings (name -> the dataclass typing it), for a plug-in's own
    section_types: Mapping[str, type] = field(default_factory=dict)
    # the student head this composition trains, where it is not benchmarks.yaml's `methods.<name>.head`
    # (DisCo over SwAV: SwAV's, as the testbed's students); None: that entry's head
    head: str | None = None

    @property
    def needs_teacher(self) -> bool:
        return self.kind == "distill"

    def on_base(self, base: str) -> MethodSpec:
        """This method as it trains in a profile whose base method is `base`."""
        if self.kind == "pretrain" or self.base is None or base == self.base:
            return self
        if base in self.variants:
            return self.variants[base]
        bases = ", ".join([self.base, *self.variants])
        raise UnknownMethod(f"composes with the base method(s) {bases}, not {base}")

    def chance_negatives(self, config: Any, batch_size: int) -> int | None:
        return None if self.negatives is None else self.negatives(config, batch_size)

    def module_class(self) -> type:
        module, name = self.module.split(":")
        return getattr(importlib.import_module(module), name)

    def resolve(self, profile_sections: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each section's values as this method trains with them (what a stage config records)."""
        return {name: {**profile_sections[name], **self.overrides.get(name, {})} for name in self.sections}

    def build_config(self, resolved: Mapping[str, Mapping[str, Any]]) -> Any:
        values: dict[str, Any] = {}
        for name in self.sections:
            values |= resolved[name]
        known = {f.name for f in fields(self.config)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown {self.config.__name__} field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return self.config(**values)


_DISCO_OVER_SIMCLR = MethodSpec(
    "distill",
    DisCoSimCLRConfig,
    "disco.methods.disco_simclr:DisCoSimCLR",
    ("simclr", "disco"),
    description="DisCo over SimCLR: NT-Xent + MSE to the frozen teacher's embedding on both views",
    label="DisCo",
    negatives=in_batch_negatives,
    base="simclr",
)

_DISCO_OVER_SWAV = MethodSpec(
    "distill",
    DisCoSwAVConfig,
    "disco.methods.disco_swav:DisCoSwAV",
    ("swav", "disco_swav"),
    description="DisCo over SwAV (main_swav_distill.py): SwAV's multi-crop loss + MSE to the eval-mode teacher on every crop",
    label="DisCo",
    negatives=other_prototypes,
    base="swav",
    head="swav",
)

BUILTIN_METHODS: dict[str, MethodSpec] = {
    "mocov2": MethodSpec(
        "pretrain",
        MoCoV2Config,
        "disco.methods.mocov2:MoCoV2",
        ("mocov2",),
        description="MoCo-v2",
        label="MoCo-v2",
        negatives=queue_negatives,
    ),
    "simclr": MethodSpec(
        "pretrain",
        SimCLRConfig,
        "disco.methods.simclr:SimCLR",
        ("simclr",),
        description="SimCLR: NT-Xent over in-batch negatives, both views with gradients",
        label="SimCLR",
        negatives=in_batch_negatives,
    ),
    "disco": MethodSpec(
        "distill",
        DisCoConfig,
        "disco.methods.disco:DisCo",
        ("mocov2", "disco"),
        description="DisCo",
        label="DisCo",
        negatives=queue_negatives,
        base="mocov2",
        variants={"simclr": _DISCO_OVER_SIMCLR, "swav": _DISCO_OVER_SWAV},
    ),
    "disco_only_mse": MethodSpec(
        "distill",
        DisCoConfig,
        "disco.methods.disco:DisCo",
        ("mocov2", "disco"),
        {"disco": {"ce_weight": 0.0}},
        "DisCo with --only-mse: CE still computed and queued, weight 0",
        label="DisCo only-MSE",
        negatives=queue_negatives,
        base="mocov2",
        variants={
            "simclr": replace(
                _DISCO_OVER_SIMCLR,
                overrides={"disco": {"ce_weight": 0.0}},
                description="DisCo over SimCLR with the NT-Xent weighted 0",
                label="DisCo only-MSE",
            )
        },
    ),
    "rkd": MethodSpec(
        "distill",
        RKDConfig,
        "disco.methods.rkd:RKD",
        ("mocov2", "disco", "rkd"),
        {"rkd": {"use_mse": False}},
        "MoCo-v2 CE + RKD distance + RKD angle (DisCo/main_moco_distill_rkd.py)",
        label="RKD",
        negatives=queue_negatives,
        base="mocov2",
    ),
    "rkd_disco": MethodSpec(
        "distill",
        RKDConfig,
        "disco.methods.rkd:RKD",
        ("mocov2", "disco", "rkd"),
        {"rkd": {"use_mse": True}},
        "RKD plus DisCo's MSE terms (--use-mse)",
        label="RKD+DisCo",
        negatives=queue_negatives,
        base="mocov2",
    ),
    # SEED's student has no loss of its own besides the teacher's distribution: any base
    "seed": MethodSpec(
        "distill", SEEDConfig, "disco.methods.seed:SEED", ("seed_distill",), description="SEED", label="SEED"
    ),
    # this project's SEED before it followed SEED's code: DisCo's F-2048-128 student head (benchmarks.yaml
    # `head: disco`) and the paper text's teacher temperature 0.01
    "seed_disco_head": MethodSpec(
        "distill",
        SEEDConfig,
        "disco.methods.seed:SEED",
        ("seed_distill",),
        {"seed_distill": {"teacher_temperature": 0.01}},
        description="SEED with DisCo's F-2048-128 head and teacher temperature 0.01 (a variant)",
        label="SEED (2048 head, T 0.01)",
    ),
    "swav": MethodSpec(
        "pretrain",
        SwAVConfig,
        "disco.methods.swav:SwAV",
        ("swav",),
        description="SwAV: swapped prediction of Sinkhorn codes over learnt prototypes, multi-crop (main_swav.py)",
        label="SwAV",
        negatives=other_prototypes,
    ),
}


class UnknownMethod(ValueError):
    pass


# ---------------------------------------------------------------- the registry: built-ins, then plug-ins

METHODS: dict[str, MethodSpec] = {}
SECTIONS: dict[str, type] = dict(BUILTIN_SECTIONS)


def method_problem(spec: Any) -> str | None:
    """Why `spec` cannot be registered as a method, or None."""
    if not isinstance(spec, MethodSpec):
        return f"is a {type(spec).__name__}, not a disco.methods.registry.MethodSpec"
    if spec.kind not in KINDS:
        return f"has kind '{spec.kind}'; expected one of {', '.join(KINDS)}"
    if ":" not in spec.module:
        return f"names its module '{spec.module}'; expected 'package.module:Class'"
    for section in spec.sections:
        declared = spec.section_types.get(section)
        if declared is None and section not in SECTIONS:
            return f"reads the profile section '{section}', which no method declares; add it to section_types"
        if declared is not None and section in SECTIONS and SECTIONS[section] is not declared:
            return f"declares the profile section '{section}', which another method types differently; rename it"
    for base in (spec.base, *spec.variants):
        if base is not None and base not in METHODS and base not in BUILTIN_METHODS:
            return f"composes with the base method '{base}', which is not registered"
    return None


def register_methods(package: str, entries: Any) -> None:
    """A package's methods: a mapping name -> MethodSpec."""
    if not isinstance(entries, Mapping):
        entries = {
            "(entry point)": f"a {type(entries).__name__}; a methods entry point names a dict of name -> MethodSpec"
        }
    before = set(METHODS)
    register(METHODS, "method", package, entries, method_problem)
    for name in set(METHODS) - before:
        SECTIONS.update(METHODS[name].section_types)


register_methods(BUILTIN, BUILTIN_METHODS)  # plug-ins: disco.plugins.load_plugins()


def method_spec(name: str, kind: str | None = None, base: str | None = None) -> MethodSpec:
    """The method by name; with `base`, as it composes with that base method."""
    valid = [n for n, spec in METHODS.items() if kind is None or spec.kind == kind]
    if name not in valid:
        what = {"pretrain": "pretraining method", "distill": "distillation method", None: "method"}[kind]
        raise UnknownMethod(
            f"{what} '{name}' is not implemented{did_you_mean(name, valid)}; implemented: {', '.join(valid)}"
        )
    if base is None:
        return METHODS[name]
    try:
        return METHODS[name].on_base(base)
    except UnknownMethod as exc:
        raise UnknownMethod(f"method '{name}' {exc}") from None


def stage_crops(config: Mapping[str, Any]) -> tuple[CropSpec, ...]:
    """The crops a training stage's method declares (its config's `crops()`), from the config the stage
    recorded; () for a two-view method or what is not a training stage of a registered method."""
    try:
        spec = method_spec(str(config["method"]), base=config.get("base"))
        declared = getattr(spec.build_config({name: config[name] for name in spec.sections}), "crops", None)
    except (KeyError, TypeError, ValueError):
        return ()
    return tuple(declared()) if callable(declared) else ()


def stage_negatives(config: Mapping[str, Any]) -> int | None:
    """K of a training stage's contrastive term `ce` (its chance level is ln(K+1)), from the config the
    stage recorded: method, base, the sections it reads and the recipe's batch; None if it has none."""
    try:
        spec = method_spec(str(config["method"]), base=config.get("base"))
        built = spec.build_config({name: config[name] for name in spec.sections})
        return spec.chance_negatives(built, int(config["recipe"]["batch_size"]))
    except (KeyError, TypeError, ValueError):  # not a training stage of a registered method
        return None


def method_label(name: str) -> str:
    """A method's name in reports: its label, else its registry name."""
    spec = METHODS.get(name)
    return spec.label if spec is not None and spec.label else name
