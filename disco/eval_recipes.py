"""Every evaluation's recipe: a frozen dataclass that checks its own values, built from the
profile's mapping. Torch-free, so `disco-bench validate` checks recipes without loading models.

Each recipe class also says how `--smoke` shrinks it (SMOKE: a couple of steps, whatever the
profile asks for); the evaluation registry (disco/evals/__init__.py) names each evaluation's class
and refuses one without SMOKE settings."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import TypeAdapter, ValidationError

from disco.errors import InputError
from disco.names import did_you_mean

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

RecipeT = TypeVar("RecipeT", bound="DataclassInstance")
SMOKE_STEPS = 2  # batches per pass (or iterations) of any evaluation under --smoke
SMOKE_BATCH = 8
FEATURE_NORMS = ("none", "standardize")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


@dataclass(frozen=True)
class ProbeRecipe:
    epochs: int = 100
    batch_size: int = 256
    lr: float = 3.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "step"
    milestones: tuple[int, ...] = (5, 10, 15, 20, 25, 30, 35, 40, 45, 60, 80)
    gamma: float = 0.5
    train_augment: bool = True  # False: features are computed once and cached (exact: frozen BN)
    workers: int = 0
    limit_batches: int | None = None  # smoke runs: batches per pass (train and test features alike)
    # "none": the official probe on the raw features; "standardize": each feature dimension shifted
    # and scaled by its mean and standard deviation over the training split before the linear layer
    # (fixed, not learnt: the probe is then invariant to the features' scale, so an encoder whose
    # features are tiny or huge, a random-initialised control above all, gets a probe that trains)
    feature_norm: str = "none"

    SMOKE: ClassVar[dict[str, Any]] = {
        "epochs": 1,
        "batch_size": SMOKE_BATCH,
        "limit_batches": SMOKE_STEPS,
        "workers": 0,
    }
    # as the profile's `linear:` section (disco.train_recipe.keyed_fields): fields in a stage key only
    # when set, so that the keys made before they existed stay as they were
    KEYED_WHEN_SET: ClassVar[tuple[str, ...]] = ("momentum", "weight_decay", "limit_batches", "feature_norm")

    def __post_init__(self) -> None:
        _require(
            self.epochs >= 1 and self.batch_size >= 1 and self.lr > 0,
            f"{type(self).__name__} needs epochs >= 1, batch_size >= 1 and lr > 0, got {self.epochs}, {self.batch_size}, {self.lr}",
        )
        _require(
            self.schedule in ("step", "cosine", "constant"),
            f"schedule must be step, cosine or constant, got '{self.schedule}'",
        )
        _require(
            self.workers >= 0 and (self.limit_batches is None or self.limit_batches >= 1),
            f"workers must be >= 0 and limit_batches >= 1, got {self.workers}, {self.limit_batches}",
        )
        _require(
            self.feature_norm in FEATURE_NORMS,
            f"feature_norm must be one of {', '.join(FEATURE_NORMS)}, got '{self.feature_norm}'",
        )


@dataclass(frozen=True)
class KnnRecipe:
    k: int = 200
    temperature: float = 0.07
    batch_size: int = 256
    workers: int = 0
    chunk_size: int = 1024  # test rows scored against all train features at once
    limit_batches: int | None = None

    SMOKE: ClassVar[dict[str, Any]] = {"batch_size": SMOKE_BATCH, "limit_batches": SMOKE_STEPS, "workers": 0}

    def __post_init__(self) -> None:
        if self.k < 1 or self.temperature <= 0 or self.chunk_size < 1:
            raise InputError(
                f"kNN needs k >= 1, temperature > 0 and chunk_size >= 1, got k={self.k}, temperature={self.temperature}, chunk_size={self.chunk_size}"
            )
        _require(
            self.batch_size >= 1 and self.workers >= 0,
            f"kNN needs batch_size >= 1 and workers >= 0, got {self.batch_size}, {self.workers}",
        )


@dataclass(frozen=True)
class SubsetChoice:
    subset_list: str | None = None  # ImageNet: a SimCLR {1,10}percent.txt; None: fetched once into the cache
    # True: drop the first listed image, as DisCo's imagenet_1_fraction.py does (pandas reads it as a
    # header): 12,810 / 128,115 images. SwAV's eval_semisup.py (the fine-tuning recipe) reads every line.
    faithful_header_bug: bool = False
    subset_seed: int = 0  # embedded: which class-balanced fraction (fixed, like the SimCLR lists)


@dataclass(frozen=True)
class SemiLinearRecipe(ProbeRecipe, SubsetChoice):
    milestones: tuple[int, ...] = (60, 80)
    faithful_header_bug: bool = True  # DisCo's subset builder, faithful by default; false: every listed image


@dataclass(frozen=True)
class SemiFinetuneRecipe(SubsetChoice):
    epochs: int = 20
    batch_size: int = 256
    trunk_lr: float = 0.01
    head_lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = (12, 16)
    gamma: float = 0.2
    eval_every: int = 1  # epochs between test passes (SwAV: every epoch, best reported)
    workers: int = 0
    limit_batches: int | None = None

    SMOKE: ClassVar[dict[str, Any]] = {
        "epochs": 1,
        "batch_size": SMOKE_BATCH,
        "limit_batches": SMOKE_STEPS,
        "eval_every": 1,
        "workers": 0,
    }

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise InputError(
                f"semi_finetune needs epochs, batch_size and eval_every >= 1, got {self.epochs}, {self.batch_size}, {self.eval_every}"
            )
        _require(
            self.trunk_lr >= 0 and self.head_lr > 0,
            f"semi_finetune needs trunk_lr >= 0 and head_lr > 0, got {self.trunk_lr}, {self.head_lr}",
        )


@dataclass(frozen=True)
class TransferRecipe(ProbeRecipe):
    epochs: int = 200
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    root: str | None = (
        None  # CIFAR: the torchvision root holding cifar-10-batches-py / cifar-100-python (else $DISCO_CIFAR)
    )
    test_fraction: float = 0.2  # digits: the stratified, seeded held-out share

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0.0 < self.test_fraction < 1.0, f"transfer test_fraction must be in (0, 1), got {self.test_fraction}")


DETECTION_BACKENDS = ("torchvision", "detectron2")


@dataclass(frozen=True)
class DetectionRecipe:
    backend: str = "torchvision"
    # torchvision back end (embedded digits)
    train_images: int = 256
    test_images: int = 128
    data_seed: int = 0  # canvases are fixed across runs, like a benchmark's images
    canvas: int = 64
    digits_per_image: tuple[int, ...] = (1, 3)
    digit_height: tuple[int, ...] = (16, 40)
    input_size: int = 64  # canvases are resized to this before the backbone
    feature_stride: int = 16  # 16: the C4 cut (detectron2 R-C4); 32: the last map (forward_features)
    train_backbone: bool = False
    iterations: int = 300
    batch_size: int = 8
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1.0e-4
    warmup_iters: int = 50
    steps: tuple[int, ...] = (225, 275)
    gamma: float = 0.1
    anchor_sizes: tuple[int, ...] = (16, 32, 48)  # in input pixels; digits are 16-40 px tall on a 64-px canvas
    aspect_ratios: tuple[float, ...] = (1.0, 2.0)  # height / width: digits are upright
    neck_channels: int = 128  # 0: no 1x1 reduction
    roi_output_size: int = 4
    representation_size: int = 128
    score_threshold: float = 0.01
    # detectron2 back end (paper)
    benchmark: str = "voc"
    datasets_root: str | None = None
    output_dir: str | None = None
    num_gpus: int = 1
    # VOC: True (faithful) trains as the official run did, with detectron2's default BGR mean / std 1 /
    # STRIDE_IN_1X1 on RGB input (the moco yaml's duplicated MODEL key); False: the intended normalisation
    faithful_yaml_bug: bool = True
    max_iter: int | None = None  # detectron2: SOLVER.MAX_ITER instead of the official schedule's (smoke runs)

    SMOKE: ClassVar[dict[str, Any]] = {
        "train_images": 8,
        "test_images": 4,
        "iterations": SMOKE_STEPS,
        "batch_size": 4,
        "warmup_iters": 1,
        "steps": (1,),
        "max_iter": SMOKE_STEPS,
    }

    def __post_init__(self) -> None:
        counts = {
            "train_images": self.train_images,
            "test_images": self.test_images,
            "iterations": self.iterations,
            "batch_size": self.batch_size,
            "input_size": self.input_size,
            "num_gpus": self.num_gpus,
        }
        bad = [f"{name}={value}" for name, value in counts.items() if value < 1]
        if bad or self.lr <= 0 or self.warmup_iters < 0:
            raise InputError(
                f"detection recipe needs positive counts and lr, warmup_iters >= 0; got {', '.join(bad) or f'lr={self.lr}, warmup_iters={self.warmup_iters}'}"
            )
        _require(
            self.backend in DETECTION_BACKENDS,
            f"detection backend must be one of {', '.join(DETECTION_BACKENDS)}, got '{self.backend}'",
        )
        _require(
            self.feature_stride in (16, 32),
            f"detection feature_stride must be 16 (C4 cut) or 32 (last map), got {self.feature_stride}",
        )
        _require(
            self.max_iter is None or self.max_iter >= 1, f"detection max_iter must be >= 1 or null, got {self.max_iter}"
        )


@functools.cache
def _adapter(recipe_type: type) -> TypeAdapter:
    return TypeAdapter(recipe_type)


def _validated(recipe_type: type[RecipeT], recipe: Any) -> tuple[RecipeT | None, list[tuple[str | None, str]]]:
    if not isinstance(recipe, Mapping):
        return None, [(None, f"expected a mapping of {recipe_type.__name__} fields, got {type(recipe).__name__}")]
    valid = [field.name for field in dataclasses.fields(recipe_type)]
    unknown: list[tuple[str | None, str]] = [
        (str(name), f"unknown {recipe_type.__name__} field{did_you_mean(name, valid)}; valid: {', '.join(valid)}")
        for name in recipe
        if name not in valid
    ]
    if unknown:
        return None, unknown
    try:
        return _adapter(recipe_type).validate_python(dict(recipe)), []
    except ValidationError as exc:
        return None, [
            (str(error["loc"][0]) if error["loc"] else _culprit(recipe_type, recipe), _message(error))
            for error in exc.errors()
        ]


def _culprit(recipe_type: type, recipe: Mapping[str, Any]) -> str | None:
    """The one field that fails a whole-recipe check (__post_init__) on its own, if exactly one does."""

    def fails_alone(name: str) -> bool:
        try:
            _adapter(recipe_type).validate_python({name: recipe[name]})
        except ValidationError:
            return True
        return False

    failing = [str(name) for name in recipe if fails_alone(name)]
    return failing[0] if len(failing) == 1 else None


def _message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ").replace("Input should be ", "expected ", 1)
    value = error.get("input")
    shown = f", got {value!r}" if error["loc"] and isinstance(value, (str, int, float, bool, type(None))) else ""
    return message + shown


def recipe_problems(recipe_type: type, recipe: Any) -> list[tuple[str | None, str]]:
    """(field or None, message) for everything wrong with `recipe` as a `recipe_type`; [] if valid."""
    return _validated(recipe_type, recipe)[1]


def coerce_recipe(recipe_type: type[RecipeT], recipe: Any) -> RecipeT:
    """`recipe_type` from an instance of it, a mapping of its fields (lists become tuples, "3" becomes 3)
    or None (defaults); InputError, naming the fields, for anything else."""
    if isinstance(recipe, recipe_type):
        return recipe
    if recipe is None:
        return recipe_type()
    if not isinstance(recipe, Mapping):
        raise InputError(
            f"this evaluation takes a {recipe_type.__name__} or a mapping of its fields, got {type(recipe).__name__}; route its own recipe (eval_recipes) from the profile"
        )
    unknown = sorted(set(recipe) - {field.name for field in dataclasses.fields(recipe_type)})
    if unknown:
        raise InputError(
            f"unknown {recipe_type.__name__} field(s) {', '.join(unknown)}; valid: {', '.join(field.name for field in dataclasses.fields(recipe_type))}"
        )
    coerced, problems = _validated(recipe_type, recipe)
    if problems:
        raise InputError("; ".join(f"{field}: {message}" if field else message for field, message in problems))
    assert coerced is not None  # no problems: validated
    return coerced
