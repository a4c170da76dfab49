"""The evaluations: one registry of what each one is, loaded lazily.

Every evaluation is a function `evaluate(encoder, splits, recipe, device, seed, progress) -> metrics`
in a module of this package. Its metadata lives here, torch-free, so `validate`, `list`, the planner
and the report read it without importing torch: the recipe dataclass (disco/eval_recipes.py: fields,
checks, how `--smoke` shrinks it), the headline metric and its direction, and what the report shows
beside it. The function's module is imported only when the evaluation runs (`get_evaluation`).

Adding an evaluation `foo`:
  1. disco/evals/foo.py: `def foo(encoder, splits, recipe, device, seed=0, progress=None) -> dict`,
     starting with `config = coerce_recipe(FooRecipe, recipe)`; raise disco.errors' InputError /
     DataUnavailable for bad input and missing data (one line: what, where, how to fix).
  2. Its recipe: a frozen dataclass in disco/eval_recipes.py with defaults, `__post_init__` checks and
     a `SMOKE` dict (a couple of steps, whatever the profile asks for); or reuse one.
  3. One `Evaluation("foo", "disco.evals.foo:foo", FooRecipe, headline=(...))` line in REGISTRY below;
     `paper=PaperNumbers(section, key)` where the paper reports numbers for it (benchmarks.yaml
     `reference:`), so that the report puts them beside the measured ones.
  4. benchmarks.yaml: `evaluations: foo: {description: ...}`, `eval_recipes: foo: {...}` and `foo`
     under `evals:` in the profiles that run it; `disco-bench validate` checks every recipe field.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from disco.errors import InputError
from disco.eval_recipes import (
    DetectionRecipe,
    KnnRecipe,
    ProbeRecipe,
    SemiFinetuneRecipe,
    SemiLinearRecipe,
    TransferRecipe,
)
from disco.names import did_you_mean
from disco.plugins import BUILTIN, named, register

EvalFn = Callable[..., dict[str, Any]]
# Probes trained over epochs report the best epoch, as the official scripts do (main_lincls.py,
# main_lincls_semi.py, cifar_main_lincls.py: best_acc1 = max(acc1, best_acc1)), the last one beside
# it; plain top1 stays a fallback for results stored before top1_best existed.
BEST_EPOCH = ("top1_best", "top1")
LAST_EPOCH = ("top1", "last epoch")


@dataclass(frozen=True)
class PaperNumbers:
    """Where the paper's numbers for an evaluation live in benchmarks.yaml `reference:`.

    `section=None` is Table 1's layout: `teachers.<teacher>`, `baselines.<student>` and
    `pairs.<pair>.<method>`, keyed by the report's metric name (top1, top5). Any other section is laid
    out per student: `<section>.<student>.<entry>.<key>`, the entry `baseline`, `teacher` or
    `<method>_<teacher>` (e.g. `semi_supervised.r18.disco_r152.pct1`). A missing entry or a null is n/a."""

    section: str | None
    key: str = "top1"


@dataclass(frozen=True)
class Evaluation:
    name: str
    entry: str  # "module:function", imported only when the evaluation runs
    recipe: type[Any]  # its recipe dataclass in disco/eval_recipes.py
    headline: tuple[str, ...]  # the metric a report column shows: the first of these a result holds
    beside: tuple[str, str] | None = None  # (metric, column header) shown beside the headline
    higher_is_better: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments bound to the function
    paper: PaperNumbers | None = None  # where the paper's numbers live; None: the paper reports none

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.recipe) or not getattr(self.recipe, "SMOKE", None):
            raise TypeError(f"evaluation {self.name}: its recipe must be a dataclass with SMOKE settings")
        if ":" not in self.entry or not self.headline:
            raise TypeError(f"evaluation {self.name}: entry 'module:function' and a headline metric are required")

    @property
    def smoke(self) -> dict[str, Any]:
        """What `--smoke` sets in its recipe: a couple of steps."""
        return dict(self.recipe.SMOKE)

    @property
    def metric(self) -> str:
        return self.headline[0]

    def load(self) -> EvalFn:
        module, _, function = self.entry.partition(":")
        evaluate = getattr(importlib.import_module(module), function)
        return functools.partial(evaluate, **self.options) if self.options else evaluate


REGISTRY: tuple[Evaluation, ...] = (
    Evaluation("linear", "disco.evals.linear:linear", ProbeRecipe, BEST_EPOCH, LAST_EPOCH, paper=PaperNumbers(None)),
    Evaluation("knn", "disco.evals.knn:knn", KnnRecipe, ("top1",)),
    *(
        Evaluation(
            f"semi_linear_{percent}pct",
            "disco.evals.semi:semi_linear",
            SemiLinearRecipe,
            BEST_EPOCH,
            LAST_EPOCH,
            options={"percent": percent},
            # DisCo's own semi-supervised script trains a linear head on the frozen backbone
            paper=PaperNumbers("semi_supervised", f"pct{percent}"),
        )
        for percent in (1, 10)
    ),
    *(
        Evaluation(
            f"semi_finetune_{percent}pct",
            "disco.evals.semi:semi_finetune",
            SemiFinetuneRecipe,
            BEST_EPOCH,
            LAST_EPOCH,
            options={"percent": percent},
        )
        for percent in (1, 10)
    ),
    *(
        Evaluation(
            f"transfer_{target}",
            "disco.evals.transfer:transfer",
            TransferRecipe,
            BEST_EPOCH,
            LAST_EPOCH,
            options={"target": target},
            paper=PaperNumbers("cifar_transfer", target) if target.startswith("cifar") else None,
        )
        for target in ("cifar10", "cifar100", "digits")
    ),
    # COCO-style AP as detectron2 writes it (AP, AP50, AP75); map/ap: results stored before that
    Evaluation(
        "detection", "disco.evals.detection:detection", DetectionRecipe, ("AP", "AP50", "map", "ap"), ("AP50", "AP50")
    ),
    *(
        Evaluation(
            f"detection_{benchmark}",
            "disco.evals.detection:benchmark_detection",
            DetectionRecipe,
            ("AP", "AP50"),
            ("AP50", "AP50"),
            options={"benchmark": benchmark},
            paper=PaperNumbers("detection", f"{benchmark}_AP"),
        )
        for benchmark in ("voc", "coco")
    ),
)
EVALUATIONS: dict[str, Evaluation] = {}


def evaluation_problem(entry: Any) -> str | None:
    """Why `entry` cannot be registered as an evaluation, or None (its own checks ran when it was built)."""
    if not isinstance(entry, Evaluation):
        return f"is a {type(entry).__name__}, not a disco.evals.Evaluation"
    return None


def register_evaluations(package: str, entries: Any) -> None:
    register(
        EVALUATIONS,
        "evaluation",
        package,
        named(entries, lambda entry: getattr(entry, "name", "?")),
        evaluation_problem,
    )


register_evaluations(BUILTIN, REGISTRY)  # plug-ins: disco.plugins.load_plugins()


def evaluation(name: str) -> Evaluation:
    """An evaluation's metadata; InputError naming the valid ones for an unknown name."""
    if name not in EVALUATIONS:
        raise InputError(
            f"unknown evaluation '{name}'{did_you_mean(name, list(EVALUATIONS))}; implemented (disco/evals/__init__.py): {', '.join(EVALUATIONS)}"
        )
    return EVALUATIONS[name]


def get_evaluation(name: str) -> EvalFn:
    """The evaluation function, its module imported now."""
    return evaluation(name).load()


def recipe_class(name: str) -> type[Any]:
    return evaluation(name).recipe


def smoke_recipe(name: str, recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe shrunk to a couple of steps: the evaluation's SMOKE values override the profile's."""
    return dict(recipe) | {
        key: list(value) if isinstance(value, tuple) else value for key, value in evaluation(name).smoke.items()
    }
