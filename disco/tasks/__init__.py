"""What each stage kind computes. The runner hands over a stage spec's config and runtime as the
dicts the spec file holds; `run_task` turns them into the kind's typed input (disco/tasks/inputs.py,
torch-free) and calls its task, which writes its checkpoint into the stage dir and returns
(metrics, history, artifacts). The task modules (torch) are imported only when a stage runs."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from disco.tasks.inputs import encoder_input, eval_input, runtime_of, training_input

if TYPE_CHECKING:
    import torch

    from disco.tasks.context import TaskOutput
    from disco.train import ProgressFn


@dataclass(frozen=True)
class Task:
    parse: Callable[[Mapping[str, Any]], Any]  # the stage config -> the task's typed input
    target: str  # "module:function", called with (typed input, TaskContext)

    def load(self) -> Callable[..., TaskOutput]:
        module, function = self.target.split(":")
        return getattr(importlib.import_module(module), function)


TASKS: dict[str, Task] = {
    "pretrain": Task(partial(training_input, "pretrain"), "disco.tasks.training:run_training"),
    "distill": Task(partial(training_input, "distill"), "disco.tasks.training:run_training"),
    "init": Task(encoder_input, "disco.tasks.encoders:run_init"),
    "import": Task(encoder_input, "disco.tasks.encoders:run_import"),
    "eval": Task(eval_input, "disco.tasks.evaluation:run_eval"),
}


def run_task(
    kind: str,
    config: Mapping[str, Any],
    inputs: dict[str, Path],
    stage_dir: Path,
    runtime: Mapping[str, Any],
    device: torch.device,
    progress: ProgressFn | None = None,
) -> TaskOutput:
    from disco.tasks.context import TaskContext

    task = TASKS[kind]
    typed = task.parse(config)  # a stale or hand-edited spec fails here, before anything loads
    return task.load()(typed, TaskContext(inputs, stage_dir, runtime_of(runtime), device, progress))
