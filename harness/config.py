"""benchmarks.yaml: its typed schema and loading. Names are cross-checked (pairs -> teachers,
students; teachers/students -> architectures) with "did you mean" on every misspelling."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from annotated_types import Ge
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from disco.archs import ARCHS
from disco.eval_recipes import ProbeRecipe
from disco.methods.registry import METHODS, SECTIONS
from disco.names import did_you_mean
from disco.train_recipe import TrainRecipe
from harness.errors import UserError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PRECISIONS = ("fp32", "bf16")


class Teacher(Strict):
    arch: str
    # the method that pretrains it when no released checkpoint is given; None: the profile's base_method
    pretrain: str | None = None
    head: Literal["mocov2", "swav"] = "mocov2"
    # the layout a released checkpoint must have (profiles.*.teacher_checkpoints): checked on import
    checkpoint_format: Literal["mocov2", "swav"] = "mocov2"
    # only its released file stands for it: no method here trains it (a MoCo-v2 stand-in of a SwAV-
    # family ResNet-50 would be the r50 teacher again), so `run --pretrain-teachers` leaves it imported
    release_only: bool = False
    epochs_multiplier: float = 1.0
    description: str = ""


class Student(Strict):
    arch: str
    description: str = ""


class Method(Strict):
    kind: Literal["pretrain", "distill"]
    # a composition may train another head (disco/methods/registry.py MethodSpec.head: DisCo over SwAV)
    head: Literal["mocov2", "disco", "seed", "swav"]
    # the student head's hidden width (distillation methods; a pretraining method: its student
    # baselines'), in the stage key only when set; null: the head's own (disco: 2048)
    head_hidden: int | None = Field(None, gt=0)
    description: str = ""
    # the paper's numbers: reference.pairs.<pair>.<reference>; null: this method's own name
    reference: str | None = None


class Sweep(Strict):
    """`run --sweep NAME`: a distillation method planned at each value of one of its settings, beside
    its default row, in every cell (each value a role `<method>@h<width>`)."""

    method: str
    setting: Literal["head_hidden"] = "head_hidden"
    values: list[Annotated[int, Field(gt=0)]] = Field(min_length=1)
    description: str = ""


class Evaluation(Strict):
    description: str = ""
    # the encoders it runs on (null: every one); a cell plans it for the roles whose arch is listed
    archs: list[str] | None = None


class Pair(Strict):
    teacher: str
    student: str
    evals: list[str] | None = None  # None: the profile's default evaluations


class PaperTable(Strict):
    """One of the paper's tables as the report lays it out: a row per student and method (its
    baseline first), a column per teacher, one table per evaluation."""

    title: str
    evaluations: list[str] = Field(min_length=1)
    students: list[str] = Field(min_length=1)
    teachers: list[str] = Field(min_length=1)
    # the distillation methods with a row (null: every method with stored results, default ones first)
    methods: list[str] | None = None
    # the profiles it belongs to: those whose base_method is this testbed's (null: every profile)
    base_method: str | None = None


class DataSpec(Strict):
    source: Literal["embedded", "imagenet"]
    dataset: str | None = None
    root: str | None = None
    image_size: int = Field(gt=0)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    workers: int = Field(0, ge=0)
    # dali: the optional GPU loader for the self-supervised stages on ImageNet (disco/data/dali.py);
    # a documented deviation from the official per-image pipeline, so opt-in
    loader: Literal["torch", "dali"] = "torch"

    @model_validator(mode="after")
    def _dali_reads_files(self) -> DataSpec:
        if self.loader == "dali" and self.source != "imagenet":
            raise ValueError(
                f"loader: dali reads image files, so it needs source: imagenet, not {self.source}; use loader: torch"
            )
        return self


class AugmentSpec(Strict):
    """How the self-supervised views depart from MoCo-v2's aug-plus (RandomResizedCrop 0.2-1, jitter,
    grayscale, blur, flip), for every training stage of a profile alike (both arms of a comparison)."""

    crop_min_scale: float = Field(0.2, gt=0, le=1)  # RandomResizedCrop's smallest area fraction
    flip: bool = True  # horizontal flips (a digit flipped is another glyph)


class HealthSpec(Strict):
    """The per-epoch training health monitor (disco/health.py); runtime only: not part of stage keys."""

    enabled: bool = True
    batch: int = Field(512, gt=1)  # held-out images looked at after every epoch
    knn_every: int = Field(0, ge=0)  # kNN monitor on the full train/test split every N epochs (0: off)


class ProfileFields(Strict):
    """A profile's fields besides the method sections (Profile adds those)."""

    description: str = ""
    device: Literal["cpu", "cuda"] = "cpu"
    # training numerics: fp32 as the official code; bf16 autocast is an explicit, recorded deviation
    precision: Literal["fp32", "bf16"] = "fp32"
    # the self-supervised method that pretrains teachers and student baselines, and that each
    # distillation method composes with (disco/methods/registry.py: `base`, `variants`)
    base_method: str
    # init of teacher encoders trained here (ResNets: timm's zeroed last BN of each block, as the
    # official MoCo code, or torchvision's); None: the architecture's official init
    teacher_init: Literal["timm", "torchvision"] | None = None
    # departures from MoCo-v2's aug-plus views (None: the official views; part of the stage keys when set)
    augment: AugmentSpec | None = None
    data: DataSpec
    pretrain: TrainRecipe  # the dataclass the training loop runs (disco/train_recipe.py)
    teacher_epochs: int | None = None
    # the teacher's lr warm-up in epochs (None: the students', `pretrain.warmup_epochs`): the teacher is
    # shared by both arms of every cell, so its recipe may differ from theirs, as its length does
    teacher_warmup_epochs: Annotated[int, Ge(0)] | None = None
    # the teacher's precision (None: the profile's `precision`): in its pretraining here and as the frozen
    # teacher of every distillation stage; shared by both arms of every cell, a deviation of the teacher
    # only (the tiny profile: bf16, its ResNet-50 step ~1.8x faster on a 2-core CPU)
    teacher_precision: Literal["fp32", "bf16"] | None = None
    linear: ProbeRecipe  # the dataclass the linear probe runs (disco/eval_recipes.py)
    evals: list[str] = ["linear"]
    # evaluation -> its recipe (each evaluation validates its own fields); `linear` uses `linear:`
    eval_recipes: dict[str, dict[str, Any]] = {}
    # teacher name -> released checkpoint (official MoCo-v2 / SwAV layouts, ${ENV} expanded): such a
    # teacher is imported, and without its file the preflight names it (pretrained here only with
    # `run --pretrain-teachers`); null or no entry: no release, the teacher is pretrained here
    teacher_checkpoints: dict[str, str | None] = {}
    health: HealthSpec = HealthSpec()
    # evaluation -> why it is not in `evals` (printed in the report); it stays runnable by name
    excluded_evals: dict[str, str] = {}
    slurm: dict[str, Any] = {}


