"""The training recipe of a self-supervised stage (pretraining and distillation alike). Torch-free:
it is also the schema of benchmarks.yaml's `pretrain:` section, checked by `disco-bench validate`
(pydantic reads the annotated bounds) without loading torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge, Gt

Positive = Annotated[int, Gt(0)]


@dataclass(frozen=True)
class TrainRecipe:
    epochs: Positive
    batch_size: Positive
    lr: Annotated[float, Gt(0)] = 0.03
    momentum: Annotated[float, Ge(0)] = 0.9
    weight_decay: Annotated[float, Ge(0)] = 1e-4
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    milestones: tuple[int, ...] = ()
    workers: Annotated[int, Ge(0)] = 0  # the planner sets it from the profile's `data.workers`
    limit_batches: Positive | None = None  # smoke runs: a couple of steps per epoch
    # DDP only: SyncBN in the student's query encoder. The paper: off (per-GPU BN statistics).
    sync_bn: bool = False
    # epochs over which the lr ramps up linearly, step by step, to the schedule's value (SimCLR's
    # warm-up); 0, the paper's: none (DisCo/main.py's cosine starts at the base lr)
    warmup_epochs: Annotated[int, Ge(0)] = 0

    # fields added after the first stage keys were made: in a key only when they differ from their
    # default, so that every existing stage keeps its key
    KEYED_WHEN_SET: ClassVar[tuple[str, ...]] = ("milestones", "limit_batches", "sync_bn", "warmup_epochs")

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs}")


def keyed_fields(recipe: Any) -> dict[str, Any]:
    """A recipe dataclass as the mapping its stage's config (and so its key) holds: every field,
    except those of `KEYED_WHEN_SET` left at their defaults."""
    defaults = {field.name: field.default for field in dataclasses.fields(recipe)}
    optional = getattr(recipe, "KEYED_WHEN_SET", ())
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in dataclasses.asdict(recipe).items()
        if name not in optional or value != defaults[name]
    }
