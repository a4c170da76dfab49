"""Atomic checkpoint files: written to a temp file, fsynced, renamed; a torn file is never read as done."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from disco.atomic import atomic_write_bytes


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)
