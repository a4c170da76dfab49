"""MoCo-v2 (used for teachers and for student baselines)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from disco.contrast import MomentumContrast
from disco.losses import info_nce
from disco.speed import SpeedOptions


@dataclass(frozen=True)
class MoCoV2Config:
    queue_size: int = 65536
    momentum: float = 0.999
    temperature: float = 0.2
    bn_group_size: int = 32  # the paper's per-GPU batch: BN statistics are per 32 images

    def validate(self, batch_size: int) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"key momentum must be in [0, 1), got {self.momentum}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.queue_size % batch_size:
            raise ValueError(f"queue_size {self.queue_size} must be a multiple of batch_size {batch_size}")
        if batch_size % self.bn_group_size and batch_size > self.bn_group_size:
            raise ValueError(f"batch_size {batch_size} must be a multiple of bn_group_size {self.bn_group_size}")


class MoCoV2(nn.Module):
    def __init__(self, encoder: nn.Module, config: MoCoV2Config, speed: SpeedOptions | None = None):
        super().__init__()
        self.config = config
        self.speed = speed or SpeedOptions()
        self.contrast = MomentumContrast(
            encoder, config.queue_size, config.momentum, config.temperature, config.bn_group_size
        )

    @property
    def student(self) -> nn.Module:
        return self.contrast.encoder_q

    def training_step(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        view1, view2 = self.speed.prepare_input(view1), self.speed.prepare_input(view2)
        with self.speed.autocast(view1.device), torch.profiler.record_function("student_forward"):
            q = self.contrast.embed_query(view1).float()
        with torch.no_grad(), self.speed.autocast(view1.device):
            self.contrast.momentum_update()
            k = self.contrast.embed_keys(view2).float()
        logits = self.contrast.logits(q, k)
        loss = info_nce(logits)
        self.contrast.enqueue(k)
        return {"loss": loss, "ce": loss.detach()}
