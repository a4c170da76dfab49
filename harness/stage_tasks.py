"""What each stage kind computes: turn a resolved stage config into disco objects and run them.
Every task returns (metrics, history, artifacts) and writes its checkpoint into the stage dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from disco.checkpoint_io import load_checkpoint, save_checkpoint
from disco.data.augment import mocov2_augmentation
from disco.data.datasets import TwoViews
from disco.data.sources import load_splits
from disco.evals import get_evaluation
from disco.evaluate import ProbeRecipe
from disco.methods import DisCo, DisCoConfig, MoCoV2, MoCoV2Config
from disco.models import Encoder, build_encoder
from disco.train import TrainRecipe, train

TaskOutput = tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]
FINAL = "final.pt"


def _recipe(config: dict[str, Any]) -> TrainRecipe:
    values = dict(config["recipe"])
    values["milestones"] = tuple(values.get("milestones", ()))
    return TrainRecipe(**values)


def _save_encoder(stage_dir: Path, config: dict[str, Any], encoder: Encoder, extra: dict[str, Any] | None = None) -> dict[str, str]:
    payload = {"format": "disco-bench/encoder-v1", "arch": config["arch"], "head": config["head"], "image_size": config["data"]["image_size"], "encoder": encoder.state_dict(), **(extra or {})}
    save_checkpoint(stage_dir / FINAL, payload)
    return {"checkpoint": FINAL}


def load_encoder_artifact(stage_dir: Path) -> tuple[Encoder, dict[str, Any]]:
    payload = load_checkpoint(stage_dir / FINAL)
    encoder = build_encoder(payload["arch"], payload["head"], image_size=payload["image_size"])
    encoder.load_state_dict(payload["encoder"])  # strict
    return encoder, payload


def _train_views(config: dict[str, Any], runtime: dict[str, Any]) -> TwoViews:
    splits = load_splits(config["data"], runtime.get("data_root"))
    return TwoViews(splits.train, mocov2_augmentation(splits.image_size))


def run_pretrain(config: dict[str, Any], inputs: dict[str, Path], stage_dir: Path, runtime: dict[str, Any], device: torch.device, progress) -> TaskOutput:
    torch.manual_seed(config["seed"])
    encoder = build_encoder(config["arch"], config["head"], image_size=config["data"]["image_size"])
    method_config = MoCoV2Config(**config["mocov2"])
    recipe = _recipe(config)
    method_config.validate(recipe.batch_size)
    method = MoCoV2(encoder, method_config)
    state = train(method, _train_views(config, runtime), recipe, stage_dir, config["seed"], device, progress)
    artifacts = _save_encoder(stage_dir, config, method.student, {"queue": method.contrast.queue.cpu(), "queue_ptr": method.contrast.queue_ptr.cpu()})
    return _final_losses(state.history), state.history, artifacts


def run_distill(config: dict[str, Any], inputs: dict[str, Path], stage_dir: Path, runtime: dict[str, Any], device: torch.device, progress) -> TaskOutput:
    teacher, teacher_payload = load_encoder_artifact(inputs["teacher"])
    torch.manual_seed(config["seed"])
    student = build_encoder(config["arch"], config["head"], image_size=config["data"]["image_size"])
    method_config = DisCoConfig(**config["mocov2"], **{k: v for k, v in config["disco"].items() if k != "init_queue_from_teacher"})
    recipe = _recipe(config)
    method_config.validate(recipe.batch_size)
    method = DisCo(student, teacher, method_config)
    if config["disco"]["init_queue_from_teacher"] and not (stage_dir / "checkpoint.pt").exists():
        _init_queue_from_teacher(method, teacher_payload)
    state = train(method, _train_views(config, runtime), recipe, stage_dir, config["seed"], device, progress)
    artifacts = _save_encoder(stage_dir, config, method.student)
    return _final_losses(state.history), state.history, artifacts


def _init_queue_from_teacher(method: DisCo, teacher_payload: dict[str, Any]) -> None:
    """The official teacher load renames `encoder`->`teacher_encoder`, so the teacher's queue and
    pointer land in the student's (DISCO_PROTOCOL.md 1.6); reproduced when the shapes agree."""
    queue = teacher_payload.get("queue")
    if queue is not None and queue.shape == method.contrast.queue.shape:
        method.contrast.queue.copy_(queue)
        method.contrast.queue_ptr.copy_(teacher_payload["queue_ptr"])


def run_init(config: dict[str, Any], inputs: dict[str, Path], stage_dir: Path, runtime: dict[str, Any], device: torch.device, progress) -> TaskOutput:
    torch.manual_seed(config["seed"])
    encoder = build_encoder(config["arch"], config["head"], image_size=config["data"]["image_size"])
    return {}, [], _save_encoder(stage_dir, config, encoder)


def run_eval(config: dict[str, Any], inputs: dict[str, Path], stage_dir: Path, runtime: dict[str, Any], device: torch.device, progress) -> TaskOutput:
    encoder, _ = load_encoder_artifact(inputs["encoder"])
    splits = load_splits(config["data"], runtime.get("data_root"))
    values = dict(config["recipe"])
    values["milestones"] = tuple(values.get("milestones", ()))
    metrics = get_evaluation(config["evaluation"])(encoder, splits, ProbeRecipe(**values), device, config["seed"], progress)
    return metrics, [], {}


def _final_losses(history: list[dict[str, Any]]) -> dict[str, Any]:
    last = history[-1] if history else {}
    return {f"final_{name}": value for name, value in last.items() if name not in ("epoch", "seconds")} | {"epochs": len(history)}


TASKS = {"pretrain": run_pretrain, "distill": run_distill, "init": run_init, "eval": run_eval}
