"""Stages that make an encoder without training it: the random-initialised control and a released
teacher imported strictly."""

from __future__ import annotations

import torch

from disco.errors import InputError
from disco.models import build_encoder
from disco.tasks.artifacts import save_encoder
from disco.tasks.context import TaskContext, TaskOutput
from disco.tasks.inputs import EncoderInput


def run_init(task: EncoderInput, context: TaskContext) -> TaskOutput:
    torch.manual_seed(task.seed)
    shape = task.encoder
    encoder = build_encoder(shape.arch, shape.head, image_size=shape.image_size, hidden=shape.hidden)
    return {}, [], save_encoder(context.stage_dir, shape, encoder)


def run_import(task: EncoderInput, context: TaskContext) -> TaskOutput:
    """A released teacher loaded strictly with its projection head; a MoCo-v2 file's last queue is
    kept, since the official DisCo load puts it into the student's queue (docs/protocol.md 1.6)."""
    from disco.checkpoints import load_encoder, queue_from_checkpoint

    path, shape = context.runtime.checkpoint, task.encoder
    if path is None:
        raise InputError(
            "an import stage's runtime names no `checkpoint`; rerun `disco-bench run` to regenerate its spec"
        )
    encoder, report = load_encoder(
        path, shape.arch, with_head=True, image_size=shape.image_size, expect_format=context.runtime.checkpoint_format
    )
    rebuilt = build_encoder(shape.arch, shape.head, image_size=shape.image_size)
    rebuilt.load_state_dict(encoder.state_dict())  # strict: the head must be the benchmark's head
    queue = queue_from_checkpoint(path)
    extra = {"queue": queue.queue, "queue_ptr": torch.tensor([queue.ptr])} if queue is not None else {}
    return {"load_report": report.summary()}, [], save_encoder(context.stage_dir, shape, rebuilt, extra)
