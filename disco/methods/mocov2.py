"""MoCo-v2 (used for teachers and for student baselines)."""

from __future__ import annotations

import torch
from torch import nn

from disco.contrast import MomentumContrast
from disco.losses import info_nce
from disco.methods.registry import MoCoV2Config
from disco.speed import SpeedOptions


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
