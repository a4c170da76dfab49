"""What every task gets beside its typed input, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from disco.tasks.inputs import Runtime
from disco.train import ProgressFn

# (metrics, per-epoch history, artifacts by name -> path relative to the stage dir)
TaskOutput = tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]


@dataclass(frozen=True)
class TaskContext:
    inputs: dict[str, Path]  # role -> the input stage's directory (its final.pt)
    stage_dir: Path
    runtime: Runtime
    device: torch.device
    progress: ProgressFn | None = None
