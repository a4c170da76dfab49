"""What each stage kind computes: turn a resolved stage config into disco objects and run them.
Every task returns (metrics, history, artifacts) and writes its checkpoint into the stage dir."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import Dataset

from disco.archs import TIMM_INIT
from disco.checkpoint_io import UnreadableCheckpoint, load_checkpoint, save_checkpoint
from disco.damaged import move_aside
from disco.data.augment import mocov2_augmentation
from disco.data.batched_augment import BatchedMoCoV2Augmentation
from disco.data.datasets import TransformedImages, TwoViews
from disco.data.embedded import ImageSet
from disco.data.held_out import held_out_batch
from disco.data.sources import Splits, load_splits
from disco.errors import CheckpointError, InputError
from disco.evals import get_evaluation
from disco.evals.knn import knn_monitor
from disco.health import verdict
from disco.methods.registry import MethodSpec, UnknownMethod, method_spec
from disco.models import Encoder, build_encoder
from disco.monitor import HealthMonitor
from disco.speed import SpeedOptions, apply_to_modules, to_channels_last_where_it_pays
from disco.train import LoaderFactory, ProgressFn, TrainRecipe, TrainState, per_rank_batch, rank_seed, train

TaskOutput = tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]
FINAL = "final.pt"


def _recipe(config: dict[str, Any]) -> TrainRecipe:
    values = dict(config["recipe"])
    values["milestones"] = tuple(values.get("milestones", ()))
    try:
        recipe = TrainRecipe(**values)
        recipe.validate()
    except (TypeError, ValueError) as exc:  # a hand-edited spec: benchmarks.yaml's schema rules these out
        raise InputError(f"training recipe: {exc}") from None
    return recipe


def _save_encoder(
    stage_dir: Path, config: dict[str, Any], encoder: Encoder, extra: dict[str, Any] | None = None
) -> dict[str, str]:
    payload = {
        "format": "disco-bench/encoder-v1",
        "arch": config["arch"],
        "head": config["head"],
        "image_size": config["data"]["image_size"],
        "encoder": encoder.state_dict(),
        **(extra or {}),
    }
    save_checkpoint(stage_dir / FINAL, payload)
    return {"checkpoint": FINAL}


def load_encoder_artifact(stage_dir: Path) -> tuple[Encoder, dict[str, Any]]:
    try:
        payload = load_checkpoint(stage_dir / FINAL)
    except UnreadableCheckpoint as exc:  # torn past the cheap check of `is_done`: its stage must run again
        move_aside(stage_dir / FINAL, str(exc))
        raise CheckpointError(
            f"{exc}: the input's checkpoint was moved aside; run again and its stage is recomputed first"
        ) from None
    encoder = build_encoder(payload["arch"], payload["head"], image_size=payload["image_size"])
    encoder.load_state_dict(payload["encoder"])  # strict
    return encoder, payload


def _speed(
    runtime: dict[str, Any], device: torch.device, teacher_bn: str = "train", config: dict[str, Any] | None = None
) -> SpeedOptions:
    """The structure from the runtime speed mode; the numerics from the stage config (its key):
    precision, and per-image views where the config says so (harness.matrix.Planner.numerics)."""
    config = config or {}
    options = SpeedOptions.for_mode(
        runtime.get("speed", "optimized"),
        device,
        teacher_bn,
        runtime.get("compile", False),
        config.get("precision", "fp32"),
    )
    return replace(options, batched_augment=False) if config.get("views") == "per_image" else options


def _train_inputs(
    config: dict[str, Any], splits: Splits, speed: SpeedOptions, device: torch.device
) -> tuple[Dataset, dict[str, Any]]:
    """The training set and how its views are made: per image in loader workers (the official way);
    batched on the device for in-memory images in the optimized mode; or by DALI (`data.loader`)."""
    if config["data"].get("loader", "torch") == "dali":
        # the set only sizes the run here: DALI reads the files itself
        return cast(Dataset, splits.train), {
            "loader_factory": _dali_epochs(
                splits.train, splits.image_size, config["recipe"]["batch_size"], config["seed"], device
            )
        }
    views = augment_options(config)
    if speed.batched_augment and isinstance(splits.train, ImageSet):
        return TransformedImages(splits.train, None), {
            "augment": BatchedMoCoV2Augmentation(splits.image_size, **views).to(device)
        }
    return TwoViews(splits.train, mocov2_augmentation(splits.image_size, **views)), {}


def augment_options(config: dict[str, Any]) -> dict[str, Any]:
    """The profile's `augment:` as the stage config records it (absent: MoCo-v2's aug-plus as is)."""
    views = config.get("augment") or {}
    options: dict[str, Any] = {}
    if "crop_min_scale" in views:
        options["crop_scale"] = (float(views["crop_min_scale"]), 1.0)
    if "flip" in views:
        options["flip"] = bool(views["flip"])
    return options


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
    splits: Splits, runtime: dict[str, Any], device: torch.device, negatives: int | None, seed: int
) -> HealthMonitor | None:
    """The per-epoch health of the student (disco/health.py), as the profile's `health:` asks;
    `negatives`: K of the method's contrastive term, whose chance level is ln(K+1)."""
    settings = runtime.get("health") or {}
    if not settings.get("enabled", True):
        return None
    held_out = held_out_batch(splits.test, splits.image_size, settings.get("batch", 512), seed)
    knn_every = settings.get("knn_every", 0)
    return HealthMonitor(held_out, negatives, knn_monitor(splits, device) if knn_every else None, knn_every)


