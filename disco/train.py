"""The one self-supervised training loop (MoCo-v2 and DisCo alike): SGD, per-epoch schedule,
an atomic checkpoint after every epoch and exact resume from the last one.

Under torchrun (docs/ddp.md) the same loop runs on every rank: the global batch is split across
ranks, the training step goes through DDP (gradients averaged over ranks as in the official
code), only rank 0 writes the checkpoint and every rank resumes from it. On one process none of
that code runs, so a seeded single-process run is unchanged.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from disco import distributed
from disco.atomic import atomic_write_bytes
from disco.checkpoint_io import load_newest_good, save_keeping_previous, training_checkpoint_problem
from disco.errors import TrainingDiverged
from disco.schedules import lr_at, warmup_scale
from disco.train_recipe import TrainRecipe


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int = 0  # epochs found in the checkpoint when this run started


ProgressFn = Callable[..., None]  # (phase, done, total[, info]): info is the epoch's history entry
MonitorFn = Callable[
    [nn.Module, int, int, dict[str, float]], dict[str, float]
]  # (student, epoch, epochs, losses) -> health
StepFn = Callable[..., dict[str, torch.Tensor]]  # (view1, view2) or a multi-crop method's (*crops) -> its losses
BatchAugment = Callable[[torch.Tensor], torch.Tensor]  # uint8 images on the device -> one augmented view
# one augmentation per view, in the order the step takes them; a single one draws a two-view method's two views
ViewAugment = BatchAugment | Sequence[BatchAugment]


class Batches(Protocol):
    """An epoch's batches of (views, labels) with their count: a DataLoader or DALI's."""

    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


LoaderFactory = Callable[[int], Batches]  # epoch -> this rank's batches
RANK_SEED_STRIDE = 1_000_003
CHECKPOINT_FILE = "checkpoint.pt"
# {"epoch": done, "epochs": total}, written after each checkpoint: `disco-bench status` reads it
# instead of unpickling a checkpoint that can hold a whole teacher
PROGRESS_FILE = "checkpoint.json"


def epoch_seed(seed: int, epoch: int) -> int:
    """Seeding every epoch from (seed, epoch) makes a resumed run identical to an uninterrupted one."""
    return seed * 100_003 + epoch


def rank_seed(seed: int, epoch: int, rank: int) -> int:
    """Each rank draws its own augmentations; rank 0 (and a single process) uses epoch_seed."""
    return epoch_seed(seed, epoch) + RANK_SEED_STRIDE * rank


def per_rank_batch(batch_size: int, world: int) -> int:
    """recipe.batch_size is the global batch: every rank gets an equal share of it."""
    if batch_size % world:
        raise ValueError(
            f"global batch_size {batch_size} is not divisible by the world size {world}: choose a batch size that is a multiple of the number of processes"
        )
    return batch_size // world


def make_loader(dataset: Dataset, recipe: TrainRecipe, seed: int, epoch: int, shuffle: bool = True) -> DataLoader:
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return DataLoader(
        dataset,
        batch_size=recipe.batch_size,
        shuffle=shuffle,
        drop_last=True,
        num_workers=recipe.workers,
        generator=generator,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )


def make_distributed_loader(dataset: Dataset, recipe: TrainRecipe, seed: int, epoch: int) -> DataLoader:
    """This rank's share of the epoch: DistributedSampler(shuffle, drop_last) as in the official code."""
    world, rank = distributed.world_size(), distributed.rank()
    sampler: DistributedSampler = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    # The generator only seeds the workers here; per rank, so ranks do not share augmentation streams.
    generator = torch.Generator().manual_seed(rank_seed(seed, epoch, rank))
    return DataLoader(
        dataset,
        batch_size=per_rank_batch(recipe.batch_size, world),
        sampler=sampler,
        drop_last=True,
        num_workers=recipe.workers,
        generator=generator,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )


class TrainingStep(nn.Module):
    """DDP needs a forward to wrap: the method's training step. Wrapping the whole method, as the
    official code wraps the whole MoCo model, averages the gradients of every trainable parameter
    (the student's query encoder; frozen ones are ignored by DDP) and broadcasts rank 0's buffers
    (BN statistics, queue) before each step."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, *views: torch.Tensor) -> dict[str, torch.Tensor]:
        return training_step_of(self.method)(*views)


def training_step_of(method: nn.Module) -> StepFn:
    """A method's `training_step` (every disco.methods module has one)."""
    return cast(StepFn, method.training_step)


