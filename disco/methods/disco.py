"""DisCo: MoCo-v2 on the student plus MSE to a frozen teacher's embedding on both views
(DISCO_PROTOCOL.md 1.3-1.4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from disco.contrast import MomentumContrast
from disco.losses import disco_loss
from disco.methods.mocov2 import MoCoV2Config
from disco.shuffle_bn import encode_in_groups

TEACHER_BN_MODES = ("train", "eval")


@dataclass(frozen=True)
class DisCoConfig(MoCoV2Config):
    # None: the official literal MSELoss(reduction='sum') over the local batch; a number w:
    # w * per-sample mean. The paper's effective weight is 32 on any GPU layout.
    mse_per_sample_weight: float | None = 32.0
    ce_weight: float = 1.0
    # "train": faithful, the frozen teacher normalises with per-GPU batch statistics and its
    # running stats drift, as in the official code; "eval": the clean variant.
    teacher_bn: str = "train"

    def validate(self, batch_size: int) -> None:
        super().validate(batch_size)
        if self.teacher_bn not in TEACHER_BN_MODES:
            raise ValueError(f"teacher_bn must be one of {TEACHER_BN_MODES}, got '{self.teacher_bn}'")
        if self.mse_per_sample_weight is not None and self.mse_per_sample_weight < 0:
            raise ValueError("mse_per_sample_weight must be >= 0 or null (literal sum)")


class DisCo(nn.Module):
    def __init__(self, student: nn.Module, teacher: nn.Module, config: DisCoConfig):
        super().__init__()
        self.config = config
        self.contrast = MomentumContrast(student, config.queue_size, config.momentum, config.temperature, config.bn_group_size)
        self.teacher = teacher
        for param in self.teacher.parameters():
            param.requires_grad = False

    @property
    def student(self) -> nn.Module:
        return self.contrast.encoder_q

    def train(self, mode: bool = True) -> "DisCo":
        super().train(mode)
        if self.config.teacher_bn == "eval":
            self.teacher.eval()
        return self

    @torch.no_grad()
    def embed_teacher(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(encode_in_groups(self.teacher, x, self.contrast.bn_groups(x.shape[0])), dim=1)

    def training_step(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        q = self.contrast.embed_query(view1)
        qk = self.contrast.embed_query(view2)
        with torch.no_grad():  # the official order: EMA, teacher(view2), shuffled keys, teacher(view1)
            self.contrast.momentum_update()
            teacher_qk = self.embed_teacher(view2)
            k = self.contrast.embed_keys(view2)
            teacher_q = self.embed_teacher(view1)
        logits = self.contrast.logits(q, k)
        terms = disco_loss(logits, q, qk, teacher_q, teacher_qk, self.config.mse_per_sample_weight, self.config.ce_weight)
        self.contrast.enqueue(k)
        return {"loss": terms["loss"], **{name: value.detach() for name, value in terms.items() if name != "loss"}}
