"""SimCLR (Chen et al., ICML 2020): both views of every image through the one encoder, NT-Xent with
the batch's other images as negatives. No queue, no momentum encoder: it learns from the first
steps at a scale where MoCo-v2 collapses (docs/tiny-profile.md), so the tiny profile uses it as its
base method. BN normalises over the 2N views of a step together (SimCLR's global BN on one device)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from disco.losses import nt_xent
from disco.methods.registry import SimCLRConfig
from disco.speed import SpeedOptions


class SimCLR(nn.Module):
    def __init__(self, encoder: nn.Module, config: SimCLRConfig, speed: SpeedOptions | None = None):
        super().__init__()
        self.config = config
        self.speed = speed or SpeedOptions()
        self.encoder = encoder

    @property
    def student(self) -> nn.Module:
        return self.encoder

    def embed_views(self, view1: torch.Tensor, view2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The L2-normalised embeddings of both views, in fp32, from one call of the encoder."""
        view1, view2 = self.speed.prepare_input(view1), self.speed.prepare_input(view2)
        with self.speed.autocast(view1.device), torch.profiler.record_function("student_forward"):
            both = F.normalize(self.encoder(torch.cat([view1, view2])).float(), dim=1)
        return both[: len(view1)], both[len(view1) :]

    def training_step(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        z1, z2 = self.embed_views(view1, view2)
        loss = nt_xent(z1, z2, self.config.temperature)
        return {"loss": loss, "ce": loss.detach()}