def _with_method_sections(base: type[ProfileFields]) -> type[ProfileFields]:
    """The profile schema with a field per method section (disco/methods/registry.py SECTIONS), typed
    by the method's own config dataclass: a new method's section needs no change here. A section left
    out takes its config's defaults, except the base method's (Benchmarks checks that it is stated)."""
    sections: dict[str, Any] = {name: (config, config()) for name, config in SECTIONS.items()}
    return create_model("Profile", __base__=base, **sections)


if TYPE_CHECKING:
    Profile = ProfileFields
else:
    Profile = _with_method_sections(ProfileFields)


class Benchmarks(Strict):
    schema_version: Literal[1]
    teachers: dict[str, Teacher]
    students: dict[str, Student]
    methods: dict[str, Method]
    evaluations: dict[str, Evaluation]
    pairs: dict[str, Pair]
    default_pairs: list[str]
    # the distillation methods a cell trains when `run --methods` is not given
    default_methods: list[str]
    profiles: dict[str, Profile]
    reference: dict[str, Any] = {}
    # the paper's tables the report renders (which pairs, evaluations and methods each covers)
    paper_tables: dict[str, PaperTable] = {}
    # named sweeps of a method's setting (run --sweep NAME)
    sweeps: dict[str, Sweep] = {}

    @model_validator(mode="after")
    def _references_resolve(self) -> Benchmarks:
        for section in (self.teachers, self.students):
            for name, entry in section.items():
                _require(entry.arch, list(ARCHS), f"{name}.arch", "architecture")
        for name, method in self.methods.items():
            _require(name, list(METHODS), f"methods.{name}", "method (disco/methods/registry.py)")
            if METHODS[name].kind != method.kind:
                raise ValueError(f"methods.{name}.kind: '{name}' is a {METHODS[name].kind} method, not {method.kind}")
        for name, teacher in self.teachers.items():
            if teacher.pretrain is not None:
                _require(
                    teacher.pretrain, pretrain_methods(self.methods), f"teachers.{name}.pretrain", "pretraining method"
                )
        for name, evaluation in self.evaluations.items():
            for arch in evaluation.archs or []:
                _require(arch, list(ARCHS), f"evaluations.{name}.archs", "architecture")
        for name, pair in self.pairs.items():
            _require(pair.teacher, list(self.teachers), f"pairs.{name}.teacher", "teacher")
            _require(pair.student, list(self.students), f"pairs.{name}.student", "student")
            for evaluation_name in pair.evals or []:
                _require(evaluation_name, list(self.evaluations), f"pairs.{name}.evals", "evaluation")
        for name in self.default_pairs:
            _require(name, list(self.pairs), "default_pairs", "pair")
        for name, sweep in self.sweeps.items():
            _require(sweep.method, distill_methods(self), f"sweeps.{name}.method", "distillation method")
        for name, table in self.paper_tables.items():
            for evaluation_name in table.evaluations:
                _require(evaluation_name, list(self.evaluations), f"paper_tables.{name}.evaluations", "evaluation")
            for student in table.students:
                _require(student, list(self.students), f"paper_tables.{name}.students", "student")
            for teacher_name in table.teachers:
                _require(teacher_name, list(self.teachers), f"paper_tables.{name}.teachers", "teacher")
            for method_name in table.methods or []:
                _require(method_name, distill_methods(self), f"paper_tables.{name}.methods", "distillation method")
            if table.base_method is not None:
                _require(
                    table.base_method,
                    pretrain_methods(self.methods),
                    f"paper_tables.{name}.base_method",
                    "pretraining method",
                )
        for name in self.default_methods:
            _require(name, distill_methods(self), "default_methods", "distillation method")
        for name, profile in self.profiles.items():
            for teacher_name in profile.teacher_checkpoints:
                _require(teacher_name, list(self.teachers), f"profiles.{name}.teacher_checkpoints", "teacher")
            for evaluation_name in profile.evals:
                _require(evaluation_name, list(self.evaluations), f"profiles.{name}.evals", "evaluation")
            _require(
                profile.base_method,
                pretrain_methods(self.methods),
                f"profiles.{name}.base_method",
                "pretraining method",
            )
            for needed in METHODS[profile.base_method].sections:
                if needed not in profile.model_fields_set:
                    raise ValueError(
                        f"profiles.{name}: the base method {profile.base_method} reads `{needed}:`; state its values"
                    )
            for default in self.default_methods:
                base_problem = composition_problem(default, profile.base_method)
                if base_problem:
                    raise ValueError(f"default_methods: {base_problem} (profile {name})")
        return self


