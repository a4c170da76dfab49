"""A stage's encoder checkpoint (final.pt): what every training, init and import stage leaves and
every later stage (distillation, evaluation, export) loads, strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from disco.checkpoint_io import UnreadableCheckpoint, load_checkpoint, save_checkpoint
from disco.damaged import move_aside
from disco.errors import CheckpointError
from disco.models import Encoder, build_encoder
from disco.tasks.inputs import EncoderShape

FINAL = "final.pt"
FORMAT = "disco-bench/encoder-v1"


def save_encoder(
    stage_dir: Path, shape: EncoderShape, encoder: Encoder, extra: dict[str, Any] | None = None
) -> dict[str, str]:
    payload = {
        "format": FORMAT,
        "arch": shape.arch,
        "head": shape.head,
        "image_size": shape.image_size,
        **({"head_hidden": shape.hidden} if shape.hidden is not None else {}),
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
    encoder = build_encoder(
        payload["arch"], payload["head"], image_size=payload["image_size"], hidden=payload.get("head_hidden")
    )
    encoder.load_state_dict(payload["encoder"])  # strict
    return encoder, payload
