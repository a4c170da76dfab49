"""The stage spec's config and runtime as typed inputs: the boundary between the harness, which
writes spec files, and the method library, which runs them. Torch-free. A value the harness's
schema rules out (a hand-edited or stale spec) is one InputError line here, before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from disco.archs import TIMM_INIT
from disco.errors import InputError
from disco.methods.registry import MethodSpec, UnknownMethod, method_spec
from disco.train_recipe import TrainRecipe

REGENERATE = "rerun `disco-bench run` to regenerate its spec"


@dataclass(frozen=True)
class DataSource:
    """Where a stage's images come from (the profile's `data:`; `smoke`: synthetic stand-ins)."""

    source: str
    image_size: int
    dataset: str | None = None
    test_fraction: float = 0.2
    smoke: bool = False
    loader: str = "torch"  # dali: the opt-in GPU loader of the self-supervised stages
    workers: int = 0


@dataclass(frozen=True)
class EncoderShape:
    arch: str
    head: str
    image_size: int
    init: str = TIMM_INIT  # how the backbone's weights start (disco/archs.py)
    hidden: int | None = None  # the projection head's hidden width (`head_hidden`); None: the head's own


@dataclass(frozen=True)
class ViewOptions:
    """The profile's `augment:`: departures from MoCo-v2's aug-plus (absent: aug-plus as is)."""

    crop_min_scale: float | None = None
    flip: bool | None = None

    def as_kwargs(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.crop_min_scale is not None:
            options["crop_scale"] = (self.crop_min_scale, 1.0)
        if self.flip is not None:
            options["flip"] = self.flip
        return options


@dataclass(frozen=True)
class HealthSettings:
    enabled: bool = True
    batch: int = 512
    knn_every: int = 0


@dataclass(frozen=True)
class Runtime:
    """What the runner passes beside the config: not hashed, it does not change a stage's numbers
    (device and threads are the runner's own)."""

    speed: str = "optimized"
    compile: bool = False
    data_root: str | None = None
    health: HealthSettings = field(default_factory=HealthSettings)
    checkpoint: str | None = None  # import stages: the released file
    checkpoint_format: str | None = None


@dataclass(frozen=True)
class TrainingInput:
    """A pretraining or distillation stage: the method with its checked config, the encoder it
    trains, the data and the recipe. precision/views: the numerics the stage key records."""

    spec: MethodSpec
    method_config: Any  # the method's own config dataclass, validated by the method
    encoder: EncoderShape
    data: DataSource
    recipe: TrainRecipe
    seed: int
    views: ViewOptions = ViewOptions()
    precision: str = "fp32"
    teacher_precision: str | None = None  # a distillation stage's frozen teacher (None: the stage's precision)
    per_image_views: bool = False


@dataclass(frozen=True)
class EncoderInput:
    """An init (random weights) or import (a released file, named in the runtime) stage."""

    encoder: EncoderShape
    seed: int


@dataclass(frozen=True)
class EvalInput:
    evaluation: str
    data: DataSource
    recipe: Mapping[str, Any]  # typed by the evaluation's own recipe dataclass when it runs
    seed: int


def _required(config: Mapping[str, Any], name: str) -> Any:
    if name not in config:
        raise InputError(f"the stage config has no `{name}`; {REGENERATE}")
    return config[name]


def data_source(config: Mapping[str, Any]) -> DataSource:
    data = _required(config, "data")
    known = {name: data[name] for name in ("dataset", "test_fraction", "smoke", "loader", "workers") if name in data}
    return DataSource(source=str(_required(data, "source")), image_size=int(_required(data, "image_size")), **known)


def encoder_shape(config: Mapping[str, Any]) -> EncoderShape:
    init = config.get("init", config.get("student_init", TIMM_INIT))
    hidden = config.get("head_hidden")
    if hidden is not None and (not isinstance(hidden, int) or isinstance(hidden, bool) or hidden <= 0):
        raise InputError(f"head_hidden must be a positive width, got {hidden!r}; {REGENERATE}")
    return EncoderShape(
        str(_required(config, "arch")), str(_required(config, "head")), data_source(config).image_size, init, hidden
    )


def train_recipe(config: Mapping[str, Any]) -> TrainRecipe:
    values = dict(_required(config, "recipe"))
    values["milestones"] = tuple(values.get("milestones", ()))
    try:
        recipe = TrainRecipe(**values)
        recipe.validate()
    except (TypeError, ValueError) as exc:  # a hand-edited spec: benchmarks.yaml's schema rules these out
        raise InputError(f"training recipe: {exc}") from None
    return recipe


def training_input(kind: str, config: Mapping[str, Any]) -> TrainingInput:
    if "method" not in config:
        raise InputError(f"the stage config names no `method`; {REGENERATE}")
    try:
        spec = method_spec(config["method"], kind, config.get("base"))
    except UnknownMethod as exc:
        raise InputError(str(exc)) from None
    recipe = train_recipe(config)
    return TrainingInput(
        spec=spec,
        method_config=method_config(spec, config, recipe.batch_size),
        encoder=encoder_shape(config),
        data=data_source(config),
        recipe=recipe,
        seed=int(_required(config, "seed")),
        views=ViewOptions(**(config.get("augment") or {})),
        precision=config.get("precision", "fp32"),
        teacher_precision=config.get("teacher_precision"),
        per_image_views=config.get("views") == "per_image",
    )


def method_config(spec: MethodSpec, config: Mapping[str, Any], batch_size: int) -> Any:
    """The method's config from the sections the stage config records, checked by the method itself
    (validate catches these in benchmarks.yaml; a hand-written spec may not)."""
    try:
        built = spec.build_config({name: config[name] for name in spec.sections})
        built.validate(batch_size)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{exc}; fix the profile's {'/'.join(spec.sections)} values (`disco-bench validate` checks benchmarks.yaml)"
        ) from None
    return built


def encoder_input(config: Mapping[str, Any]) -> EncoderInput:
    return EncoderInput(encoder_shape(config), int(_required(config, "seed")))


def eval_input(config: Mapping[str, Any]) -> EvalInput:
    return EvalInput(
        evaluation=str(_required(config, "evaluation")),
        data=data_source(config),
        recipe=dict(_required(config, "recipe")),
        seed=int(config.get("seed", 0)),
    )


def runtime_of(runtime: Mapping[str, Any]) -> Runtime:
    health = runtime.get("health") or {}
    return Runtime(
        speed=runtime.get("speed", "optimized"),
        compile=bool(runtime.get("compile", False)),
        data_root=runtime.get("data_root"),
        health=HealthSettings(**{name: health[name] for name in ("enabled", "batch", "knn_every") if name in health}),
        checkpoint=runtime.get("checkpoint"),
        checkpoint_format=runtime.get("checkpoint_format"),
    )
