"""RKD and RKD+DisCo: DisCo's model and step with RKD's distance and angle terms between the
student's and the teacher's view-1 embeddings (docs/protocol.md 3.2)."""

from __future__ import annotations

import torch

from disco.losses import rkd_loss
from disco.methods.disco import DisCo
from disco.methods.registry import RKDConfig


class RKD(DisCo):
    config: RKDConfig

    def loss_terms(self, logits: torch.Tensor, embedded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return rkd_loss(
            logits,
            embedded["q"],
            embedded["qk"],
            embedded["teacher_q"],
            embedded["teacher_qk"],
            self.config.mse_per_sample_weight,
            self.config.ce_weight,
            self.config.distance_weight,
            self.config.angle_weight,
            self.config.use_mse,
            # per BN group: the official RKD sees each GPU's 32 samples, never the global batch
            groups=self.contrast.bn_groups(embedded["q"].shape[0]),
        )
