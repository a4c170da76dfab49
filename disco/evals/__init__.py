"""Evaluations as registered tasks with one interface:
`evaluate(encoder, splits, recipe, device, seed, progress) -> metrics dict`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from disco.models import did_you_mean

EvalFn = Callable[..., dict[str, Any]]
EVALUATIONS: dict[str, EvalFn] = {}


def register(name: str) -> Callable[[EvalFn], EvalFn]:
    def add(fn: EvalFn) -> EvalFn:
        EVALUATIONS[name] = fn
        return fn

    return add


def get_evaluation(name: str) -> EvalFn:
    if name not in EVALUATIONS:
        raise KeyError(
            f"unknown evaluation '{name}'{did_you_mean(name, list(EVALUATIONS))}; valid: {', '.join(EVALUATIONS)}"
        )
    return EVALUATIONS[name]


from disco.evals import (  # noqa: E402  (registers)
    detection,  # noqa: E402,F401  (registers)
    knn,  # noqa: E402,F401  (registers)
    linear,  # noqa: E402,F401  (registers)
    semi,  # noqa: E402,F401  (registers)
    transfer,  # noqa: E402,F401  (registers)
)
