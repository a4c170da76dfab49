"""The one self-supervised training loop (MoCo-v2 and DisCo alike): SGD, per-epoch schedule,
an atomic checkpoint after every epoch and exact resume from the last one."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from disco.checkpoint_io import load_checkpoint, save_checkpoint
from disco.schedules import lr_at


@dataclass(frozen=True)
class TrainRecipe:
    epochs: int
    batch_size: int
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    workers: int = 0
    limit_batches: int | None = None  # smoke runs: a couple of steps per epoch

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)


ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seeding every epoch from (seed, epoch) makes a resumed run identical to an uninterrupted one."""
    return seed * 100_003 + epoch


def make_loader(dataset: Dataset, recipe: TrainRecipe, seed: int, epoch: int, shuffle: bool = True) -> DataLoader:
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return DataLoader(
        dataset, batch_size=recipe.batch_size, shuffle=shuffle, drop_last=True, num_workers=recipe.workers,
        generator=generator, persistent_workers=False, pin_memory=torch.cuda.is_available(),
    )


def train_one_epoch(method: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, device: torch.device, recipe: TrainRecipe, progress: ProgressFn | None) -> dict[str, float]:
    method.train()
    totals: dict[str, float] = {}
    total_batches = min(len(loader), recipe.limit_batches or len(loader))
    steps = 0
    for steps, ((view1, view2), _) in enumerate(loader, start=1):
        losses = method.training_step(view1.to(device, non_blocking=True), view2.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        for name, value in losses.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach())
        if progress:
            progress("step", steps, total_batches)
        if steps >= total_batches:
            break
    return {name: value / max(steps, 1) for name, value in totals.items()}


def train(method: nn.Module, dataset: Dataset, recipe: TrainRecipe, stage_dir: Path, seed: int, device: torch.device, progress: ProgressFn | None = None) -> TrainState:
    """Train `method` for recipe.epochs, resuming from `stage_dir/checkpoint.pt` if present."""
    recipe.validate()
    method.to(device)
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    state = TrainState()
    checkpoint_path = stage_dir / "checkpoint.pt"
    if checkpoint_path.exists():
        saved = load_checkpoint(checkpoint_path)
        method.load_state_dict(saved["method"])  # strict: a mismatched checkpoint is an error
        optimizer.load_state_dict(saved["optimizer"])
        state = TrainState(epoch=saved["epoch"], history=saved["history"])
    for epoch in range(state.epoch, recipe.epochs):
        torch.manual_seed(epoch_seed(seed, epoch))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(recipe.schedule, recipe.lr, epoch, recipe.epochs, recipe.milestones)
        started = time.perf_counter()
        metrics = train_one_epoch(method, make_loader(dataset, recipe, seed, epoch), optimizer, device, recipe, progress)
        metrics.update(epoch=epoch + 1, lr=optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - started)
        state.history.append(metrics)
        state.epoch = epoch + 1
        save_checkpoint(checkpoint_path, {"epoch": state.epoch, "history": state.history, "method": method.state_dict(), "optimizer": optimizer.state_dict(), "recipe": asdict(recipe)})
        if progress:
            progress("epoch", state.epoch, recipe.epochs)
        _test_hook_sleep()
    return state


def _test_hook_sleep() -> None:
    # Tests of kill/cancel-and-resume need epochs long enough to interrupt mid-stage.
    delay = float(os.environ.get("DISCO_EPOCH_SLEEP", "0") or 0)
    if delay > 0:
        time.sleep(delay)
