"""Learning-rate schedules, per epoch as in the official scripts."""

from __future__ import annotations

import math
from collections.abc import Sequence


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """lr = base * 0.5 * (1 + cos(pi * epoch / epochs)), no warm-up (DisCo/main.py L522-531)."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def step_lr(base_lr: float, epoch: int, milestones: Sequence[int], gamma: float) -> float:
    """lr = base * gamma^(number of milestones <= epoch) (main_lincls.py: x0.5 at each milestone)."""
    return base_lr * gamma ** sum(1 for milestone in milestones if epoch >= milestone)


def warmup_scale(epoch: int, step: int, steps_per_epoch: int, warmup_epochs: int) -> float:
    """The linear warm-up's factor on the lr of the 1-based `step` of the 0-based `epoch`: rising
    step by step to 1 at the end of `warmup_epochs` (SimCLR's), 1 after it and with none."""
    warmup_steps = warmup_epochs * steps_per_epoch
    done = epoch * steps_per_epoch + step
    return 1.0 if done >= warmup_steps else done / warmup_steps


def lr_at(
    schedule: str, base_lr: float, epoch: int, epochs: int, milestones: Sequence[int] = (), gamma: float = 0.5
) -> float:
    if schedule == "cosine":
        return cosine_lr(base_lr, epoch, epochs)
    if schedule == "step":
        return step_lr(base_lr, epoch, milestones, gamma)
    if schedule == "constant":
        return base_lr
    raise ValueError(f"unknown schedule '{schedule}' (cosine, step, constant)")