def student_of(method: nn.Module) -> nn.Module:
    return cast(nn.Module, method.student)


def ddp_step(method: nn.Module, device: torch.device) -> StepFn:
    # find_unused_parameters stays False: every trainable student parameter gets a gradient.
    return DistributedDataParallel(TrainingStep(method), device_ids=[device.index] if device.type == "cuda" else None)


def convert_student_sync_bn(method: nn.Module) -> None:
    """SyncBN in the query encoder only: the key encoder keeps per-rank BN (shuffle-BN) and the
    teacher keeps its own per-rank statistics. Same parameters, same state_dict keys."""
    contrast = cast(nn.Module, method.contrast)
    contrast.encoder_q = nn.SyncBatchNorm.convert_sync_batchnorm(cast(nn.Module, contrast.encoder_q))


def augmentations(augment: ViewAugment) -> tuple[BatchAugment, ...]:
    """One augmentation per view: a single one is drawn twice (two-view methods)."""
    return tuple(augment) if isinstance(augment, Sequence) else (augment, augment)


def draw_views(
    inputs: Sequence[torch.Tensor] | torch.Tensor, device: torch.device, augment: ViewAugment | None
) -> tuple[torch.Tensor, ...]:
    """The loader's views (two, or a multi-crop method's crops), or the views augmented here on the
    device from its uint8 batch, one per augmentation, in order."""
    if augment is None:
        return tuple(view.to(device, non_blocking=True) for view in inputs)
    images = cast(torch.Tensor, inputs).to(device, non_blocking=True)  # a uint8 batch when augmenting here
    return tuple(draw(images) for draw in augmentations(augment))


def call_hook(method: nn.Module, name: str, *args: Any) -> None:
    """A method's optional hook into the loop: `start_epoch(epoch)` (0-based) before each epoch,
    `before_optimizer_step()` between backward and the optimizer's step (SwAV's queue and frozen
    prototypes); methods without them train as before."""
    hook = getattr(method, name, None)
    if hook is not None:
        hook(*args)


def stop_if_diverged(losses: dict[str, torch.Tensor], epoch: int, step: int, device: torch.device) -> None:
    """TrainingDiverged before a non-finite loss updates anything (every rank stops together: a NaN
    on one rank would reach the others through the gradient all-reduce)."""
    diverged = not math.isfinite(float(losses["loss"].detach()))
    if distributed.world_size() > 1:
        flag = torch.tensor([float(diverged)], device=device)
        torch.distributed.all_reduce(flag)
        diverged = bool(flag.item() > 0)
    if diverged:
        terms = ", ".join(f"{name} {float(value.detach()):.4g}" for name, value in losses.items())
        raise TrainingDiverged(
            f"epoch {epoch}, step {step}: the loss is not finite ({terms}); training stopped before this step, "
            "the last epoch's checkpoint is kept and no result is stored: lower the learning rate (or train in fp32) and run again"
        )


def train_one_epoch(
    method: nn.Module,
    loader: Batches,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    recipe: TrainRecipe,
    progress: ProgressFn | None,
    step: StepFn | None = None,
    augment: ViewAugment | None = None,
    epoch: int = 1,
) -> dict[str, float]:
    method.train()
    step = step or training_step_of(method)
    totals: dict[str, float] = {}
    total_batches = min(len(loader), recipe.limit_batches or len(loader))
    epoch_lrs = [group["lr"] for group in optimizer.param_groups]
    steps = 0
    for steps, (inputs, _) in enumerate(loader, start=1):
        if epoch <= recipe.warmup_epochs:
            scale = warmup_scale(epoch - 1, steps, total_batches, recipe.warmup_epochs)
            for group, epoch_lr in zip(optimizer.param_groups, epoch_lrs, strict=True):
                group["lr"] = epoch_lr * scale
        losses = step(*draw_views(inputs, device, augment))
        stop_if_diverged(losses, epoch, steps, device)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        call_hook(method, "before_optimizer_step")
        optimizer.step()
        for name, value in losses.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach())
        if progress:
            progress("step", steps, total_batches)
        if steps >= total_batches:
            break
    return {name: value / max(steps, 1) for name, value in totals.items()}