def _train(
    method: torch.nn.Module,
    negatives: int | None,
    config: dict[str, Any],
    runtime: dict[str, Any],
    stage_dir: Path,
    speed: SpeedOptions,
    device: torch.device,
    progress: ProgressFn | None,
) -> TrainState:
    splits = load_splits(config["data"], runtime.get("data_root"))
    dataset, views = _train_inputs(config, splits, speed, device)
    monitor = _health_monitor(splits, runtime, device, negatives, config["seed"])
    return train(
        method, dataset, _recipe(config), stage_dir, config["seed"], device, progress, monitor=monitor, **views
    )


def run_training(
    kind: str,
    config: dict[str, Any],
    inputs: dict[str, Path],
    stage_dir: Path,
    runtime: dict[str, Any],
    device: torch.device,
    progress: ProgressFn | None,
) -> TaskOutput:
    """Any registered method (disco/methods/registry.py): a pretraining method trains an encoder
    alone, a distillation method a student against the teacher stage's encoder."""
    if "method" not in config:
        raise InputError("the stage config names no `method`; rerun `disco-bench run` to regenerate its spec")
    try:
        spec = method_spec(config["method"], kind, config.get("base"))
    except UnknownMethod as exc:
        raise InputError(str(exc)) from None
    teacher, teacher_payload = load_encoder_artifact(inputs["teacher"]) if spec.needs_teacher else (None, {})
    torch.manual_seed(config["seed"])
    encoder = build_encoder(
        config["arch"],
        config["head"],
        image_size=config["data"]["image_size"],
        init=config.get("init", config.get("student_init", TIMM_INIT)),
    )
    method_config = _method_config(spec, config)
    speed = _speed(runtime, device, getattr(method_config, "teacher_bn", "train"), config)
    module = spec.module_class()
    method = (
        module(encoder, teacher, method_config, speed) if spec.needs_teacher else module(encoder, method_config, speed)
    )
    apply_to_modules([method], speed, device)
    if getattr(method_config, "init_queue_from_teacher", False):  # a resumed checkpoint then overwrites the queue
        _init_queue_from_teacher(method, teacher_payload)
    negatives = spec.chance_negatives(method_config, _recipe(config).batch_size)
    state = _train(method, negatives, config, runtime, stage_dir, speed, device, progress)
    # a pretrained encoder keeps its last queue: DisCo's teacher load reuses it (docs/protocol.md 1.6)
    extra = _queue_of(method) if spec.kind == "pretrain" else {}
    artifacts = _save_encoder(stage_dir, config, method.student, extra)
    return _final_losses(state), state.history, artifacts


