"""Expand a cell (teacher/student pair x profile x seed) into stages. Identical stages are shared:
a teacher is pretrained once for all its students, a student's baseline once for all teachers."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

from disco.archs import HEAD_WIDTHS, disco_student_init
from disco.evals import smoke_recipe
from disco.methods.registry import METHODS, MethodSpec
from disco.names import did_you_mean
from disco.train_recipe import keyed_fields
from harness.config import PRECISIONS, Benchmarks, Profile, composition_problem, section_values
from harness.errors import UserError
from harness.stages import Stage

TEACHER_SEED = 0  # the teacher is a fixed asset, as in the paper: seeds vary the student stages
# a swept student's role: its method at another head width (benchmarks.yaml `sweeps:`), e.g. disco@h512
SWEPT_ROLE = re.compile(r"^(?P<method>[A-Za-z0-9_]+)@h(?P<width>[1-9][0-9]*)$")


def split_role(role: str) -> tuple[str, int | None]:
    """A method role -> (method, head width): `disco` -> (disco, None), `disco@h512` -> (disco, 512)."""
    swept = SWEPT_ROLE.match(role)
    return (swept["method"], int(swept["width"])) if swept else (role, None)


SMOKE_THREADS = 1
SMOKE = {"epochs": 1, "batch_size": 8, "limit_batches": 2, "queue_size": 64, "queue_length": 64, "bn_group_size": 4}
# smoke evaluations: each evaluation's recipe class shrinks its own recipe (disco/eval_recipes.py SMOKE)
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass
class CellPlan:
    """One pair x profile x seed: the teacher, the student's MoCo-v2 baseline and random init, and a
    student per distillation method (benchmarks.yaml `methods:`), all sharing that teacher and baseline."""

    pair: str
    profile: str
    seed: int
    teacher: Stage
    baseline: Stage
    methods: dict[str, Stage]  # distillation method -> its student's stage, in the order asked
    random_init: Stage
    evals: dict[tuple[str, str], Stage] = field(default_factory=dict)  # (role, evaluation) -> stage

    def roles(self) -> dict[str, Stage]:
        """Role -> encoder stage: teacher, baseline, each method by its name, random_init."""
        return {"teacher": self.teacher, "baseline": self.baseline, **self.methods, "random_init": self.random_init}

    def stages(self) -> list[Stage]:
        return [*self.roles().values(), *self.evals.values()]


def pick(name: str, valid: dict, what: str) -> None:
    if name not in valid:
        raise UserError(f"unknown {what} '{name}'{did_you_mean(name, list(valid))}; valid: {', '.join(valid)}")


def expand_env(value: str | None) -> str | None:
    """${VAR:-default} and ${VAR} in profile paths."""
    if value is None:
        return None
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)


class Planner:
    def __init__(
        self,
        bench: Benchmarks,
        profile_name: str,
        smoke: bool = False,
        device: str | None = None,
        speed: str = "optimized",
        threads: int | None = None,
        precision: str | None = None,
        pretrain_teachers: bool = False,
    ):
        pick(profile_name, bench.profiles, "profile")
        if device is not None and not DEVICE.match(device):
            raise UserError(f"--device '{device}' is not a device; use cpu, cuda or cuda:N (N: the GPU's index)")
        self.bench = bench
        self.profile_name = profile_name
        self.profile: Profile = bench.profiles[profile_name]
        self.smoke = smoke
        self.label = f"{profile_name}-smoke" if smoke else profile_name
        # smoke tensors are tiny: one thread beats waiting on a second one, above all on a busy machine
        threads = threads or (SMOKE_THREADS if smoke else None)
        self.runtime: dict[str, Any] = {
            "device": device or self.profile.device,
            "data_root": expand_env(self.profile.data.root),
            "speed": speed,
            "health": self.profile.health.model_dump(),
        } | ({"threads": threads} if threads else {})
        # run --pretrain-teachers: a teacher whose released file is missing is pretrained here instead
        self.pretrain_teachers = pretrain_teachers
        self.precision = precision or self.profile.precision
        # `--precision` sets every stage's; else a teacher trained here runs at the profile's teacher_precision
        self.teacher_precision = precision or self.profile.teacher_precision or self.precision
        if self.precision not in PRECISIONS:
            raise UserError(
                f"unknown precision '{self.precision}'{did_you_mean(self.precision, PRECISIONS)}; valid: {', '.join(PRECISIONS)}"
            )

    def numerics(self) -> dict[str, Any]:
        """What changes a training stage's numbers besides its recipe, for its key. Structure that is
        exact up to rounding (grouped BN, channels_last, compile) stays out.
        precision: on a CUDA profile always (its optimized default was bf16 before fp32 became the
        default, so its keys change); on a CPU profile only bf16 (CPU runs were always fp32).
        views: the reference mode draws in-memory images per image in loader workers, another
        random stream than the optimized mode's batched draw (which keeps the keys it had)."""
        values: dict[str, Any] = {}
        if self.precision != "fp32" or self.profile.device == "cuda":
            values["precision"] = self.precision
        if self.profile.augment is not None:
            values["augment"] = self.profile.augment.model_dump()
        if (
            self.runtime["speed"] == "reference"
            and (self.smoke or self.profile.data.source == "embedded")
            and self.profile.data.loader == "torch"
        ):
            values["views"] = "per_image"
        return values

    def data(self) -> dict[str, Any]:
        # the default torch loader stays out of the stage keys (they predate the option); DALI's
        # views differ from torchvision's, so choosing it gives new keys
        data = self.profile.data.model_dump(
            exclude={"root"} | ({"loader"} if self.profile.data.loader == "torch" else set())
        )
        return data | {"smoke": True} if self.smoke else data

    def pretrain_recipe(self, epochs: int, warmup_epochs: int | None = None) -> dict[str, Any]:
        """The profile's `pretrain:` recipe at `epochs` (and `warmup_epochs`, where given)."""
        base = (
            self.profile.pretrain
            if warmup_epochs is None
            else replace(self.profile.pretrain, warmup_epochs=warmup_epochs)
        )
        recipe = keyed_fields(base) | {"epochs": epochs, "workers": self.profile.data.workers}
        if self.smoke:
            recipe |= {
                "epochs": SMOKE["epochs"],
                "batch_size": SMOKE["batch_size"],
                "limit_batches": SMOKE["limit_batches"],
                "workers": 0,
            }
            if "warmup_epochs" in recipe:
                recipe["warmup_epochs"] = min(recipe["warmup_epochs"], SMOKE["epochs"])
        return recipe

    @property
    def base_method(self) -> str:
        """The profile's self-supervised base: it pretrains teachers and baselines, and each
        distillation method trains as composed with it (disco/methods/registry.py)."""
        return self.profile.base_method

    def _stage(self, name: str, kind: str, config: dict[str, Any], inputs: dict[str, Stage] | None = None) -> Stage:
        return Stage(
            name=f"{name}-{self.label}-s{config['seed']}",
            kind=kind,
            profile=self.label,
            config=config,
            inputs=inputs or {},
            runtime=self.runtime,
        )

    def teacher(self, teacher_name: str) -> Stage:
        """The teacher's release imported where the profile names one (its file missing: the preflight
        says where to put it); pretrained here where it names none, or, with --pretrain-teachers or
        --smoke (a stand-in), where the file is missing."""
        pick(teacher_name, self.bench.teachers, "teacher")
        teacher = self.bench.teachers[teacher_name]
        released = expand_env(self.profile.teacher_checkpoints.get(teacher_name))
        if released:
            stand_in = self.smoke or (self.pretrain_teachers and not teacher.release_only)
            if os.path.isfile(released) or not stand_in:
                return self.imported_teacher(teacher_name, released)
        method = teacher.pretrain or self.base_method
        epochs, warmup = self.teacher_epochs(teacher_name), self.profile.teacher_warmup_epochs
        config = self.pretrain_config(method, teacher.arch, epochs, TEACHER_SEED, warmup)
        if self.profile.teacher_init is not None:  # absent by default: the keys predate the option
            config["init"] = self.profile.teacher_init
        if self.teacher_precision != self.precision:
            config["precision"] = self.teacher_precision
        return self._stage(f"pretrain-{method}-{teacher_name}", "pretrain", config)

    def teacher_epochs(self, teacher_name: str) -> int:
        base_epochs = self.profile.teacher_epochs or self.profile.pretrain.epochs
        return max(1, round(base_epochs * self.bench.teachers[teacher_name].epochs_multiplier))

    def pretrain_config(
        self, method: str, arch: str, epochs: int, seed: int, warmup_epochs: int | None = None
    ) -> dict[str, Any]:
        """A pretraining stage's config: the method, its head and the profile sections it reads."""
        return {
            "method": method,
            "arch": arch,
            "head": self.bench.methods[method].head,
            "data": self.data(),
            "recipe": self.pretrain_recipe(epochs, warmup_epochs),
            **self.method_sections(method),
            "seed": seed,
            **self.numerics(),
        }

    def imported_teacher(self, teacher_name: str, path: str) -> Stage:
        """A released teacher: keyed by its file name and size (not its location on this machine); a
        missing file is planned with no size (the preflight stops the run and says where to put it)."""
        teacher = self.bench.teachers[teacher_name]
        size = os.path.getsize(path) if os.path.isfile(path) else None
        config = {
            "method": "import",
            "arch": teacher.arch,
            "head": teacher.head,
            "checkpoint": {"file": os.path.basename(path), "bytes": size},
            "data": self.data(),
            "seed": TEACHER_SEED,
        }
        stage = self._stage(f"import-{teacher_name}", "import", config)
        # the expected layout is checked on import; it cannot change the numbers, so it is not keyed
        return Stage(
            stage.name,
            stage.kind,
            stage.profile,
            stage.config,
            {},
            {
                **self.runtime,
                "checkpoint": path,
                "checkpoint_format": teacher.checkpoint_format,
                "teacher": teacher_name,
            },
        )

    def baseline(self, student_name: str, seed: int) -> Stage:
        pick(student_name, self.bench.students, "student")
        arch = self.bench.students[student_name].arch
        config = self.pretrain_config(self.base_method, arch, self.profile.pretrain.epochs, seed)
        hidden = self.bench.methods[self.base_method].head_hidden  # the students' head, not the teacher's
        if hidden is not None:
            config["head_hidden"] = hidden
        return self._stage(f"pretrain-{self.base_method}-{student_name}", "pretrain", config)

    def sweep_roles(self, sweep_name: str) -> list[str]:
        """A sweep's roles (`<method>@h<width>`), without the width its method's default row has."""
        pick(sweep_name, self.bench.sweeps, "sweep")
        sweep = self.bench.sweeps[sweep_name]
        method = self.bench.methods[sweep.method]
        default = method.head_hidden or HEAD_WIDTHS.get(method.head)
        return [f"{sweep.method}@h{width}" for width in dict.fromkeys(sweep.values) if width != default]

    def head_width(self, role: str) -> int | None:
        """The hidden width of a method role's student head: the role's, or its method's (None: the head's own)."""
        method, width = split_role(role)
        return width or self.bench.methods[method].head_hidden

    def method_spec(self, method: str) -> MethodSpec:
        """The registered method as it trains over this profile's base method."""
        try:
            return METHODS[method].on_base(self.base_method)
        except ValueError as exc:
            raise UserError(
                f"method '{method}' {exc} (profiles.{self.profile_name}.base_method); choose other --methods or another profile"
            ) from None

    def composable_methods(self) -> list[str]:
        """The distillation methods of benchmarks.yaml that compose with this profile's base method."""
        return [
            name
            for name, method in self.bench.methods.items()
            if method.kind == "distill" and name in METHODS and composition_problem(name, self.base_method) is None
        ]

    def method_sections(self, method: str) -> dict[str, dict[str, Any]]:
        """The profile's sections a method reads, as it trains with them; smoke shrinks queues and BN groups."""
        spec = self.method_spec(method)
        sections = {name: section_values(self.profile, name) for name in spec.sections}
        if self.smoke:
            sections = {name: values | smoke_sizes(values) for name, values in sections.items()}
        return spec.resolve(sections)

    def distill(self, role: str, teacher_name: str, student_name: str, seed: int) -> Stage:
        """The student trained by a distillation method (`role`: the method, or a swept `<method>@h<width>`)
        against the teacher's stage."""
        method, swept_width = split_role(role)
        pick(method, {name: m for name, m in self.bench.methods.items() if m.kind == "distill"}, "distillation method")
        teacher_stage = self.teacher(teacher_name)
        arch = self.bench.students[student_name].arch
        sections = self.method_sections(method)
        native_base = METHODS[method].base
        config = {
            "method": method,
            # over another base than its own the method is another composition: named in its key
            **({"base": self.base_method} if native_base not in (None, self.base_method) else {}),
            "arch": arch,
            "head": self.method_spec(method).head or self.bench.methods[method].head,
            "teacher_arch": self.bench.teachers[teacher_name].arch,
            "data": self.data(),
            "recipe": self.pretrain_recipe(self.profile.pretrain.epochs),
            **sections,
            "seed": seed,
            **self.numerics(),
        }
        if any(config[name] is not values for name, values in sections.items()):
            raise ValueError(f"a section of method {method} is named like a stage config field: {', '.join(sections)}")
        init = disco_student_init(arch)  # ResNet students: torchvision's init, as DisCo/main.py
        if init is not None:
            config["student_init"] = init
        if self.teacher_precision != self.precision:  # the frozen teacher computes in its own precision
            config["teacher_precision"] = self.teacher_precision
        width = self.head_width(role)
        if width is not None:  # keyed only when set: the default head's keys predate the setting
            config["head_hidden"] = width
        name = f"{method}-h{swept_width}" if swept_width else method
        return self._stage(
            f"distill-{name}-{teacher_name}-{student_name}", "distill", config, {"teacher": teacher_stage}
        )

    def random_init(self, student_name: str, seed: int) -> Stage:
        arch = self.bench.students[student_name].arch
        head = self.bench.methods[self.base_method].head  # the baseline's head, as it starts
        config = {"method": "random", "arch": arch, "head": head, "data": self.data(), "seed": seed}
        return self._stage(f"init-random-{student_name}", "init", config)

    def evaluates(self, evaluation: str, source: Stage) -> bool:
        """Whether `evaluation` runs on `source`'s encoder (evaluations.<name>.archs)."""
        spec = self.bench.evaluations.get(evaluation)
        return spec is None or spec.archs is None or source.config["arch"] in spec.archs

    def default_evaluations(self) -> list[str]:
        """The profile's evaluations; under --smoke without those that have no smoke mode (detectron2
        trains on the real VOC/COCO benchmark whatever the data config says)."""
        evals = self.profile.evals
        return [
            ev
            for ev in evals
            if not (self.smoke and self.profile.eval_recipes.get(ev, {}).get("backend") == "detectron2")
        ]

    def runnable_evaluations(self) -> list[str]:
        """The evaluations this profile has a recipe for."""
        return [name for name in self.bench.evaluations if name == "linear" or name in self.profile.eval_recipes]

    def eval_config(self, evaluation: str, seed: int) -> dict[str, Any]:
        pick(evaluation, self.bench.evaluations, "evaluation")
        if evaluation == "linear":
            # feature_norm and the rest of KEYED_WHEN_SET enter the key only when set: the official probe's keys predate them
            recipe = keyed_fields(self.profile.linear) | {"workers": self.profile.data.workers}
        elif evaluation in self.profile.eval_recipes:
            recipe = dict(self.profile.eval_recipes[evaluation])
        else:
            raise UserError(
                f"profiles.{self.profile_name}.eval_recipes has no recipe for '{evaluation}'; add one to {self.profile_name} in benchmarks.yaml"
            )
        if self.smoke:
            recipe = smoke_recipe(evaluation, recipe)
        return {"evaluation": evaluation, "data": self.data(), "recipe": recipe, "seed": seed}

    def evaluation(self, evaluation: str, source: Stage, seed: int) -> Stage:
        source_name = source.name.removesuffix(f"-{self.label}-s{source.config['seed']}")
        return self._stage(
            f"eval-{evaluation}-{source_name}", "eval", self.eval_config(evaluation, seed), {"encoder": source}
        )

    def methods(self, names: list[str] | None = None) -> list[str]:
        """The distillation methods a cell trains: `names` (run --methods) or benchmarks.yaml's default_methods."""
        chosen = list(dict.fromkeys(names or self.bench.default_methods))
        valid = {name: m for name, m in self.bench.methods.items() if m.kind == "distill"}
        for name in chosen:
            method, _ = split_role(name)
            pick(method, valid, "distillation method")
            self.method_spec(method)
        return chosen

    def cell(
        self, pair_name: str, seed: int = 0, evals: list[str] | None = None, methods: list[str] | None = None
    ) -> CellPlan:
        pick(pair_name, self.bench.pairs, "pair")
        pair = self.bench.pairs[pair_name]
        plan = CellPlan(
            pair=pair_name,
            profile=self.label,
            seed=seed,
            teacher=self.teacher(pair.teacher),
            baseline=self.baseline(pair.student, seed),
            methods={name: self.distill(name, pair.teacher, pair.student, seed) for name in self.methods(methods)},
            random_init=self.random_init(pair.student, seed),
        )
        for evaluation in evals or pair.evals or self.default_evaluations():
            for role, source in plan.roles().items():
                if self.evaluates(evaluation, source):  # e.g. detection: ResNet students only
                    plan.evals[(role, evaluation)] = self.evaluation(evaluation, source, seed)
        return plan


def smoke_sizes(section: dict[str, Any]) -> dict[str, Any]:
    """--smoke: every queue and BN group of a method section at the smoke sizes (a queue that is off stays off)."""
    return {key: SMOKE[key] for key in ("queue_size", "queue_length", "bn_group_size") if section.get(key)}
