"""Checkpoint files: written atomically (temp file, fsync, rename) so a torn file is never read as
done; the previous epoch's checkpoint is kept beside the newest, and a file that cannot be read back
is moved aside (disco/damaged.py) so training resumes from the newest good one instead of stopping."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from disco.atomic import atomic_write_bytes
from disco.damaged import move_aside, previous_path
from disco.errors import CheckpointError, first_line


class UnreadableCheckpoint(CheckpointError):
    """A checkpoint file that torch cannot load (truncated, not a torch file) or that holds no dict."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def save_keeping_previous(path: Path, payload: dict[str, Any]) -> None:
    """Write `path`, first renaming the one it replaces to `previous_path(path)`: a damaged newest
    file then costs one epoch, not the run."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    if path.exists():
        os.replace(path, previous_path(path))
    atomic_write_bytes(path, buffer.getbuffer())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Our own stage files: tensors and plain containers only (weights_only), never arbitrary objects."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to parse the file means the file is unusable
        raise UnreadableCheckpoint(f"cannot read {path}: {first_line(exc)}") from None
    if not isinstance(payload, dict):
        raise UnreadableCheckpoint(f"{path} holds a {type(payload).__name__}, not a checkpoint dict")
    return payload


def load_newest_good(
    path: Path, problem: Callable[[dict[str, Any]], str | None], move: bool = True
) -> dict[str, Any] | None:
    """The payload of `path`, else of its previous copy, whichever loads first with no `problem`
    (None: usable). A file that fails is moved aside with a warning (move=False: left for rank 0)."""
    for candidate in (path, previous_path(path)):
        if not candidate.exists():
            continue
        try:
            payload = load_checkpoint(candidate)
            reason = problem(payload)
        except UnreadableCheckpoint as exc:
            reason = str(exc)
        if reason is None:
            return payload
        if move:
            move_aside(candidate, reason)
    return None


def training_checkpoint_problem(
    payload: dict[str, Any], method: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> str | None:
    """Why `payload` cannot resume `method` and `optimizer` exactly (checked before anything is loaded,
    so a rejected file leaves both untouched), or None."""
    if not isinstance(payload.get("epoch"), int) or not isinstance(payload.get("history"), list):
        return "no epoch count or history"
    saved, expected = payload.get("method"), method.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(expected):
        return "its model state does not match this stage's model"
    if any(
        not isinstance(saved[key], torch.Tensor) or saved[key].shape != value.shape for key, value in expected.items()
    ):
        return "a tensor of its model state has another shape than this stage's model"
    groups = payload.get("optimizer", {}).get("param_groups") if isinstance(payload.get("optimizer"), dict) else None
    if not isinstance(groups, list) or [
        len(group.get("params", ())) if isinstance(group, dict) else -1 for group in groups
    ] != [len(group["params"]) for group in optimizer.param_groups]:
        return "its optimizer state does not match this stage's optimizer"
    return None