def train(
    method: nn.Module,
    dataset: Dataset,
    recipe: TrainRecipe,
    stage_dir: Path,
    seed: int,
    device: torch.device,
    progress: ProgressFn | None = None,
    augment: ViewAugment | None = None,
    loader_factory: LoaderFactory | None = None,
    monitor: MonitorFn | None = None,
) -> TrainState:
    """Train `method` for recipe.epochs, resuming from `stage_dir/checkpoint.pt` if present.
    Under torchrun every rank calls this; rank 0 alone writes the checkpoint and reports progress.
    augment: `dataset` yields uint8 images and the views are drawn on the device, batched, in this
    process (disco/data/batched_augment.py), one per augmentation (a single one: two views); loader
    workers would only compete with the step then.
    loader_factory: epoch -> this rank's batches of ((view1, view2), labels), replacing the
    DataLoader (the optional DALI loader, disco/data/dali.py).
    monitor: after every epoch, on rank 0, the student's health (disco/health.py) joins the epoch's
    history entry; it runs in eval mode on fixed inputs, so the training computation is unchanged."""
    recipe.validate()
    if augment is not None:
        recipe = replace(recipe, workers=0)
    world, rank = distributed.world_size(), distributed.rank()
    per_rank_batch(recipe.batch_size, world)  # fail before any work
    if recipe.sync_bn and world > 1:
        if device.type == "cpu":
            raise ValueError("sync_bn needs GPUs: torch's SyncBatchNorm does not run on CPU; set sync_bn: false")
        convert_student_sync_bn(method)
    method.to(device)
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    checkpoint_path = stage_dir / CHECKPOINT_FILE
    state = _resume(method, optimizer, checkpoint_path)
    step = ddp_step(method, device) if world > 1 else None
    progress = progress if rank == 0 else None
    for epoch in range(state.epoch, recipe.epochs):
        torch.manual_seed(rank_seed(seed, epoch, rank))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(recipe.schedule, recipe.lr, epoch, recipe.epochs, recipe.milestones)
        started = time.perf_counter()
        call_hook(method, "start_epoch", epoch)
        if loader_factory is not None:
            loader = loader_factory(epoch)
        else:
            loader = (
                make_distributed_loader(dataset, recipe, seed, epoch)
                if world > 1
                else make_loader(dataset, recipe, seed, epoch)
            )
        metrics = distributed.mean_over_ranks(
            train_one_epoch(method, loader, optimizer, device, recipe, progress, step, augment, epoch + 1), device
        )
        metrics.update(epoch=epoch + 1, lr=optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - started)
        if monitor is not None and rank == 0:
            metrics.update(monitor(student_of(method), epoch + 1, recipe.epochs, metrics))
        state.history.append(metrics)
        state.epoch = epoch + 1
        if rank == 0:
            save_keeping_previous(
                checkpoint_path,
                {
                    "epoch": state.epoch,
                    "history": state.history,
                    "method": method.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "recipe": asdict(recipe),
                },
            )
            atomic_write_bytes(
                stage_dir / PROGRESS_FILE, json.dumps({"epoch": state.epoch, "epochs": recipe.epochs}).encode()
            )
        if progress:
            progress("epoch", state.epoch, recipe.epochs, metrics)
        _test_hook_sleep()
    # Every rank leaves with rank 0's state (the checkpointed one), whoever saves the final encoder.
    distributed.broadcast_buffers(method)
    return state


def _resume(method: nn.Module, optimizer: torch.optim.Optimizer, checkpoint_path: Path) -> TrainState:
    """Load the newest good checkpoint (the last epoch's, else the one before; a damaged one is moved
    aside by rank 0), if any; under DDP every rank must find the same one."""
    state = TrainState()
    saved = load_newest_good(
        checkpoint_path,
        lambda payload: training_checkpoint_problem(payload, method, optimizer),
        move=distributed.rank() == 0,
    )
    if saved is not None:
        method.load_state_dict(saved["method"])  # strict: a mismatched checkpoint is an error
        optimizer.load_state_dict(saved["optimizer"])
        state = TrainState(epoch=saved["epoch"], history=saved["history"], resumed_from_epoch=saved["epoch"])
    if not distributed.all_equal(state.epoch):
        raise RuntimeError(
            f"ranks disagree on the checkpoint to resume from (rank {distributed.rank()} sees epoch {state.epoch} in {checkpoint_path}): the stage directory must be on a filesystem shared by every rank"
        )
    return state


def _test_hook_sleep() -> None:
    # Tests of kill/cancel-and-resume need epochs long enough to interrupt mid-stage.
    delay = float(os.environ.get("DISCO_EPOCH_SLEEP", "0") or 0)
    if delay > 0:
        time.sleep(delay)
