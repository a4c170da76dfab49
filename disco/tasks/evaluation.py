"""An evaluation of a frozen (or fine-tuned) encoder: eval stages and `disco-bench eval` alike."""

from __future__ import annotations

from typing import Any

import torch

from disco.data.sources import load_splits
from disco.evals import get_evaluation
from disco.models import Encoder
from disco.speed import SpeedOptions, to_channels_last_where_it_pays
from disco.tasks.artifacts import load_encoder_artifact
from disco.tasks.context import TaskContext, TaskOutput
from disco.tasks.inputs import EvalInput, Runtime
from disco.train import ProgressFn


def run_eval(task: EvalInput, context: TaskContext) -> TaskOutput:
    encoder, _ = load_encoder_artifact(context.inputs["encoder"])
    return evaluate_encoder(encoder, task, context.runtime, context.device, context.progress), [], {}


def evaluate_encoder(
    encoder: Encoder, task: EvalInput, runtime: Runtime, device: torch.device, progress: ProgressFn | None = None
) -> dict[str, Any]:
    splits = load_splits(task.data, runtime.data_root)
    if SpeedOptions.for_mode(
        runtime.speed, device
    ).channels_last:  # exact up to fp32 rounding; ~4x for EfficientNet on CPU
        to_channels_last_where_it_pays(encoder, device)
    return get_evaluation(task.evaluation)(encoder, splits, dict(task.recipe), device, task.seed, progress)
