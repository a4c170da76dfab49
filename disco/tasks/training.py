"""A pretraining or distillation stage: any registered method (disco/methods/registry.py). A
pretraining method trains an encoder alone, a distillation method a student against the teacher
stage's encoder; both go through the one training loop (disco/train.py)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any, cast

import torch
from torch.utils.data import Dataset

from disco.data.augment import mocov2_augmentation, swav_crop_augmentation
from disco.data.batched_augment import BatchedMoCoV2Augmentation
from disco.data.datasets import MultiViews, TransformedImages, TwoViews
from disco.data.embedded import ImageSet
from disco.data.held_out import held_out_batch
from disco.data.sources import Splits, load_splits
from disco.errors import InputError
from disco.evals.knn import knn_monitor
from disco.health import verdict
from disco.methods.registry import CropSpec
from disco.models import Encoder, build_encoder
from disco.monitor import HealthMonitor
from disco.speed import SpeedOptions, apply_to_modules
from disco.tasks.artifacts import load_encoder_artifact, save_encoder
from disco.tasks.context import TaskContext, TaskOutput
from disco.tasks.inputs import Runtime, TrainingInput
from disco.train import LoaderFactory, TrainState, per_rank_batch, rank_seed, train


def run_training(task: TrainingInput, context: TaskContext) -> TaskOutput:
    spec = task.spec
    teacher, teacher_payload = load_encoder_artifact(context.inputs["teacher"]) if spec.needs_teacher else (None, {})
    torch.manual_seed(task.seed)
    shape = task.encoder
    encoder = build_encoder(shape.arch, shape.head, image_size=shape.image_size, hidden=shape.hidden, init=shape.init)
    speed = speed_options(task, context.runtime, context.device)
    method = _method(task, encoder, teacher, speed)
    apply_to_modules([method], speed, context.device)
    if getattr(task.method_config, "init_queue_from_teacher", False):  # a resumed checkpoint then overwrites it
        _init_queue_from_teacher(method, teacher_payload)
    state = _train(method, task, context, speed)
    # a pretrained encoder keeps its last queue: DisCo's teacher load reuses it (docs/protocol.md 1.6)
    extra = _queue_of(method) if spec.kind == "pretrain" else {}
    artifacts = save_encoder(context.stage_dir, shape, cast(Encoder, method.student), extra)
    return _final_losses(state), state.history, artifacts


def _method(task: TrainingInput, encoder: Encoder, teacher: Encoder | None, speed: SpeedOptions) -> torch.nn.Module:
    module = task.spec.module_class()
    if task.spec.needs_teacher:
        return cast(torch.nn.Module, module(encoder, teacher, task.method_config, speed))
    return cast(torch.nn.Module, module(encoder, task.method_config, speed))


def speed_options(task: TrainingInput, runtime: Runtime, device: torch.device) -> SpeedOptions:
    """The structure from the runtime speed mode; the numerics from the stage config (its key):
    precision, and per-image views where the config says so (harness.matrix.Planner.numerics)."""
    teacher_bn = getattr(task.method_config, "teacher_bn", "train")
    options = SpeedOptions.for_mode(
        runtime.speed, device, teacher_bn, runtime.compile, task.precision, task.teacher_precision
    )
    return replace(options, batched_augment=False) if task.per_image_views else options


def _train(method: torch.nn.Module, task: TrainingInput, context: TaskContext, speed: SpeedOptions) -> TrainState:
    splits = load_splits(task.data, context.runtime.data_root)
    dataset, views = _train_inputs(task, splits, speed, context.device)
    negatives = task.spec.chance_negatives(task.method_config, task.recipe.batch_size)
    monitor = _health_monitor(splits, context, negatives, task.seed, speed)
    recipe, device = task.recipe, context.device
    return train(
        method, dataset, recipe, context.stage_dir, task.seed, device, context.progress, monitor=monitor, **views
    )


def _train_inputs(
    task: TrainingInput, splits: Splits, speed: SpeedOptions, device: torch.device
) -> tuple[Dataset, dict[str, Any]]:
    """The training set and how its views are made: per image in loader workers (the official way);
    batched on the device for in-memory images in the optimized mode; or by DALI (`data.loader`).
    Two aug-plus views, or the crops a multi-crop method's config declares (`crops()`: SwAV's)."""
    crops = _crops(task)
    if task.data.loader == "dali":  # the set only sizes the run here: DALI reads the files itself
        if crops:
            raise InputError("data.loader: dali draws two views; a multi-crop method (SwAV) needs loader: torch")
        factory = _dali_epochs(splits.train, splits.image_size, task.recipe.batch_size, task.seed, device)
        return cast(Dataset, splits.train), {"loader_factory": factory}
    batched = speed.batched_augment and isinstance(splits.train, ImageSet)
    if crops:
        return _multi_crop_inputs(crops, task, splits, device, batched)
    views = task.views.as_kwargs()
    if batched:
        augment = BatchedMoCoV2Augmentation(splits.image_size, **views).to(device)
        return TransformedImages(splits.train, None), {"augment": augment}
    return TwoViews(splits.train, mocov2_augmentation(splits.image_size, **views)), {}


def _crops(task: TrainingInput) -> tuple[CropSpec, ...]:
    declared = getattr(task.method_config, "crops", None)
    return tuple(declared()) if callable(declared) else ()


def _multi_crop_inputs(
    crops: tuple[CropSpec, ...], task: TrainingInput, splits: Splits, device: torch.device, batched: bool
) -> tuple[Dataset, dict[str, Any]]:
    """SwAV's crops, each with its size and area range; the blur range scaled to the data's
    resolution as the two-view pipeline's, the profile's `augment.flip` honoured (its crop_min_scale
    is the two views' and does not apply)."""
    blur_scale, flip = splits.image_size / 224.0, task.views.flip is not False
    if batched:
        draws = [
            BatchedMoCoV2Augmentation.swav_crop(c.size, (c.min_scale, c.max_scale), blur_scale, flip) for c in crops
        ]
        return TransformedImages(splits.train, None), {"augment": tuple(draw.to(device) for draw in draws)}
    transforms = [swav_crop_augmentation(c.size, (c.min_scale, c.max_scale), blur_scale, flip) for c in crops]
    return MultiViews(splits.train, transforms), {}


def _dali_epochs(
    train_set: ImageSet | Dataset, image_size: int, global_batch: int, seed: int, device: torch.device
) -> LoaderFactory:
    from disco import distributed
    from disco.data.dali import DaliTwoViews

    samples = getattr(train_set, "samples", None)
    if samples is None:
        raise ValueError(
            "data.loader: dali reads image files: it needs source: imagenet (an ImageFolder), not an in-memory set"
        )
    world, rank = distributed.world_size(), distributed.rank()
    device_id = (device.index or 0) if device.type == "cuda" else None
    return lambda epoch: DaliTwoViews(
        samples, image_size, per_rank_batch(global_batch, world), rank_seed(seed, epoch, rank), rank, world, device_id
    )


def _health_monitor(
    splits: Splits, context: TaskContext, negatives: int | None, seed: int, speed: SpeedOptions
) -> HealthMonitor | None:
    """The per-epoch health of the student (disco/health.py), as the profile's `health:` asks;
    `negatives`: K of the method's contrastive term, whose chance level is ln(K+1). Its forwards run
    in the stage's precision (a bf16 teacher's fp32 forwards over the kNN split cost ~40% of its epoch
    on 2 CPU cores); the metrics and the kNN vote are computed in fp32."""
    settings = context.runtime.health
    if not settings.enabled:
        return None
    held_out = held_out_batch(splits.test, splits.image_size, settings.batch, seed)
    numerics = partial(speed.autocast, context.device)
    knn = knn_monitor(splits, context.device, numerics=numerics) if settings.knn_every else None
    return HealthMonitor(held_out, negatives, knn, settings.knn_every, numerics=numerics)


def _queue_of(method: torch.nn.Module) -> dict[str, Any]:
    contrast = getattr(method, "contrast", None)
    return {} if contrast is None else {"queue": contrast.queue.cpu(), "queue_ptr": contrast.queue_ptr.cpu()}


def _init_queue_from_teacher(method: Any, teacher_payload: dict[str, Any]) -> None:
    """The official teacher load renames `encoder`->`teacher_encoder`, so the teacher's queue and
    pointer land in the student's (docs/protocol.md 1.6); reproduced when the shapes agree."""
    queue, contrast = teacher_payload.get("queue"), getattr(method, "contrast", None)
    if queue is not None and contrast is not None and queue.shape == contrast.queue.shape:
        method.contrast.queue.copy_(queue)
        method.contrast.queue_ptr.copy_(teacher_payload["queue_ptr"])


def _final_losses(state: TrainState) -> dict[str, Any]:
    last = state.history[-1] if state.history else {}
    final = {f"final_{name}": value for name, value in last.items() if name not in ("epoch", "seconds")}
    health = verdict(last.get("emb_cosine"), last.get("ce_chance_ratio"))
    return final | {
        "epochs": len(state.history),
        "resumed_from_epoch": state.resumed_from_epoch,
        "health": health.status,
        "health_reasons": list(health.reasons),
    }