def composition_problem(method: str, base: str) -> str | None:
    """Why distillation method `method` cannot train over base method `base`, or None."""
    try:
        METHODS[method].on_base(base)
    except ValueError as exc:
        return f"method '{method}' {exc}"
    return None


def distill_methods(bench: Benchmarks) -> list[str]:
    """The methods a cell can train against its teacher, in benchmarks.yaml's order."""
    return [name for name, method in bench.methods.items() if method.kind == "distill"]


def section_values(profile: Profile, name: str) -> dict[str, Any]:
    """A profile's method section as plain values (what stage configs record)."""
    return dataclasses.asdict(getattr(profile, name))


def pretrain_methods(methods: dict[str, Any]) -> list[str]:
    """Methods that can pretrain a teacher: of kind pretrain, and implemented by the code."""

    def kind(method: Any) -> Any:
        return method.get("kind") if isinstance(method, dict) else getattr(method, "kind", None)

    return [
        name
        for name, method in methods.items()
        if kind(method) == "pretrain" and name in METHODS and METHODS[name].kind == "pretrain"
    ]


def _require(value: str, valid: list[str], where: str, what: str) -> None:
    if value not in valid:
        raise ValueError(f"{where}: unknown {what} '{value}'{did_you_mean(value, valid)}; valid: {', '.join(valid)}")


DEFAULT_FILE = Path("benchmarks.yaml")


def load_benchmarks(path: Path = DEFAULT_FILE) -> Benchmarks:
    from harness.validate import validate_file  # imports this module

    outcome = validate_file(path)
    if outcome.bench is None:
        count = len(outcome.problems)
        raise UserError(
            f"{outcome.problems[0].render(path)} ({count} error(s); run `disco-bench validate {path}` to see all)"
        )
    return outcome.bench