run_pretrain = partial(run_training, "pretrain")
run_distill = partial(run_training, "distill")


def _method_config(spec: MethodSpec, config: dict[str, Any]) -> Any:
    """The method's config from the sections the stage config records, checked by the method itself
    (validate catches these in benchmarks.yaml; a hand-written spec may not)."""
    batch_size = _recipe(config).batch_size
    try:
        method_config = spec.build_config({name: config[name] for name in spec.sections})
        method_config.validate(batch_size)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{exc}; fix the profile's {'/'.join(spec.sections)} values (`disco-bench validate` checks benchmarks.yaml)"
        ) from None
    return method_config


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


def run_init(
    config: dict[str, Any],
    inputs: dict[str, Path],
    stage_dir: Path,
    runtime: dict[str, Any],
    device: torch.device,
    progress: ProgressFn | None,
) -> TaskOutput:
    torch.manual_seed(config["seed"])
    encoder = build_encoder(config["arch"], config["head"], image_size=config["data"]["image_size"])
    return {}, [], _save_encoder(stage_dir, config, encoder)


def run_import(
    config: dict[str, Any],
    inputs: dict[str, Path],
    stage_dir: Path,
    runtime: dict[str, Any],
    device: torch.device,
    progress: ProgressFn | None,
) -> TaskOutput:
    """A released teacher loaded strictly with its projection head; a MoCo-v2 file's last queue is
    kept, since the official DisCo load puts it into the student's queue (docs/protocol.md 1.6)."""
    from disco.checkpoints import load_encoder, queue_from_checkpoint

    path = runtime["checkpoint"]
    encoder, report = load_encoder(
        path,
        config["arch"],
        with_head=True,
        image_size=config["data"]["image_size"],
        expect_format=runtime.get("checkpoint_format"),
    )
    rebuilt = build_encoder(config["arch"], config["head"], image_size=config["data"]["image_size"])
    rebuilt.load_state_dict(encoder.state_dict())  # strict: the head must be the benchmark's head
    queue = queue_from_checkpoint(path)
    extra = {"queue": queue.queue, "queue_ptr": torch.tensor([queue.ptr])} if queue is not None else {}
    return {"load_report": report.summary()}, [], _save_encoder(stage_dir, config, rebuilt, extra)


def run_eval(
    config: dict[str, Any],
    inputs: dict[str, Path],
    stage_dir: Path,
    runtime: dict[str, Any],
    device: torch.device,
    progress: ProgressFn | None,
) -> TaskOutput:
    encoder, _ = load_encoder_artifact(inputs["encoder"])
    return evaluate_encoder(encoder, config, runtime, device, progress), [], {}


def evaluate_encoder(
    encoder: Encoder,
    config: dict[str, Any],
    runtime: dict[str, Any],
    device: torch.device,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """One evaluation of a frozen/fine-tuned encoder: shared by eval stages and `disco-bench eval`."""
    splits = load_splits(config["data"], runtime.get("data_root"))
    if _speed(runtime, device).channels_last:  # exact up to fp32 rounding; ~4x for EfficientNet on CPU
        to_channels_last_where_it_pays(encoder, device)
    return get_evaluation(config["evaluation"])(
        encoder, splits, dict(config["recipe"]), device, config["seed"], progress
    )


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


TASKS: dict[str, Callable[..., TaskOutput]] = {
    "pretrain": run_pretrain,
    "distill": run_distill,
    "init": run_init,
    "import": run_import,
    "eval": run_eval,
}
